"""Resume planning on its own: the ledger and the Optuna journal reconciled trial by trial, what a
kill leaves half-written mended, re-runs' checkpoints set aside, the searcher that hands them out."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from xstilts.search.ledger import LEDGER_FILE, Ledger, read_ledger
from xstilts.search.resume import (
    ContinuedOptunaSearch,
    ResumeError,
    mend_files,
    plan_resume,
    settle_study,
)
from xstilts.search.searchers import journal_storage, seed_points
from xstilts.spaces import load_space
from xstilts.trainer.checkpoints import CLIENT_STATE
from xstilts.trainer.names import REPLAYED

SPEC = load_space()  # 12 trials, one seed point


def _result(it: int, v: float, done: bool = False) -> dict:
    return {"training_iteration": it, "zero_shot/avg": v, "train/step": 20 * it, "ray/node_id": "n1",
            **({"trial_done": 1} if done else {})}


class _Run:
    """A run folder with a ledger and a journal whose study holds trials in every state a kill can leave."""

    def __init__(self, root: Path) -> None:
        self.dir, self.journal = root / "run", root / "s.journal"
        self.dir.mkdir()
        self.study = optuna.create_study(study_name="s", storage=journal_storage(self.journal), direction="maximize")
        self.ledger = Ledger(self.dir / LEDGER_FILE)

    def trial(self, state: TrialState | None, started: bool = True) -> tuple[int, str]:
        t = self.study.ask()
        t.suggest_float("x", 0, 1)
        name = f"t{t.number:04d}-x"
        if started:
            self.ledger.append({"event": "start", "trial": name, "number": t.number, "trial_id": f"r{t.number}",
                                "dirname": name, "config": {"x": t.params["x"], "trial_number": t.number}}, True)
        if state == TrialState.COMPLETE:
            self.study.tell(t, 0.5)
        elif state == TrialState.FAIL:
            self.study.tell(t, state=TrialState.FAIL)
        return t.number, name

    def result(self, name: str, r: dict, checkpoint: str | None = None) -> None:
        if checkpoint:
            folder = self.dir / name / checkpoint
            folder.mkdir(parents=True)
            (folder / CLIENT_STATE).write_bytes(b"state")
        self.ledger.append({"event": "result", "trial": name, "result": r,
                            **({"checkpoint": f"{name}/{checkpoint}"} if checkpoint else {})}, False)

    def end(self, name: str, number: int, status: str, last: dict) -> None:
        self.ledger.append({"event": "end", "trial": name, "number": number, "status": status, "result": last}, True)


@pytest.fixture
def killed(tmp_path: Path) -> _Run:
    r = _Run(tmp_path)
    n0, a = r.trial(TrialState.COMPLETE)  # 0: ended in both
    r.result(a, _result(1, 0.5, done=True))
    r.end(a, n0, "completed", _result(1, 0.5, done=True))
    _, b = r.trial(TrialState.COMPLETE)  # 1: Tune told Optuna (stopped early), the driver died before the ledger's end
    r.result(b, _result(1, 0.3))
    _, c = r.trial(None)  # 2: reported its final result, killed before Tune processed its end
    r.result(c, _result(1, 0.4), "checkpoint_000000")
    r.result(c, _result(2, 0.6, done=True))
    _, d = r.trial(None)  # 3: mid-run, two checkpoints (Tune keeps two)
    r.result(d, _result(1, 0.2), "checkpoint_000000")
    r.result(d, _result(2, 0.25), "checkpoint_000001")
    _, e = r.trial(None)  # 4: its only checkpoint half-copied (no client state)
    r.result(e, _result(1, 0.2), "checkpoint_000000")
    (r.dir / e / "checkpoint_000000" / CLIENT_STATE).unlink()
    r.trial(None, started=False)  # 5: asked, never started
    n6, f = r.trial(TrialState.FAIL)  # 6: failed
    r.end(f, n6, "failed", {})
    r.study.enqueue_trial({"x": 0.9})  # 7: waiting
    r.ledger.close()
    return r


def test_the_plan_runs_again_exactly_the_unfinished_trials(killed: _Run) -> None:
    r = killed
    plan = plan_resume(SPEC, r.dir, r.journal, "s")
    assert plan.finished == {0: "completed", 1: "pruned", 2: "completed", 6: "failed"}
    assert [x.number for x in plan.reruns] == [3, 4, 5] and plan.left == 12 - 4
    mid, torn, never = plan.reruns
    assert mid.tell_optuna and mid.config == {"x": r.study.trials[3].params["x"], "trial_number": 3}
    assert mid.checkpoint == str(r.dir / "t0003-x" / "resume-checkpoint_000001")
    assert (Path(mid.checkpoint) / CLIENT_STATE).exists() and not list((r.dir / "t0003-x").glob("checkpoint_*"))
    assert [x["zero_shot/avg"] for x in mid.replays] == [0.2, 0.25]  # what it reported up to that checkpoint
    assert all(not k.startswith("ray/") and k != "training_iteration" for x in mid.replays for k in x)
    assert torn.checkpoint is None and torn.replays == [] and torn.config is not None  # from the start
    assert never.name is None and never.config is None and never.tell_optuna
    assert plan.resume_points()[3]["checkpoint"] == mid.checkpoint

    states = [t.state for t in optuna.load_study(study_name="s", storage=journal_storage(r.journal)).trials]
    assert states[2] == TrialState.COMPLETE  # told now, with its last value
    assert states[1] == TrialState.COMPLETE and states[3:6] == [TrialState.RUNNING] * 3
    ledger = read_ledger(r.dir)
    assert ledger["t0001-x"].status == "pruned" and ledger["t0002-x"].status == "completed"  # ends recorded
    assert ledger["t0003-x"].checkpoint == "t0003-x/resume-checkpoint_000001"
    assert any("told Optuna that t0002-x ended (completed)" in m for m in plan.mended)


def test_planning_again_changes_nothing(killed: _Run) -> None:
    """A resume killed before its Tuner ran: the next resume makes the same plan (the set-aside
    checkpoint is found through the ledger's ``rerun`` line) and enqueues no seed point twice."""
    first = plan_resume(SPEC, killed.dir, killed.journal, "s")
    again = plan_resume(SPEC, killed.dir, killed.journal, "s")
    assert again.finished == first.finished
    assert [(x.number, x.checkpoint, x.replays) for x in again.reruns] == \
        [(x.number, x.checkpoint, x.replays) for x in first.reruns]
    study = optuna.load_study(study_name="s", storage=journal_storage(killed.journal))
    waiting = [t for t in study.trials if t.state == TrialState.WAITING]
    assert len(waiting) == 1 + len(seed_points(SPEC))  # the enqueued point, and the space's seed point once


def test_a_checkpoint_set_aside_by_a_killed_resume_is_found(killed: _Run) -> None:
    """A resume killed between setting a checkpoint aside and writing its ``rerun`` line: the next
    one finds the set-aside folder under its new name, at the same iteration."""
    src = killed.dir / "t0003-x" / "checkpoint_000001"
    src.rename(src.parent / "resume-checkpoint_000001")
    plan = plan_resume(SPEC, killed.dir, killed.journal, "s")
    (mid,) = [x for x in plan.reruns if x.number == 3]
    assert mid.checkpoint == str(src.parent / "resume-checkpoint_000001") and len(mid.replays) == 2


def test_retry_failed_runs_a_failed_trial_again_without_reopening_it_in_optuna(killed: _Run) -> None:
    plan = plan_resume(SPEC, killed.dir, killed.journal, "s", retry_failed=True)
    assert 6 not in plan.finished
    (retry,) = [x for x in plan.reruns if x.number == 6]
    assert retry.tell_optuna is False and retry.name == "t0006-x"


def test_what_a_kill_leaves_half_written_is_mended(tmp_path: Path) -> None:
    journal = tmp_path / "s.journal"
    study = optuna.create_study(study_name="s", storage=journal_storage(journal), direction="maximize")
    study.tell(study.ask(), 0.1)
    with open(journal, "ab") as f:
        f.write(b'{"op_code": 4, "worker_id": "x", "study_id": 0')  # cut short mid-append
    (tmp_path / "s.journal.lock").symlink_to(tmp_path / "gone")  # the lock of the dead driver
    (tmp_path / LEDGER_FILE).write_text('{"event": "start", "trial": "t0"}\n{"event": "res')
    done = mend_files(journal, tmp_path / LEDGER_FILE)
    assert len(done) == 3
    assert (tmp_path / LEDGER_FILE).read_text() == '{"event": "start", "trial": "t0"}\n'
    study = optuna.load_study(study_name="s", storage=journal_storage(journal))
    study.tell(study.ask(), 0.2)  # appending works again, and reading after it
    assert [t.value for t in optuna.load_study(study_name="s", storage=journal_storage(journal)).trials] == [0.1, 0.2]
    assert mend_files(journal, tmp_path / LEDGER_FILE) == []


def test_no_study_starts_over_unless_trials_ran(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    plan = plan_resume(SPEC, tmp_path / "run", tmp_path / "none.journal", "s")
    assert (plan.finished, plan.reruns, plan.left) == ({}, [], 12)
    (tmp_path / "run" / LEDGER_FILE).write_text(json.dumps({"event": "start", "trial": "t0000-x", "number": 0}) + "\n")
    with pytest.raises(ResumeError, match="holds no study"):
        plan_resume(SPEC, tmp_path / "run", tmp_path / "none.journal", "s")


def test_ends_tune_never_told_optuna_are_settled(killed: _Run) -> None:
    """A time budget stops trials without telling the searcher: their ledger end reaches Optuna."""
    Ledger(killed.dir / LEDGER_FILE).append({"event": "end", "trial": "t0003-x", "number": 3, "status": "pruned",
                                             "result": _result(2, 0.25)}, True)
    assert settle_study(SPEC, killed.dir, killed.journal, "s") == ["t0003-x"]
    study = optuna.load_study(study_name="s", storage=journal_storage(killed.journal))
    assert study.trials[3].state == TrialState.PRUNED and study.trials[3].value == 0.25  # stopped early: PRUNED
    assert study.trials[3].intermediate_values == {2: 0.25}


def _space(trial: optuna.Trial) -> dict:
    trial.suggest_float("x", 0, 1)
    return {"trial_number": trial.number}


def test_the_continued_searcher_hands_out_reruns_first_on_their_own_optuna_trials(killed: _Run) -> None:
    plan = plan_resume(SPEC, killed.dir, killed.journal, "s", retry_failed=True)
    s = ContinuedOptunaSearch(space=_space, metric="zero_shot/avg", mode="max", study_name="s",
                              storage=journal_storage(killed.journal), reruns=plan.reruns)
    assert s.suggest("ray-a")["trial_number"] == 3
    s.on_trial_result("ray-a", {"zero_shot/avg": 0.2, "training_iteration": 1, REPLAYED: 1})  # not told again
    s.on_trial_result("ray-a", {"zero_shot/avg": 0.3, "training_iteration": 3})
    s.on_trial_complete("ray-a", {"zero_shot/avg": 0.7, "trial_done": 1})
    assert s.suggest("ray-b")["trial_number"] == 4
    never = s.suggest("ray-c")  # asked before the kill, never started: its own Optuna trial gets its params
    assert never == {"x": pytest.approx(killed.study.trials[5].params["x"]), "trial_number": 5}
    assert s.suggest("ray-d")["trial_number"] == 6  # the failed one, retried
    s.on_trial_complete("ray-d", {"zero_shot/avg": 0.9, "trial_done": 1})  # Optuna cannot reopen it: left FAIL
    fresh = s.suggest("ray-e")
    assert fresh["trial_number"] == 7  # then new ones: the study's waiting trial first
    study = optuna.load_study(study_name="s", storage=journal_storage(killed.journal))
    assert study.trials[3].state == TrialState.COMPLETE and study.trials[3].value == 0.7
    assert study.trials[3].intermediate_values == {3: 0.3}
    assert study.trials[6].state == TrialState.FAIL
    assert len(study.trials) == 9  # nothing asked twice: 0-7, and the space's seed point still waiting


def test_an_unreadable_journal_is_refused_with_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    journal = tmp_path / "s.journal"
    journal.write_text("not a journal\n{}\n")
    with pytest.raises(ResumeError, match="cannot be read.*restore it from a backup, or start the search again"):
        plan_resume(SPEC, tmp_path / "run", journal, "s")


def test_a_resume_that_cannot_continue_says_why_without_a_traceback(tmp_path: Path) -> None:
    from tests.conftest import call_cli
    from xstilts.search.search_run import STATE_FILE

    storage = tmp_path / "ray"
    broken = storage / "broken-1"
    broken.mkdir(parents=True)
    (broken / STATE_FILE).write_text('{"spec": ')  # cut short
    no_journal = storage / "lost-1"
    no_journal.mkdir()
    (no_journal / STATE_FILE).write_text(json.dumps({
        "spec": SPEC.model_dump_json(), "trial_overrides": {}, "run_name": "lost-1", "experiment": "lost",
        "tracking_uri": f"sqlite:///{tmp_path / 't.db'}"}))
    (no_journal / LEDGER_FILE).write_text(json.dumps({"event": "start", "trial": "t0000-x", "number": 0}) + "\n")
    for run, said in (("broken-1", "cannot be read"), ("lost-1", "holds no study"), ("nothing-1", "no search run")):
        r = call_cli(["search", "--resume", run, "--storage", str(storage)], tmp_path)
        assert r.returncode == 2 and said in r.stderr, (run, r.stderr[-2000:])
        assert "Traceback" not in r.stderr
