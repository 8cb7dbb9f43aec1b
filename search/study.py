"""Run a study: every arm × seed as a trial on Ray, as a search runs its trials; then the paired
statistics, the MLflow records, the report and the verdict.

    study YAML ─load_study─► StudySpec ─_arm_configs─► {arm: TrialConfig}
          (a from_search arm: the best matching trial of that search, read from the tracking store)
    ─► caches made, Ray connected (ray_session), parent run (xstilts.kind=study), state file
    ─► Tuner(trainable  = runner.trial_trainable: run_trial(the arm's config with the seed),
             search_alg = the arm × seed points in seed-major order (every arm's seed 0 first),
             scheduler  = none (FIFO: every trial runs to its end), resources per trial,
             callbacks  = [MLflowTrialsCallback: one child per arm × seed, tags xstilts.arm, xstilts.seed])
    ─► arm → seed → scores (from Ray's results) ─► StudyStatistics (dashboards.study_record)
    ─► parent: metrics (diff/<arm>/<task>/<lang>, ci_low/..., ci_high/..., p_holm/..., mean/...),
       tables under statistics/, the verdict as its description, the report under report/

Resume (``xstilts study --resume RUN``): the run's Ray folder keeps ``xstilts_study.json`` (the
study, each arm's resolved config — a from_search arm is not looked up again — the tracking URI
and the parent run); ``Tuner.restore`` keeps the finished trials and continues the others from
their last checkpoints; a new callback re-attaches to their children on the same parent run.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xstilts.dashboards.mlflow_logging import (
    MLflowTrialsCallback,
    finish_search_run,
    reopen_search_run,
    start_search_run,
)
from xstilts.dashboards.study_record import (
    ARM_TAG,
    SEED_TAG,
    EvpCurves,
    StudyStatistics,
    logged_trial_config,
    pick_search_trial,
    searches_evp,
    study_cells,
    study_statistics,
)
from xstilts.spaces.study import StudyError, StudySpec, check_study, evaluation_mismatch, resolve_arm
from xstilts.trainer.codec import encode_mixture, subset_value
from xstilts.trainer.config import TrialConfig
from xstilts.trainer.data import synth_benchmark
from xstilts.trainer.home import default_tracking_uri, home
from xstilts.trainer.model import ensure_tiny_model
from xstilts.trainer.names import TRIAL_DONE

from .ray_session import connect_ray, ray_dashboard_url
from .runner import _fit, trial_trainable
from .trial_actor import named_trainable

__all__ = ["StudyOptions", "StudyOutcome", "StudyTrial", "StudyRun", "run_study", "arm_configs", "STATE_FILE"]

STATE_FILE = "xstilts_study.json"  # in the study run's Ray folder: what a resume needs


@dataclass
class StudyOptions:
    name: str | None = None  # the MLflow experiment (default: the study's name)
    tracking_uri: str | None = None
    storage: str | None = None  # Ray results folder (default $XSTILTS_HOME/ray)
    ray_address: str | None = None  # None: $RAY_ADDRESS if set (ray job submit), else a local Ray
    home: str | None = None
    verbose: int = 1
    overrides: dict[str, Any] = field(default_factory=dict)  # on the shared trial block (--set, --steps)
    seeds: int | None = None  # run only the first N of the study's seeds
    max_concurrent: int | None = None
    resume: str | None = None  # a study run name (or its folder, or the study name: its latest run)
    run_name: str | None = None  # fix the run name (default <name>-<timestamp>)


@dataclass
class StudyTrial:
    """One arm × seed: how it ended and what it scored."""

    arm: str
    seed: int
    name: str  # the Ray trial and MLflow child run name: <arm>-s<seed>
    status: str  # completed / failed / unfinished
    metrics: dict[str, float]  # its final report, every metric with a "/" (as its MLflow child holds them)
    values: dict[str, float]  # the cells the statistics compare


@dataclass
class StudyRun:
    """One study run, resolved before anything starts."""

    spec: StudySpec  # with --seeds / --max-concurrent applied (resume: as first started)
    configs: dict[str, TrialConfig]  # arm -> the trial it runs (with the first seed)
    sources: dict[str, dict[str, str]]  # from_search arm -> {from_search: search run, search_trial, search_run_id}
    overrides: dict[str, Any]  # the CLI's settings on the shared trial block (--set, --steps)
    run_name: str
    experiment: str
    tracking_uri: str
    root: Path
    run_dir: Path
    resumed: bool = False
    parent_id: str | None = None  # resume: the parent run the state file recorded


@dataclass
class StudyOutcome:
    run_name: str
    experiment: str
    parent_run_id: str
    tracking_uri: str
    results_path: str
    reference: str
    arms: list[str]
    seeds: list[int]
    trials: list[StudyTrial]
    statistics: StudyStatistics
    evp: list[EvpCurves]
    report_path: str | None
    seconds: float
    interrupted: bool
    counts: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        """What ``xstilts study --json`` prints."""
        return {"study": self.run_name, "experiment": self.experiment, "parent_run_id": self.parent_run_id,
                "tracking_uri": self.tracking_uri, "results_path": self.results_path, "reference": self.reference,
                "arms": self.arms, "seeds": self.seeds, "counts": self.counts, "interrupted": self.interrupted,
                "seconds": round(self.seconds, 1), "report": self.report_path,
                "trials": [t.__dict__ for t in self.trials], "statistics": self.statistics.as_dict(),
                "evp": [e.as_dict() for e in self.evp]}


def run_study(spec: StudySpec | None, opts: StudyOptions) -> StudyOutcome:
    """Run study ``spec`` with ``opts`` to its end, or continue ``opts.resume``; its outcome.

    1. ``_start`` a new study run (arms resolved, from_search arms looked up) or ``_resume`` one;
    2. make the data and model caches and connect to Ray (or start it);
    3. open the MLflow parent run (new, with the state file; or the resumed run's, reopened);
    4. build the Tuner (new, or ``Tuner.restore``) and fit it (the search's ``_fit``);
    5. collect each arm × seed from Ray's results, compute the statistics, record them on the
       parent run with the report, and close it.

    Ray is shut down at the end if this call started it."""
    t0 = time.perf_counter()
    root = home(opts.home)
    storage = Path(opts.storage or root / "ray").resolve()
    storage.mkdir(parents=True, exist_ok=True)
    if opts.resume:
        run = _resume(opts.resume, opts, root, storage)
    else:
        assert spec is not None
        run = _start(spec, opts, root, storage)
    if not run.resumed:  # every error that can be found before a trial is found now
        from .preflight import preflight_configs

        pre = preflight_configs(list(run.configs.values()), f"study {run.spec.name}: {len(run.configs)} arm(s)",
                                run.tracking_uri, root, op_background=True)  # _prepare_assets waits for it
        if not pre.ok:
            raise StudyError(pre.text())
        print(f"[xstilts] preflight: no problems ({pre.seconds:.1f}s; {'; '.join(pre.checked)})", flush=True)
    _prepare_assets(run)
    started_ray = connect_ray(opts.ray_address, job_name=run.run_name)
    try:
        url = ray_dashboard_url()
        if url:
            print(f"[xstilts] Ray dashboard: {url}", flush=True)
        parent_id = _open_parent_run(run)
        callback = _callback(run, parent_id)
        tuner = _restore_tuner(run, callback) if run.resumed else _new_tuner(run, callback, opts.verbose)
        fitted = _fit(tuner, callback, run.tracking_uri, parent_id)
        return _conclude(run, parent_id, fitted, t0)
    finally:
        if started_ray:
            import ray

            ray.shutdown()


# ---- the study run: new or resumed ------------------------------------------------------------


def _start(spec: StudySpec, opts: StudyOptions, root: Path, storage: Path) -> StudyRun:
    """A new study run: the CLI's seeds and concurrency applied, every arm resolved to its trial."""
    update: dict[str, Any] = {}
    if opts.seeds is not None:
        if not 1 <= opts.seeds <= len(spec.seeds):
            raise StudyError(f"--seeds {opts.seeds}: the study has {len(spec.seeds)} seeds (give 1..{len(spec.seeds)})")
        update["seeds"] = spec.seeds[:opts.seeds]
    if opts.max_concurrent is not None:
        update["run"] = spec.run.model_copy(update={"max_concurrent": opts.max_concurrent})
    spec = spec.model_copy(update=update)
    where = spec.source or spec.name
    check_study(spec, where, opts.overrides)
    uri = opts.tracking_uri or default_tracking_uri(root)
    configs, sources = arm_configs(spec, opts.overrides, uri)
    problem = evaluation_mismatch(configs)
    if problem:
        raise StudyError(f"{where}: invalid configuration\n  {problem}")
    experiment = opts.name or spec.name
    run_name = opts.run_name or f"{experiment}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir = storage / run_name
    if (run_dir / STATE_FILE).exists():
        raise StudyError(f"study run {run_name!r} exists already in {storage}; resume it with --resume {run_name}")
    return StudyRun(spec, configs, sources, dict(opts.overrides), run_name, experiment, uri, root, run_dir)


def arm_configs(spec: StudySpec, overrides: dict[str, Any], uri: str
                 ) -> tuple[dict[str, TrialConfig], dict[str, dict[str, str]]]:
    """Every arm's trial config (first seed); a from_search arm's trial found in the tracking store."""
    from pydantic import ValidationError

    from xstilts.dashboards.store import SearchNotFound, load_search
    from xstilts.trainer.config import format_validation_error

    configs: dict[str, TrialConfig] = {}
    sources: dict[str, dict[str, str]] = {}
    for name in spec.arms:
        arm, searched = spec.search_arm(name), None
        if arm is not None:
            try:
                rec = load_search(uri, arm.from_search)
            except SearchNotFound as e:
                raise StudyError(f"arms.{name}.from_search: search {arm.from_search!r} not found: {e} ({uri})") from None
            trial = pick_search_trial(rec, arm.where)
            if trial is None:
                raise StudyError(f"arms.{name}: search {rec.run_name} has no completed trial with params {arm.where} "
                                 f"(of {len(rec.trials)} trials)")
            searched = logged_trial_config(uri, trial)
            sources[name] = {"from_search": rec.run_name, "search_trial": trial.name, "search_run_id": trial.run_id}
            print(f"[xstilts] arm {name}: trial {trial.name} of search {rec.run_name} ({rec.metric} = "
                  f"{trial.metrics.get(rec.metric, float('nan')):.4f}), run again on the study's seeds", flush=True)
        try:
            configs[name] = resolve_arm(spec, name, searched, overrides)
        except ValidationError as e:
            raise StudyError(format_validation_error(e, f"{spec.source or spec.name} (arms.{name})")) from None
    return configs, sources


def _resume(name: str, opts: StudyOptions, root: Path, storage: Path) -> StudyRun:
    """Study run ``name`` as its state file recorded it (``opts`` may give another tracking URI)."""
    run_dir = _find_run_dir(name, storage)
    state = json.loads((run_dir / STATE_FILE).read_text())
    configs = {a: TrialConfig.model_validate_json(c) for a, c in state["configs"].items()}
    return StudyRun(StudySpec.model_validate_json(state["spec"]), configs, state["sources"], state["overrides"],
                    state["run_name"], state["experiment"], opts.tracking_uri or state["tracking_uri"], root, run_dir, resumed=True,
                    parent_id=state["parent_run_id"])


def _find_run_dir(name: str, storage: Path) -> Path:
    """The folder of study run ``name``: a path, a run name, or a study name (its latest run)."""
    for cand in (Path(name), storage / name):
        if (cand / STATE_FILE).exists():
            return cand.resolve()
    runs = []
    for st in storage.glob(f"*/{STATE_FILE}"):
        try:
            if json.loads(st.read_text()).get("experiment") == name:
                runs.append(st)
        except (OSError, ValueError):
            continue
    if runs:  # the state file is written once, at the start: its mtime orders the runs
        return max(runs, key=lambda st: st.stat().st_mtime).parent.resolve()
    known = sorted(p.parent.name for p in storage.glob(f"*/{STATE_FILE}"))
    raise StudyError(f"no study run {name!r} under {storage} (known: {', '.join(known[-10:]) or 'none'}); "
                     "pass --storage if the study used another results folder")


def _prepare_assets(run: StudyRun) -> None:
    """Generate synth and pretrain the tiny model once, in the driver, before any trial; then wait
    for DeepSpeed's op when the preflight started its build."""
    from xstilts.trainer.engine import wait_deepspeed_op

    for tc in run.configs.values():
        if tc.benchmark == "synth":
            synth_benchmark(str(run.root), tc.data_seed)
        if tc.model == "tiny":
            ensure_tiny_model(run.root, tc.tiny)
    try:
        done = wait_deepspeed_op()
    except RuntimeError as e:
        raise StudyError(str(e)) from None
    if done:
        print(f"[xstilts] {done}", flush=True)


# ---- MLflow: the parent run and the children ---------------------------------------------------


def _open_parent_run(run: StudyRun) -> str:
    """The parent run's id: the resumed run's, reopened, or a new one (then the state file)."""
    if run.resumed:
        assert run.parent_id is not None
        reopen_search_run(run.tracking_uri, run.parent_id)
        print(f"[xstilts] resuming study {run.run_name} (MLflow parent run {run.parent_id})", flush=True)
        return run.parent_id
    spec = run.spec
    first = next(iter(run.configs.values()))
    params = {"study_file": spec.source or "(in memory)", "reference": spec.reference, "arms": list(spec.arms),
              "seeds": spec.seeds, "target_tasks": first.target_tasks, "statistics": spec.statistics.model_dump(),
              "run": spec.run.model_dump(), "trial": {**spec.trial, **run.overrides}, "ray_results": str(run.run_dir),
              "arm": {a: run.sources.get(a) or spec.arms[a] for a in spec.arms}}
    parent_id = start_search_run(run.tracking_uri, run.experiment, run.run_name, params, kind="study")
    run.run_dir.mkdir(parents=True, exist_ok=True)
    (run.run_dir / STATE_FILE).write_text(json.dumps({
        "spec": spec.model_dump_json(), "configs": {a: c.model_dump_json() for a, c in run.configs.items()},
        "sources": run.sources, "overrides": run.overrides, "run_name": run.run_name, "experiment": run.experiment,
        "tracking_uri": run.tracking_uri, "parent_run_id": parent_id}, indent=1))
    print(f"[xstilts] study {run.run_name}: {len(spec.arms)} arms × {len(spec.seeds)} seeds = "
          f"{len(spec.arms) * len(spec.seeds)} trials, {spec.run.max_concurrent} at a time, reference "
          f"{spec.reference!r}; MLflow experiment {run.experiment!r} at {run.tracking_uri}", flush=True)
    return parent_id


def _trial_config(configs_json: dict[str, str], config: dict[str, Any]) -> TrialConfig:
    """The trial of one arm × seed (Tune's config is ``{arm, seed}``)."""
    return TrialConfig.model_validate({**json.loads(configs_json[config["arm"]]), "seed": int(config["seed"])})


def _child_params(configs_json: dict[str, str], config: dict[str, Any]) -> dict[str, Any]:
    """A child run's params: its arm and the whole trial config, the mixture as ``ratio.<task>``."""
    tc = _trial_config(configs_json, config)
    fields = {k: v for k, v in tc.model_dump(mode="json", exclude={"intermediate"}).items() if v is not None}
    mixture = encode_mixture(sorted(tc.intermediate), tc.intermediate) if tc.intermediate else {}
    return {"arm": config["arm"], **fields, "intermediate_tasks": subset_value(sorted(tc.intermediate)), **mixture}


def _callback(run: StudyRun, parent_id: str) -> MLflowTrialsCallback:
    configs_json = {a: c.model_dump_json() for a, c in run.configs.items()}
    return MLflowTrialsCallback(
        run.tracking_uri, run.experiment, parent_id, params_fn=lambda cfg: _child_params(configs_json, cfg),
        metric=f"{'test/' if run.spec.statistics.split == 'test' else ''}zero_shot/avg",
        tags_fn=lambda cfg: {ARM_TAG: str(cfg["arm"]), SEED_TAG: str(cfg["seed"])})


# ---- Ray Tune ---------------------------------------------------------------------------------


def _trial_name(trial: Any) -> str:
    return f"{trial.config['arm']}-s{trial.config['seed']}"


def _trainable(run: StudyRun) -> Any:
    configs_json = {a: c.model_dump_json() for a, c in run.configs.items()}
    r = run.spec.run
    fn = trial_trainable(lambda config: _trial_config(configs_json, config), str(run.root),
                         max(1, int(r.cpus_per_trial)))
    return named_trainable(fn, {"cpu": r.cpus_per_trial, **({"gpu": r.gpus_per_trial} if r.gpus_per_trial else {})})


def _new_tuner(run: StudyRun, callback: MLflowTrialsCallback, verbose: int) -> Any:
    """Every arm × seed, seed-major (a study stopped early still holds complete pairs), run to its end."""
    from ray import tune
    from ray.tune.search import BasicVariantGenerator

    r = run.spec.run
    points = [{"arm": a, "seed": s} for s in run.spec.seeds for a in run.spec.arms]
    return tune.Tuner(
        _trainable(run), param_space={"arm": None, "seed": None},
        tune_config=tune.TuneConfig(
            search_alg=BasicVariantGenerator(points_to_evaluate=points, max_concurrent=r.max_concurrent),
            num_samples=len(points), max_concurrent_trials=r.max_concurrent, reuse_actors=True,
            trial_name_creator=_trial_name, trial_dirname_creator=_trial_name),
        run_config=tune.RunConfig(
            name=run.run_name, storage_path=str(run.run_dir.parent), callbacks=[callback], verbose=verbose,
            failure_config=tune.FailureConfig(max_failures=r.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2)))


def _restore_tuner(run: StudyRun, callback: MLflowTrialsCallback) -> Any:
    from ray import tune

    if not tune.Tuner.can_restore(str(run.run_dir)):
        raise StudyError(f"{run.run_dir} holds no Ray Tune state to resume (the driver died before the first "
                         "trial started); start the study again")
    tuner = tune.Tuner.restore(str(run.run_dir), _trainable(run), resume_unfinished=True, resume_errored=False)
    # the pickled callback is the one built at the first start; use a fresh one on the same parent
    tuner._local_tuner.get_run_config().callbacks = [callback]  # type: ignore[union-attr]
    return tuner


# ---- the conclusion ---------------------------------------------------------------------------


def _collect(run: StudyRun, grid: Any) -> list[StudyTrial]:
    """Each arm × seed from Ray's results (completed: it reported its end), in seed-major order."""
    spec, s = run.spec, run.spec.statistics
    tasks = next(iter(run.configs.values())).target_tasks
    found: dict[tuple[str, int], StudyTrial] = {}
    for i in range(len(grid)):
        r = grid[i]
        cfg, m = r.config or {}, r.metrics or {}
        arm, seed = str(cfg.get("arm")), int(cfg.get("seed", -1))
        status = "failed" if r.error is not None else "completed" if m.get(TRIAL_DONE) else "unfinished"
        metrics = {k: float(v) for k, v in m.items() if "/" in k and isinstance(v, int | float)
                   and not isinstance(v, bool) and math.isfinite(v)}
        values = study_cells(metrics, s.split, tasks, s.cells == "averages") if status == "completed" else {}
        found[arm, seed] = StudyTrial(arm, seed, f"{arm}-s{seed}", status, metrics, values)
    return [found.get((a, sd)) or StudyTrial(a, sd, f"{a}-s{sd}", "unfinished", {}, {})
            for sd in spec.seeds for a in spec.arms]


def _conclude(run: StudyRun, parent_id: str, fitted: Any, t0: float) -> StudyOutcome:
    """Statistics from the trials' results, recorded on the parent run with the report; the outcome."""
    spec, s = run.spec, run.spec.statistics
    trials = _collect(run, fitted.grid)
    values: dict[str, dict[int, dict[str, float]]] = {a: {} for a in spec.arms}
    for t in trials:
        if t.status == "completed":
            values[t.arm][t.seed] = t.values
    tasks = next(iter(run.configs.values())).target_tasks
    stats = study_statistics(values, spec.reference, tasks, s.confidence, s.resamples, s.seed, s.split)
    evps = searches_evp(run.tracking_uri, [src["from_search"] for src in run.sources.values()])
    counts = {k: sum(t.status == k for t in trials) for k in ("completed", "failed", "unfinished")}
    interrupted = bool(counts["unfinished"]) or fitted.stopped_by_signal
    report = _record(run, parent_id, stats, evps, counts, interrupted, time.perf_counter() - t0)
    return StudyOutcome(run.run_name, run.experiment, parent_id, run.tracking_uri, str(run.run_dir), spec.reference,
                        list(spec.arms), list(spec.seeds), trials, stats, evps, report, time.perf_counter() - t0,
                        interrupted, counts)


def _record(run: StudyRun, parent_id: str, stats: StudyStatistics, evps: list[EvpCurves], counts: dict[str, int],
            interrupted: bool, seconds: float) -> str | None:
    """The parent run's statistics (metrics, tables, the verdict as its description), closed; then
    the report written from the store and logged under ``report/``. Returns the report's path."""
    import pandas as pd
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    from xstilts.dashboards.study_report import verdict_text

    client = MlflowClient(run.tracking_uri)
    now = int(time.time() * 1000)
    metrics = [Metric(k, v, now, 0) for k, v in stats.parent_metrics().items()]
    for i in range(0, len(metrics), 1000):  # MLflow takes at most 1000 metrics a batch
        client.log_batch(parent_id, metrics=metrics[i:i + 1000])
    tables = {"comparisons": [c.as_dict() for c in stats.comparisons], "arms": [m.as_dict() for m in stats.means],
              "verdict": [v.as_dict() for v in stats.verdict]}
    for name, rows in tables.items():
        if rows:
            client.log_table(parent_id, data=pd.DataFrame(rows), artifact_file=f"statistics/{name}.json")
    client.log_dict(parent_id, {**stats.as_dict(), "evp": [e.as_dict() for e in evps]}, "statistics/statistics.json")
    text = verdict_text(stats)
    tags = {"xstilts.status": "interrupted" if interrupted else "finished", "xstilts.method": stats.method,
            "mlflow.note.content": f"```\n{text}\n```"}
    finish_search_run(run.tracking_uri, parent_id, {**{f"trials/{k}": v for k, v in counts.items()},
                                                    "study/seconds": seconds}, tags,
                      status="KILLED" if interrupted else "FINISHED")
    try:
        from xstilts.dashboards.report import write_report

        return write_report(run.run_name, run.tracking_uri)
    except Exception as e:  # the statistics are recorded; a report can be written again with xstilts report
        print(f"[xstilts] warning: the study's report was not written ({e!r}); xstilts report {run.run_name}",
              flush=True)
        return None
