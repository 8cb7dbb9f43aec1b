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
state are marked failed so the sampler's history holds only what ran.

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

from .schedulers import make_scheduler, n_reports
from .searchers import make_search_alg, pbt_population

__all__ = ["SearchOptions", "SearchOutcome", "SearchError", "run_search", "TrialNamer", "trial_name",
           "prepare_assets", "resolve_run_dir", "apply_options", "STATE_FILE"]

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
    def xstilts_trial(config: dict[str, Any]) -> None:
        import ray
        from ray import tune

        from xstilts.spaces import SearchSpec, to_trial_config
        from xstilts.trainer.config import TrialRuntime
        from xstilts.trainer.trial import run_trial

        spec = SearchSpec.model_validate_json(spec_json)
        tc = to_trial_config(spec, config, **overrides)
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


def _connect_ray(address: str | None, cpus: int | None = None) -> bool:
    """Connect to ``address`` (or ``$RAY_ADDRESS``) or start a local Ray; True if we started it."""
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=cpus or max(2, os.cpu_count() or 2), include_dashboard=True, dashboard_host="127.0.0.1",
                 log_to_driver=False)
    return True


def _ray_nodes() -> int:
    import ray

    return sum(1 for n in ray.nodes() if n.get("Alive"))


def run_search(spec: SearchSpec, opts: SearchOptions) -> SearchOutcome:
    from ray import tune

    t0 = time.perf_counter()
    root = home(opts.home)
    storage = Path(opts.storage or root / "ray").resolve()
    storage.mkdir(parents=True, exist_ok=True)

    if opts.resume:
        run_dir = resolve_run_dir(opts.resume, storage)
        state = json.loads((run_dir / STATE_FILE).read_text())
        spec = SearchSpec.model_validate_json(state["spec"])
        overrides: dict[str, Any] = state["trial_overrides"]
        run_name, experiment = state["run_name"], state["experiment"]
        tracking_uri = opts.tracking_uri or state["tracking_uri"]
        storage = run_dir.parent
    else:
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
        tracking_uri = opts.tracking_uri or default_tracking_uri(root)
        run_dir = storage / run_name
        if (run_dir / STATE_FILE).exists():
            raise SearchError(f"search run {run_name!r} exists already in {storage}; resume it with "
                              f"--resume {run_name}")
    s = spec.search
    journal = root / "optuna" / f"{run_name}.journal"
    n_trials = spec.n_trials()

    prepare_assets(spec, root, overrides)
    started_ray = _connect_ray(opts.ray_address)
    try:
        dashboard_url = _dashboard_url()
        if dashboard_url:
            print(f"[xstilts] Ray dashboard: {dashboard_url}", flush=True)
        nodes = _ray_nodes()
        if nodes > 1 and tracking_uri.startswith("sqlite:"):
            print(f"[xstilts] {nodes} Ray nodes, SQLite tracking store {tracking_uri}: trials report to Ray and "
                  "only this driver writes MLflow, so SQLite is safe here", flush=True)

        if opts.resume:
            parent_id = find_search_run_id(tracking_uri, run_name) or state.get("parent_run_id")
            if not parent_id:
                raise SearchError(f"no MLflow parent run tagged xstilts.search={run_name!r} in {tracking_uri}")
            reopen_search_run(tracking_uri, parent_id)
            print(f"[xstilts] resuming search {run_name} (MLflow parent run {parent_id})", flush=True)
        else:
            parent_params = {
                "space_file": spec.source or "(in memory)", "searcher": s.searcher, "scheduler": s.scheduler,
                "trials": n_trials, "max_concurrent": s.max_concurrent, "cpus_per_trial": s.cpus_per_trial,
                "gpus_per_trial": s.gpus_per_trial, "time_budget_s": s.time_budget_s or "none",
                "max_failures": s.max_failures, "metric": s.metric, "mode": s.mode, "seed": s.seed,
                "ray_results": str(run_dir), "ray_nodes": nodes,
                **({"objectives": ",".join(f"{k}:{v}" for k, v in s.objectives.items())} if s.objectives else {}),
                **{f"trial.{k}": v for k, v in {**spec.trial, **overrides}.items()},
            }
            parent_id = start_search_run(tracking_uri, experiment, run_name, parent_params)
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / STATE_FILE).write_text(json.dumps({
                "spec": spec.model_dump_json(), "trial_overrides": overrides, "run_name": run_name,
                "experiment": experiment, "tracking_uri": tracking_uri, "parent_run_id": parent_id,
                "journal": str(journal)}, indent=1))
            print(f"[xstilts] search {run_name}: {n_trials} trials, {s.max_concurrent} at a time, "
                  f"{s.searcher} + {s.scheduler}; MLflow experiment {experiment!r} at {tracking_uri}", flush=True)

        callback = MLflowTrialsCallback(tracking_uri, experiment, parent_id,
                                        params_fn=lambda cfg: trial_params(spec, cfg, overrides))
        threads = max(1, int(s.cpus_per_trial))
        trainable = tune.with_resources(
            _make_trainable(spec.model_dump_json(), str(root), overrides, threads),
            {"cpu": s.cpus_per_trial, **({"gpu": s.gpus_per_trial} if s.gpus_per_trial else {})})

        if opts.resume:
            if not tune.Tuner.can_restore(str(run_dir)):
                raise SearchError(f"{run_dir} holds no Ray Tune state to resume (the driver died before the "
                                  "first trial started); start the search again")
            _fail_orphan_optuna_trials(run_dir, journal, run_name)
            tuner = tune.Tuner.restore(str(run_dir), trainable, resume_unfinished=True,
                                       resume_errored=opts.retry_failed)
            # the pickled callback is the one built at the first start; use a fresh one on the same parent
            tuner._local_tuner.get_run_config().callbacks = [callback]  # type: ignore[union-attr]
        else:
            tc = to_trial_config(spec, _first_point(spec), **overrides)
            namer = TrialNamer()
            if s.scheduler == "pbt":
                from ray.tune.search import BasicVariantGenerator

                from xstilts.spaces import placeholders

                # Ray's variant generator resolves each point against the param space: give every key
                search_alg: Any = BasicVariantGenerator(points_to_evaluate=pbt_population(spec),
                                                        max_concurrent=s.max_concurrent)
                param_space: dict[str, Any] | None = placeholders(spec)
            else:
                search_alg = make_search_alg(spec, run_name, journal)
                param_space = None
            tuner = tune.Tuner(
                trainable, param_space=param_space,
                tune_config=tune.TuneConfig(
                    search_alg=search_alg, scheduler=make_scheduler(
                        spec, n_reports(tc.target_steps, tc.eval_every, tc.intermediate_steps, tc.probe_every)),
                    num_samples=n_trials, max_concurrent_trials=s.max_concurrent, time_budget_s=s.time_budget_s,
                    reuse_actors=s.scheduler != "pbt", trial_name_creator=namer, trial_dirname_creator=namer,
                ),
                run_config=tune.RunConfig(
                    name=run_name, storage_path=str(storage), callbacks=[callback], verbose=opts.verbose,
                    failure_config=tune.FailureConfig(max_failures=s.max_failures),
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=2)),
            )
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

        trials = _trials_of(grid)
        unfinished = [t for t in trials if t.status not in ("TERMINATED", "ERROR")]
        if stopped_by_signal:  # Ctrl-C: Ray stops the running trials; they have no final result
            unfinished = [t for t in trials if t.status != "ERROR" and not (t.last_result or {}).get(TRIAL_DONE)]
        interrupted = bool(unfinished) or stopped_by_signal
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
        best_config = best_metrics = None
        ok = [r for r in results if r.error is None and r.metrics and s.metric in r.metrics]
        if ok:
            sign = 1 if s.mode == "max" else -1
            best = max(ok, key=lambda r: sign * (r.metrics or {})[s.metric])
            best_config, best_metrics = dict(best.config or {}), dict(best.metrics or {})
        summary: dict[str, float] = {f"trials/{k}": v for k, v in counts.items()}
        tags = {"xstilts.status": "interrupted" if interrupted else "finished", "ray.nodes_used": str(len(node_count))}
        if callback.write_errors:
            tags["xstilts.tracking_errors"] = str(callback.write_errors)
        if best_metrics and best_config:
            summary.update({f"best/{k}": v for k, v in best_metrics.items() if "/" in k})
            tags["best_trial"] = str(best_metrics.get("trial_id", ""))
            tags["best_config"] = str(without_raw(best_config))
        if s.scheduler == "pbt" and best_metrics:
            path = _export_pbt_schedule(spec, overrides, run_dir, str(best_metrics.get("trial_id", "")),
                                        best_config or {})
            if path:
                tags["pbt_schedule"] = str(path)
                print(f"[xstilts] PBT winning lineage as a stages schedule: {path}  (xstilts train {path})",
                      flush=True)
        seconds = time.perf_counter() - t0
        summary["search/seconds"] = seconds
        summary["search/fit_seconds"] = fit_seconds
        t_sum = time.perf_counter()
        if not interrupted:
            from xstilts.dashboards.summary import log_search_summary  # leaderboard + plots; never raises

            log_search_summary(tracking_uri, parent_id, metric=s.metric, mode=s.mode,
                               journal_path=root / "optuna" / f"{run_name}.journal")
        summary_seconds = time.perf_counter() - t_sum
        finish_search_run(tracking_uri, parent_id, summary, tags, status="KILLED" if interrupted else "FINISHED")
        if interrupted:
            print(f"[xstilts] search interrupted with {len(unfinished)} trial(s) unfinished; continue it with:  "
                  f"xstilts search --resume {run_name}", flush=True)
        return SearchOutcome(run_name, experiment, parent_id, tracking_uri, str(run_dir), best_config,
                             best_metrics, counts, seconds, dashboard_url, interrupted, s.metric, node_count,
                             fit_seconds, summary_seconds, s.scheduler)
    finally:
        if started_ray:
            import ray

            ray.shutdown()


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


def _fail_orphan_optuna_trials(run_dir: Path, journal: Path, study_name: str) -> int:
    """Mark failed the Optuna trials asked after Ray last saved its state (the driver died
    between ``study.ask`` and the next experiment checkpoint): Ray will never run them, and a
    RUNNING trial would sit in the sampler's history for ever. Returns how many."""
    import optuna

    from .searchers import journal_storage

    if not journal.exists():
        return 0
    known: set[int] = set()
    for f in run_dir.glob("experiment_state-*.json"):
        try:
            state = json.loads(f.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        for entry in state.get("trial_data", []):
            text = entry[0] if isinstance(entry, list) else entry
            try:
                cfg = json.loads(text).get("config", {})
            except (TypeError, json.JSONDecodeError):
                continue
            if isinstance(cfg, dict) and "trial_number" in cfg:
                known.add(int(cfg["trial_number"]))
    try:
        study = optuna.load_study(study_name=study_name, storage=journal_storage(journal))
    except KeyError:
        return 0
    n = 0
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if t.number not in known:
            study.tell(t.number, state=optuna.trial.TrialState.FAIL)
            n += 1
    return n


def _export_pbt_schedule(spec: SearchSpec, overrides: dict[str, Any], run_dir: Path, trial_id: str,
                         final_config: dict[str, Any]) -> Path | None:
    from .schedulers import lineage_stages, pbt_lineage, stages_yaml

    initial, changes = pbt_lineage(run_dir / f"pbt_policy_{trial_id}.txt")
    if initial is None:  # never exploited: its schedule is its own, constant mixture (one stage)
        initial, changes = final_config, []
    if not initial:
        return None
    tc = to_trial_config(spec, initial, **overrides)
    # PBT iteration k is the k-th report: the k-th phase-1 probe, at step k * probe_every (later
    # reports are in the target phase, where the mixture no longer acts)
    stages = lineage_stages(spec, initial, changes, tc.probe_every or tc.intermediate_steps, tc.intermediate_steps)
    fixed = {k: v for k, v in tc.model_dump(mode="json").items()
             if k in TrialConfig.model_fields
             and k not in ("intermediate", "schedule", "probe_every", "probe_steps")}
    path = run_dir / "pbt_best_schedule.yaml"
    path.write_text(stages_yaml(fixed, stages, f"PBT winning lineage of trial {trial_id} in {run_dir.name}\n"
                                                f"Replay:  xstilts train {path}"))
    return path


def _dashboard_url() -> str | None:
    try:
        import ray

        url = ray.get_runtime_context().worker.node.address_info.get("webui_url")  # type: ignore[attr-defined]
    except Exception:
        return None
    if not url:
        return None
    return url if url.startswith("http") else f"http://{url}"
