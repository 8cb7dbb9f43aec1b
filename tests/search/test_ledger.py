"""The search's ledger: what Tune's hooks write, what a kill can leave, how it folds into trials."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.dashboards.conftest import FakeTrial, drive, make_config, make_result
from xstilts.search.ledger import LEDGER_FILE, LedgerCallback, read_ledger, tally
from xstilts.trainer.names import REPLAYED


def _config(n: int) -> dict:
    return {**make_config("sequential", 0.5), "trial_number": n}


def _life(cb: LedgerCallback, trial: FakeTrial, results: list[dict], end: str = "complete") -> None:
    """A trial's life through the ledger's hooks, as Tune's controller calls them (an error from its message)."""
    drive(cb, trial, results, end="none" if end == "error" else end)
    if end == "error":
        cb.on_trial_error(0, [], trial)


def test_hooks_become_one_trial_record_each(tmp_path: Path) -> None:
    cb = LedgerCallback(tmp_path)
    done = FakeTrial("a_0", "t0000-sequential", _config(0))
    first = {**make_result(1, 0.40), "checkpoint_dir_name": "checkpoint_000000", "config": {"not": "kept"}}
    _life(cb, done, [first, {**first, REPLAYED: 1}, make_result(2, 0.45, final=True)])
    pruned = FakeTrial("a_1", "t0001-sequential", _config(1))
    _life(cb, pruned, [make_result(1, 0.30)])
    failed = FakeTrial("a_2", "t0002-sequential", _config(2), error_msg="RuntimeError: out of memory")
    _life(cb, failed, [], end="error")
    running = FakeTrial("a_3", "t0003-sequential", _config(3))
    _life(cb, running, [make_result(1, 0.6)], end="none")  # the driver dies here

    trials = read_ledger(tmp_path)
    assert list(trials) == ["t0000-sequential", "t0001-sequential", "t0002-sequential", "t0003-sequential"]
    t = trials["t0000-sequential"]
    assert (t.number, t.trial_id, t.status, t.starts, t.ends) == (0, "a_0", "completed", 1, 1)
    assert sorted(t.results) == [1, 2]  # the replayed result was not written again
    assert t.checkpoints == {1: "t0000-sequential/checkpoint_000000"}
    assert "config" not in t.results[1] and t.final["trial_done"] == 1
    assert t.config == _config(0)
    assert trials["t0001-sequential"].status == "pruned"
    assert trials["t0002-sequential"].status == "failed" and "out of memory" in trials["t0002-sequential"].error
    assert trials["t0003-sequential"].status == "running" and not trials["t0003-sequential"].ended

    c = tally(trials, "zero_shot/avg", "max")
    assert c.counts == {"completed": 1, "pruned": 1, "failed": 1, "unfinished": 1}
    assert c.best is not None and c.best.name == "t0000-sequential"
    low = tally(trials, "zero_shot/avg", "min").best  # a pruned trial's last value competes, as it did
    assert low is not None and low.name == "t0001-sequential"


def test_starts_and_ends_reach_the_disk_and_a_cut_line_is_skipped(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    cb = LedgerCallback(tmp_path)
    _life(cb, FakeTrial("b_0", "t0000-sequential", _config(0)), [make_result(1, 0.4), make_result(2, 0.5, final=True)])
    assert len(synced) == 2  # the start and the end; results are flushed only
    assert cb.ledger.lines == 4 and cb.ledger.seconds > 0
    with open(tmp_path / LEDGER_FILE, "a") as f:
        f.write('{"event": "end", "trial": "t0000-seq')  # a kill mid-write
    assert read_ledger(tmp_path)["t0000-sequential"].status == "completed"


def test_a_finished_trial_that_starts_again_is_counted(tmp_path: Path) -> None:
    """What must never happen on resume, made visible: ``restarted_after_finish``; a failed trial
    retried (``--retry-failed``) and a trial Tune retries mid-run are not counted."""
    cb = LedgerCallback(tmp_path)
    t = FakeTrial("c_0", "t0000-sequential", _config(0))
    _life(cb, t, [make_result(1, 0.4, final=True)])
    _life(cb, t, [make_result(1, 0.4, final=True)])
    f = FakeTrial("c_1", "t0001-sequential", _config(1))
    _life(cb, f, [], end="error")
    _life(cb, f, [make_result(1, 0.4, final=True)])
    trials = read_ledger(tmp_path)
    assert trials["t0000-sequential"].restarted_after_finish == 1 and trials["t0000-sequential"].starts == 2
    assert trials["t0001-sequential"].restarted_after_finish == 0 and trials["t0001-sequential"].status == "completed"
