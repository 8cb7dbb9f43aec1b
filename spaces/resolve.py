"""A sampled configuration → what a trial runs and logs.

``to_trial_config`` merges the space's fixed ``trial`` part with the active sampled dimensions
into the ``TrialConfig`` the trainer runs (the mixture's flat keys decoded by
``xstilts.trainer.codec``); ``trial_params`` is the flat mapping a trial logs as its params::

    config (Ray) ──to_trial_config──► TrialConfig
                 ──trial_params─────► {param: value} (MLflow)
"""

from __future__ import annotations

from typing import Any

from xstilts.trainer import codec
from xstilts.trainer.config import TrialConfig

from .spec import SearchSpec, SimplexParam, SubsetParam

__all__ = ["to_trial_config", "trial_params"]


def to_trial_config(spec: SearchSpec, config: dict[str, Any], **extra: Any) -> TrialConfig:
    """The ``TrialConfig`` for a sampled configuration (fixed part + sampled dimensions)."""
    raw: dict[str, Any] = dict(spec.trial)
    sub = spec.subset()
    for name, p in spec.parameters.items():
        if isinstance(p, SubsetParam | SimplexParam) or name not in config or not p.is_active(config):
            continue  # an inactive parameter's value (a PBT placeholder) is never used
        raw[name] = config[name]
    if sub:
        raw["intermediate"] = codec.trial_fields(config, ["intermediate"])["intermediate"]
    raw.update(extra)
    return TrialConfig.model_validate(raw)


def trial_params(spec: SearchSpec, config: dict[str, Any], overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a trial logs as params: every sampled dimension (resolved where it was inactive,
    e.g. ``multilingual_share`` = 0 under ``sequential``) and the fixed settings."""
    tc = to_trial_config(spec, config, **(overrides or {}))
    out: dict[str, Any] = codec.without_raw(config)
    for name, p in spec.parameters.items():
        if isinstance(p, SubsetParam | SimplexParam):
            continue
        if name not in out or not p.is_active(config):
            out[name] = getattr(tc, name)
    for k, v in {**spec.trial, **(overrides or {})}.items():
        out.setdefault(k, v)
    return out

