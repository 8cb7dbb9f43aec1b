"""Resume and faults, by killing real processes:

* the driver of ``xstilts search`` is SIGKILLed after two trials finished; ``--resume`` finishes
  the search without rerunning them, on the same MLflow parent run, with one child run per
  trial and the Optuna study keeping its history;
* the same, with Tune's saved state in the results folder older than the kill (what a user met:
  the finished trials still running in it); the resume reads the ledger and the journal instead;
* a trial's worker process is SIGKILLed mid-trial: ``FailureConfig`` retries it and the search
  still ends with every trial completed;
* with no retries allowed the killed trial errors; ``--resume --retry-failed`` runs it again.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import optuna
import pytest

from tests.conftest import run_cli
from tests.search.helpers import (
    children,
    optuna_states,
    put_back_ray_state,
    result_lines,
    run_dir_of,
    snapshot_ray_state,
    start_cli,
    trial_states,
    wait_for,
    write_space,
)
from xstilts.search.ledger import read_ledger
from xstilts.search.searchers import journal_storage

pytestmark = pytest.mark.slow


def _start_search(tmp_path: Path, home: Path, space: Path, trials: int, *extra: str):
    """The real CLI search in its own process group: (process, results folder, tracking URI, log)."""
    storage, uri, log = tmp_path / "ray", f"sqlite:///{tmp_path / 'track.db'}", tmp_path / "driver.log"
    proc = start_cli(["search", str(space), "--trials", str(trials), "--max-concurrent", "2", "--tracking-uri", uri,
                      "--storage", str(storage), *extra], home, log)
    return proc, storage, uri, log


def _kill_group(proc) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


@pytest.mark.heavy  # 92 s; CI keeps the same kill (after a trial's end) + resume in bench faults' smoke test
def test_killed_driver_resumes_without_rerunning_or_duplicating(tiny_home: Path, tmp_path: Path) -> None:
    space = write_space(tmp_path, "resume", search={"scheduler": "none"})
    proc, storage, uri, log = _start_search(tmp_path, tiny_home, space, 4)
    try:
        run_dir = wait_for(lambda: run_dir_of(storage, "resume"), 240, "the run folder", proc, log)

        def two_done() -> bool:
            return sum(s["status"] == "TERMINATED" for s in trial_states(run_dir).values()) >= 2

        wait_for(two_done, 300, "two finished trials in Ray's saved state", proc, log)
    finally:
        _kill_group(proc)  # the driver and the Ray it started: SIGKILL, no clean-up
    before = {tid: s for tid, s in trial_states(run_dir).items() if s["status"] == "TERMINATED"}
    lines_before = {tid: len(result_lines(run_dir, s["dirname"])) for tid, s in before.items()}
    parent, _ = children(uri, "resume")
    assert parent.info.status == "RUNNING"  # nobody closed it

    r = run_cli(["search", "--resume", run_dir.name, "--storage", str(storage)], tiny_home)
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
    assert "resuming search" in r.stdout

    # the resumed search is a new Tuner in the same folder: the whole search is in the ledger
    after = read_ledger(run_dir)
    assert len(after) == 4 and all(t.status == "completed" for t in after.values())
    for tid, n in lines_before.items():  # finished trials were not rerun
        assert len(result_lines(run_dir, before[tid]["dirname"])) == n
        assert after[before[tid]["dirname"]].starts == 1
    numbers = sorted(t.number for t in after.values())
    assert len(set(numbers)) == 4

    parent2, kids = children(uri, "resume")  # the same parent run, one child per trial
    assert parent2.info.run_id == parent.info.run_id and parent2.info.status == "FINISHED"
    assert parent2.data.tags.get("xstilts.resumes") == "1"
    assert sorted(k.info.run_name for k in kids) == sorted(after)
    assert all(k.data.tags["xstilts.status"] == "completed" for k in kids)

    study = optuna.load_study(study_name=run_dir.name, storage=journal_storage(tiny_home / "optuna" /
                                                                                 f"{run_dir.name}.journal"))
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert sorted(t.number for t in done) == numbers  # the searcher kept the pre-kill history
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]


def test_driver_killed_before_tune_saved_its_state_resumes_exactly(tiny_home: Path, tmp_path: Path) -> None:
    """What a user met: the driver's process group SIGKILLed right after 2 of 6 trials finished,
    before Tune's experiment state reached the results folder (that folder holds Tune's state
    from when the first trials were running). ``--resume`` completes the search with exactly 6
    trials: the finished two are not run again, Optuna holds each trial once, MLflow one child
    per trial with its objective."""
    space = write_space(tmp_path, "stale", search={"scheduler": "none"}, points=False)
    proc, storage, uri, log = _start_search(tmp_path, tiny_home, space, 6)
    try:
        run_dir = wait_for(lambda: run_dir_of(storage, "stale"), 240, "the run folder", proc, log)
        journal = tiny_home / "optuna" / f"{run_dir.name}.journal"

        def running_not_finished() -> dict[str, bytes] | None:
            saved = trial_states(run_dir)
            if len(saved) < 2 or "COMPLETE" in optuna_states(journal, run_dir.name):
                return None
            return snapshot_ray_state(run_dir)

        stale = wait_for(running_not_finished, 300, "Tune's state with two trials running", proc, log)
        wait_for(lambda: optuna_states(journal, run_dir.name).count("COMPLETE") >= 2, 300,
                 "two finished trials in the Optuna journal", proc, log)
    finally:
        _kill_group(proc)
    put_back_ray_state(run_dir, stale)  # Tune's state never got past the two running trials
    finished_before = [i for i, s in enumerate(optuna_states(journal, run_dir.name)) if s == "COMPLETE"]
    assert len(finished_before) >= 2

    r = run_cli(["search", "--resume", run_dir.name, "--storage", str(storage)], tiny_home)
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    assert "6 completed" in r.stdout, r.stdout[-3000:]

    assert optuna_states(journal, run_dir.name) == ["COMPLETE"] * 6  # each trial once, none left running
    trials = read_ledger(run_dir)
    assert sorted(t.number for t in trials.values()) == list(range(6))
    assert all(t.status == "completed" for t in trials.values())
    for t in trials.values():
        if t.number in finished_before:
            assert t.starts == 1, t  # finished before the kill: never started again
    _, kids = children(uri, "stale")
    assert sorted(k.info.run_name for k in kids) == sorted(trials)  # one child per trial
    assert all(k.data.tags["xstilts.status"] == "completed" and "zero_shot/avg" in k.data.metrics for k in kids)


def _kill_worker_mid_trial(tmp_path: Path, tiny_home: Path, name: str, max_failures: int):
    space = write_space(tmp_path, name, search={"scheduler": "none"}, points=False,
                        trial={"target_steps": 80, "eval_every": 10})
    proc, storage, uri, log = _start_search(tmp_path, tiny_home, space, 2, "--max-failures", str(max_failures))
    try:
        run_dir = wait_for(lambda: run_dir_of(storage, name), 240, "the run folder", proc, log)

        def a_running_trial():
            for tid, s in trial_states(run_dir).items():
                lines = result_lines(run_dir, s["dirname"]) if s["dirname"] else []
                if lines and not lines[-1].get("trial_done"):
                    return tid, lines[-1]["pid"]
            return None

        victim, pid = wait_for(a_running_trial, 300, "a trial's first report", proc, log)
        os.kill(pid, signal.SIGKILL)  # the trial's worker process
        rc = proc.wait(timeout=400)
    finally:
        if proc.poll() is None:
            _kill_group(proc)
    return run_dir, storage, uri, victim, rc, log


def test_killed_trial_worker_is_retried_and_the_search_completes(tiny_home: Path, tmp_path: Path) -> None:
    run_dir, _, uri, victim, rc, log = _kill_worker_mid_trial(tmp_path, tiny_home, "retry", max_failures=1)
    assert rc == 0, log.read_text()[-3000:]
    states = trial_states(run_dir)
    assert states[victim]["num_failures"] == 1 and states[victim]["status"] == "TERMINATED"
    assert all(s["status"] == "TERMINATED" for s in states.values())
    lines = result_lines(run_dir, states[victim]["dirname"])
    assert lines[-1]["trial_done"] == 1 and len({line["pid"] for line in lines}) == 2  # ran in a new worker
    _, kids = children(uri, "retry")
    assert len(kids) == 2 and all(k.data.tags["xstilts.status"] == "completed" for k in kids)


@pytest.mark.heavy
def test_retry_failed_reruns_a_killed_trial_on_resume(tiny_home: Path, tmp_path: Path) -> None:
    run_dir, storage, uri, victim, rc, log = _kill_worker_mid_trial(tmp_path, tiny_home, "refail", max_failures=0)
    assert rc == 0, log.read_text()[-3000:]  # the other trial completed
    assert "1 failed" in log.read_text()
    _, kids = children(uri, "refail")
    assert sorted(k.data.tags["xstilts.status"] for k in kids) == ["completed", "failed"]

    victim_dir = trial_states(run_dir)[victim]["dirname"]
    r = run_cli(["search", "--resume", "refail", "--retry-failed", "--storage", str(storage)], tiny_home)
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
    assert "2 completed" in r.stdout and "0 failed" in r.stdout
    trials = read_ledger(run_dir)  # the whole search (the resumed Tuner's own state has the retried trial only)
    assert len(trials) == 2 and all(t.status == "completed" for t in trials.values())
    assert trials[victim_dir].ends == 2  # failed once, completed on the retry
    assert result_lines(run_dir, victim_dir)[-1]["trial_done"] == 1
    _, kids = children(uri, "refail")
    assert len(kids) == 2 and all(k.data.tags["xstilts.status"] == "completed" for k in kids)


@pytest.mark.heavy
def test_ctrl_c_stops_the_search_cleanly_and_it_resumes(tiny_home: Path, tmp_path: Path) -> None:
    """SIGINT to the driver's process group (what Ctrl-C in a terminal sends): the search stops
    with exit status 130 and prints the resume command, MLflow marks the parent interrupted, and
    ``--resume`` then finishes every trial."""
    space = write_space(tmp_path, "ctrlc", search={"scheduler": "none"}, points=False,
                        trial={"target_steps": 80, "eval_every": 10})
    proc, storage, uri, log = _start_search(tmp_path, tiny_home, space, 3)
    try:
        run_dir = wait_for(lambda: run_dir_of(storage, "ctrlc"), 240, "the run folder", proc, log)

        def reporting() -> bool:
            return any(s["dirname"] and result_lines(run_dir, s["dirname"]) for s in trial_states(run_dir).values())

        wait_for(reporting, 300, "a trial's first report", proc, log)
        os.killpg(proc.pid, signal.SIGINT)
        rc = proc.wait(timeout=180)
    finally:
        if proc.poll() is None:
            _kill_group(proc)
    out = log.read_text()
    assert rc == 130, out[-3000:]
    assert f"xstilts search --resume {run_dir.name}" in out
    parent, _ = children(uri, "ctrlc")
    assert parent.info.status == "KILLED" and parent.data.tags["xstilts.status"] == "interrupted"

    r = run_cli(["search", "--resume", run_dir.name, "--storage", str(storage)], tiny_home)
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
    after = read_ledger(run_dir)
    assert len(after) == 3 and all(t.status == "completed" for t in after.values())
    parent2, kids = children(uri, "ctrlc")
    assert parent2.info.run_id == parent.info.run_id and parent2.info.status == "FINISHED"
    assert sorted(k.info.run_name for k in kids) == sorted(after)
