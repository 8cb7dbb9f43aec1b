"""Assemble and run a search: SearchSpec → Ray Tune ``Tuner`` (searcher + scheduler + MLflow).

    space YAML ─► SearchSpec ─► ray.init / connect ─► Tuner(
          trainable  = run_trial wrapped for Tune (reports through ray.tune.report, checkpoints),
          search_alg = OptunaSearch(TPE | GP | random | grid | NSGA-II, journal storage) | PBT population,
          scheduler  = ASHA | none | PBT,
          callbacks  = [MLflowTrialsCallback: nested child runs under the search's parent run])

Each invocation is one *search run*, named ``<name>-<timestamp>``: its Ray results folder,
its Optuna study (journal file) and its MLflow parent run share that name; the MLflow
experiment is the search name, so repeated searches of one space sit side by side.

Resume (``xstilts search --resume RUN_NAME``): the run's folder keeps ``xstilts_search.json``
(the validated space, the overrides and the tracking URI); ``Tuner.restore`` brings back the
trials and the pickled searcher (whose study lives on in the journal), a new
``MLflowTrialsCallback`` on the *same* parent run (found by tag ``xstilts.search``) re-attaches
to the trials' child runs, and Optuna trials that were asked but never reached Ray's saved
state are marked failed so the sampler's history holds only what ran (``study_repair``).

``run_search`` reads as its steps: start a new search run or resume one (a ``SearchRun``), prepare
the caches and connect Ray, open the MLflow parent run, build the Tuner (new or restored), fit,
summarise (counts, best trial, PBT's winning schedule via ``pbt_export``, the parent run's summary).

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
    start_search_run,
)
from xstilts.spaces import SearchSpec, to_trial_config, trial_params
from xstilts.trainer.codec import chosen_tasks, subset_value, without_raw
from xstilts.trainer.config import TrialConfig
from xstilts.trainer.data import synth_benchmark
from xstilts.trainer.home import default_tracking_uri, home
from xstilts.trainer.model import ensure_tiny_model
from xstilts.trainer.names import OBJECTIVE, TRIAL_DONE, TRIAL_FUNCTION

from .pbt_export import export_pbt_schedule
from .ray_session import alive_nodes, connect_ray, ray_dashboard_url
from .schedulers import make_scheduler, n_reports
from .searchers import make_search_alg, pbt_population
from .study_repair import fail_orphan_optuna_trials

__all__ = ["SearchOptions", "SearchOutcome", "SearchError", "SearchRun", "run_search", "TrialNamer", "trial_name",
           "prepare_assets", "resolve_run_dir", "apply_options", "STATE_FILE", "trial_trainable"]

STATE_FILE = "xstilts_search.json"  # in the Ray run folder: what a resume needs


class SearchError(RuntimeError):
    """A search cannot start or resume; the message says why and what to do."""


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


class TrialNamer:
    """Names trials by what they try, e.g. ``t0007-interleaved-m0.30-T3.2-mnli+sst2``.

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
    parts.append(subset_value(chosen_tasks(c)))
    return "-".join(p for p in parts if p)


def prepare_assets(spec: SearchSpec, root: Path, overrides: dict[str, Any] | None = None) -> None:
    """Generate the benchmark and pretrain the tiny model once, in the driver, before any trial."""
    tc = to_trial_config(spec, _first_point(spec), **(overrides or {}))
    if tc.benchmark == "synth":
        synth_benchmark(str(root), tc.data_seed)
    if tc.model == "tiny":
        ensure_tiny_model(root, tc.tiny)


def _first_point(spec: SearchSpec) -> dict[str, Any]:
    from xstilts.spaces import sample_random

    return sample_random(spec, 0)


def _make_trainable(spec_json: str, root: str, overrides: dict[str, Any], threads: int) -> Any:
    def resolve(config: dict[str, Any]) -> TrialConfig:
        from xstilts.spaces import SearchSpec, to_trial_config

        return to_trial_config(SearchSpec.model_validate_json(spec_json), config, **overrides)

    return trial_trainable(resolve, root, threads)


def trial_trainable(resolve: Callable[[dict[str, Any]], TrialConfig], root: str, threads: int) -> Any:
    """The Tune function trainable running ``run_trial(resolve(config))`` (a search's or a study's):
    it reports through ``ray.tune.report`` with its checkpoints and continues from Tune's checkpoint.
    ``resolve`` travels to the trial's worker: keep what it captures small."""

    def xstilts_trial(config: dict[str, Any]) -> None:
        import ray
        from ray import tune

        from xstilts.trainer.config import TrialRuntime
        from xstilts.trainer.trial import run_trial

        tc = resolve(config)
        ckpt_in = tune.get_checkpoint()
        # a retried (FailureConfig), resumed or PBT-exploited trial continues from its last checkpoint
        runtime = TrialRuntime(home=root, threads=threads, resume_from=ckpt_in.path if ckpt_in else None)
        where = {"ray/node_id": ray.get_runtime_context().get_node_id(),
                 "ray/resumed_from_checkpoint": int(ckpt_in is not None)}

        def report(metrics: dict[str, Any], checkpoint_dir: str | None = None) -> None:
            ckpt = tune.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
            tune.report({**metrics, **where}, checkpoint=ckpt)

        run_trial(tc, report, runtime=runtime, log=lambda s: print(s, flush=True))

    xstilts_trial.__name__ = xstilts_trial.__qualname__ = TRIAL_FUNCTION  # what Ray's actor lists show
    return xstilts_trial


def _search_name(state_file: Path) -> str | None:
    """The search (MLflow experiment) name a run's state file records; None if it can't be read."""
    try:
        return str(json.loads(state_file.read_text())["experiment"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def resolve_run_dir(name: str, storage: Path) -> Path:
    """The Ray folder of search run ``name``: a path, a run name, or a search name (its latest run)."""
    for cand in (Path(name), storage / name):
        if (cand / STATE_FILE).exists():
            return cand.resolve()
    # a search name: the runs whose saved state names that search (not merely a folder starting with it:
    # `interleave` must not pick a run of `interleave-big`), the latest started first. The state file is
    # written once, when the run starts, so its mtime is the start; the folder's mtime moves with every
    # trial written into it, so a resumed older run would pass for the latest.
    runs = sorted((st for st in storage.glob(f"*/{STATE_FILE}") if _search_name(st) == name),
                  key=lambda st: st.stat().st_mtime)
    if runs:
        return runs[-1].parent.resolve()
    known = sorted(p.name for p in storage.glob("*") if (p / STATE_FILE).exists())
    raise SearchError(f"no search run {name!r} under {storage} (known: {', '.join(known[-10:]) or 'none'}); "
                      "pass --storage if the search used another results folder")


def apply_options(spec: SearchSpec, opts: SearchOptions) -> SearchSpec:
    """``spec`` with the CLI's search overrides, validated again (raises pydantic's ValidationError)."""
    s = spec.search.model_dump()
    for k in ("searcher", "scheduler", "trials", "max_concurrent", "time_budget_s", "cpus_per_trial",
              "gpus_per_trial", "max_failures", "seed"):
        v = getattr(opts, k)
        if v is not None:
            s[k] = v
    # re-validate: an override can make the settings inconsistent (e.g. --searcher nsga2 without objectives)
    return SearchSpec.model_validate({**spec.model_dump(), "search": s})


@dataclass
class SearchRun:
    """One search run, resolved before anything starts: what it searches and where it writes."""

    spec: SearchSpec  # the validated space, with the CLI's search overrides (resume: as first started)
    overrides: dict[str, Any]  # trial settings every trial gets (--set, --steps; PBT's probe_every)
    run_name: str  # <name>-<timestamp>: the Ray folder, the Optuna study and the MLflow parent run
    experiment: str  # the MLflow experiment: the search name
    tracking_uri: str  # the MLflow tracking store
    root: Path  # $XSTILTS_HOME: the caches and the Optuna journals
    storage: Path  # the Ray results folder that holds run_dir
    run_dir: Path  # this run's Ray folder; STATE_FILE in it says how to resume
    resumed: bool = False  # continues an earlier start (--resume)
    saved_parent_id: str | None = None  # resume: the MLflow parent run id the state file recorded

    @property
    def journal(self) -> Path:
        """The Optuna journal of this run's study."""
        return self.root / "optuna" / f"{self.run_name}.journal"


@dataclass
class _Fitted:
    grid: Any  # Tune's ResultGrid
    seconds: float  # Tuner.fit alone
    stopped_by_signal: bool  # Ctrl-C stopped the search


@dataclass
class _Tally:
    results: list[Any]  # one Tune Result per trial
    counts: dict[str, int]  # completed, pruned, failed, unfinished
    nodes: dict[str, int]  # Ray node id -> trials that ran there
    interrupted: bool  # trials left unfinished, or Ctrl-C


def run_search(spec: SearchSpec, opts: SearchOptions) -> SearchOutcome:
    """Run search ``spec`` with ``opts`` to its end, or continue ``opts.resume``; its outcome.

    1. ``_start`` a new search run (the space with the CLI's overrides, a fresh run name) or
       ``_resume`` one (everything from its state file): a ``SearchRun``;
    2. make the data and model caches (``prepare_assets``) and connect to Ray (or start it);
    3. open the MLflow parent run (``_open_parent_run``: a new one, or the resumed run's reopened);
    4. build the Tuner (``_build_tuner``: a new one, or ``Tuner.restore``);
    5. fit (``_fit``: the search proper, watching for Ctrl-C, flushing the MLflow callback);
    6. summarise (``_summarise``: counts, best trial, PBT export, the parent run's summary and
       status) into the ``SearchOutcome``.

    Ray is shut down at the end if this call started it."""
    t0 = time.perf_counter()
    root = home(opts.home)
    storage = Path(opts.storage or root / "ray").resolve()
    storage.mkdir(parents=True, exist_ok=True)
    run = _resume(opts.resume, opts, root, storage) if opts.resume else _start(spec, opts, root, storage)

    prepare_assets(run.spec, root, run.overrides)
    started_ray = connect_ray(opts.ray_address)
    try:
        dashboard_url, nodes = _announce_ray(run.tracking_uri)
        parent_id = _open_parent_run(run, nodes)
        callback = _trials_callback(run, parent_id)
        tuner = _build_tuner(run, callback, opts)
        fitted = _fit(tuner, callback, run.tracking_uri, parent_id)
        return _summarise(run, parent_id, callback, fitted, t0, dashboard_url)
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
    """Search run ``name`` as its state file recorded it (``opts`` may give another tracking URI)."""
    run_dir = resolve_run_dir(name, storage)
    state = json.loads((run_dir / STATE_FILE).read_text())
    return SearchRun(SearchSpec.model_validate_json(state["spec"]), state["trial_overrides"], state["run_name"],
                     state["experiment"], opts.tracking_uri or state["tracking_uri"], root, run_dir.parent,
                     run_dir, resumed=True, saved_parent_id=state.get("parent_run_id"))


def _announce_ray(tracking_uri: str) -> tuple[str | None, int]:
    """Print the Ray dashboard's address, and why SQLite tracking is safe on several nodes:
    (the dashboard URL, the number of live Ray nodes)."""
    dashboard_url = ray_dashboard_url()
    if dashboard_url:
        print(f"[xstilts] Ray dashboard: {dashboard_url}", flush=True)
    nodes = alive_nodes()
    if nodes > 1 and tracking_uri.startswith("sqlite:"):
        print(f"[xstilts] {nodes} Ray nodes, SQLite tracking store {tracking_uri}: trials report to Ray and "
              "only this driver writes MLflow, so SQLite is safe here", flush=True)
    return dashboard_url, nodes


def _open_parent_run(run: SearchRun, nodes: int) -> str:
    """The MLflow parent run's id: the resumed run's, reopened, or a new one (and the state file)."""
    return _reopen_parent_run(run) if run.resumed else _start_parent_run(run, nodes)


def _reopen_parent_run(run: SearchRun) -> str:
    """Reopen the resumed run's parent: found by its tag ``xstilts.search``, else the id its state file recorded."""
    parent_id = find_search_run_id(run.tracking_uri, run.run_name) or run.saved_parent_id
    if not parent_id:
        raise SearchError(f"no MLflow parent run tagged xstilts.search={run.run_name!r} in {run.tracking_uri}")
    reopen_search_run(run.tracking_uri, parent_id)
    print(f"[xstilts] resuming search {run.run_name} (MLflow parent run {parent_id})", flush=True)
    return parent_id


def _start_parent_run(run: SearchRun, nodes: int) -> str:
    """Start the parent run with the search's settings as params, then write the run's state file."""
    spec, s, n_trials = run.spec, run.spec.search, run.spec.n_trials()
    parent_params = {
        "space_file": spec.source or "(in memory)", "searcher": s.searcher, "scheduler": s.scheduler,
        "trials": n_trials, "max_concurrent": s.max_concurrent, "cpus_per_trial": s.cpus_per_trial,
        "gpus_per_trial": s.gpus_per_trial, "time_budget_s": s.time_budget_s or "none",
        "max_failures": s.max_failures, "metric": s.metric, "mode": s.mode, "seed": s.seed,
        "ray_results": str(run.run_dir), "ray_nodes": nodes,
        **({"objectives": ",".join(f"{k}:{v}" for k, v in s.objectives.items())} if s.objectives else {}),
        **{f"trial.{k}": v for k, v in {**spec.trial, **run.overrides}.items()},
    }
    parent_id = start_search_run(run.tracking_uri, run.experiment, run.run_name, parent_params)
    run.run_dir.mkdir(parents=True, exist_ok=True)
    (run.run_dir / STATE_FILE).write_text(json.dumps({
        "spec": spec.model_dump_json(), "trial_overrides": run.overrides, "run_name": run.run_name,
        "experiment": run.experiment, "tracking_uri": run.tracking_uri, "parent_run_id": parent_id,
        "journal": str(run.journal)}, indent=1))
    print(f"[xstilts] search {run.run_name}: {n_trials} trials, {s.max_concurrent} at a time, "
          f"{s.searcher} + {s.scheduler}; MLflow experiment {run.experiment!r} at {run.tracking_uri}", flush=True)
    return parent_id


def _trials_callback(run: SearchRun, parent_id: str) -> MLflowTrialsCallback:
    """The driver's MLflow callback: a nested child run per trial under ``parent_id``, its params
    every sampled dimension and the trial settings."""
    spec, overrides = run.spec, run.overrides
    return MLflowTrialsCallback(run.tracking_uri, run.experiment, parent_id,
                                params_fn=lambda cfg: trial_params(spec, cfg, overrides))


def _build_tuner(run: SearchRun, callback: MLflowTrialsCallback, opts: SearchOptions) -> Any:
    """The Tuner: restored from the run's folder when resuming, else a new one."""
    from ray import tune

    s = run.spec.search
    threads = max(1, int(s.cpus_per_trial))
    trainable = tune.with_resources(
        _make_trainable(run.spec.model_dump_json(), str(run.root), run.overrides, threads),
        {"cpu": s.cpus_per_trial, **({"gpu": s.gpus_per_trial} if s.gpus_per_trial else {})})
    if run.resumed:
        return _restore_tuner(run, trainable, callback, opts.retry_failed)
    return _new_tuner(run, trainable, callback, opts.verbose)


def _restore_tuner(run: SearchRun, trainable: Any, callback: MLflowTrialsCallback, retry_failed: bool) -> Any:
    """``Tuner.restore`` of the run's folder, after failing the Optuna trials Ray never saved."""
    from ray import tune

    if not tune.Tuner.can_restore(str(run.run_dir)):
        raise SearchError(f"{run.run_dir} holds no Ray Tune state to resume (the driver died before the "
                          "first trial started); start the search again")
    fail_orphan_optuna_trials(run.run_dir, run.journal, run.run_name)
    tuner = tune.Tuner.restore(str(run.run_dir), trainable, resume_unfinished=True, resume_errored=retry_failed)
    # the pickled callback is the one built at the first start; use a fresh one on the same parent
    tuner._local_tuner.get_run_config().callbacks = [callback]  # type: ignore[union-attr]
    return tuner


def _new_tuner(run: SearchRun, trainable: Any, callback: MLflowTrialsCallback, verbose: int) -> Any:
    """A new Tuner: the run's searcher and scheduler, trials named by what they try."""
    from ray import tune

    spec, s = run.spec, run.spec.search
    tc = to_trial_config(spec, _first_point(spec), **run.overrides)
    namer = TrialNamer()
    search_alg, param_space = _search_alg(run)
    return tune.Tuner(
        trainable, param_space=param_space,
        tune_config=tune.TuneConfig(
            search_alg=search_alg, scheduler=make_scheduler(
                spec, n_reports(tc.target_steps, tc.eval_every, tc.intermediate_steps, tc.probe_every)),
            num_samples=spec.n_trials(), max_concurrent_trials=s.max_concurrent, time_budget_s=s.time_budget_s,
            reuse_actors=s.scheduler != "pbt", trial_name_creator=namer, trial_dirname_creator=namer,
        ),
        run_config=tune.RunConfig(
            name=run.run_name, storage_path=str(run.storage), callbacks=[callback], verbose=verbose,
            failure_config=tune.FailureConfig(max_failures=s.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2)),
    )


def _search_alg(run: SearchRun) -> tuple[Any, dict[str, Any] | None]:
    """(the search algorithm, the Tuner's param space): PBT's initial population through Ray's
    variant generator, else the Optuna searcher on the run's journal (no param space)."""
    spec = run.spec
    if spec.search.scheduler != "pbt":
        return make_search_alg(spec, run.run_name, run.journal), None
    from ray.tune.search import BasicVariantGenerator

    from xstilts.spaces import placeholders

    # Ray's variant generator resolves each point against the param space: give every key
    return (BasicVariantGenerator(points_to_evaluate=pbt_population(spec), max_concurrent=spec.search.max_concurrent),
            placeholders(spec))


def _fit(tuner: Any, callback: MLflowTrialsCallback, tracking_uri: str, parent_id: str) -> _Fitted:
    """``tuner.fit()``, watching for Ctrl-C; on any way out the callback's queue is flushed, and on
    an exception the parent run is closed as interrupted before it propagates."""
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
        callback.flush()  # what the trials wrote so far, before the parent is closed
        finish_search_run(tracking_uri, parent_id, {}, {"xstilts.status": "interrupted"}, status="KILLED")
        raise
    finally:
        stopped_by_signal = watch.close()
    callback.flush()  # Tune calls on_experiment_end, but not on every way out of fit
    if callback.write_errors:
        print(f"[xstilts] warning: {callback.write_errors} MLflow write(s) failed during the search (logged "
              "above); Ray's results folder has every trial's results", flush=True)
    return _Fitted(grid, fit_seconds, stopped_by_signal)


def _summarise(run: SearchRun, parent_id: str, callback: MLflowTrialsCallback, fitted: _Fitted, t0: float,
               dashboard_url: str | None) -> SearchOutcome:
    """Count the trials, find the best, export PBT's winning schedule, log the parent run's summary
    (leaderboard and plots unless interrupted) and close it: the search's outcome."""
    s = run.spec.search
    tally = _tally(fitted.grid, fitted.stopped_by_signal)
    best_config, best_metrics = _best_trial(tally.results, s.metric, s.mode)
    summary: dict[str, float] = {f"trials/{k}": v for k, v in tally.counts.items()}
    tags = {"xstilts.status": "interrupted" if tally.interrupted else "finished",
            "ray.nodes_used": str(len(tally.nodes))}
    if callback.write_errors:
        tags["xstilts.tracking_errors"] = str(callback.write_errors)
    if best_metrics and best_config:
        summary.update({f"best/{k}": v for k, v in best_metrics.items() if "/" in k})
        tags["best_trial"] = str(best_metrics.get("trial_id", ""))
        tags["best_config"] = str(without_raw(best_config))
    if s.scheduler == "pbt" and best_metrics:
        path = export_pbt_schedule(run.spec, run.overrides, run.run_dir, str(best_metrics.get("trial_id", "")),
                                   best_config or {})
        if path:
            tags["pbt_schedule"] = str(path)
            print(f"[xstilts] PBT winning lineage as a stages schedule: {path}  (xstilts train {path})", flush=True)
    seconds = time.perf_counter() - t0
    summary["search/seconds"] = seconds
    summary["search/fit_seconds"] = fitted.seconds
    t_sum = time.perf_counter()
    if not tally.interrupted:
        from xstilts.dashboards.summary import log_search_summary  # leaderboard + plots; never raises

        log_search_summary(run.tracking_uri, parent_id, metric=s.metric, mode=s.mode, journal_path=run.journal)
    summary_seconds = time.perf_counter() - t_sum
    finish_search_run(run.tracking_uri, parent_id, summary, tags,
                      status="KILLED" if tally.interrupted else "FINISHED")
    if tally.interrupted:
        print(f"[xstilts] search interrupted with {tally.counts['unfinished']} trial(s) unfinished; continue it "
              f"with:  xstilts search --resume {run.run_name}", flush=True)
    return SearchOutcome(run.run_name, run.experiment, parent_id, run.tracking_uri, str(run.run_dir), best_config,
                         best_metrics, tally.counts, seconds, dashboard_url, tally.interrupted, s.metric,
                         tally.nodes, fitted.seconds, summary_seconds, s.scheduler)


def _tally(grid: Any, stopped_by_signal: bool) -> _Tally:
    """Each trial completed, pruned (stopped early with results), failed or left unfinished, and
    where the trials ran."""
    trials = _trials_of(grid)
    unfinished = [t for t in trials if t.status not in ("TERMINATED", "ERROR")]
    if stopped_by_signal:  # Ctrl-C: Ray stops the running trials; they have no final result
        unfinished = [t for t in trials if t.status != "ERROR" and not (t.last_result or {}).get(TRIAL_DONE)]
    counts = {"completed": 0, "pruned": 0, "failed": 0, "unfinished": len(unfinished)}
    results = [grid[i] for i in range(len(grid))]
    node_count: dict[str, int] = {}
    for r in results:
        m = r.metrics or {}
        if m.get("ray/node_id"):
            node_count[str(m["ray/node_id"])] = node_count.get(str(m["ray/node_id"]), 0) + 1
        if r.error is not None:
            counts["failed"] += 1
        elif m.get(TRIAL_DONE):
            counts["completed"] += 1
        elif m:
            counts["pruned"] += 1
    return _Tally(results, counts, node_count, bool(unfinished) or stopped_by_signal)


def _best_trial(results: list[Any], metric: str, mode: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(config, metrics) of the best trial that reported ``metric`` without error; (None, None) if none did."""
    ok = [r for r in results if r.error is None and r.metrics and metric in r.metrics]
    if not ok:
        return None, None
    sign = 1 if mode == "max" else -1
    best = max(ok, key=lambda r: sign * (r.metrics or {})[metric])
    return dict(best.config or {}), dict(best.metrics or {})


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
