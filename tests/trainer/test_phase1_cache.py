"""The phase-1 cache: a trial whose phase 1 comes from it ends with the very metrics of the same
trial trained from scratch; another phase-1 config misses it; entries are written whole."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.conftest import TEST_TINY
from xstilts.trainer.config import TrialConfig, TrialRuntime
from xstilts.trainer.phase1_cache import PHASE2_FIELDS, load_phase1, phase1_key, store_phase1
from xstilts.trainer.trial import run_trial

BASE: dict[str, Any] = {"tiny": TEST_TINY, "batch_size": 8, "eval_max_examples": 20, "eval_languages": ["en", "xa", "xz"],
                        "intermediate": {"mnli": 1.0}, "intermediate_steps": 8, "target_steps": 6, "eval_every": 3,
                        "seed": 1}


def test_the_key_is_phase_one_config_only() -> None:
    """Targets, their steps and their evaluation leave the key alone; what phase 1 trains on does not."""
    key = phase1_key(TrialConfig(**BASE))
    for over in ({"target_tasks": ["xquad", "udpos"]}, {"target_steps": 50}, {"eval_every": 2},
                 {"eval_dev": False}, {"eval_clean": True}, {"eval_max_examples": 5},
                 {"translate_train_languages": ["xa"]}, {"retrieval_layer": 1}, {"checkpoint_every": 2}):
        assert phase1_key(TrialConfig(**{**BASE, **over})) == key, over
    for over in ({"seed": 2}, {"learning_rate": 2e-3}, {"intermediate": {"qqp": 1.0}}, {"intermediate_steps": 9},
                 {"batch_size": 4}, {"dropout": 0.2}, {"warmup": 0.2}, {"max_seq_len": 32}, {"data_seed": 1},
                 {"tiny": {**TEST_TINY, "seed": 1}}):
        assert phase1_key(TrialConfig(**{**BASE, **over})) != key, over
    assert PHASE2_FIELDS <= set(TrialConfig.model_fields)  # no stale name


def test_entries_are_written_whole_by_concurrent_writers(tmp_path: Path) -> None:
    state = {"model": {"w": torch.arange(1000.0)}, "phase1_losses": [1.0, 0.5]}
    threads = [threading.Thread(target=store_phase1, args=(tmp_path, "k", state)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [p.name for p in tmp_path.iterdir()] == ["k.pt"]  # no temporary file left
    got = load_phase1(tmp_path, "k")
    assert got is not None and torch.equal(got["model"]["w"], state["model"]["w"])
    assert load_phase1(tmp_path, "other") is None
    (tmp_path / "k.pt").write_bytes(b"cut short")
    assert load_phase1(tmp_path, "k") is None  # a damaged entry is a miss


def run(home: Path, cache: Path | None, **kw: Any) -> dict[str, Any]:
    rt = TrialRuntime(home=str(home), threads=1, phase1_cache=str(cache) if cache else None)
    return run_trial(TrialConfig(**{**BASE, **kw}), None, runtime=rt, log=lambda s: None)


def scores(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result["metrics"].items() if not k.startswith("time/")}


@pytest.mark.heavy  # four trials: ~40 s on a busy 2-core machine
def test_a_cached_phase_one_gives_the_metrics_of_a_trained_one(tiny_home: Path, tmp_path: Path) -> None:
    cache = tmp_path / "phase1"
    a = run(tiny_home, cache, target_tasks=["xnli"])  # fills the cache
    assert a["phase1_source"] == "trained" and len(list(cache.glob("*.pt"))) == 1
    cold = run(tiny_home, None, target_tasks=["xquad"])
    warm = run(tiny_home, cache, target_tasks=["xquad"])
    assert cold["phase1_source"] == "trained" and warm["phase1_source"] == "cache"
    assert a["curves"]["intermediate"] == cold["curves"]["intermediate"]  # the target changes no draw of phase 1
    assert scores(warm) == scores(cold)  # bit for bit, floats included
    assert warm["curves"] == cold["curves"] and warm["engine"] == cold["engine"]
    other = run(tiny_home, cache, target_tasks=["xquad"], seed=2)  # another phase 1: a miss, kept beside
    assert other["phase1_source"] == "trained" and len(list(cache.glob("*.pt"))) == 2
    assert other["curves"]["intermediate"] != cold["curves"]["intermediate"]


@pytest.mark.slow
def test_without_dev_evaluation_the_test_scores_are_the_same(tiny_home: Path) -> None:
    """``eval_dev: false`` skips every dev evaluation; evaluation draws no random number, so the test
    scores and the training curves are those of a run evaluated on dev every ``eval_every`` steps."""
    dev = run(tiny_home, None, target_tasks=["pawsx"], intermediate_steps=0)
    none = run(tiny_home, None, target_tasks=["pawsx"], intermediate_steps=0, eval_dev=False)
    test = {k: v for k, v in scores(dev).items() if k.startswith("test/")}
    assert test and test == {k: v for k, v in scores(none).items() if k.startswith("test/")}
    assert none["curves"] == dev["curves"]
    assert "zero_shot/avg" in dev["metrics"] and not any(k.startswith(("zero_shot/", "en/")) for k in none["metrics"])
