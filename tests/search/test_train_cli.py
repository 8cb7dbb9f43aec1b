"""`xstilts train CONFIG_YAML`: one real trial, no Ray, through the DeepSpeed engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import TEST_FIDELITY, TEST_TINY, call_cli, run_cli

pytestmark = pytest.mark.slow


def test_train_runs_deepspeed_and_loss_falls(tiny_home: Path, tmp_path: Path) -> None:
    cfg = {"tiny": TEST_TINY, **TEST_FIDELITY, "target_steps": 120, "eval_every": 60,
           "intermediate": {"mnli": 0.7, "sst2": 0.3}, "schedule": "interleaved", "multilingual_share": 0.3,
           "language_temperature": 3.0, "threads": 1}
    path = tmp_path / "trial.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "out"
    r = run_cli(["train", str(path), "--output-dir", str(out)], tiny_home)
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads((out / "results.json").read_text())
    assert result["engine"] == "DeepSpeedEngine"
    m = result["metrics"]
    assert m["train/loss"] < m["train/first_loss"], m
    assert 0.0 <= m["zero_shot/avg"] <= 1.0
    langs = {k.rsplit("/", 1)[1] for k in m if k.startswith("test/zero_shot/xnli/")}
    assert {"xa", "xb", "xc", "xd", "xe", "xz"} <= langs
    assert result["phase1_mixture"] == pytest.approx({"mnli": 0.49, "sst2": 0.21, "mlm": 0.3})
    assert '"engine": "DeepSpeedEngine"' in r.stdout


def test_train_rejects_a_typo_naming_key_and_file(tiny_home: Path, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("learning_rat: 0.001\n")
    r = call_cli(["train", str(path)], tiny_home)
    assert r.returncode == 2
    assert str(path) in r.stderr and "learning_rat" in r.stderr and "unknown key" in r.stderr
