"""Optuna records others can read: the driver's ``OptunaRecordsCallback`` writes each trial's name,
decoded mixture and MLflow run id into the study of the real ``OptunaSearch`` (a journal file),
read back with Optuna; the trainable class that names trial actors; ``xstilts ui --optuna``."""

from __future__ import annotations

import logging
import os
import pickle
import re
import signal
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import optuna
import pytest
import yaml

from xstilts.search.optuna_records import (
    MIXTURE,
    MLFLOW_RUN_ID,
    TRIAL_NAME,
    OptunaRecordsCallback,
    trial_records,
)
from xstilts.search.runner import trial_name
from xstilts.search.searchers import journal_storage, make_search_alg
from xstilts.search.trial_actor import named_trainable
from xstilts.spaces import SearchSpec
from xstilts.trainer.codec import NUMBER
from xstilts.trainer.names import TRIAL_FUNCTION
from xstilts.trainer.ports import free_port

SPACES = Path(__file__).resolve().parents[2] / "spaces"


@dataclass
class StandInTrial:
    """What the callback reads of a Ray Tune ``Trial``: ``config`` and ``str(trial)`` (its name)."""

    name: str
    config: dict[str, Any]

    def __str__(self) -> str:
        return self.name


def _spec() -> SearchSpec:
    raw = yaml.safe_load((SPACES / "default.yaml").read_text())
    raw["points_to_evaluate"] = [{"intermediate_tasks": "mnli+sst2", "ratios": {"mnli": 0.8, "sst2": 0.2},
                                  "schedule": "sequential", "learning_rate": 1.0e-3}]
    return SearchSpec.model_validate(raw)


def test_trial_records_hold_the_decoded_mixture_not_the_simplex_coordinates() -> None:
    config = {"intermediate_tasks": "mnli+sst2", "_u.ratios.mnli": 0.3, "_u.ratios.sst2": 0.6, "tasks.mnli": 1,
              "tasks.sst2": 1, "ratio.mnli": 0.702108, "ratio.sst2": 0.297892, NUMBER: 3}
    assert trial_records("t0003-x", config) == {TRIAL_NAME: "t0003-x", MIXTURE: {"mnli": 0.7021, "sst2": 0.2979}}
    one = {"tasks.mnli": 1, "tasks.sst2": 0, "ratio.mnli": 1.0, "ratio.sst2": 0.0}
    assert trial_records("t", one)[MIXTURE] == {"mnli": 1.0}


def test_the_study_carries_names_mixtures_and_mlflow_run_ids(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spec, journal = _spec(), tmp_path / "s.journal"
    alg = make_search_alg(spec, "s", journal)
    run_ids: dict[str, str] = {}  # what the MLflow callback's writer thread fills in
    cb = OptunaRecordsCallback(journal, "s", run_ids.get)

    trials = []
    for i in range(3):
        cfg = alg.suggest(f"ray{i}")
        trials.append(StandInTrial(trial_name(cfg, cfg[NUMBER]), cfg))
        cb.on_trial_start(0, [], trials[-1])
    first, second, third = trials
    run_ids[first.name] = "run-first"  # the child run of the first exists by its first result
    cb.on_trial_result(0, [], first, {"zero_shot/avg": 0.4})
    alg.on_trial_complete("ray0", result={"zero_shot/avg": 0.5, "trial_done": 1})
    cb.on_trial_result(0, [], second, {"zero_shot/avg": 0.3})  # no run yet (the store lags): none set
    alg.on_trial_complete("ray1", result={"zero_shot/avg": 0.3})  # stopped early: PRUNED
    run_ids[second.name] = "run-second"
    with caplog.at_level(logging.INFO, logger="xstilts.search.optuna_records"):
        cb.on_trial_result(0, [], second, {})  # too late: Optuna takes nothing from a finished trial
    assert "ended before its MLflow run id was known" in caplog.text and "run-second" not in journal.read_text()

    study = optuna.load_study(study_name="s", storage=journal_storage(journal))
    by_number = {t.number: t for t in study.trials}
    t0, t1, t2 = (by_number[t.config[NUMBER]] for t in trials)
    assert t0.user_attrs == {TRIAL_NAME: first.name, MIXTURE: {"mnli": 0.8, "sst2": 0.2}, MLFLOW_RUN_ID: "run-first"}
    assert t0.state == optuna.trial.TrialState.COMPLETE and first.name.startswith("t0000-sequential")
    assert t1.state == optuna.trial.TrialState.PRUNED
    assert t1.user_attrs[TRIAL_NAME] == second.name and MLFLOW_RUN_ID not in t1.user_attrs
    assert t2.user_attrs[TRIAL_NAME] == third.name and t2.state == optuna.trial.TrialState.RUNNING
    assert sum(t2.user_attrs[MIXTURE].values()) == pytest.approx(1.0, abs=1e-3)
    assert not any(k.startswith("_u.") for k in t2.user_attrs[MIXTURE])
    again = pickle.loads(pickle.dumps(cb))  # Tune saves its callbacks with the experiment: no storage handle goes
    assert again.journal == journal and again._storage is None


def test_the_trainable_class_is_named_for_the_dashboard() -> None:
    def xstilts_trial(config: dict[str, Any]) -> None:
        return None

    cls = named_trainable(xstilts_trial, {"cpu": 2})
    assert cls.__name__ == TRIAL_FUNCTION  # dashboards.status.is_trial_actor finds it by this name
    assert cls.default_resource_request({}).required_resources == {"CPU": 2}
    # the actor's repr (what Ray lists) is the trial's name; checked on Ray's Actors page by the heavy browser test
    assert "__repr__" in cls.__dict__ and cls.__repr__(SimpleNamespace(trial_name="t0001-x")) == "t0001-x"


@pytest.mark.slow  # a subprocess importing optuna-dashboard: about 10 s on 2 busy cores
def test_ui_optuna_serves_the_study_until_sigint(tmp_path: Path) -> None:
    pytest.importorskip("optuna_dashboard", reason="optuna-dashboard (the optuna extra) is not installed")
    journal = tmp_path / "opt.journal"
    study = optuna.create_study(study_name="mine-20260101-000000", storage=journal_storage(journal))
    trial = study.ask()
    trial.set_user_attr(TRIAL_NAME, "t0000-sequential-mnli")
    study.tell(trial, 0.5)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "xstilts.search.cli", "ui", "--optuna", str(journal),
                             "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        m = re.search(r"optuna-dashboard over .*: (http://127\.0\.0\.1:\d+/dashboard/studies/(\d+))", line)
        assert m, line
        body = _get(f"http://127.0.0.1:{port}/api/studies/{m.group(2)}", timeout=30)
        assert '"t0000-sequential-mnli"' in body and '"trial_name"' in body
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        out = proc.communicate(timeout=30)[0]
    assert proc.returncode == 0 and "stopping optuna-dashboard" in out


def test_ui_optuna_names_what_it_cannot_open(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from xstilts.search.cli import main

    assert main(["--home", str(tmp_path), "ui", "--optuna", "no-such-search"]) == 1
    assert "no search run 'no-such-search'" in capsys.readouterr().err


def _get(url: str, timeout: float) -> str:
    """GET ``url``, retrying while the server starts."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return str(r.read().decode())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)
