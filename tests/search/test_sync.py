"""``xstilts sync``: the ledger replayed into a real SQLite tracking store, only what it lacks, idempotently."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.dashboards.conftest import FakeTrial, drive, make_config, make_result, params_fn
from tests.search.test_ledger import _life
from xstilts.dashboards.mlflow_logging import MLflowTrialsCallback, start_search_run
from xstilts.dashboards.run_records import trial_children
from xstilts.search.ledger import Ledger, LedgerCallback
from xstilts.search.search_run import STATE_FILE
from xstilts.search.sync import gaps, sync_search_run, sync_trials, trials_of_run
from xstilts.spaces import load_space


def _trials() -> dict[str, FakeTrial]:
    def cfg(n: int, schedule: str = "sequential") -> dict:
        extra = {"share": 0.3, "temp": 2.0} if schedule == "interleaved" else {}
        return {**make_config(schedule, 0.5, **extra), "trial_number": n}

    return {"done": FakeTrial("s_0", "t0000-sequential-mnli+sst2", cfg(0)),
            "pruned": FakeTrial("s_1", "t0001-interleaved-mnli+sst2", cfg(1, "interleaved")),
            "failed": FakeTrial("s_2", "t0002-sequential-mnli+sst2", cfg(2), error_msg="RuntimeError: boom"),
            "running": FakeTrial("s_3", "t0003-sequential-mnli+sst2", cfg(3))}


def _search(run_dir: Path) -> dict[str, FakeTrial]:
    """The ledger of a search whose driver died with one trial running."""
    t = _trials()
    cb = LedgerCallback(run_dir)
    _life(cb, t["done"], [make_result(1, 0.4), make_result(2, 0.5, final=True)])
    _life(cb, t["pruned"], [make_result(1, 0.3)])
    _life(cb, t["failed"], [], end="error")
    _life(cb, t["running"], [make_result(1, 0.35)], end="none")
    cb.ledger.close()
    return t


@pytest.fixture
def store(tmp_path: Path) -> str:
    uri = f"sqlite:///{tmp_path / 'track.db'}"
    MlflowClient(uri).search_experiments()
    return uri


def _exp(uri: str, name: str) -> str:
    return MlflowClient(uri).get_experiment_by_name(name).experiment_id


def test_sync_writes_what_the_store_lacks_and_nothing_twice(tmp_path: Path, store: str) -> None:
    run_dir = tmp_path / "run"
    t = _search(run_dir)
    parent = start_search_run(store, "sync", "sync-1", {"trials": 4})
    live = MLflowTrialsCallback(store, "sync", parent, params_fn=params_fn, progress=False, system_metrics=False)
    drive(live, t["done"], [make_result(1, 0.4)], end="none")  # what reached the store before the kill
    exp = _exp(store, "sync")

    report = sync_trials(store, exp, parent, trials_of_run(run_dir), params_fn)
    assert (report.trials, report.children, report.statuses) == (4, 3, 3)
    client = MlflowClient(store)
    kids = trial_children(client, exp, parent)
    assert sorted(kids) == sorted(x.name for x in t.values())
    status = {name: (k.data.tags["xstilts.status"], k.info.status) for name, k in kids.items()}
    assert status == {t["done"].name: ("completed", "FINISHED"), t["pruned"].name: ("pruned", "KILLED"),
                      t["failed"].name: ("failed", "FAILED"), t["running"].name: ("running", "RUNNING")}
    assert "boom" in kids[t["failed"].name].data.tags["xstilts.error"]
    done = kids[t["done"].name].info.run_id
    assert sorted(h.step for h in client.get_metric_history(done, "zero_shot/avg")) == [1, 2]
    assert kids[t["done"].name].data.metrics["zero_shot/avg"] == pytest.approx(make_result(2, 0.5)["zero_shot/avg"])
    assert {a.path for a in client.list_artifacts(done, "plots")} == {"plots/mixture_schedule.png",
                                                                     "plots/zero_shot_by_language.png"}
    running = kids[t["running"].name]
    assert running.data.params["schedule"] == "sequential" and running.data.tags["xstilts.trial_number"] == "3"
    assert running.data.metrics["zero_shot/avg"] == pytest.approx(make_result(1, 0.35)["zero_shot/avg"])

    assert sync_trials(store, exp, parent, trials_of_run(run_dir), params_fn).wrote == 0
    assert all(g.writes == 0 for g in gaps(store, exp, parent, trials_of_run(run_dir), params_fn))
    assert len(client.get_metric_history(done, "zero_shot/avg")) == 2


def test_sync_rebuilds_a_search_in_a_store_that_never_saw_it(tmp_path: Path, store: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A store that holds nothing of the run: the parent is made from the state file, the trials
    from the ledger, and the parent closed as the ledger says the search ended."""
    monkeypatch.setenv("XSTILTS_HOME", str(tmp_path))
    run_dir = tmp_path / "ray" / "sy-20260101-000000"
    _search(run_dir)
    Ledger(run_dir / "xstilts_ledger.jsonl").append(
        {"event": "search", "status": "KILLED", "summary": {"trials/completed": 1.0},
         "tags": {"xstilts.status": "interrupted"}}, durable=True)
    (run_dir / STATE_FILE).write_text(json.dumps({
        "spec": load_space().model_dump_json(), "trial_overrides": {}, "run_name": run_dir.name, "experiment": "sy",
        "tracking_uri": "sqlite:///elsewhere.db", "parent_run_id": "gone"}))

    report = sync_search_run(run_dir.name, tracking_uri=store)
    assert report.parent == "created" and report.children == 4 and report.tracking_uri == store
    client = MlflowClient(store)
    (parent,) = client.search_runs([_exp(store, "sy")], "tags.`xstilts.kind` = 'search'")
    assert parent.info.status == "KILLED" and parent.data.tags["xstilts.status"] == "interrupted"
    assert parent.data.metrics["trials/completed"] == 1.0
    assert len(trial_children(client, _exp(store, "sy"), parent.info.run_id)) == 4

    again = sync_search_run("sy", tracking_uri=store)  # by the search's name: its latest run
    assert again.wrote == 0 and "nothing missing" in again.text()
