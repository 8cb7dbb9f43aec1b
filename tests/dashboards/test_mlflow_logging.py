"""The MLflow callback's contract, read back from a real SQLite tracking store: nested child
runs, statuses, step metrics, system metrics, artifacts, secrets redacted, re-attach on resume."""

from __future__ import annotations

import json
import pickle
import threading
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.dashboards.conftest import FakeTrial, SyntheticSearch, drive, make_config, make_result, params_fn
from xstilts.dashboards.mlflow_logging import (
    MLflowTrialsCallback,
    artifact_root_for,
    find_search_run_id,
    flatten_params,
    redact,
    reopen_search_run,
    resolved_trial_config,
    start_search_run,
)

PNG = b"\x89PNG\r\n\x1a\n"


def _children(client: MlflowClient, exp_id: str, parent: str) -> list:
    return client.search_runs([exp_id], filter_string=f"tags.mlflow.parentRunId = '{parent}'")


def _artifact(client: MlflowClient, run_id: str, path: str, dst: Path) -> bytes:
    return Path(client.download_artifacts(run_id, path, str(dst))).read_bytes()


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("hub_token", "hf_abc", "***"),
    ("HF_TOKEN", "x", "***"),
    ("db.password", "hunter2", "***"),
    ("api-key", "k", "***"),
    ("aws_secret_access_key", "k", "***"),
    ("credentials_file", "/etc/c.json", "***"),
    ("tracking_uri", "postgresql://alice:s3cret@db:5432/mlflow", "postgresql://alice:***@db:5432/mlflow"),
    ("data_url", "https://host/x.parquet?sig=abc123&x=1", "https://host/x.parquet?sig=***&x=1"),
    ("data_url", "https://host/p?access_token=zzz", "https://host/p?access_token=***"),
    ("learning_rate", 0.001, "0.001"),
    ("model", "xlm-roberta-base", "xlm-roberta-base"),
    ("space_file", "/home/u/spaces/default.yaml", "/home/u/spaces/default.yaml"),
])
def test_redact_masks_secrets_and_keeps_the_rest(key: str, value: object, expected: str) -> None:
    assert redact(key, value) == expected


def test_flatten_params_redacts_nested_keys_and_joins_lists() -> None:
    flat = flatten_params({"db": {"password": "p", "host": "h"}, "langs": ["xa", "xb"], "lr": 1e-3,
                           "uri": "mysql://u:pw@h/db"})
    assert flat == {"db.password": "***", "db.host": "h", "langs": "xa,xb", "lr": "0.001", "uri": "mysql://u:***@h/db"}
    # floats to 4 significant digits (the config artifact keeps them whole); ints and strings as they are
    flat = flatten_params({"ratio.mnli": 0.67599999999, "learning_rate": 0.0012345678901234, "share": 1.0,
                           "steps": 123456, "tasks": "mnli+sst2", "big": 123456.789})
    assert flat == {"ratio.mnli": "0.676", "learning_rate": "0.001235", "share": "1.0", "steps": "123456",
                    "tasks": "mnli+sst2", "big": "123500.0"}
    assert len(redact("long", "x" * 10000)) == 6000


def test_artifact_root_sits_beside_a_sqlite_store(tmp_path: Path) -> None:
    assert artifact_root_for(f"sqlite:///{tmp_path}/a.db") == (tmp_path / "mlartifacts").as_uri()
    assert artifact_root_for("http://127.0.0.1:5000") is None


def test_resolved_trial_config_fills_defaults_from_logged_params() -> None:
    cfg = resolved_trial_config(params_fn(make_config("interleaved", 0.25, share=0.4, temp=2.0)))
    assert cfg["intermediate"] == pytest.approx({"mnli": 0.25, "sst2": 0.75})
    assert cfg["schedule"] == "interleaved" and cfg["multilingual_share"] == 0.4
    assert cfg["target_steps"] == 40 and cfg["zero_stage"] == 0  # a fixed setting and a default


def test_child_runs_carry_status_metrics_params_and_system_metrics(synthetic_search: SyntheticSearch) -> None:
    s = synthetic_search
    client = MlflowClient(s.uri)
    exp = client.get_experiment_by_name(s.experiment)
    assert exp.artifact_location == (s.root / "mlartifacts").as_uri()
    children = {c.info.run_name: c for c in _children(client, exp.experiment_id, s.parent_id)}
    assert set(children) == {t.name for t in s.trials.values()}
    by_key = {k: children[t.name] for k, t in s.trials.items()}
    assert by_key["seq"].data.tags["xstilts.status"] == "completed" and by_key["seq"].info.status == "FINISHED"
    pruned = by_key["pruned"]  # shown as killed in MLflow's table, and said where it stopped
    assert pruned.data.tags["xstilts.status"] == "pruned" and pruned.info.status == "KILLED"
    assert pruned.data.tags["xstilts.stopped_at"] == "phase 2 (target fine-tuning), step 20 of 40"
    assert pruned.data.tags["mlflow.note.content"].startswith("**Pruned**: stopped early at phase 2 (target")
    failed = by_key["failed"]
    assert failed.data.tags["xstilts.status"] == "failed" and failed.info.status == "FAILED"
    assert "RuntimeError: out of memory" in failed.data.tags["xstilts.error"]

    run = by_key["int"]
    p, m = run.data.params, run.data.metrics
    assert p["schedule"] == "interleaved" and float(p["ratio.mnli"]) == pytest.approx(0.4)
    assert p["multilingual_share"] == "0.3" and p["target_steps"] == "40"
    assert "_u.ratios.mnli" not in p
    assert p["hub_token"] == "***" and p["data_uri"] == "postgresql://alice:***@db.example:5432/xtreme"
    assert m["zero_shot/avg"] == pytest.approx(0.55 - 0.03)
    assert m["test/zero_shot/avg"] == pytest.approx(0.55 - 0.03 - 0.01)
    hist = client.get_metric_history(run.info.run_id, "zero_shot/avg")
    assert [h.step for h in hist] == [1, 2]
    # system metrics: the trial's process (here: this one) and its node, at every result
    rss = client.get_metric_history(run.info.run_id, "system/trial_process_rss_megabytes")
    assert [h.step for h in rss] == [1, 2] and all(h.value > 10 for h in rss)
    assert 0 <= m["system/system_memory_usage_percentage"] <= 100
    assert m["system/system_memory_usage_megabytes"] > 0
    assert "system/cpu_utilization_percentage" in m
    assert m["system/trial_process_cpu_percentage"] >= 0  # from the second result on
    assert m["ray/time_total_s"] == pytest.approx(24.0)


def test_child_runs_hold_config_yaml_and_plots(synthetic_search: SyntheticSearch, tmp_path: Path) -> None:
    s = synthetic_search
    client = MlflowClient(s.uri)
    exp = client.get_experiment_by_name(s.experiment)
    children = {c.info.run_name: c for c in _children(client, exp.experiment_id, s.parent_id)}
    run = children[s.trials["int"].name]
    files = {f.path for f in client.list_artifacts(run.info.run_id, "plots")}
    assert files == {"plots/mixture_schedule.png", "plots/zero_shot_by_language.png"}
    for f in files:
        assert _artifact(client, run.info.run_id, f, tmp_path).startswith(PNG)
    doc = yaml.safe_load(_artifact(client, run.info.run_id, "config/trial_config.yaml", tmp_path))
    assert doc["trial"] == s.trials["int"].name
    assert doc["trial_config"]["intermediate"] == pytest.approx({"mnli": 0.4, "sst2": 0.6})
    assert doc["trial_config"]["language_temperature"] == 3.0
    assert doc["sampled"]["_u.ratios.mnli"] == 0.3  # the point as the searcher sampled it
    assert doc["params"]["hub_token"] == "***"
    assert "s3cret" not in json.dumps(doc)
    # a failed trial keeps its config, has no zero-shot plot
    failed = children[s.trials["failed"].name]
    assert {f.path for f in client.list_artifacts(failed.info.run_id, "plots")} == {"plots/mixture_schedule.png"}


def test_resumed_search_reattaches_one_child_run_per_trial(new_store: str, tmp_path: Path) -> None:
    uri = new_store
    parent = start_search_run(uri, "resume", "resume-1", {"trials": 3})
    first = MLflowTrialsCallback(uri, "resume", parent, params_fn=params_fn, progress=False, artifacts=False)
    done = FakeTrial("r_00000", "t0000-sequential", make_config("sequential", 0.5))
    midway = FakeTrial("r_00001", "t0001-interleaved", make_config("interleaved", 0.5, share=0.2, temp=2.0))
    crashed = FakeTrial("r_00002", "t0002-sequential", make_config("sequential", 0.3))
    drive(first, done, [make_result(1, 0.4), make_result(2, 0.5, final=True)])
    drive(first, midway, [make_result(1, 0.3)], end="none")  # the driver dies here
    drive(first, crashed, [], end="error", error_text="boom", tmp=tmp_path)
    client = MlflowClient(uri)
    client.set_terminated(parent, status="KILLED")

    # the resumed search: the runner finds the parent by name, and builds a new callback
    assert find_search_run_id(uri, "resume-1") == parent
    assert find_search_run_id(uri, "no-such-search") is None
    reopen_search_run(uri, parent)
    assert client.get_run(parent).info.status == "RUNNING"
    # Tune may hand back an unpickled copy of the callback: it must re-attach all the same
    second = pickle.loads(pickle.dumps(MLflowTrialsCallback(uri, "resume", parent, params_fn=params_fn,
                                                            progress=False, artifacts=False)))
    new = FakeTrial("r_00003", "t0003-interleaved", make_config("interleaved", 0.6, share=0.4, temp=4.0))
    midway.last_result = {}
    drive(second, midway, [make_result(2, 0.35), make_result(3, 0.6, final=True)])
    crashed.error_file = None
    drive(second, crashed, [make_result(1, 0.2), make_result(2, 0.3, final=True)])  # resume_errored
    drive(second, new, [make_result(1, 0.5), make_result(2, 0.52, final=True)])

    exp = client.get_experiment_by_name("resume")
    children = _children(client, exp.experiment_id, parent)
    by_tid = {}
    for c in children:
        by_tid.setdefault(c.data.tags["ray.trial_id"], []).append(c)
    assert {k: len(v) for k, v in by_tid.items()} == {"r_00000": 1, "r_00001": 1, "r_00002": 1, "r_00003": 1}
    mid = by_tid["r_00001"][0]
    assert mid.data.tags["xstilts.status"] == "completed" and mid.info.status == "FINISHED"
    assert mid.data.tags["xstilts.resumes"] == "1"
    assert [h.step for h in client.get_metric_history(mid.info.run_id, "zero_shot/avg")] == [1, 2, 3]
    again = by_tid["r_00002"][0]
    assert again.info.status == "FINISHED" and again.data.tags["xstilts.status"] == "completed"
    assert "xstilts.resumes" not in by_tid["r_00003"][0].data.tags
    assert by_tid["r_00000"][0].data.tags["xstilts.status"] == "completed"  # untouched
    assert second.best is not None and second.best[1] == "t0001-interleaved"  # best seen across both lives


def test_a_retried_trial_keeps_its_run_and_notes_the_failure(new_store: str, tmp_path: Path) -> None:
    parent = start_search_run(new_store, "retry", "retry-1", {})
    cb = MLflowTrialsCallback(new_store, "retry", parent, params_fn=params_fn, progress=False, artifacts=False)
    t = FakeTrial("x_0", "t0000-sequential", make_config("sequential", 0.5))
    drive(cb, t, [make_result(1, 0.4)], end="none")
    (tmp_path / "err.txt").write_text("Traceback ...\nRayActorError: the worker died")
    t.error_file = str(tmp_path / "err.txt")
    cb.on_trial_recover(0, [], t)
    drive(cb, t, [make_result(1, 0.41), make_result(2, 0.5, final=True)])  # FailureConfig restarts it
    client = MlflowClient(new_store)
    kids = _children(client, client.get_experiment_by_name("retry").experiment_id, parent)
    assert len(kids) == 1
    tags = kids[0].data.tags
    assert tags["xstilts.retries"] == "1" and "the worker died" in tags["xstilts.last_error"]
    assert tags["xstilts.status"] == "completed" and kids[0].info.status == "FINISHED"


def test_progress_line_says_where_the_search_stands(new_store: str, capsys: pytest.CaptureFixture[str]) -> None:
    uri = new_store
    parent = start_search_run(uri, "progress", "progress-1", {})
    cb = MLflowTrialsCallback(uri, "progress", parent, params_fn=params_fn, artifacts=False, system_metrics=False)
    drive(cb, FakeTrial("p_0", "t0000-a", make_config("sequential", 0.5)), [make_result(1, 0.5, final=True)])
    drive(cb, FakeTrial("p_1", "t0001-b", make_config("sequential", 0.5)), [make_result(1, 0.3)])
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0].startswith("[xstilts] trial t0000-a completed zero_shot/avg=0.4700; best 0.4700 (t0000-a)")
    assert out[1].endswith("| 1 completed, 1 pruned, 0 failed, 0 running")


def _gated_trial(store: str, name: str) -> tuple[MLflowTrialsCallback, threading.Event, str, dict]:
    """A callback whose first write blocks until the returned gate is set, after Tune's three
    hooks of one completed trial were called: (callback, gate, parent run id, final result)."""
    gate = threading.Event()

    def slow_params(cfg: dict) -> dict:
        gate.wait(60)
        return params_fn(cfg)

    parent = start_search_run(store, name, f"{name}-1", {})
    cb = MLflowTrialsCallback(store, name, parent, params_fn=slow_params, progress=False, artifacts=False)
    t = FakeTrial(f"{name}_0", "t0000-sequential", make_config("sequential", 0.5))
    r = make_result(1, 0.5, final=True)
    t.last_result = r
    cb.on_trial_start(0, [], t)  # each hook returns although the writes are stuck in params_fn
    cb.on_trial_result(0, [], t, r)
    cb.on_trial_complete(0, [], t)
    return cb, gate, parent, r


def test_tune_hooks_only_queue_the_writes_and_a_failed_write_never_raises(new_store: str, tmp_path: Path) -> None:
    """Tune's event loop must not wait on SQLite or plots: a hook returns while the write it
    queued is still blocked; ``flush`` waits for it. A write that fails is counted, not raised."""
    cb, gate, parent, r = _gated_trial(new_store, "queued")
    client = MlflowClient(new_store)
    exp_id = client.get_experiment_by_name("queued").experiment_id
    assert _children(client, exp_id, parent) == []  # nothing written yet
    gate.set()
    cb.on_experiment_end([])  # what Tune calls at the end of fit: waits for the queue
    (kid,) = _children(client, exp_id, parent)
    assert kid.data.tags["xstilts.status"] == "completed" and kid.info.status == "FINISHED"
    assert kid.data.metrics["zero_shot/avg"] == pytest.approx(r["zero_shot/avg"]) and cb.write_errors == 0

    bad = tmp_path / "not-a-dir"
    bad.write_text("a file where the database folder should be")
    broken = MLflowTrialsCallback(f"sqlite:///{bad / 'x.db'}", "queued", parent, params_fn=params_fn, progress=False,
                                  artifacts=False)
    drive(broken, FakeTrial("q_1", "t0001-sequential", make_config("sequential", 0.5)), [make_result(1, 0.5)])
    assert broken.write_errors >= 1  # logged and counted; the hooks raised nothing


def test_tunes_experiment_snapshot_never_waits_for_the_store(new_store: str) -> None:
    """Tune calls ``get_state`` in its event loop at every experiment snapshot: it must return at
    once even while the writes are stuck (a store that does not answer must not stall the search;
    a resume reconciles the store from the ledger instead of trusting the snapshot)."""
    cb, gate, parent, _ = _gated_trial(new_store, "snap")
    states: list = []
    snap = threading.Thread(target=lambda: states.append(cb.get_state()))
    snap.start()
    snap.join(5)
    assert not snap.is_alive() and states == [None]  # returned while the trial's writes are blocked
    assert cb.pending() == ["t0000-sequential: start", "t0000-sequential: result 1", "t0000-sequential: end"]
    assert cb.flush(timeout=0.2) is False  # a bounded wait says what is left
    gate.set()
    assert cb.flush(timeout=60) is True and cb.pending() == []
    client = MlflowClient(new_store)
    (kid,) = _children(client, client.get_experiment_by_name("snap").experiment_id, parent)
    assert kid.data.tags["xstilts.status"] == "completed"
    assert kid.data.tags["xstilts.trial"] == "t0000-sequential"
