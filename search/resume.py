"""Resume a search from the two records that are always current: the Optuna journal and the ledger.

    <run>/xstilts_ledger.jsonl ──┐
                                 ├─► plan_resume ─► ResumePlan: the finished trials (they count against
    the Optuna journal (study) ──┘                  the budget), the trials to run again, what is left
        ─► a NEW Tuner in the same run folder (the runner):
             search_alg  = ContinuedOptunaSearch: the same study; hands out the re-runs first, each on its
                           own Optuna trial (so its number, name, folder and MLflow child stay the same)
             num_samples = the budget minus the finished trials
             trainable   = a re-run reports its earlier results again (REPLAYED: Tune's iteration and the
                           scheduler's rungs line up), then trains on from its last checkpoint

Tune's saved experiment state is never read: Tune copies it to the results folder now and then, so
after a kill it can hold finished trials as running (restoring it re-ran them and crashed in
Optuna), or be cut short mid-copy. The ledger and the journal are written as things happen.

A trial's status on resume (``trial_status``), by its Optuna trial number:
* the ledger recorded its end: that (completed / pruned / failed);
* it reported its final result (``trial_done``): completed;
* Optuna holds it COMPLETE or PRUNED (Tune told Optuna, the driver died before the ledger's end): pruned;
* Optuna holds it FAIL and it never ended before: failed;
* otherwise (RUNNING: started, or asked and never started) it is unfinished and runs again.
A finished trial that Optuna still holds RUNNING is told now; a ledger without its end gets it.
``--retry-failed`` runs failed trials again too; their Optuna trial stays FAIL (Optuna cannot reopen
a finished trial), as ``Tuner.restore`` left it.

A study whose trials hold the task subset as one categorical (the encoding before per-task flags,
``subset_prior.encoding_clash``) is refused: the two encodings cannot share one sampler's model.

Before planning, ``mend_files`` repairs what a kill can leave half-written: the journal's and the
ledger's last line (cut short: removed, or Optuna would fail on the next line appended after it) and
the journal's lock file (its holder is dead). A re-run's checkpoint is set aside as
``resume-checkpoint_NNNNNN`` (the new Ray trial numbers its checkpoints from 0 in the same folder)
and a ``rerun`` line records where it went.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch

from xstilts.spaces import SearchSpec
from xstilts.trainer.checkpoints import CLIENT_STATE
from xstilts.trainer.names import REPLAYED, TRIAL_DONE

from .ledger import LEDGER_FILE, Ledger, LedgerTrial, end_event, read_ledger
from .searchers import PrunedToOptuna, journal_storage, seed_points
from .subset_prior import encoding_clash

__all__ = ["ResumeError", "Rerun", "ResumePlan", "plan_resume", "plan_rerun", "trial_status", "mend_files",
           "cut_partial_line", "settle_study",
           "discard_set_aside", "ContinuedOptunaSearch", "SET_ASIDE"]

SET_ASIDE = "resume-"  # prefix of a checkpoint folder a resume set aside for a re-run


class ResumeError(RuntimeError):
    """A search cannot be resumed; the message says why and what to do."""


@dataclass
class Rerun:
    """A trial the resumed search runs again, on the Optuna trial it had."""

    number: int  # its Optuna trial number
    name: str | None  # its trial name (None: asked by Optuna, never started)
    config: dict[str, Any] | None  # the config it ran with (None: the searcher completes the Optuna trial's params)
    tell_optuna: bool  # its Optuna trial is RUNNING and is told how it ends (a retried failed one is not)
    checkpoint: str | None = None  # the checkpoint folder it continues from (None: from the start)
    replays: list[dict[str, Any]] = field(default_factory=list)  # its results up to that checkpoint


@dataclass
class ResumePlan:
    requested: int  # the search's budget of trials
    finished: dict[int, str]  # Optuna number -> completed / pruned / failed: counted against the budget
    reruns: list[Rerun]  # run first, under their own numbers
    mended: list[str]  # what was repaired or told (printed)
    study_trials: int  # trials in the study: seeds the resumed sampler apart from the first start's draws

    @property
    def left(self) -> int:
        """How many trials the resumed Tuner runs: the re-runs first, then new ones."""
        return max(0, self.requested - len(self.finished))

    def resume_points(self) -> dict[int, dict[str, Any]]:
        """What the trainable needs of each re-run: Optuna number -> checkpoint and results to replay."""
        return {r.number: {"checkpoint": r.checkpoint, "replays": r.replays} for r in self.reruns}


def trial_status(state: TrialState, t: LedgerTrial | None) -> str:
    """completed / pruned / failed (finished), or unfinished: see the module docstring."""
    if t is not None and t.ended:
        return t.status
    if t is not None and any(r.get(TRIAL_DONE) for r in t.results.values()):
        return "completed"
    if state in (TrialState.COMPLETE, TrialState.PRUNED):
        return "pruned"
    if state == TrialState.FAIL and (t is None or t.ends == 0):
        return "failed"
    return "unfinished"


def cut_partial_line(path: Path) -> bool:
    """Drop a last line a kill cut short (no newline at the end); True if one was dropped."""
    if not path.exists() or path.stat().st_size == 0:
        return False
    data = path.read_bytes()
    if data.endswith(b"\n"):
        return False
    with open(path, "r+b") as f:
        f.truncate(data.rfind(b"\n") + 1)
    return True


def mend_files(journal: Path, ledger: Path) -> list[str]:
    """Repair what a killed driver can leave half-written (see the module docstring); what was done."""
    done = [f"dropped a half-written last line of {p.name}" for p in (journal, ledger) if cut_partial_line(p)]
    lock = journal.with_name(journal.name + ".lock")
    if lock.exists() or lock.is_symlink():
        lock.unlink()
        done.append(f"removed the stale lock {lock.name} (its driver is gone)")
    return done


def _load_study(journal: Path, study_name: str) -> optuna.Study | None:
    if not journal.exists():
        return None
    try:
        return optuna.load_study(study_name=study_name, storage=journal_storage(journal))
    except KeyError:
        return None
    except Exception as e:
        raise ResumeError(f"the Optuna journal {journal} cannot be read ({type(e).__name__}: {e}); restore it "
                          "from a backup, or start the search again") from e


def plan_resume(spec: SearchSpec, run_dir: Path, journal: Path, study_name: str,
                retry_failed: bool = False) -> ResumePlan:
    """Reconcile the ledger of ``run_dir`` with the study ``study_name`` of ``journal`` into a plan
    (mending files, telling Optuna and the ledger what they missed, setting re-runs' checkpoints aside)."""
    mended = mend_files(journal, run_dir / LEDGER_FILE)
    trials = read_ledger(run_dir)
    study = _load_study(journal, study_name)
    if study is None:
        if trials:
            raise ResumeError(f"{len(trials)} trial(s) ran, but the Optuna journal {journal} holds no study "
                              f"{study_name!r}; restore the journal, or start the search again")
        return ResumePlan(spec.n_trials(), {}, [], mended, 0)  # nothing ran: the search starts over here
    clash = encoding_clash(spec, study.get_trials(deepcopy=False))
    if clash:
        raise ResumeError(f"the search in {run_dir} cannot be resumed: {clash}")
    by_number = {t.number: t for t in trials.values() if t.number is not None}
    ledger = Ledger(run_dir / LEDGER_FILE)
    finished: dict[int, str] = {}
    reruns: list[Rerun] = []
    try:
        for ft in study.get_trials(deepcopy=False):
            if ft.state == TrialState.WAITING:
                continue  # enqueued, never asked: the searcher asks it in turn
            t = by_number.get(ft.number)
            status = trial_status(ft.state, t)
            if status == "unfinished" or (status == "failed" and retry_failed and t is not None):
                reruns.append(plan_rerun(run_dir, ledger, ft.number, t, tell=ft.state == TrialState.RUNNING))
            else:
                finished[ft.number] = status
                mended += _settle(study, ledger, spec, ft, t, status)
        for point in seed_points(spec):  # seed points a kill kept from the journal (none are asked twice)
            study.enqueue_trial(point, skip_if_exists=True)
    finally:
        ledger.close()
    return ResumePlan(spec.n_trials(), finished, reruns, mended, len(study.trials))


def _settle(study: optuna.Study, ledger: Ledger, spec: SearchSpec, ft: optuna.trial.FrozenTrial,
            t: LedgerTrial | None, status: str) -> list[str]:
    """Tell Optuna and the ledger how a finished trial ended, where either missed it; what was told."""
    told = []
    final = t.final if t is not None else {}
    name = t.name if t is not None else f"trial {ft.number}"
    if ft.state == TrialState.RUNNING:
        _tell(study, spec, ft.number, status, final)
        told.append(f"told Optuna that {name} ended ({status})")
    if t is not None and not t.ended:
        ledger.append(end_event(t.name, t.number, status, final, "" if status != "failed" else "(recorded by Optuna)"),
                      durable=True)
        told.append(f"recorded the end of {name} in the ledger ({status})")
    return told


def _tell(study: optuna.Study, spec: SearchSpec, number: int, status: str, final: dict[str, Any]) -> None:
    """Tell Optuna how trial ``number`` ended, as the search's ``PrunedToOptuna`` would have: COMPLETE
    with its last value(s) when it ran to its end, PRUNED when stopped early or without a value, FAIL
    when it failed."""
    metrics, _ = spec.search.objective_list()
    values = [final.get(m) for m in metrics]
    if status == "failed":
        study.tell(number, state=TrialState.FAIL)
    elif status != "pruned" and all(isinstance(v, int | float) for v in values):
        study.tell(number, [float(v) for v in values] if len(values) > 1 else float(values[0]))  # type: ignore[arg-type]
    else:
        step, value = final.get("training_iteration"), values[0]
        if len(values) == 1 and isinstance(step, int) and isinstance(value, int | float):
            storage: Any = study._storage  # the last report as its intermediate value, as Ray's on_trial_result
            trial_id = storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
            if step not in storage.get_trial(trial_id).intermediate_values:
                storage.set_trial_intermediate_value(trial_id, step, float(value))
        study.tell(number, state=TrialState.PRUNED)


def settle_study(spec: SearchSpec, run_dir: Path, journal: Path, study_name: str) -> list[str]:
    """Tell Optuna the ends the ledger holds and Optuna does not (trials a time budget stopped); what was told."""
    study = _load_study(journal, study_name)
    if study is None:
        return []
    by_number = {t.number: t for t in read_ledger(run_dir).values() if t.number is not None and t.ended}
    told = []
    for ft in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        t = by_number.get(ft.number)
        if t is not None:
            _tell(study, spec, ft.number, t.status, t.final)
            told.append(t.name)
    return told


def plan_rerun(run_dir: Path, ledger: Ledger, number: int, t: LedgerTrial | None, tell: bool) -> Rerun:
    """A trial to run again: from its newest checkpoint that is whole, set aside, with its results so far
    (``run_dir``: the Tune experiment folder its checkpoint paths are relative to; the confirm phase's too)."""
    if t is None:
        return Rerun(number, None, None, tell)
    found = _usable_checkpoint(run_dir, t)
    if found is None:
        return Rerun(number, t.name, t.config or None, tell)
    rel, iteration = found
    rel = _set_aside(run_dir, rel)
    ledger.append({"event": "rerun", "trial": t.name, "number": number, "checkpoint": rel, "iteration": iteration},
                  durable=True)
    for old in (run_dir / rel).parent.glob("checkpoint_*"):  # older, or never recorded: the new Ray trial's names
        shutil.rmtree(old, ignore_errors=True)
    replays = [{k: v for k, v in r.items() if "/" in k and not k.startswith("ray/")}
               for i, r in sorted(t.results.items()) if i <= iteration]
    return Rerun(number, t.name, t.config or None, tell, str(run_dir / rel), replays)


def _usable_checkpoint(run_dir: Path, t: LedgerTrial) -> tuple[str, int] | None:
    """The newest checkpoint of ``t`` still whole on disk (its client state written last): (path, iteration).
    A folder a resume set aside before a kill kept its ``rerun`` line from the ledger is found too, under
    its new name (only where the recorded folder is gone: the rename is what moved it)."""
    for iteration, rel in sorted(t.checkpoints.items(), reverse=True):
        cand = Path(rel) if (run_dir / rel).exists() else Path(rel).parent / f"{SET_ASIDE}{Path(rel).name}"
        if (run_dir / cand / CLIENT_STATE).exists():
            return str(cand), iteration
    return None


def _set_aside(run_dir: Path, rel: str) -> str:
    """Move a Ray checkpoint folder out of the way of the new Ray trial's own (numbered from 0 in the
    same trial folder); its new path, relative to ``run_dir``."""
    src = run_dir / rel
    if not src.name.startswith("checkpoint_"):
        return rel  # set aside already
    dst = src.parent / f"{SET_ASIDE}{src.name}"
    if dst.exists():
        shutil.rmtree(dst)
    src.rename(dst)
    return str(dst.relative_to(run_dir))


def discard_set_aside(run_dir: Path) -> int:
    """Remove the set-aside checkpoints no trial needs any more (each re-run has newer ones, or ended)."""
    keep = {t.checkpoint for t in read_ledger(run_dir).values() if not t.ended and t.checkpoint}
    n = 0
    for d in run_dir.glob(f"*/{SET_ASIDE}checkpoint_*"):
        if str(d.relative_to(run_dir)) not in keep:
            shutil.rmtree(d, ignore_errors=True)
            n += 1
    return n


class ContinuedOptunaSearch(PrunedToOptuna, OptunaSearch):  # type: ignore[misc]
    """``OptunaSearch`` on a study that already ran: it hands out the trials to run again first, each
    on its own Optuna trial, then asks the study for new ones. Results a re-run reports again
    (``REPLAYED``) are not reported to Optuna twice."""

    def __init__(self, *args: Any, reruns: list[Rerun] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reruns = list(reruns or [])
        self._untold: set[str] = set()  # Ray trials whose Optuna trial ended before (a failed one retried)

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if self._reruns and trial_id not in self._ot_trials and trial_id not in self._untold:
            r = self._reruns.pop(0)
            if r.tell_optuna:
                study: Any = self._ot_study
                # Optuna has no public way from a trial number to its Trial; its storage does
                storage_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, r.number)
                self._ot_trials[trial_id] = optuna.trial.Trial(study, storage_id)
            else:
                self._untold.add(trial_id)
            if r.config is not None:
                return dict(r.config)
        result: dict[str, Any] | None = super().suggest(trial_id)  # new, or completes an asked trial's params
        return result

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        if trial_id in self._untold or result.get(REPLAYED):
            return
        super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        if trial_id in self._untold:
            return
        super().on_trial_complete(trial_id, result=result, error=error)
