"""Loading a space file: YAML → a validated ``SearchSpec``, with every error raised here as a
``SpaceError`` naming the file and the key, before Ray starts.

    space YAML ──yaml──► mapping ──SearchSpec (spec.py)──► typed space
               ──check_space──► the fixed ``trial`` part is a valid ``TrialConfig`` (which checks that
                                its languages exist), every seed point and a sample of points resolve

The checks after the model's own need the sampler (``sampling.py``) and the resolution to a
``TrialConfig`` (``resolve.py``), which is why they run here and not in the model's validators.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from xstilts.trainer.config import TrialConfig, format_validation_error, read_yaml_mapping
from xstilts.trainer.tasks import XTREME_LANGUAGES

from .resolve import to_trial_config
from .sampling import grid_points, optuna_points, point_to_optuna, sample_random, with_constants
from .spec import SearchSpec

__all__ = ["SpaceError", "load_space", "check_space", "default_space_path", "validated_file", "XTREME_LANGUAGES"]

M = TypeVar("M", bound=BaseModel)


class SpaceError(ValueError):
    """An invalid space file; the message names the file, the key and what is allowed."""


def default_space_path() -> Path:
    return Path(str(resources.files("xstilts.spaces") / "default.yaml"))


def load_space(path: str | Path | None = None) -> SearchSpec:
    """Load and validate a space file; every error names the file and the key."""
    p = Path(path) if path else default_space_path()
    spec = validated_file(p, SearchSpec, "space", SpaceError)
    check_space(spec, str(p))
    return spec


def validated_file(p: Path, model: type[M], kind: str, error: type[Exception]) -> M:
    """The YAML file ``p`` (a ``kind``: space, study) as ``model``, named after the file unless it says
    otherwise, its ``source`` the path; every error ``error`` naming the file and the key."""
    raw = read_yaml_mapping(p, kind, error)
    raw.setdefault("name", p.stem)
    try:
        return model.model_validate({**raw, "source": str(p)})
    except ValidationError as e:
        raise error(format_validation_error(e, str(p))) from None


def check_space(spec: SearchSpec, where: str) -> None:
    """The checks that need the sampler or the trainer's config: the seed points, the fixed part,
    languages, and that sampled points resolve to valid trials."""
    for i, point in enumerate(spec.points_to_evaluate):
        try:
            point_to_optuna(spec, point)
        except ValueError as e:
            raise SpaceError(f"{where}: invalid configuration\n  points_to_evaluate.{i}: {e}") from None
    try:
        full = TrialConfig.model_validate(spec.trial)
    except ValidationError as e:
        raise SpaceError(format_validation_error(e, f"{where} (trial)")) from None
    _check_fidelities(spec, full, where)
    points = [sample_random(spec, seed) for seed in range(8)]
    if spec.search.searcher == "grid":
        points += [with_constants(spec, point_to_optuna(spec, g)) for g in grid_points(spec)]
    points += [with_constants(spec, q) for q in optuna_points(spec)]
    for cfg in points:
        try:
            tc = to_trial_config(spec, cfg)
            for fid in spec.search.fidelities.values():
                fid.config(tc)  # e.g. an explicit ``stages`` schedule cannot be compressed
        except ValidationError as e:
            raise SpaceError(format_validation_error(e, f"{where} (a sampled point {cfg})")) from None


def _check_fidelities(spec: SearchSpec, full: TrialConfig, where: str) -> None:
    """A cheap fidelity is cheaper than the trial: no more steps in either phase, and fewer in one."""
    for name, fid in spec.search.fidelities.items():
        key = f"search.fidelities.{name}"
        for phase in ("intermediate_steps", "target_steps"):
            if getattr(fid, phase) > getattr(full, phase):
                raise SpaceError(f"{where}: invalid configuration\n  {key}.{phase}: {getattr(fid, phase)} is more "
                                 f"than the trial's {getattr(full, phase)} (a cheap fidelity trains less)")
        if (fid.intermediate_steps, fid.target_steps) == (full.intermediate_steps, full.target_steps):
            raise SpaceError(f"{where}: invalid configuration\n  {key}: the trial's own steps "
                             f"({full.intermediate_steps} + {full.target_steps}); a cheap fidelity trains less")
