"""End to end: a real ``searcher: mixlaw`` search (Ray Tune + ASHA + DeepSpeed on the tiny model) whose
driver is SIGKILLed once the model has data, then ``--resume``d: every trial ends once, the proposals
made after the start-up draws are the model's (its prediction kept on the Optuna trial), before and
after the kill, and they are valid trials of the space. Heavy: 2.6 min of CPU (14 min of wall time on
2 shared cores at a load of ~20)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import optuna
import pytest

from tests.conftest import run_cli
from tests.search.helpers import children, optuna_states, run_dir_of, start_cli, wait_for, write_space
from xstilts.search.ledger import read_ledger
from xstilts.search.searchers import journal_storage
from xstilts.spaces import load_space, to_trial_config, with_constants

pytestmark = [pytest.mark.slow, pytest.mark.heavy]

TRIALS = 7  # 2 start-up draws; killed after 3 results, so the resume has at least one trial of its own to propose


def test_a_mixlaw_search_killed_and_resumed_proposes_from_its_journal(tiny_home: Path, tmp_path: Path) -> None:
    space = write_space(tmp_path, "mixlaw", search={"searcher": "mixlaw", "scheduler": "asha"})
    storage, uri, log = tmp_path / "ray", f"sqlite:///{tmp_path / 'track.db'}", tmp_path / "driver.log"
    proc = start_cli(["search", str(space), "--trials", str(TRIALS), "--max-concurrent", "2", "--tracking-uri", uri,
                      "--storage", str(storage)], tiny_home, log)
    try:
        run_dir = wait_for(lambda: run_dir_of(storage, "mixlaw"), 240, "the run folder", proc, log)
        journal = tiny_home / "optuna" / f"{run_dir.name}.journal"

        def three_results() -> bool:
            return sum(s in ("COMPLETE", "PRUNED") for s in optuna_states(journal, run_dir.name)) >= 3

        wait_for(three_results, 420, "three trials with a result in the journal", proc, log)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray it started: no clean-up
        proc.wait(timeout=30)
    at_kill = len(optuna_states(journal, run_dir.name))
    assert at_kill < TRIALS

    r = run_cli(["search", "--resume", run_dir.name, "--storage", str(storage)], tiny_home)
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])

    ledger = read_ledger(run_dir)
    assert len(ledger) == TRIALS and all(t.status in ("completed", "pruned") for t in ledger.values())
    study = optuna.load_study(study_name=run_dir.name, storage=journal_storage(journal))
    S = optuna.trial.TrialState
    assert [t.state for t in study.trials].count(S.RUNNING) == 0
    assert sorted(t.number for t in study.trials if t.state in (S.COMPLETE, S.PRUNED)) == list(range(TRIALS))
    spec = load_space(space)
    for t in study.trials:
        to_trial_config(spec, with_constants(spec, t.params))  # every proposal is a valid trial
    proposed = [t.number for t in study.trials if "mixlaw" in t.system_attrs]
    assert proposed and max(proposed) >= at_kill, (proposed, at_kill)  # the resumed driver's model proposed
    assert 0 not in proposed  # the seed point is the space's, not the model's
    parent, kids = children(uri, "mixlaw")
    assert parent.data.params["searcher"] == "mixlaw" and len(kids) == TRIALS
