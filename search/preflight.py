"""``xstilts check SPACE_STUDY_OR_CONFIG``, and the same checks at the start of ``search``, ``study``
and ``train``.

    space YAML ──load_space──► SearchSpec ──reachable_configs──► TrialConfig ...  (every branch)
    trial config YAML ──load_trial_config──► TrialConfig
    study YAML ──load_study──► StudySpec ──arm_configs──► TrialConfig ...  (every arm)
         ... ──trainer.preflight.preflight_trials──► home, data, model, DeepSpeed's op
    + the tracking store answers (a search's, ``dashboards.store_check``)

``reachable_configs`` covers everything a trial of the space can read: one configuration per
combination of the categorical parameters' choices (each with every candidate intermediate
task, and the multilingual shares at their highest), so every target, split and language, every
intermediate task's train split and the MLM corpora are checked, not only a sampled few.
Nothing is trained, generated or pretrained; only DeepSpeed's op is built when missing.
"""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from xstilts.dashboards.store_check import tracking_store_problem
from xstilts.spaces import (
    CategoricalParam,
    FloatParam,
    SearchSpec,
    load_space,
    to_trial_config,
    with_constants,
)
from xstilts.trainer.config import TrialConfig, load_trial_config, read_yaml_mapping
from xstilts.trainer.home import default_tracking_uri, home
from xstilts.trainer.preflight import Preflight, preflight_trials

__all__ = ["reachable_configs", "preflight_search", "preflight_configs", "check_file", "is_space", "is_study",
           "MAX_BRANCHES"]

MAX_BRANCHES = 256  # combinations of categorical choices enumerated (a larger space: the first ones)
# at their highest: MLM and the translations are drawn if they can be
_SHARES = ("multilingual_share", "multilingual_share_start", "translated_share")
_SPACE_KEYS = {"name", "search", "trial", "parameters", "points_to_evaluate"}  # a space file's top level
Log = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def reachable_configs(spec: SearchSpec, overrides: dict[str, Any] | None = None) -> list[TrialConfig]:
    """One ``TrialConfig`` per combination of the categorical choices (distinct ones only), each with
    every candidate intermediate task and the multilingual shares at their highest."""
    cats = [(n, p) for n, p in spec.parameters.items() if isinstance(p, CategoricalParam)]
    sub = spec.subset()
    every_task = {"intermediate": dict.fromkeys(sub[1].members, 1.0)} if sub else {}
    out: dict[str, TrialConfig] = {}
    for combo in itertools.islice(itertools.product(*(p.choices for _, p in cats)), MAX_BRANCHES):
        fixed: dict[str, Any] = {}
        for (name, p), value in zip(cats, combo, strict=True):
            if p.is_active(fixed):
                fixed[name] = value
        for name, q in spec.parameters.items():
            if name in _SHARES and isinstance(q, FloatParam) and q.is_active(fixed):
                fixed[name] = q.high
        cfg = to_trial_config(spec, with_constants(spec, fixed), **{**(overrides or {}), **every_task})
        out.setdefault(json.dumps(cfg.model_dump(mode="json"), sort_keys=True), cfg)
    return list(out.values())


def preflight_search(spec: SearchSpec, overrides: dict[str, Any], tracking_uri: str, root: Path,
                     log: Log = _stderr, op_background: bool = False) -> Preflight:
    """A search's checks: the tracking store answers, then every trainer-side check for every
    configuration the space can reach (``op_background``: DeepSpeed's op, when missing, is built in
    a process of its own while the run prepares; ``trainer.preflight.check_deepspeed_op``)."""
    cfgs = reachable_configs(spec, overrides)
    return preflight_configs(cfgs, f"space {spec.name}: {len(cfgs)} distinct trial configuration(s) cover its "
                             "branches", tracking_uri, root, log, op_background)


def preflight_configs(cfgs: list[TrialConfig], what: str, tracking_uri: str, root: Path,
                      log: Log = _stderr, op_background: bool = False) -> Preflight:
    """The tracking store answers, then every trainer-side check for each of ``cfgs`` (``what``
    says what they cover; ``op_background``: as ``preflight_search``)."""
    out = Preflight()
    problem = tracking_store_problem(tracking_uri)
    if problem:
        out.problems.append(problem)
    else:
        out.checked.append(f"tracking store {tracking_uri}: usable")
    out.checked.append(what)
    trials = preflight_trials(cfgs, root, log, refused=not out.ok, op_background=op_background)
    out.merge(trials).seconds = trials.seconds
    return out


def is_space(path: str | Path) -> bool:
    """Whether a YAML file is a search space (its top level has space keys) or a trial config."""
    return bool(_SPACE_KEYS & set(read_yaml_mapping(Path(path), "space or trial config")))


def is_study(path: str | Path) -> bool:
    """Whether a YAML file is a study (its top level has ``arms``)."""
    return "arms" in read_yaml_mapping(Path(path), "space, study or trial config")


def check_file(path: str | Path, root: Path, *, tracking_uri: str | None = None,
               overrides: dict[str, Any] | None = None, log: Log = _stderr) -> Preflight:
    """What ``xstilts check`` runs on a space, a study or a trial config file. Raises ``SpaceError``,
    ``StudyError`` or ``ConfigError`` for a file that does not load (those name the file and the
    key). A study's ``from_search`` arms are looked up in the tracking store, as its start does."""
    if is_study(path):
        from xstilts.spaces.study import load_study

        from .study import arm_configs

        study = load_study(path)
        uri = tracking_uri or default_tracking_uri(root)
        configs, _ = arm_configs(study, dict(overrides or {}), uri)
        return preflight_configs(list(configs.values()), f"study {study.name}: {len(configs)} arm(s)", uri, root, log)
    if is_space(path):
        spec = load_space(path)
        return preflight_search(spec, dict(overrides or {}), tracking_uri or default_tracking_uri(root), root, log)
    cfg, runtime = load_trial_config(path, overrides)
    return preflight_trials([cfg], home(runtime.home) if runtime.home else root, log)
