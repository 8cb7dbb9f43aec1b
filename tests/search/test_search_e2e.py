"""End to end: `xstilts search` runs a real 2-trial search (Ray Tune + Optuna + ASHA + DeepSpeed)
and the MLflow contract is read back with MlflowClient. The search is the session's ``real_search``
(tests/conftest.py), shared with tests/dashboards/test_dashboards_e2e."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.conftest import TEST_FIDELITY, TEST_TINY, RealSearch, call_cli, run_cli

pytestmark = pytest.mark.slow


def _space(tmp_path: Path, name: str, trial: dict, trials: int = 2) -> Path:
    from xstilts.spaces import default_space_path

    raw = yaml.safe_load(default_space_path().read_text())
    raw["name"] = name
    raw["search"]["trials"] = trials
    raw["search"].pop("confirm", None)  # the search phase alone (tests/dashboards runs a confirm phase)
    raw["trial"].update({"tiny": TEST_TINY, **TEST_FIDELITY, **trial})
    p = tmp_path / f"{name}.yaml"
    p.write_text(yaml.safe_dump(raw))
    return p


def test_search_writes_the_mlflow_contract(real_search: RealSearch) -> None:
    """The session's real search (``real_search``: 2 trials, then its confirm phase) read back: the
    parent, and the search phase's 2 trials (the confirm phase is tested in tests/dashboards)."""
    s = real_search
    assert "raw best of the search (one training seed, likely lucky): t000" in s.stdout
    assert "zero_shot/avg = " in s.stdout and "xstilts ui" in s.stdout

    client = MlflowClient(s.uri)
    exp = client.get_experiment_by_name("dash")
    assert exp is not None
    runs = client.search_runs([exp.experiment_id])
    parents = [x for x in runs if x.data.tags.get("xstilts.kind") == "search"]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.data.params["searcher"] == "tpe" and parent.data.params["scheduler"] == "asha"
    assert parent.data.params["space_file"] == str(s.space)
    assert parent.data.params["trials"] == "2"
    assert parent.info.status == "FINISHED"

    children = client.search_runs([exp.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    children = [c for c in children if c.data.tags.get("xstilts.phase") != "confirm"]
    assert len(children) == 2
    for child in children:
        tags, params, metrics = child.data.tags, child.data.params, child.data.metrics
        assert tags["xstilts.kind"] == "trial" and tags["ray.trial_id"]
        assert tags["xstilts.status"] in {"completed", "pruned"}
        assert child.info.run_name.startswith("t000")
        for key in ("tasks.mnli", "tasks.sst2", "ratio.mnli", "ratio.sst2", "schedule", "multilingual_share",
                    "language_temperature", "learning_rate", "intermediate_tasks", "target_steps"):
            assert key in params, key
        chosen = [t for t in ("mnli", "sst2") if params[f"tasks.{t}"] == "1"]
        assert sum(float(params[f"ratio.{t}"]) for t in chosen) == pytest.approx(1.0, abs=1e-4)
        assert params["target_steps"] == "40"  # the fixed settings, as overridden for this test
        assert 0.0 <= metrics["zero_shot/avg"] <= 1.0
        assert {"zero_shot/xnli/xa", "zero_shot/xnli/xe", "en/xnli", "train/loss"} <= set(metrics)
        history = client.get_metric_history(child.info.run_id, "zero_shot/avg")
        assert [h.step for h in history] == sorted(h.step for h in history) and history[0].step == 1
    assert any(c.data.tags["xstilts.status"] == "completed" for c in children)
    _check_optuna_records(s.home, parent.data.tags["xstilts.search"], children)
    if os.environ.get("RAY_AUTH_MODE", "token").lower() == "token":
        assert "the page asks for a token: paste what `ray get-auth-token` prints" in s.stdout


def _check_optuna_records(home: Path, run_name: str, children: list) -> None:
    """The search's Optuna study names every trial, holds its decoded mixture and links its MLflow run."""
    import optuna

    from xstilts.search.searchers import journal_storage

    study = optuna.load_study(study_name=run_name, storage=journal_storage(home / "optuna" / f"{run_name}.journal"))
    by_number = {t.number: t for t in study.trials}
    for child in children:
        attrs = by_number[int(child.data.tags["xstilts.trial_number"])].user_attrs
        assert attrs["trial_name"] == child.info.run_name and attrs["mlflow_run_id"] == child.info.run_id
        params = child.data.params
        chosen = {t: float(params[f"ratio.{t}"]) for t in ("mnli", "sst2") if params[f"tasks.{t}"] == "1"}
        assert attrs["mixture"] == pytest.approx(chosen, abs=1e-3)


def test_a_missing_checkpoint_is_refused_before_the_search_starts(tiny_home: Path, tmp_path: Path) -> None:
    space = _space(tmp_path, "nockpt", {"model": str(tmp_path / "no-such-checkpoint")})
    uri = f"sqlite:///{tmp_path / 'track.db'}"
    r = call_cli(["search", str(space), "--trials", "2", "--tracking-uri", uri], tiny_home)
    assert r.returncode == 2 and f"model: {tmp_path / 'no-such-checkpoint'} is not a folder" in r.stderr
    assert not (tmp_path / "track.db").exists()  # refused before the tracking store, Ray or any trial


def test_crashed_trials_are_recorded_as_failed_and_the_search_goes_on(tiny_home: Path, tmp_path: Path) -> None:
    from xstilts.trainer.engine import bf16_supported

    if bf16_supported():
        pytest.skip("the crash is bf16 asked of an accelerator without it")
    # every trial crashes when it builds its engine: what only the trial's own host can tell
    space = _space(tmp_path, "crash", {"bf16": "on"})
    uri = f"sqlite:///{tmp_path / 'track.db'}"
    r = run_cli(["search", str(space), "--trials", "2", "--tracking-uri", uri], tiny_home)
    assert r.returncode == 1  # nothing completed
    assert "2 failed" in r.stdout
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("crash")
    children = [x for x in client.search_runs([exp.experiment_id]) if x.data.tags.get("xstilts.kind") == "trial"]
    assert len(children) == 2
    for c in children:
        assert c.info.status == "FAILED" and c.data.tags["xstilts.status"] == "failed"
        assert "no bf16 support" in c.data.tags["xstilts.error"]
