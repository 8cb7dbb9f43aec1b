"""The resumed study's repair: Optuna trials asked after Ray last saved its state are told FAIL,
those Ray knows (running or finished) are left as they are."""

from __future__ import annotations

import json
from pathlib import Path

import optuna

from xstilts.search.searchers import journal_storage
from xstilts.search.study_repair import fail_orphan_optuna_trials


def _ray_state(run_dir: Path, numbers: list[int]) -> None:
    """An experiment state file as Ray writes it: trial_data rows of [trial meta JSON, run meta JSON]."""
    rows = [[json.dumps({"trial_id": f"t{n}", "status": "RUNNING", "config": {"trial_number": n, "lr": 0.1}}),
             json.dumps({"num_failures": 0})] for n in numbers]
    rows.append(["not json", "{}"])  # an unreadable row is skipped
    (run_dir / "experiment_state-2024-01-01_00-00-00.json").write_text(json.dumps({"trial_data": rows}))
    (run_dir / "experiment_state-broken.json").write_text("{")  # a half-written file too


def test_fails_only_the_running_trials_ray_never_saved(tmp_path: Path) -> None:
    journal = tmp_path / "optuna" / "s.journal"
    study = optuna.create_study(study_name="s", storage=journal_storage(journal))
    asked = [study.ask() for _ in range(4)]
    study.tell(asked[0], 1.0)  # finished, known to Ray
    study.tell(asked[3], 0.5)  # finished, not in Ray's state: finished trials are never touched
    _ray_state(tmp_path, [0, 1])  # trial 2 was asked after Ray's last save

    assert fail_orphan_optuna_trials(tmp_path, journal, "s") == 1
    states = {t.number: t.state for t in optuna.load_study(study_name="s", storage=journal_storage(journal)).trials}
    S = optuna.trial.TrialState
    assert states == {0: S.COMPLETE, 1: S.RUNNING, 2: S.FAIL, 3: S.COMPLETE}
    assert fail_orphan_optuna_trials(tmp_path, journal, "s") == 0  # idempotent


def test_no_journal_or_no_study_repairs_nothing(tmp_path: Path) -> None:
    assert fail_orphan_optuna_trials(tmp_path, tmp_path / "missing.journal", "s") == 0
    journal = tmp_path / "j.journal"
    optuna.create_study(study_name="other", storage=journal_storage(journal))
    assert fail_orphan_optuna_trials(tmp_path, journal, "s") == 0
