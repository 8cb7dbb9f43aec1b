"""Nothing lost inside a trial: data that breaks after the checks (a test split gone while a trial
trains) fails the trial in its test phase, and its dev results are still written and recorded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.conftest import TEST_TINY
from tests.realdata import write_real_data
from xstilts.trainer.config import TinyModelSpec

pytestmark = pytest.mark.slow

PREFLIGHT_DONE = "[xstilts] preflight: no problems"
TRIAL = {"benchmark": "xtreme", "target_tasks": ["pawsx"], "eval_languages": ["de"], "intermediate": {"mnli": 1.0},
         "intermediate_steps": 6, "target_steps": 8, "eval_every": 4, "batch_size": 8, "eval_max_examples": 16}


def run_removing_after_checks(args: list[str], home: Path, gone: Path) -> tuple[int, str]:
    """Run the CLI; once its preflight has passed, remove ``gone`` (as a lost mount would)."""
    env = {**os.environ, "XSTILTS_HOME": str(home), "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.Popen([sys.executable, "-m", "xstilts.search.cli", *args], env=env, cwd=home, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith(PREFLIGHT_DONE) and gone.exists():
            gone.unlink()
    return proc.wait(timeout=900), "".join(lines)


def setup(tiny_home: Path, tmp_path: Path) -> tuple[dict[str, Any], Path]:
    data = write_real_data(tmp_path / "data")
    model = str(TinyModelSpec(**TEST_TINY).folder(tiny_home))
    return {**TRIAL, "model": model, "data_dir": str(data)}, data / "google/xtreme/PAWS-X.de/test.jsonl"


def test_xstilts_train_keeps_the_dev_results_when_the_test_phase_fails(tiny_home: Path, tmp_path: Path) -> None:
    trial, gone = setup(tiny_home, tmp_path)
    cfg = tmp_path / "trial.yaml"
    cfg.write_text(yaml.safe_dump({**trial, "threads": 1}))
    out = tmp_path / "out"
    rc, log = run_removing_after_checks(["train", str(cfg), "--output-dir", str(out)], tiny_home, gone)
    assert rc == 1, log[-3000:]
    assert "xstilts: the trial failed: no data for task 'pawsx' (language 'de')" in log
    assert f"what it measured is in {out / 'results.json'} (marked partial)" in log and "Traceback" not in log
    saved = json.loads((out / "results.json").read_text())
    assert saved["partial"] is True and 0.0 <= saved["metrics"]["zero_shot/avg"] <= 1.0


def test_a_search_records_the_dev_results_of_a_trial_whose_test_phase_failed(tiny_home: Path,
                                                                             tmp_path: Path) -> None:
    trial, gone = setup(tiny_home, tmp_path)
    space = tmp_path / "partial.yaml"
    space.write_text(yaml.safe_dump({
        "name": "partial", "trial": trial,
        "search": {"searcher": "random", "scheduler": "none", "trials": 1, "max_concurrent": 1, "max_failures": 0},
        "parameters": {"learning_rate": {"type": "float", "low": 1e-4, "high": 1e-3, "log": True}}}))
    uri = f"sqlite:///{tmp_path / 'track.db'}"
    rc, log = run_removing_after_checks(["search", str(space), "--tracking-uri", uri], tiny_home, gone)
    assert rc == 1 and "0 completed" in log and "1 failed" in log, log[-3000:]
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("partial")
    assert exp is not None
    (child,) = [r for r in client.search_runs([exp.experiment_id]) if r.data.tags.get("xstilts.kind") == "trial"]
    assert child.info.status == "FAILED" and child.data.tags["xstilts.status"] == "failed"
    assert "no data for task 'pawsx'" in child.data.tags["xstilts.error"]
    m = child.data.metrics
    assert m["trial/partial"] == 1 and m["train/step"] == TRIAL["target_steps"]  # the last dev report is in
    assert 0.0 <= m["zero_shot/avg"] <= 1.0 and "zero_shot/pawsx/de" in m
