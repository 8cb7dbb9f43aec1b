"""What may be tried: search-space YAML files, their schema, and the Optuna define-by-run function."""

from .schema import (
    SearchSettings,
    SearchSpec,
    SpaceError,
    default_space_path,
    define_by_run,
    grid_points,
    load_space,
    optuna_points,
    sample_random,
    to_trial_config,
    trial_params,
    with_constants,
)

__all__ = ["SearchSpec", "SearchSettings", "grid_points", "optuna_points", "SpaceError", "default_space_path", "define_by_run", "load_space", "sample_random",
           "to_trial_config", "trial_params", "with_constants"]
