"""What may be tried: search-space YAML files, their typed form, sampling them, and turning a
sampled configuration into a trial; and what a study compares (its arms).

    spec.py      the file format and its models: ``SearchSpec``, its parameters and settings
    loading.py   YAML → a validated ``SearchSpec`` (``load_space``; errors are ``SpaceError``)
    sampling.py  the Optuna define-by-run function, random samples, grid and seed points
    resolve.py   a sampled configuration → ``TrialConfig`` and the params a trial logs
    study.py     a study file (arms compared over shared seeds): ``StudySpec``, ``load_study``,
                 an arm resolved to its ``TrialConfig`` (errors are ``StudyError``)

Import from the package: ``from xstilts.spaces import load_space, define_by_run``.
"""

from __future__ import annotations

from .loading import (
    XTREME_LANGUAGES,
    SpaceError,
    check_space,
    default_space_path,
    load_space,
)
from .resolve import to_trial_config, trial_params
from .sampling import (
    RAW,
    define_by_run,
    grid_points,
    optuna_points,
    placeholders,
    point_to_optuna,
    sample_random,
    with_constants,
)
from .spec import (
    AshaSettings,
    CategoricalParam,
    ConfirmSettings,
    FidelitySettings,
    FloatParam,
    IntParam,
    Param,
    PbtSettings,
    SearchSettings,
    SearchSpec,
    SimplexParam,
    SubsetParam,
)
from .study import StudyError, StudySpec, load_study, resolve_arm

__all__ = [
    # the space and its parts (spec.py)
    "SearchSpec", "SearchSettings", "AshaSettings", "PbtSettings", "ConfirmSettings", "FidelitySettings", "Param", "FloatParam", "IntParam",
    "CategoricalParam", "SubsetParam", "SimplexParam",
    # loading (loading.py)
    "SpaceError", "load_space", "check_space", "default_space_path", "XTREME_LANGUAGES",
    # sampling (sampling.py)
    "RAW", "define_by_run", "sample_random", "with_constants", "grid_points", "optuna_points",
    "point_to_optuna", "placeholders",
    # resolving a configuration (resolve.py)
    "to_trial_config", "trial_params",
    # studies (study.py)
    "StudySpec", "StudyError", "load_study", "resolve_arm",
]
