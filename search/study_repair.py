"""Repair of a resumed search's Optuna study: the trials asked that Ray will never run.

    Ray's saved state (experiment_state-*.json) ─► the trial numbers Ray knows
    the Optuna journal ─► its RUNNING trials ─► those Ray does not know: told FAIL

The driver can die between ``study.ask`` and Ray's next experiment checkpoint; ``Tuner.restore``
then never runs the trial it asked for, and a RUNNING trial would sit in the sampler's history for
ever. Called before ``Tuner.restore``, so the restored searcher sees only what ran.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["fail_orphan_optuna_trials"]


def _ray_trial_numbers(run_dir: Path) -> set[int]:
    """The Optuna trial numbers (``trial_number`` in the config) of every trial in Ray's saved state."""
    known: set[int] = set()
    for f in run_dir.glob("experiment_state-*.json"):
        try:
            state = json.loads(f.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        for entry in state.get("trial_data", []):
            text = entry[0] if isinstance(entry, list) else entry
            try:
                cfg = json.loads(text).get("config", {})
            except (TypeError, json.JSONDecodeError):
                continue
            if isinstance(cfg, dict) and "trial_number" in cfg:
                known.add(int(cfg["trial_number"]))
    return known


def fail_orphan_optuna_trials(run_dir: Path, journal: Path, study_name: str) -> int:
    """Mark failed the Optuna trials asked after Ray last saved its state (the driver died
    between ``study.ask`` and the next experiment checkpoint): Ray will never run them, and a
    RUNNING trial would sit in the sampler's history for ever. Returns how many."""
    import optuna

    from .searchers import journal_storage

    if not journal.exists():
        return 0
    known = _ray_trial_numbers(run_dir)
    try:
        study = optuna.load_study(study_name=study_name, storage=journal_storage(journal))
    except KeyError:
        return 0
    n = 0
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if t.number not in known:
            study.tell(t.number, state=optuna.trial.TrialState.FAIL)
            n += 1
    return n
