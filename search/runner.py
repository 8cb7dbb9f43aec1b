"""Assemble and run a search: SearchSpec → Ray Tune ``Tuner`` (OptunaSearch + ASHA + MLflow).

    space YAML ─► SearchSpec ─► ray.init / connect ─► Tuner(
          trainable  = run_trial wrapped for Tune (reports through ray.tune.report),
          search_alg = OptunaSearch(define-by-run from the spec, journal storage),
          scheduler  = ASHA | none,
          callbacks  = [MLflowTrialsCallback: nested child runs under the search's parent run])

Each invocation is one *search run*, named ``<name>-<timestamp>``: its Ray results folder,
its Optuna study (journal file) and its MLflow parent run share that name; the MLflow
experiment is the search name, so repeated searches of one space sit side by side.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xstilts.dashboards.mlflow_logging import MLflowTrialsCallback, finish_search_run, start_search_run
from xstilts.spaces import SearchSpec, define_by_run, to_trial_config, trial_params
from xstilts.trainer.data import synth_benchmark
from xstilts.trainer.home import default_tracking_uri, home
from xstilts.trainer.model import ensure_tiny_model

__all__ = ["SearchOptions", "SearchOutcome", "run_search", "TrialNamer", "trial_name", "prepare_assets"]


@dataclass
class SearchOptions:
    name: str | None = None
    trials: int | None = None
    max_concurrent: int | None = None
    tracking_uri: str | None = None
    storage: str | None = None  # Ray results folder (default $XSTILTS_HOME/ray)
    ray_address: str | None = None
    home: str | None = None
    verbose: int = 1
    trial_overrides: dict[str, Any] = field(default_factory=dict)  # e.g. reduced fidelity in tests


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


class TrialNamer:
    """Names trials by what they try, e.g. ``t0007-interleaved-m0.30-T3.2-mnli+sst2``.

    The number is the trial's order in the search (stable for the trial's lifetime, so the
    dashboard name and the results folder agree)."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}

    def __call__(self, trial: Any) -> str:
        n = self.index.setdefault(trial.trial_id, len(self.index))
        return trial_name(trial.config, n)


def trial_name(c: dict[str, Any], n: int) -> str:
    parts = [f"t{n:04d}", str(c.get("schedule", ""))]
    if c.get("schedule") == "interleaved" and "language_temperature" in c:
        parts.append(f"m{c.get('multilingual_share', 0):.2f}-T{c['language_temperature']:.1f}")
    tasks = [k.split(".", 1)[1] for k, v in c.items() if k.startswith("tasks.") and v]
    parts.append("+".join(tasks) or "none")
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
        from ray import tune

        from xstilts.spaces import SearchSpec, to_trial_config
        from xstilts.trainer.trial import run_trial

        spec = SearchSpec.model_validate_json(spec_json)
        tc = to_trial_config(spec, config, **{"home": root, "threads": threads, **overrides})

        def report(metrics: dict[str, Any], checkpoint_dir: str | None = None) -> None:
            ckpt = tune.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
            tune.report(metrics, checkpoint=ckpt)

        run_trial(tc, report, log=lambda s: print(s, flush=True))

    return xstilts_trial


def run_search(spec: SearchSpec, opts: SearchOptions) -> SearchOutcome:
    import optuna
    import ray
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search.optuna import OptunaSearch

    t0 = time.perf_counter()
    spec = spec.with_overrides(trials=opts.trials, max_concurrent=opts.max_concurrent)
    s = spec.search
    root = home(opts.home)
    experiment = opts.name or spec.name
    run_name = f"{experiment}-{time.strftime('%Y%m%d-%H%M%S')}"
    tracking_uri = opts.tracking_uri or default_tracking_uri(root)
    storage = Path(opts.storage or root / "ray").resolve()
    storage.mkdir(parents=True, exist_ok=True)
    (root / "optuna").mkdir(exist_ok=True)

    prepare_assets(spec, root, opts.trial_overrides)

    started_ray = False
    if not ray.is_initialized():
        if opts.ray_address:
            ray.init(address=opts.ray_address, log_to_driver=False)
        else:
            ray.init(num_cpus=max(2, os.cpu_count() or 2), include_dashboard=True, dashboard_host="127.0.0.1",
                     log_to_driver=False)
        started_ray = True
    dashboard_url = _dashboard_url()
    if dashboard_url:
        print(f"[xstilts] Ray dashboard: {dashboard_url}", flush=True)

    parent_params = {
        "space_file": spec.source or "(in memory)", "searcher": s.searcher, "scheduler": s.scheduler,
        "trials": s.trials, "max_concurrent": s.max_concurrent, "cpus_per_trial": s.cpus_per_trial,
        "metric": s.metric, "mode": s.mode, "seed": s.seed, "ray_results": str(storage / run_name),
        **{f"trial.{k}": v for k, v in {**spec.trial, **opts.trial_overrides}.items()},
    }
    parent_id = start_search_run(tracking_uri, experiment, run_name, parent_params)
    print(f"[xstilts] search {run_name}: {s.trials} trials, {s.max_concurrent} at a time, "
          f"{s.searcher} + {s.scheduler}; MLflow experiment {experiment!r} at {tracking_uri}", flush=True)

    sampler: optuna.samplers.BaseSampler = (
        optuna.samplers.TPESampler(seed=s.seed, n_startup_trials=min(10, max(2, s.trials // 3)))
        if s.searcher == "tpe" else optuna.samplers.RandomSampler(seed=s.seed))
    searcher = OptunaSearch(
        space=define_by_run(spec), metric=s.metric, mode=s.mode, sampler=sampler,
        study_name=run_name, storage=JournalStorage(JournalFileBackend(str(root / "optuna" / f"{run_name}.journal"))),
    )
    tc = to_trial_config(spec, _first_point(spec), **opts.trial_overrides)
    n_reports = math.ceil(tc.target_steps / tc.eval_every)
    scheduler: Any = (
        ASHAScheduler(time_attr="training_iteration", metric=s.metric, mode=s.mode, max_t=n_reports,
                      grace_period=1, reduction_factor=2)
        if s.scheduler == "asha" and n_reports > 1 else FIFOScheduler())
    callback = MLflowTrialsCallback(tracking_uri, experiment, parent_id,
                                    params_fn=lambda cfg: trial_params(spec, cfg, opts.trial_overrides))
    namer = TrialNamer()
    threads = max(1, int(s.cpus_per_trial))
    trainable = _make_trainable(spec.model_dump_json(), str(root), opts.trial_overrides, threads)
    resources = {"cpu": s.cpus_per_trial, **({"gpu": s.gpus_per_trial} if s.gpus_per_trial else {})}
    tuner = tune.Tuner(
        tune.with_resources(trainable, resources),
        tune_config=tune.TuneConfig(
            search_alg=searcher, scheduler=scheduler, num_samples=s.trials,
            max_concurrent_trials=s.max_concurrent, reuse_actors=True,
            trial_name_creator=namer, trial_dirname_creator=namer,
        ),
        run_config=tune.RunConfig(name=run_name, storage_path=str(storage), callbacks=[callback],
                                  verbose=opts.verbose, failure_config=tune.FailureConfig(max_failures=0)),
    )
    status = "FINISHED"
    try:
        grid = tuner.fit()
    except BaseException:
        status = "KILLED"
        finish_search_run(tracking_uri, parent_id, {}, {"xstilts.status": "interrupted"}, status="KILLED")
        raise
    finally:
        if started_ray and status != "FINISHED":
            ray.shutdown()

    counts = {"completed": 0, "pruned": 0, "failed": 0}
    results = [grid[i] for i in range(len(grid))]
    for r in results:
        if r.error is not None:
            counts["failed"] += 1
        elif (r.metrics or {}).get("trial_done"):
            counts["completed"] += 1
        else:
            counts["pruned"] += 1
    best_config = best_metrics = None
    ok = [r for r in results if r.error is None and r.metrics and s.metric in r.metrics]
    if ok:
        sign = 1 if s.mode == "max" else -1
        best = max(ok, key=lambda r: sign * (r.metrics or {})[s.metric])
        best_config, best_metrics = dict(best.config or {}), dict(best.metrics or {})
    summary: dict[str, float] = {f"trials/{k}": v for k, v in counts.items()}
    tags = {"xstilts.status": "finished"}
    if best_metrics and best_config:
        summary.update({f"best/{k}": v for k, v in best_metrics.items() if "/" in k})
        tags["best_trial"] = str(best_metrics.get("trial_id", ""))
        tags["best_config"] = str({k: v for k, v in best_config.items() if not k.startswith("_u.")})
    seconds = time.perf_counter() - t0
    summary["search/seconds"] = seconds
    finish_search_run(tracking_uri, parent_id, summary, tags)
    if started_ray:
        ray.shutdown()
    return SearchOutcome(run_name, experiment, parent_id, tracking_uri, str(storage / run_name), best_config,
                         best_metrics, counts, seconds, dashboard_url)


def _dashboard_url() -> str | None:
    try:
        import ray

        url = ray.get_runtime_context().worker.node.address_info.get("webui_url")  # type: ignore[attr-defined]
    except Exception:
        return None
    if not url:
        return None
    return url if url.startswith("http") else f"http://{url}"
