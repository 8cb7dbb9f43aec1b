"""Exact resume: a real `xstilts train` killed with SIGKILL mid-phase, restarted, ends bit-identical."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import TEST_TINY, run_cli
from xstilts.trainer.checkpoints import CHECKPOINT_DIR, latest_checkpoint

pytestmark = pytest.mark.slow

CFG = {"tiny": TEST_TINY, "intermediate_steps": 60, "target_steps": 60, "eval_every": 30, "batch_size": 16,
       "eval_max_examples": 60, "intermediate": {"mnli": 0.5, "squad": 0.5}, "schedule": "annealed",
       "multilingual_share": 0.4, "target_tasks": ["xnli", "panx"], "eval_languages": ["en", "xa", "xz"],
       "checkpoint_every": 5, "threads": 1}


def start(config: Path, out: Path, home: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "XSTILTS_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "xstilts.search.cli", "train", str(config), "--output-dir",
                             str(out)], env=env, cwd=home, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def kill_in(proc: subprocess.Popen[str], out: Path, phase: str, after: int, timeout: float = 300) -> str:
    """SIGKILL the run once its newest checkpoint is ``phase`` at step >= ``after``; the tag it had."""
    root = out / CHECKPOINT_DIR
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        latest = latest_checkpoint(root) if root.exists() else None
        if latest is not None and latest.name.startswith(phase) and int(latest.name.split("-")[1]) >= after:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return latest.name
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before a {phase} checkpoint: {proc.stdout.read()[-3000:] if proc.stdout else ''}")
        time.sleep(0.01)
    proc.kill()
    raise AssertionError("no checkpoint in time")


def scores(out: Path) -> dict[str, Any]:
    m = json.loads((out / "results.json").read_text())["metrics"]
    return {k: v for k, v in m.items() if not k.startswith("time/")}


def test_sigkill_mid_phase_then_resume_is_bit_identical(tiny_home: Path, tmp_path: Path) -> None:
    config = tmp_path / "trial.yaml"
    config.write_text(yaml.safe_dump(CFG))

    ref = tmp_path / "reference"
    r = run_cli(["train", str(config), "--output-dir", str(ref)], tiny_home)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert not json.loads((ref / "results.json").read_text())["resumed"]

    out = tmp_path / "interrupted"
    killed_at = kill_in(start(config, out, tiny_home), out, "intermediate", 20)
    assert not (out / "results.json").exists()
    # resumed once, killed again in the target phase, resumed again
    second = start(config, out, tiny_home)
    killed_again = kill_in(second, out, "target", 35)
    r = run_cli(["train", str(config), "--output-dir", str(out)], tiny_home)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert f"resuming from {out / CHECKPOINT_DIR / killed_again}" in r.stdout, (killed_at, r.stdout[-2000:])
    result = json.loads((out / "results.json").read_text())
    assert result["resumed"]

    got, want = scores(out), scores(ref)
    assert set(got) == set(want)
    assert got == want  # bit-identical, floats included
    assert "test/zero_shot/panx/xa" in got and "zero_shot/xnli/xz" in got
