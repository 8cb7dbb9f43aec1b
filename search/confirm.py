"""The confirm phase of a search: its best trials trained again on fresh seeds, and what it recommends.

    the search's ledger ──its completed trials, by the objective──► the top_k candidates (their configs)
    fresh seeds (after the largest training seed a search trial used)
        ──► the plan: the first line of <run folder>/xstilts_confirm.jsonl (fsync), before any trial
    Tuner(trainable  = the search's trial function: the candidate's config with the fresh seed,
          search_alg = every candidate × seed, seed-major (BasicVariantGenerator), no searcher,
          scheduler  = none (every confirm trial runs to its end), the search's resources per trial,
          callbacks  = [LedgerCallback(xstilts_confirm.jsonl), MLflowTrialsCallback (children of the search's
                        parent, tags xstilts.phase=confirm, xstilts.confirm_of, xstilts.seed), progress])
        in <run folder>/confirm/
    ──► the Recommendation (``dashboards.recommendation``: the best mean over the fresh seeds, ± SE)
    ──► the parent run: recommended/<metric>, recommended/<metric>_se, tag xstilts.recommended_trial and
        the artifact confirm/confirm.json (every candidate's per-seed scores); the console summary

Why: one trial's score moves with its training seed about as much as between configurations, so the
search's best is partly a lucky seed. The recommendation is made on the fresh seeds alone (the
candidate's search score was picked for being high; see ``dashboards.recommendation``).

It runs when the search ended with every trial finished (its trial budget or its time budget
reached); not after Ctrl-C, not for PBT (whose winner is a lineage, exported as a schedule).

Resume (``xstilts search --resume RUN`` after the driver died in this phase): the search phase has
nothing left to run; the plan line fixes the candidates and seeds; a confirm trial whose end the
ledger holds is not run again (``--retry-failed``: a failed one is), one the kill left unfinished
runs again from its newest whole checkpoint (set aside and replayed as a search resume does,
``resume.plan_rerun``; from its start without one), on the same MLflow child run. Before that, the
tracking store gets what the ledger holds and the store lacks (``sync_confirm``).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

from ray.tune import Callback

from xstilts.dashboards.mlflow_logging import MLflowTrialsCallback
from xstilts.dashboards.recommendation import (
    CONFIRM_OF_TAG,
    RECOMMENDED_TAG,
    SEED_TAG,
    Candidate,
    Recommendation,
    SeedScore,
    confirm_trial_name,
    estimate_text,
    fresh_seeds,
    pick_top,
    recommend,
    seed_score,
)
from xstilts.dashboards.store import CONFIRM, PHASE_TAG
from xstilts.spaces import to_trial_config, trial_params
from xstilts.trainer.codec import without_raw
from xstilts.trainer.names import TRIAL_DONE

from .ledger import CONFIRM_LEDGER, Ledger, LedgerCallback, LedgerTrial, ledger_events, read_ledger
from .resume import cut_partial_line, discard_set_aside, plan_rerun
from .search_run import SearchRun
from .sync import SyncReport, sync_trials

__all__ = ["CONFIRM_DIR", "ConfirmPlan", "ConfirmOutcome", "plan_confirm", "confirm_points", "recommendation_of",
           "run_confirm", "maybe_confirm", "parent_record", "sync_confirm", "confirm_summary_lines"]

CONFIRM_DIR = "confirm"  # the confirm phase's Tune experiment, inside the search's run folder
INDEX = "confirm_index"  # a confirm trial's place in the plan (Tune config): the key of its resume point


@dataclass
class ConfirmPlan:
    """What the confirm phase retrains: fixed when it first starts, read back on resume."""

    metric: str
    mode: str
    candidates: list[dict[str, Any]]  # search rank order: {"name", "value", "config"} of each top trial
    seeds: list[int]  # the fresh training seeds, the same for every candidate

    def names(self) -> list[str]:
        return [c["name"] for c in self.candidates]

    def trials(self) -> list[tuple[str, int]]:
        """(candidate, seed) of every confirm trial, seed-major: an early stop still leaves whole seeds."""
        return [(c["name"], s) for s in self.seeds for c in self.candidates]


@dataclass
class ConfirmOutcome:
    """How the confirm phase went in this session, and what it recommends."""

    recommendation: Recommendation | None  # None: no completed trial to confirm
    seconds: float  # the phase's wall time in this session
    interrupted: bool  # Ctrl-C, or confirm trials left unfinished
    pending: list[str] = field(default_factory=list)  # MLflow writes the store did not take
    ran: int = 0  # confirm trials run in this session


def _used_seeds(run: SearchRun, trials: dict[str, LedgerTrial]) -> list[int]:
    """The training seeds the search's trials ran with (the fixed one, and each sampled one)."""
    used = {int({**run.spec.trial, **run.overrides}.get("seed", 0))}
    for t in trials.values():
        try:
            used.add(int(to_trial_config(run.spec, t.config, **run.overrides).seed))
        except Exception:  # an asked, never started trial has no whole config
            continue
    return sorted(used)


def plan_confirm(run: SearchRun, top_k: int, n_seeds: int) -> ConfirmPlan | None:
    """The confirm plan: the one the confirm ledger recorded (a resume), else a new one written there
    first (fsync): the ``top_k`` completed trials by the objective and ``n_seeds`` fresh seeds. None
    when no trial completed."""
    for e in ledger_events(run.run_dir, CONFIRM_LEDGER):
        if e.get("event") == "confirm":
            return ConfirmPlan(e["metric"], e["mode"], e["candidates"], [int(s) for s in e["seeds"]])
    s = run.spec.search
    trials = read_ledger(run.run_dir)
    done = {t.name: t for t in trials.values() if t.status == "completed" and _finite(t.final.get(s.metric))}
    top = pick_top([(n, float(t.final[s.metric])) for n, t in done.items()], top_k, s.mode)
    if not top:
        return None
    plan = ConfirmPlan(s.metric, s.mode, [{"name": n, "value": v, "config": done[n].config} for n, v in top],
                       fresh_seeds(_used_seeds(run, trials), n_seeds))
    ledger = Ledger(run.run_dir / CONFIRM_LEDGER)
    ledger.append({"event": "confirm", "metric": plan.metric, "mode": plan.mode, "candidates": plan.candidates,
                   "seeds": plan.seeds}, durable=True)
    ledger.close()
    return plan


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def confirm_points(plan: ConfirmPlan, ledger: dict[str, LedgerTrial], retry_failed: bool = False) -> list[dict[str, Any]]:
    """The confirm trials still to run, as Tune configs ``{candidate, seed, confirm_index}``: those whose
    end the ledger lacks (and, with ``retry_failed``, those that failed)."""
    todo = []
    for i, (name, seed) in enumerate(plan.trials()):
        t = ledger.get(confirm_trial_name(name, seed))
        if t is None or not t.ended or (retry_failed and t.status == "failed"):
            todo.append({"candidate": name, "seed": seed, INDEX: i})
    return todo


def _resume_points(run: SearchRun, todo: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Confirm trials a kill left unfinished continue from their newest whole checkpoint: confirm index ->
    the checkpoint (set aside) and the results to replay (``resume.plan_rerun``, as for a search's trials)."""
    trials = read_ledger(run.run_dir, CONFIRM_LEDGER)
    book = Ledger(run.run_dir / CONFIRM_LEDGER)
    out: dict[int, dict[str, Any]] = {}
    try:
        for p in todo:
            t = trials.get(confirm_trial_name(p["candidate"], p["seed"]))
            if t is not None:
                r = plan_rerun(run.run_dir / CONFIRM_DIR, book, int(p[INDEX]), t, tell=False)
                if r.checkpoint:
                    out[int(p[INDEX])] = {"checkpoint": r.checkpoint, "replays": r.replays}
    finally:
        book.close()
    return out


def recommendation_of(plan: ConfirmPlan, ledger: dict[str, LedgerTrial]) -> Recommendation:
    """Each candidate's per-seed scores from the confirm ledger, and the recommendation."""
    candidates = []
    for rank, c in enumerate(plan.candidates, start=1):
        scores = []
        for seed in plan.seeds:
            name = confirm_trial_name(c["name"], seed)
            t = ledger.get(name)
            scores.append(_seed_score(t, plan.metric, seed, name))
        candidates.append(Candidate(c["name"], float(c["value"]), rank, scores, without_raw(c["config"])))
    return recommend(candidates, plan.metric, plan.mode)


def _seed_score(t: LedgerTrial | None, metric: str, seed: int, name: str) -> SeedScore:
    if t is None:
        return seed_score(seed, "missing", None, "", name, metric)
    v = t.final.get(metric)
    value = float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None
    return seed_score(seed, t.status, value, t.error, name, metric)


# ---- running it ---------------------------------------------------------------------------------


def maybe_confirm(run: SearchRun, parent_id: str, stopped_by_signal: bool, enabled: bool, retry_failed: bool,
                  verbose: int, tracking_wait_s: float) -> ConfirmOutcome | None:
    """Run the confirm phase if the space asks for it and the search ended whole; None otherwise."""
    c, s = run.spec.search.confirm, run.spec.search
    if c is None or not enabled or stopped_by_signal:
        return None
    if s.scheduler == "pbt":
        print("[xstilts] confirm: not run for PBT (its winner is a lineage of configurations; its schedule is "
              "exported instead)", flush=True)
        return None
    if any(not t.ended for t in read_ledger(run.run_dir).values()):
        return None  # the search is unfinished: a resume finishes it, then confirms
    return run_confirm(run, parent_id, c.top_k, c.seeds, retry_failed, verbose, tracking_wait_s)


def run_confirm(run: SearchRun, parent_id: str, top_k: int, n_seeds: int, retry_failed: bool = False,
                verbose: int = 1, tracking_wait_s: float = 120.0) -> ConfirmOutcome:
    """Plan (or read back) the confirm phase, run what is left of it, record the recommendation."""
    from .runner import _fit

    t0 = time.perf_counter()
    if run.resumed and cut_partial_line(run.run_dir / CONFIRM_LEDGER):
        print(f"[xstilts] resume: dropped a half-written last line of {CONFIRM_LEDGER}", flush=True)
    plan = plan_confirm(run, top_k, n_seeds)
    if plan is None:
        print("[xstilts] confirm: no completed trial to retrain; no recommendation", flush=True)
        return ConfirmOutcome(None, time.perf_counter() - t0, False)
    if run.resumed:
        sync_confirm(run, parent_id, plan, announce=True)
    todo = confirm_points(plan, read_ledger(run.run_dir, CONFIRM_LEDGER), retry_failed)
    total = len(plan.trials())
    print(f"[xstilts] confirm: the top {len(plan.candidates)} ({', '.join(plan.names())}) on fresh seeds "
          f"{plan.seeds}: {len(todo)} of {total} trials to run", flush=True)
    fitted, pending = None, []
    if todo:
        resumes = _resume_points(run, todo) if run.resumed else {}
        if resumes:
            print(f"[xstilts] confirm: {len(resumes)} unfinished trial(s) continue from their last checkpoints",
                  flush=True)
        callback = _mlflow_callback(run, parent_id, plan, tracking_wait_s)
        tuner = _tuner(run, plan, todo, resumes, [LedgerCallback(run.run_dir, CONFIRM_LEDGER), callback,
                                                  _Progress(plan.metric, len(todo))], verbose)
        fitted = _fit(tuner, callback, run.tracking_uri, parent_id)
        pending = callback.pending()
    ledger = read_ledger(run.run_dir, CONFIRM_LEDGER)
    rec = recommendation_of(plan, ledger)
    unfinished = any(s.status in ("running", "missing") for c in rec.candidates for s in c.scores)
    outcome = ConfirmOutcome(rec, time.perf_counter() - t0, unfinished or bool(fitted and fitted.stopped_by_signal),
                             pending, len(todo))
    if not outcome.interrupted:
        discard_set_aside(run.run_dir / CONFIRM_DIR)  # every confirm trial ended: no checkpoint is needed again
    _record(run, parent_id, rec, outcome)
    return outcome


def _params(run: SearchRun, plan: ConfirmPlan, cfg: dict[str, Any]) -> dict[str, Any]:
    """A confirm child's params: those of the search trial it retrains, with its own seed."""
    config = next(c["config"] for c in plan.candidates if c["name"] == cfg["candidate"])
    seed = int(cfg["seed"])  # set last: a searched seed in the candidate's config is the search's, not this one
    return {**trial_params(run.spec, config, {**run.overrides, "seed": seed}), "seed": seed,
            "confirm_of": cfg["candidate"]}


def _tags(cfg: dict[str, Any]) -> dict[str, str]:
    return {PHASE_TAG: CONFIRM, CONFIRM_OF_TAG: str(cfg["candidate"]), SEED_TAG: str(cfg["seed"])}


def _mlflow_callback(run: SearchRun, parent_id: str, plan: ConfirmPlan, wait_s: float) -> MLflowTrialsCallback:
    s = run.spec.search
    return MLflowTrialsCallback(run.tracking_uri, run.experiment, parent_id, params_fn=lambda cfg: _params(run, plan, cfg),
                                metric=s.metric, mode=s.mode, artifacts=False, progress=False, end_wait_s=wait_s,
                                tags_fn=_tags)


def _trial_name(trial: Any) -> str:
    return confirm_trial_name(str(trial.config["candidate"]), int(trial.config["seed"]))


def _tuner(run: SearchRun, plan: ConfirmPlan, todo: list[dict[str, Any]], resumes: dict[int, dict[str, Any]],
           callbacks: list[Any], verbose: int) -> Any:
    """Every confirm trial left, run to its end with the search's resources, in ``<run folder>/confirm``."""
    from ray import tune
    from ray.tune.search import BasicVariantGenerator

    from .runner import trial_trainable

    s = run.spec.search
    spec_json, overrides = run.spec.model_dump_json(), dict(run.overrides)
    configs = {c["name"]: c["config"] for c in plan.candidates}

    def resolve(config: dict[str, Any]) -> Any:
        from xstilts.spaces import SearchSpec, to_trial_config

        return to_trial_config(SearchSpec.model_validate_json(spec_json), configs[config["candidate"]],
                               **{**overrides, "seed": int(config["seed"])})

    fn = trial_trainable(resolve, str(run.root), max(1, int(s.cpus_per_trial)), resumes, resume_key=INDEX)
    trainable = tune.with_resources(fn, {"cpu": s.cpus_per_trial, **({"gpu": s.gpus_per_trial} if s.gpus_per_trial
                                                                      else {})})
    return tune.Tuner(
        trainable, param_space={"candidate": None, "seed": None, INDEX: None},
        tune_config=tune.TuneConfig(
            search_alg=BasicVariantGenerator(points_to_evaluate=todo, max_concurrent=s.max_concurrent),
            num_samples=len(todo), max_concurrent_trials=s.max_concurrent, reuse_actors=True,
            trial_name_creator=_trial_name, trial_dirname_creator=_trial_name),
        run_config=tune.RunConfig(
            name=CONFIRM_DIR, storage_path=str(run.run_dir), callbacks=callbacks, verbose=verbose,
            failure_config=tune.FailureConfig(max_failures=s.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2)))


class _Progress(Callback):
    """One line per finished confirm trial (the search's own progress line counts the search's trials)."""

    def __init__(self, metric: str, total: int) -> None:
        self.metric, self.total, self.done = metric, total, 0

    def _line(self, trial: Any, status: str) -> None:
        self.done += 1
        v = (trial.last_result or {}).get(self.metric)
        score = f" {self.metric}={v:.4f}" if _finite(v) and status == "completed" else ""
        print(f"[xstilts] confirm trial {trial} {status}{score} | {self.done} of {self.total} done", flush=True)

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._line(trial, "completed" if (trial.last_result or {}).get(TRIAL_DONE) else "ended early")

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._line(trial, "failed")


# ---- recording it ---------------------------------------------------------------------------------


def parent_record(outcome: ConfirmOutcome | None) -> tuple[dict[str, float], dict[str, str]]:
    """The parent run's metrics and tags from the confirm phase: recommended/<metric>, its SE and seeds,
    the phase's seconds; the recommended trial and its config."""
    if outcome is None or outcome.recommendation is None:
        return {}, {}
    rec, r = outcome.recommendation, outcome.recommendation.recommended
    metrics = {"confirm/seconds": outcome.seconds,
               "confirm/failed": float(sum(s.status == "failed" for c in rec.candidates for s in c.scores))}
    if r is None:
        return metrics, {RECOMMENDED_TAG: "none"}
    metrics.update({f"recommended/{rec.metric}": r.mean, f"recommended/{rec.metric}_se": r.se,
                    "recommended/seeds": float(r.n)})
    return metrics, {RECOMMENDED_TAG: r.name, "xstilts.recommended_config": json.dumps(r.config, default=str)}


def _record(run: SearchRun, parent_id: str, rec: Recommendation, outcome: ConfirmOutcome) -> None:
    """confirm.json beside the confirm trials and as the parent's artifact ``confirm/confirm.json``."""
    doc = {**rec.as_dict(), "seconds": round(outcome.seconds, 2), "interrupted": outcome.interrupted}
    path = run.run_dir / CONFIRM_DIR / "confirm.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1, default=str))
    try:
        from mlflow.tracking import MlflowClient

        MlflowClient(run.tracking_uri).log_artifact(parent_id, str(path), CONFIRM_DIR)
    except Exception as e:  # the ledger and the file hold it; tracking must not fail the search
        outcome.pending.append(f"confirm: confirm.json ({type(e).__name__})")
        print(f"[xstilts] warning: confirm.json not logged to the parent run ({type(e).__name__}: {str(e)[:200]}); "
              f"it is in {path}", flush=True)


def sync_confirm(run: SearchRun, parent_id: str, plan: ConfirmPlan | None = None, announce: bool = False) -> SyncReport:
    """Write into the tracking store what the confirm ledger holds and the store lacks (children made
    with the confirm tags); what was written."""
    from mlflow.tracking import MlflowClient

    from xstilts.dashboards.run_records import experiment_id

    trials = read_ledger(run.run_dir, CONFIRM_LEDGER)
    plan = plan or next((ConfirmPlan(e["metric"], e["mode"], e["candidates"], e["seeds"])
                         for e in ledger_events(run.run_dir, CONFIRM_LEDGER) if e.get("event") == "confirm"), None)
    if not trials or plan is None:
        return SyncReport()
    exp_id = experiment_id(MlflowClient(run.tracking_uri), run.experiment, run.tracking_uri)
    report = sync_trials(run.tracking_uri, exp_id, parent_id, trials, lambda cfg: _params(run, plan, cfg),
                         artifacts=False, tags_fn=_tags)
    doc = run.run_dir / CONFIRM_DIR / "confirm.json"
    client = MlflowClient(run.tracking_uri)
    if doc.exists() and not any(a.path.endswith("confirm.json") for a in client.list_artifacts(parent_id, CONFIRM_DIR)):
        client.log_artifact(parent_id, str(doc), CONFIRM_DIR)
        report.artifacts += 1
    if report.wrote and announce:
        print(f"[xstilts] resume: the tracking store lacked what the confirm ledger holds: {report.text()}", flush=True)
    return report


def confirm_summary_lines(rec: Recommendation, raw_best: str | None) -> list[str]:
    """The console summary's recommendation: the confirmed candidate with mean ± SE, each candidate's
    seeds, and the raw best labelled as such."""
    r = rec.recommended
    lines = []
    if r is None:
        lines.append("recommended: none — no confirm trial completed (the raw best below is one seed's score)")
    else:
        lines.append(f"recommended: {r.name}  {estimate_text(r, rec.metric)} (mean ± SE; its search score "
                     f"{r.search_value:.4f} left out)")
        lines.append(f"  config: {json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in r.config.items()})}")
    for c in rec.candidates:
        seeds = ", ".join(f"s{s.seed}: {s.value:.4f}" if s.counted and s.value is not None else f"s{s.seed}: {s.reason}"
                          for s in c.scores)
        lines.append(f"  confirm #{c.rank} {c.name}: search {c.search_value:.4f} -> {seeds}")
    if raw_best:
        lines.append(raw_best)
    return lines
