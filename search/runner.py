"""Assemble and run a search: SearchSpec → Ray Tune ``Tuner`` (searcher + scheduler + MLflow).

    space YAML ─► SearchSpec ─► ray.init / connect ─► Tuner(
          trainable  = run_trial wrapped for Tune (reports through ray.tune.report, checkpoints),
          search_alg = OptunaSearch(TPE | GP | random | grid | NSGA-II, journal storage) | PBT population,
          scheduler  = ASHA | none | PBT,
          callbacks  = [MLflowTrialsCallback: nested child runs under the search's parent run,
                        OptunaRecordsCallback: trial names, mixtures, MLflow run ids in the study])

Each invocation is one *search run*, named ``<name>-<timestamp>``: its Ray results folder,
its Optuna study (journal file) and its MLflow parent run share that name; the MLflow
experiment is the search name, so repeated searches of one space sit side by side.

Resume (``xstilts search --resume RUN_NAME``): the run's folder keeps ``xstilts_search.json``
(the validated space, the overrides and the tracking URI) and the search's ledger
(``xstilts_ledger.jsonl``: every trial's start, results and end, written as they happen). Tune's own
saved state lags the search and is not trusted: ``resume.plan_resume`` reconciles the ledger with
the Optuna journal (both current), and a *new* Tuner in the same run folder continues the same
Optuna study with what is left of the budget, running the unfinished trials again first, under
their own Optuna trial numbers, from their last checkpoints. Before it starts, ``sync`` writes into
the tracking store what the kill kept from it, and the MLflow callback re-attaches to the children
by trial name on the *same* parent run (found by tag ``xstilts.search``). A PBT search (no Optuna
study; its population exploits one another's checkpoints, which only Tune's state links) is
restored with ``Tuner.restore``.

``run_search`` reads as its steps: start a new search run or resume one (a ``SearchRun``, with its
``ResumePlan``), prepare the caches and connect Ray, open the MLflow parent run, build the Tuner,
fit, summarise from the ledger (counts, best trial, PBT's winning schedule via ``pbt_export``, the
parent run's summary, and what the tracking store did not take, for ``xstilts sync``).

Tracking on a cluster: MLflow is written by the driver's callback only — trials report to
Ray, never to the tracking store — so a local SQLite URI is valid with any number of nodes
as long as the *driver* can write it (``ray job submit`` runs the driver on the head node).
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xstilts.dashboards.mlflow_logging import (
    MLflowTrialsCallback,
    find_search_run_id,
    finish_search_run,
    reopen_search_run,
)
from xstilts.dashboards.mlflow_view import format_param, score_metrics
from xstilts.dashboards.run_records import experiment_id
from xstilts.dashboards.tracking_queue import bounded_http_retries
from xstilts.spaces import SearchSpec, to_trial_config, trial_params
from xstilts.trainer.codec import NUMBER, chosen_tasks, subset_value, without_raw
from xstilts.trainer.config import TrialConfig
from xstilts.trainer.data import synth_benchmark
from xstilts.trainer.home import default_tracking_uri, home
from xstilts.trainer.model import ensure_tiny_model
from xstilts.trainer.names import OBJECTIVE, REPLAYED, TRIAL_DONE, TRIAL_FUNCTION, TRIAL_PARTIAL

from .ledger import LEDGER_FILE, Ledger, LedgerCallback, end_event, read_ledger, tally
from .optuna_records import OptunaRecordsCallback
from .pbt_export import export_pbt_schedule
from .ray_session import alive_nodes, connect_ray, dashboard_login_hint, ray_dashboard_url
from .resume import ResumeError, discard_set_aside, plan_resume, settle_study
from .schedulers import make_scheduler, n_reports
from .search_run import STATE_FILE, SearchError, SearchRun, open_search_run, resolve_run_dir, start_parent_run
from .searchers import make_search_alg, pbt_population
from .sync import sync_trials, trials_of_run
from .trial_actor import named_trainable

__all__ = ["SearchOptions", "SearchOutcome", "SearchError", "SearchRun", "run_search", "TrialNamer", "trial_name",
           "prepare_assets", "resolve_run_dir", "apply_options", "open_search_run", "start_parent_run", "STATE_FILE",
           "trial_trainable", "proxy_report", "PROXY"]

PROXY = "proxy/fidelity"  # 1 on a trial's first report when it is the cheap fidelity's score (``asha.proxy``)


@dataclass
class SearchOptions:
    name: str | None = None
    trials: int | None = None
    max_concurrent: int | None = None
    tracking_uri: str | None = None
    storage: str | None = None  # Ray results folder (default $XSTILTS_HOME/ray)
    ray_address: str | None = None  # None: $RAY_ADDRESS if set (ray job submit), else a local Ray
    home: str | None = None
    verbose: int = 1
    trial_overrides: dict[str, Any] = field(default_factory=dict)  # e.g. reduced fidelity in tests
    searcher: str | None = None
    scheduler: str | None = None
    time_budget_s: float | None = None
    cpus_per_trial: float | None = None
    gpus_per_trial: float | None = None
    max_failures: int | None = None
    seed: int | None = None
    resume: str | None = None  # a run name (or its folder) to continue
    retry_failed: bool = False  # with resume: run errored trials again (from their last checkpoint)
    run_name: str | None = None  # fix the run name (default <name>-<timestamp>)
    confirm: bool = True  # False (--no-confirm): no confirm phase, whatever the space says
    tracking_wait_s: float = 120.0  # at the end: how long to wait for a tracking store that does not answer
    started_at: float | None = None  # time.time() when the command began (its preflight is preparation too)


@dataclass
class SearchOutcome:
    run_name: str
    experiment: str
    parent_run_id: str
    tracking_uri: str
    results_path: str
    best_config: dict[str, Any] | None
    best_metrics: dict[str, Any] | None
    counts: dict[str, int]
    seconds: float
    dashboard_url: str | None
    interrupted: bool = False
    metric: str = OBJECTIVE
    nodes: dict[str, int] = field(default_factory=dict)  # Ray node id -> trials that ran there
    fit_seconds: float = 0.0  # Tuner.fit alone: the search proper, without setup and the summary
    summary_seconds: float = 0.0  # the parent run's leaderboard and plots after the search
    scheduler: str = "asha"  # what stopped trials early (the summary names it)
    tracking_pending: list[str] = field(default_factory=list)  # writes the tracking store never took
    ledger_seconds: float = 0.0  # time the driver spent writing the ledger (what durability costs)
    recommendation: Any = None  # the confirm phase's Recommendation (None: no confirm phase)
    confirm_seconds: float = 0.0  # the confirm phase's wall time (this session)
    prep_seconds: float = 0.0  # before the first trial: checks, data generation, pretraining, Ray (in ``seconds``)


class TrialNamer:
    """Names trials by what they try, e.g. ``t0007-interleaved-m0.30-T3.2-tr0.40-mnli+sst2`` (``tr``: the
    translated share).

    The number is the Optuna trial number carried in the config (``trial_number``), so names
    stay unique and stable across resumes; without it, the order in which this namer saw trials."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}

    def __call__(self, trial: Any) -> str:
        n = self.index.setdefault(trial.trial_id, len(self.index))
        return trial_name(trial.config, int(trial.config.get("trial_number", n)))


def trial_name(c: dict[str, Any], n: int) -> str:
    parts = [f"t{n:04d}", str(c.get("schedule", ""))]
    if c.get("schedule") in ("interleaved", "annealed") and "language_temperature" in c:
        parts.append(f"m{c.get('multilingual_share', 0):.2f}-T{c['language_temperature']:.1f}")
    if c.get("translated_share") is not None and str(c.get("intermediate_languages", "")) != "en":
        parts.append(f"tr{float(c['translated_share']):.2f}")  # share of intermediate examples from translations
    parts.append(subset_value(chosen_tasks(c)))
    return "-".join(p for p in parts if p)


def prepare_assets(spec: SearchSpec, root: Path, overrides: dict[str, Any] | None = None) -> None:
    """Generate the benchmark and pretrain the tiny model once, in the driver, before any trial;
    then wait for DeepSpeed's op when the preflight started its build (SearchError if it failed)."""
    from xstilts.trainer.engine import wait_deepspeed_op

    tc = to_trial_config(spec, _first_point(spec), **(overrides or {}))
    if tc.benchmark == "synth":
        synth_benchmark(str(root), tc.data_seed)
    if tc.model == "tiny":
        ensure_tiny_model(root, tc.tiny)
    try:
        done = wait_deepspeed_op()
    except RuntimeError as e:
        raise SearchError(str(e)) from None
    if done:
        print(f"[xstilts] {done}", flush=True)


def _first_point(spec: SearchSpec) -> dict[str, Any]:
    from xstilts.spaces import sample_random

    return sample_random(spec, 0)


def _make_trainable(spec_json: str, root: str, overrides: dict[str, Any], threads: int,
                    resumes: dict[int, dict[str, Any]], proxy: dict[str, Any] | None = None) -> Any:
    """The search's Tune trainable: one trial of ``run_trial`` on the space's point (with ``proxy``, a
    ``FidelitySettings`` dump: that cheap fidelity first, its score the first report)."""
    def resolve(config: dict[str, Any]) -> TrialConfig:
        from xstilts.spaces import SearchSpec, to_trial_config

        return to_trial_config(SearchSpec.model_validate_json(spec_json), config, **overrides)

    return trial_trainable(resolve, root, threads, resumes, proxy=proxy)


def proxy_report(metrics: dict[str, Any]) -> dict[str, Any]:
    """What a proxy run reports as a trial's first result: its dev scores under the search's metric
    names (ASHA's first rung and Optuna's first intermediate value read them), marked ``proxy/fidelity``
    with its seconds; not its test scores, and not done (the full run follows)."""
    out = {k: v for k, v in metrics.items()
           if not k.startswith(("test/", "test_clean/", "time/", "train/")) and k not in (TRIAL_DONE, TRIAL_PARTIAL)}
    return {**out, PROXY: 1, "proxy/seconds": float(metrics.get("time/trial_s", 0.0))}


def trial_trainable(resolve: Callable[[dict[str, Any]], TrialConfig], root: str, threads: int,
                    resumes: dict[int, dict[str, Any]] | None = None, resume_key: str = NUMBER,
                    proxy: dict[str, Any] | None = None) -> Any:
    """The Tune function trainable running ``run_trial(resolve(config))`` (a search's or a study's):
    it reports through ``ray.tune.report`` with its checkpoints and continues from Tune's checkpoint.
    ``resolve`` travels to the trial's worker: keep what it captures small. ``resumes`` (a resumed
    search): Optuna trial number (the config's ``resume_key``) -> the checkpoint a re-run continues
    from and the results it reported before it. ``proxy`` (``asha.proxy``'s ``FidelitySettings``, dumped):
    a trial that starts from nothing first runs that cheap fidelity and reports its score
    (``proxy_report``), then runs in full from the start; one continuing from a checkpoint has
    reported it already."""
    resumes = resumes or {}

    def xstilts_trial(config: dict[str, Any]) -> None:
        import ray
        from ray import tune

        from xstilts.trainer.config import TrialRuntime
        from xstilts.trainer.trial import run_trial

        tc = resolve(config)
        ckpt_in = tune.get_checkpoint()
        # a retried (FailureConfig) or PBT-exploited trial continues from its last checkpoint; a trial a
        # resume runs again, from the one the resume handed it
        again = None if ckpt_in else resumes.get(int(config.get(resume_key, -1)))
        start = ckpt_in.path if ckpt_in else (again or {}).get("checkpoint")
        runtime = TrialRuntime(home=root, threads=threads, resume_from=start)
        where = {"ray/node_id": ray.get_runtime_context().get_node_id(),
                 "ray/resumed_from_checkpoint": int(start is not None)}
        for earlier in (again or {}).get("replays", []) if start else []:
            tune.report({**earlier, **where, REPLAYED: 1})  # Tune's iteration and the scheduler's rungs line up
        if proxy is not None and start is None:  # ASHA's first rung: the cheap fidelity's score
            from xstilts.spaces import FidelitySettings

            cheap = FidelitySettings.model_validate(proxy).config(tc)
            done = run_trial(cheap, None, runtime=TrialRuntime(home=root, threads=threads), log=lambda s: None)
            tune.report({**proxy_report(done["metrics"]), **where})

        def report(metrics: dict[str, Any], checkpoint_dir: str | None = None) -> None:
            ckpt = tune.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
            tune.report({**metrics, **where}, checkpoint=ckpt)

        run_trial(tc, report, runtime=runtime, log=lambda s: print(s, flush=True))

    xstilts_trial.__name__ = xstilts_trial.__qualname__ = TRIAL_FUNCTION  # what Ray's actor lists show
    return xstilts_trial


def apply_options(spec: SearchSpec, opts: SearchOptions) -> SearchSpec:
    """``spec`` with the CLI's search overrides, validated again (raises pydantic's ValidationError)."""
    s = spec.search.model_dump()
    for k in ("searcher", "scheduler", "trials", "max_concurrent", "time_budget_s", "cpus_per_trial",
              "gpus_per_trial", "max_failures", "seed"):
        v = getattr(opts, k)
        if v is not None:
            s[k] = v
    if not opts.confirm:
        s["confirm"] = None
    # re-validate: an override can make the settings inconsistent (e.g. --searcher nsga2 without objectives)
    return SearchSpec.model_validate({**spec.model_dump(), "search": s})


@dataclass
class _Fitted:
    grid: Any  # Tune's ResultGrid (None: nothing was left to run)
    seconds: float  # Tuner.fit alone
    stopped_by_signal: bool  # Ctrl-C stopped the search


def run_search(spec: SearchSpec, opts: SearchOptions) -> SearchOutcome:
    """Run search ``spec`` with ``opts`` to its end, or continue ``opts.resume``; its outcome.

    1. ``_start`` a new search run (the space with the CLI's overrides, a fresh run name) or
       ``_resume`` one (everything from its state file, and its ``ResumePlan``): a ``SearchRun``;
    2. make the data and model caches (``prepare_assets``) and connect to Ray (or start it);
    3. open the MLflow parent run (``_open_parent_run``: a new one, or the resumed run's reopened,
       and on resume write into the store what the kill kept from it, ``_reconcile_store``);
    4. build the Tuner (``_build_tuner``: a new one, continuing the study on resume; PBT restores);
    5. fit (``_fit``: the search proper, watching for Ctrl-C, then waiting for the MLflow queue);
       then the confirm phase, when the space asks for it (``confirm.maybe_confirm``: the best trials
       trained again on fresh seeds, the recommendation by mean ± SE);
    6. summarise (``_summarise``: counts and best trial from the ledger, PBT export, the parent
       run's summary and status, what the tracking store did not take) into the ``SearchOutcome``.

    Ray is shut down at the end if this call started it."""
    started = opts.started_at or time.time()  # preparation counts: the preflight, generation, pretraining, Ray
    bounded_http_retries()  # an unreachable store fails a call in seconds; the callback's queue retries
    root = home(opts.home)
    storage = Path(opts.storage or root / "ray").resolve()
    storage.mkdir(parents=True, exist_ok=True)
    run = _resume(opts.resume, opts, root, storage) if opts.resume else _start(spec, opts, root, storage)
    run.started_ms = int(started * 1000)

    prepare_assets(run.spec, root, run.overrides)
    started_ray = connect_ray(opts.ray_address, job_name=run.run_name)  # the Jobs page's name
    try:
        dashboard_url, nodes = _announce_ray(run.tracking_uri)
        parent_id = _open_parent_run(run, nodes)
        callback = _trials_callback(run, parent_id, opts.tracking_wait_s)
        ledger = LedgerCallback(run.run_dir)
        prep_seconds = time.time() - started
        if run.plan is not None and run.plan.left == 0:
            print(f"[xstilts] search {run.run_name} has all its {run.plan.requested} trials; nothing left to run",
                  flush=True)
            fitted = _Fitted(None, 0.0, False)
        else:
            tuner = _build_tuner(run, [ledger, callback, *_study_records(run, callback)], opts)
            fitted = _fit(tuner, callback, run.tracking_uri, parent_id)
        _close_stopped(run, fitted, ledger.ledger)
        from .confirm import maybe_confirm

        confirmed = maybe_confirm(run, parent_id, fitted.stopped_by_signal, opts.confirm, opts.retry_failed,
                                  opts.verbose, opts.tracking_wait_s)
        return _summarise(run, parent_id, callback, ledger.ledger, fitted, (started, prep_seconds), dashboard_url,
                          confirmed)
    finally:
        if started_ray:
            import ray

            ray.shutdown()


def _start(spec: SearchSpec, opts: SearchOptions, root: Path, storage: Path) -> SearchRun:
    """A new search run of ``spec`` with the CLI's overrides; SearchError if its name is taken."""
    spec = apply_options(spec, opts)
    overrides = dict(opts.trial_overrides)
    fixed = spec.trial | overrides
    if spec.search.scheduler == "pbt" and fixed.get("probe_every") is None:
        # PBT acts at reports; without phase-1 reports its mixture changes would land after the
        # intermediate phase, where they change nothing
        every = int(fixed.get("eval_every", TrialConfig.model_fields["eval_every"].default))
        overrides["probe_every"] = every
        print(f"[xstilts] PBT: probing the objective every {every} intermediate steps (trial.probe_every), "
              "so mixture changes act during intermediate training", flush=True)
    experiment = opts.name or spec.name
    run_name = opts.run_name or f"{experiment}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir = storage / run_name
    if (run_dir / STATE_FILE).exists():
        raise SearchError(f"search run {run_name!r} exists already in {storage}; resume it with "
                          f"--resume {run_name}")
    return SearchRun(spec, overrides, run_name, experiment, opts.tracking_uri or default_tracking_uri(root),
                     root, storage, run_dir)


def _resume(name: str, opts: SearchOptions, root: Path, storage: Path) -> SearchRun:
    """Search run ``name`` as its state file recorded it, with its plan (not PBT: Tune restores it)."""
    run = open_search_run(name, storage, str(root), opts.tracking_uri)
    if run.spec.search.scheduler == "pbt":
        return run
    try:
        run.plan = plan_resume(run.spec, run.run_dir, run.journal, run.run_name, opts.retry_failed)
    except (ResumeError, OSError) as e:
        raise SearchError(f"search run {run.run_name} cannot be resumed: {e}") from e
    for line in run.plan.mended:
        print(f"[xstilts] resume: {line}", flush=True)
    p = run.plan
    print(f"[xstilts] resume: {len(p.finished)} of {p.requested} trials finished, {len(p.reruns)} to run again "
          f"from their last checkpoints, {p.left - len(p.reruns)} new", flush=True)
    return run


def _announce_ray(tracking_uri: str) -> tuple[str | None, int]:
    """Print the Ray dashboard's address, and why SQLite tracking is safe on several nodes:
    (the dashboard URL, the number of live Ray nodes)."""
    dashboard_url = ray_dashboard_url()
    if dashboard_url:
        hint = dashboard_login_hint(dashboard_url)
        print(f"[xstilts] Ray dashboard: {dashboard_url}" + (f"  ({hint})" if hint else ""), flush=True)
    nodes = alive_nodes()
    if nodes > 1 and tracking_uri.startswith("sqlite:"):
        print(f"[xstilts] {nodes} Ray nodes, SQLite tracking store {tracking_uri}: trials report to Ray and "
              "only this driver writes MLflow, so SQLite is safe here", flush=True)
    return dashboard_url, nodes


def _open_parent_run(run: SearchRun, nodes: int) -> str:
    """The MLflow parent run's id: the resumed run's, reopened (and the store reconciled with the
    ledger), or a new one (and the state file). SearchError if the store does not answer."""
    try:
        if not run.resumed:
            return start_parent_run(run, nodes)
        parent_id = _reopen_parent_run(run)
        _reconcile_store(run, parent_id)
        return parent_id
    except SearchError:
        raise
    except Exception as e:
        raise SearchError(f"the tracking store {run.tracking_uri} does not answer ({type(e).__name__}: "
                          f"{str(e)[:300]}); start it, or pass --tracking-uri, then run the same command again") from e


def _reopen_parent_run(run: SearchRun) -> str:
    """Reopen the resumed run's parent: found by its tag ``xstilts.search``, else the id its state file recorded."""
    parent_id = find_search_run_id(run.tracking_uri, run.run_name) or run.saved_parent_id
    if not parent_id:
        raise SearchError(f"no MLflow parent run tagged xstilts.search={run.run_name!r} in {run.tracking_uri}; "
                          f"xstilts sync {run.run_name} --tracking-uri {run.tracking_uri} makes it from the results")
    reopen_search_run(run.tracking_uri, parent_id)
    print(f"[xstilts] resuming search {run.run_name} (MLflow parent run {parent_id})", flush=True)
    return parent_id


def _reconcile_store(run: SearchRun, parent_id: str) -> None:
    """Write into the tracking store what the ledger holds and the store lacks (the writes a killed
    driver still had queued, the ends it never wrote), before the resumed trials add theirs."""
    from mlflow.tracking import MlflowClient

    exp_id = experiment_id(MlflowClient(run.tracking_uri), run.experiment, run.tracking_uri)
    spec, overrides = run.spec, run.overrides
    report = sync_trials(run.tracking_uri, exp_id, parent_id, trials_of_run(run.run_dir),
                         lambda cfg: trial_params(spec, cfg, overrides))
    if report.wrote:
        print(f"[xstilts] resume: the tracking store lacked what the ledger holds: {report.text()}", flush=True)


def _trials_callback(run: SearchRun, parent_id: str, wait_s: float) -> MLflowTrialsCallback:
    """The driver's MLflow callback: a nested child run per trial under ``parent_id``, its params
    every sampled dimension and the trial settings."""
    spec, overrides = run.spec, run.overrides
    return MLflowTrialsCallback(run.tracking_uri, run.experiment, parent_id,
                                params_fn=lambda cfg: trial_params(spec, cfg, overrides), end_wait_s=wait_s)


def _study_records(run: SearchRun, callback: MLflowTrialsCallback) -> list[Any]:
    """The callback that writes trial names, mixtures and MLflow run ids into the Optuna study (none for PBT)."""
    if run.spec.search.scheduler == "pbt":
        return []
    return [OptunaRecordsCallback(run.journal, run.run_name, lambda name: callback.runs.get(name))]


def _build_tuner(run: SearchRun, callbacks: list[Any], opts: SearchOptions) -> Any:
    """The Tuner: a new one (continuing the study on resume), or ``Tuner.restore`` for a resumed PBT search."""
    s = run.spec.search
    threads = max(1, int(s.cpus_per_trial))
    resumes = run.plan.resume_points() if run.plan else {}
    cheap = s.proxy_fidelity()
    trainable = named_trainable(  # the dashboard's actors show the trial names
        _make_trainable(run.spec.model_dump_json(), str(run.root), run.overrides, threads, resumes,
                        cheap.model_dump() if cheap else None),
        {"cpu": s.cpus_per_trial, **({"gpu": s.gpus_per_trial} if s.gpus_per_trial else {})})
    if run.resumed and run.plan is None:
        return _restore_tuner(run, trainable, callbacks, opts.retry_failed)
    return _new_tuner(run, trainable, callbacks, opts.verbose)


def _restore_tuner(run: SearchRun, trainable: Any, callbacks: list[Any], retry_failed: bool) -> Any:
    """``Tuner.restore`` of the run's folder (PBT: its population is linked through Tune's state)."""
    from ray import tune

    if not tune.Tuner.can_restore(str(run.run_dir)):
        raise SearchError(f"{run.run_dir} holds no Ray Tune state to resume (the driver died before the "
                          "first trial started); start the search again")
    tuner = tune.Tuner.restore(str(run.run_dir), trainable, resume_unfinished=True, resume_errored=retry_failed)
    # the pickled callbacks are the ones built at the first start; use fresh ones on the same parent
    tuner._local_tuner.get_run_config().callbacks = callbacks  # type: ignore[union-attr]
    return tuner


def _new_tuner(run: SearchRun, trainable: Any, callbacks: list[Any], verbose: int) -> Any:
    """A new Tuner: the run's searcher and scheduler, trials named by what they try; on resume the
    budget left, in the same run folder."""
    from ray import tune

    spec, s = run.spec, run.spec.search
    tc = to_trial_config(spec, _first_point(spec), **run.overrides)
    namer = TrialNamer()
    search_alg, param_space = _search_alg(run)
    return tune.Tuner(
        trainable, param_space=param_space,
        tune_config=tune.TuneConfig(
            search_alg=search_alg, scheduler=make_scheduler(  # (a proxy's score is one report more)
                spec, n_reports(tc.target_steps, tc.eval_every, tc.intermediate_steps, tc.probe_every)
                + (s.proxy_fidelity() is not None)),
            num_samples=run.plan.left if run.plan else spec.n_trials(), max_concurrent_trials=s.max_concurrent,
            time_budget_s=s.time_budget_s, reuse_actors=s.scheduler != "pbt", trial_name_creator=namer,
            trial_dirname_creator=namer,
        ),
        run_config=tune.RunConfig(
            name=run.run_name, storage_path=str(run.storage), callbacks=callbacks, verbose=verbose,
            failure_config=tune.FailureConfig(max_failures=s.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2)),
    )


def _search_alg(run: SearchRun) -> tuple[Any, dict[str, Any] | None]:
    """(the search algorithm, the Tuner's param space): PBT's initial population through Ray's
    variant generator, else the Optuna searcher on the run's journal (no param space); on resume it
    continues the study, its sampler seeded apart from the first start's draws."""
    spec, plan = run.spec, run.plan
    if spec.search.scheduler != "pbt":
        if plan is None:
            return make_search_alg(spec, run.run_name, run.journal), None
        return make_search_alg(spec, run.run_name, run.journal, reruns=plan.reruns,
                               seed=spec.search.seed + plan.study_trials), None
    from ray.tune.search import BasicVariantGenerator

    from xstilts.spaces import placeholders

    # Ray's variant generator resolves each point against the param space: give every key
    return (BasicVariantGenerator(points_to_evaluate=pbt_population(spec), max_concurrent=spec.search.max_concurrent),
            placeholders(spec))


def _fit(tuner: Any, callback: MLflowTrialsCallback, tracking_uri: str, parent_id: str) -> _Fitted:
    """``tuner.fit()``, watching for Ctrl-C; on any way out the callback's queue is given its time
    (``end_wait_s``), and on an exception the parent run is closed as interrupted before it propagates."""
    # Tune warns whenever num_to_keep forces experiment snapshots less than 5 s apart (here: each
    # trial's second checkpoint). Measured on the default search: 2-4 forced snapshots, 0.13-0.17 s
    # of a 46 s search in all — not a bottleneck. Its warning about *slow* snapshots stays on.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    t_fit = time.perf_counter()
    watch = _SigintWatch()
    try:
        grid = tuner.fit()
        fit_seconds = time.perf_counter() - t_fit
    except BaseException:
        callback.finish()  # what the trials wrote so far, before the parent is closed
        _close_parent(tracking_uri, parent_id, {}, {"xstilts.status": "interrupted"}, "KILLED")
        raise
    finally:
        stopped_by_signal = watch.close()
    callback.finish()  # Tune calls on_experiment_end, but not on every way out of fit
    if callback.write_errors:
        print(f"[xstilts] warning: {callback.write_errors} MLflow write(s) failed during the search (logged "
              "above); the search's ledger and Ray's results folder have every trial's results", flush=True)
    return _Fitted(grid, fit_seconds, stopped_by_signal)


def _close_parent(tracking_uri: str, parent_id: str, metrics: dict[str, float], tags: dict[str, str],
                  status: str) -> bool:
    """Close the parent run; False (and a warning) when the store does not take it."""
    try:
        finish_search_run(tracking_uri, parent_id, metrics, tags, status=status)
        return True
    except Exception as e:
        print(f"[xstilts] warning: the parent run could not be closed in {tracking_uri} ({type(e).__name__}: "
              f"{str(e)[:200]})", flush=True)
        return False


def _close_stopped(run: SearchRun, fitted: _Fitted, ledger: Ledger) -> None:
    """Trials Tune stopped without telling anyone (a time budget ran out) end in the ledger as pruned,
    and Optuna hears of it; after Ctrl-C they stay unfinished, for a resume to run again."""
    if fitted.grid is None or fitted.stopped_by_signal:
        return
    ended = {name for name, t in read_ledger(run.run_dir).items() if t.ended}
    for t in _trials_of(fitted.grid):
        if t.status == "TERMINATED" and str(t) not in ended:
            ledger.append(end_event(str(t), (t.config or {}).get(NUMBER), "pruned", dict(t.last_result or {})),
                          durable=True)
    if run.spec.search.scheduler != "pbt":
        settle_study(run.spec, run.run_dir, run.journal, run.run_name)


def _summarise(run: SearchRun, parent_id: str, callback: MLflowTrialsCallback, ledger: Ledger, fitted: _Fitted,
               times: tuple[float, float], dashboard_url: str | None, confirmed: Any = None) -> SearchOutcome:
    """Count the trials and find the best (from the ledger: the whole search, every session), export
    PBT's winning schedule, log the parent run's summary (leaderboard and plots unless interrupted)
    and close it with the confirm phase's recommendation, record how the search ended in the ledger:
    the search's outcome. ``times``: when the command began (``time.time()``) and the seconds it
    prepared before the first trial."""
    from .confirm import parent_record

    s = run.spec.search
    discard_set_aside(run.run_dir)
    count = tally(read_ledger(run.run_dir), s.metric, s.mode)
    interrupted = count.counts["unfinished"] > 0 or fitted.stopped_by_signal or bool(confirmed and confirmed.interrupted)
    best_config = dict(count.best.config) if count.best else None
    best_metrics = {**count.best.final, "trial_id": count.best.trial_id, "trial": count.best.name} if count.best else None
    summary: dict[str, float] = {f"trials/{k}": v for k, v in count.counts.items()}
    tags = {"xstilts.status": "interrupted" if interrupted else "finished", "ray.nodes_used": str(len(count.nodes))}
    if callback.write_errors:
        tags["xstilts.tracking_errors"] = str(callback.write_errors)
    if best_metrics and best_config:
        summary.update({f"best/{k}": v for k, v in score_metrics(best_metrics).items()})  # scores, not train/phase
        tags["best_trial"] = str(best_metrics.get("trial_id", ""))
        tags["best_config"] = json.dumps({k: format_param(v) for k, v in without_raw(best_config).items()})
    if s.scheduler == "pbt" and best_metrics:
        path = export_pbt_schedule(run.spec, run.overrides, run.run_dir, str(best_metrics.get("trial_id", "")),
                                   best_config or {})
        if path:
            tags["pbt_schedule"] = str(path)
            print(f"[xstilts] PBT winning lineage as a stages schedule: {path}  (xstilts train {path})", flush=True)
    confirm_metrics, confirm_tags = parent_record(confirmed)
    summary.update(confirm_metrics)
    tags.update(confirm_tags)
    started, prep_seconds = times
    seconds = time.time() - started
    summary["search/seconds"] = seconds  # the whole command, preparation included
    summary["search/prep_seconds"] = prep_seconds
    summary["search/fit_seconds"] = fitted.seconds
    status = "KILLED" if interrupted else "FINISHED"
    ledger.append({"event": "search", "status": status, "summary": summary, "tags": tags,
                   "ledger_seconds": round(ledger.seconds, 4), "ledger_lines": ledger.lines}, durable=True)
    ledger.close()
    t_sum = time.perf_counter()
    pending = callback.pending() + (confirmed.pending if confirmed else [])
    if not interrupted and not pending:
        from xstilts.dashboards.summary import log_search_summary  # leaderboard + plots; never raises

        log_search_summary(run.tracking_uri, parent_id, metric=s.metric, mode=s.mode, journal_path=run.journal)
    summary_seconds = time.perf_counter() - t_sum
    if pending or not _close_parent(run.tracking_uri, parent_id, summary, tags, status):
        _say_what_is_missing(run, pending)
    if interrupted:
        what = f"{count.counts['unfinished']} trial(s)" if count.counts["unfinished"] else "its confirm phase"
        print(f"[xstilts] search interrupted with {what} unfinished; continue it "
              f"with:  xstilts search --resume {run.run_name}", flush=True)
    return SearchOutcome(run.run_name, run.experiment, parent_id, run.tracking_uri, str(run.run_dir), best_config,
                         best_metrics, count.counts, seconds, dashboard_url, interrupted, s.metric, count.nodes,
                         fitted.seconds, summary_seconds, s.scheduler, pending, ledger.seconds,
                         confirmed.recommendation if confirmed else None, confirmed.seconds if confirmed else 0.0,
                         prep_seconds)


def _say_what_is_missing(run: SearchRun, pending: list[str]) -> None:
    trials = sorted({p.split(":", 1)[0] for p in pending if ":" in p})
    print(f"[xstilts] the tracking store {run.tracking_uri} did not take {len(pending)} write(s)"
          + (f" (trials: {', '.join(trials)})" if trials else "") + f"; every result is in {run.run_dir / LEDGER_FILE}."
          f" When the store answers:  xstilts sync {run.run_name}", flush=True)


class _SigintWatch:
    """Did Ray Tune stop the search on SIGINT (Ctrl-C)? ``tune.run`` installs its own handler and,
    when it fires, puts back the one it found: ours, a sentinel. So after ``fit`` the sentinel
    being in place means the search was interrupted (the trials Ray stopped look TERMINATED)."""

    def __init__(self) -> None:
        self.active = threading.current_thread() is threading.main_thread()
        if self.active:
            self.previous = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._sentinel)

    @staticmethod
    def _sentinel(sig: int, frame: Any) -> None:
        raise KeyboardInterrupt  # a second Ctrl-C while Ray finishes up

    def close(self) -> bool:
        if not self.active:
            return False
        fired = signal.getsignal(signal.SIGINT) == self._sentinel
        signal.signal(signal.SIGINT, self.previous)
        return fired


def _trials_of(grid: Any) -> list[Any]:
    analysis = getattr(grid, "_experiment_analysis", None)
    return list(getattr(analysis, "trials", None) or [])
