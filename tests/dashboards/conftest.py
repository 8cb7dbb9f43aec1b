"""Fixtures for the dashboards tests: a synthetic search written through the real callback.

``FakeTrial`` stands in for a Ray Tune ``Trial`` (the callback reads only ``trial_id``,
``config``, ``last_result``, ``error_file``/``error_msg`` and ``str(trial)``), so the MLflow
contract is exercised without Ray running trials; the end-to-end tests run a real search.
"""

from __future__ import annotations

import os
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TEST_FIDELITY

LANGS = ("xa", "xb", "xc", "xe")


@dataclass
class FakeTrial:
    trial_id: str
    name: str
    config: dict[str, Any]
    last_result: dict[str, Any] = field(default_factory=dict)
    error_file: str | None = None
    error_msg: str | None = None

    def __str__(self) -> str:
        return self.name


def make_config(schedule: str, ratio_mnli: float, share: float = 0.0, temp: float = 1.0,
                lr: float = 1e-3) -> dict[str, Any]:
    """A point as Ray hands it to a trial (params + the define-by-run constants)."""
    cfg: dict[str, Any] = {"intermediate_tasks": "mnli+sst2", "_u.ratios.mnli": 0.3, "_u.ratios.sst2": 0.6,
                           "schedule": schedule, "learning_rate": lr,
                           "tasks.mnli": 1, "tasks.sst2": 1, "ratio.mnli": ratio_mnli, "ratio.sst2": 1 - ratio_mnli}
    if schedule == "interleaved":
        cfg.update({"multilingual_share": share, "language_temperature": temp})
    return cfg


def make_result(step: int, score: float, final: bool = False, seconds: float = 10.0) -> dict[str, Any]:
    """What the trainer reports (plus Ray's auto-filled fields): dev scores, at the end test ones."""
    r: dict[str, Any] = {"training_iteration": step, "time_total_s": seconds * step, "pid": os.getpid(),
                         "hostname": socket.gethostname(), "train/loss": 1.0 / step, "train/step": 20 * step,
                         "en/xnli": min(1.0, score + 0.2)}
    for i, lang in enumerate(LANGS):
        r[f"zero_shot/xnli/{lang}"] = max(0.0, score - 0.02 * i)
    r["zero_shot/xnli"] = sum(r[f"zero_shot/xnli/{lang}"] for lang in LANGS) / len(LANGS)
    r["zero_shot/avg"] = r["zero_shot/xnli"]
    r["zero_shot/worst"] = min(r[f"zero_shot/xnli/{lang}"] for lang in LANGS)
    if final:
        r.update({f"test/{k}": v - 0.01 for k, v in list(r.items()) if k.startswith(("zero_shot/", "en/"))})
        r["trial_done"] = 1
        r["time/trial_s"] = seconds * step
    return r


def params_fn(cfg: dict[str, Any]) -> dict[str, Any]:
    from xstilts.spaces import load_space, trial_params

    out = trial_params(load_space(), cfg, TEST_FIDELITY)
    out["hub_token"] = "hf_secret_value"  # must never reach the store
    out["data_uri"] = "postgresql://alice:s3cret@db.example:5432/xtreme"
    return out


def drive(cb: Any, trial: FakeTrial, results: list[dict[str, Any]], end: str = "complete",
          error_text: str = "", tmp: Path | None = None) -> None:
    """Feed a trial's life through the callback as Tune's controller would."""
    cb.on_trial_start(0, [], trial)
    for r in results:
        trial.last_result = r
        cb.on_trial_result(0, [], trial, r)
    if end == "complete":
        cb.on_trial_complete(0, [], trial)
    elif end == "error":
        assert tmp is not None
        p = tmp / f"{trial.trial_id}.error.txt"
        p.write_text(error_text)
        trial.error_file = str(p)
        cb.on_trial_error(0, [], trial)
    cb.flush()  # the writes happen on the callback's writer thread; Tune flushes at the end of fit


@dataclass
class SyntheticSearch:
    uri: str
    experiment: str
    run_name: str
    parent_id: str
    trials: dict[str, FakeTrial]
    root: Path


@pytest.fixture(scope="session")
def store_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty SQLite tracking store with MLflow's schema created (migrations take seconds)."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("store_template") / "template.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def new_store(store_template: Path, tmp_path: Path) -> str:
    """A fresh, empty tracking store of this test's own (a copy of the template)."""
    path = tmp_path / "track.db"
    shutil.copyfile(store_template, path)
    return f"sqlite:///{path}"


@pytest.fixture(scope="session")
def synthetic_search(tmp_path_factory: pytest.TempPathFactory, store_template: Path) -> SyntheticSearch:
    """A finished search of four trials: two completed (interleaved is best, sequential is the
    baseline), one pruned by ASHA, one failed; then the summary on the parent run."""
    from xstilts.dashboards.mlflow_logging import MLflowTrialsCallback, finish_search_run, start_search_run

    root = tmp_path_factory.mktemp("dash_store")
    shutil.copyfile(store_template, root / "track.db")
    uri = f"sqlite:///{root / 'track.db'}"
    run_name = "synthetic-20260101-000000"
    parent = start_search_run(uri, "synthetic", run_name, {
        "space_file": "spaces/default.yaml", "searcher": "tpe", "scheduler": "asha", "trials": 4, "metric": "zero_shot/avg",
        "mode": "max", **{f"trial.{k}": v for k, v in TEST_FIDELITY.items()}})
    cb = MLflowTrialsCallback(uri, "synthetic", parent, params_fn=params_fn, progress=False)
    trials = {
        "seq": FakeTrial("aaa_00000", "t0000-sequential-mnli+sst2", make_config("sequential", 0.7)),
        "int": FakeTrial("aaa_00001", "t0001-interleaved-m0.30-T3.0-mnli+sst2",
                         make_config("interleaved", 0.4, share=0.3, temp=3.0, lr=2e-3)),
        "pruned": FakeTrial("aaa_00002", "t0002-interleaved-m0.50-T1.5-mnli+sst2",
                            make_config("interleaved", 0.2, share=0.5, temp=1.5)),
        "failed": FakeTrial("aaa_00003", "t0003-sequential-mnli+sst2", make_config("sequential", 0.5)),
    }
    drive(cb, trials["seq"], [make_result(1, 0.40), make_result(2, 0.45, final=True)])
    drive(cb, trials["int"], [make_result(1, 0.42), make_result(2, 0.55, final=True, seconds=12)])
    drive(cb, trials["pruned"], [make_result(1, 0.30)])
    drive(cb, trials["failed"], [], end="error", error_text="Traceback...\nRuntimeError: out of memory", tmp=root)
    from xstilts.dashboards.summary import log_search_summary

    assert log_search_summary(uri, parent, metric="zero_shot/avg", mode="max") is not None
    finish_search_run(uri, parent, {"trials/completed": 2}, {"xstilts.status": "finished"})
    return SyntheticSearch(uri, "synthetic", run_name, parent, trials, root)
