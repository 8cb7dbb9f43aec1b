"""``xstilts bench trainer`` runs end to end at smoke size and prints its one JSON object (its
figures are measured by the full-size run, never in a test)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.slow


def test_bench_trainer_cli_prints_one_json_object_at_smoke_size(tiny_home: Path) -> None:
    r = run_cli(["bench", "trainer", "--quick", "--json"], tiny_home, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout)  # stdout is the JSON object alone; progress went to stderr
    assert out["quick"] is True and out["threads"] == 1
    # both loops ran the same steps over full batches of the default size (the train split is
    # shorter than the batches asked for: they cycle through it)
    detail = out["detail"]
    assert detail["batch_size"] == 32 and detail["steps_per_loop"] == 4 * 5
    assert len(detail["round_ratios"]) == 4 and all(x > 0 for x in detail["round_ratios"])
    assert out["deepspeed_examples_per_s"] > 0 and out["torch_examples_per_s"] > 0
    assert out["ratio"] == pytest.approx(out["deepspeed_examples_per_s"] / out["torch_examples_per_s"], rel=1e-2)
    assert out["meets_target"] == (out["ratio"] >= out["target_ratio"])
    for loss in detail["mean_loss"].values():
        assert 0 < loss < 5  # three-way classification from about ln 3
    # the timed default trial reported its phases
    assert {"setup", "phase1", "phase2", "eval", "trial"} <= set(out["trial_phase_seconds"])
    assert all(v >= 0 for v in out["trial_phase_seconds"].values())
    assert out["seconds"]["total"] >= out["seconds"]["trial"] > 0
    assert out["peak_rss_mb"] > 0 and out["model"]["params"] > 0
