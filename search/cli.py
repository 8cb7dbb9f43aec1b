"""The ``xstilts`` command line: ``search``, ``study``, ``train``, ``check``, ``ui``, ``report``, ``status``, ``sync``,
``bench``.

``check``, ``search`` and ``train`` run the preflight (``search/preflight.py``) before anything is
generated, pretrained or trained: every problem it finds is reported at once and nothing starts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from .study_cli import add_study_parser, study_command

__all__ = ["main", "build_parser", "summary_text"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="xstilts", description=__doc__)
    p.add_argument("--home", help="home folder for caches, tracking store and results "
                                  "(default $XSTILTS_HOME or ./.xstilts)")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("search", help="run a search (Ray Tune + Optuna + ASHA, tracked in MLflow)")
    s.add_argument("space", nargs="?", help="space YAML (default: the packaged spaces/default.yaml)")
    s.add_argument("--name", help="search name = MLflow experiment (default: the space's name)")
    s.add_argument("--trials", type=int, help="number of trials (overrides the space)")
    s.add_argument("--max-concurrent", type=int, help="trials at a time (overrides the space)")
    s.add_argument("--searcher", choices=["tpe", "gp", "random", "grid", "nsga2", "mixlaw"], help="overrides the space")
    s.add_argument("--scheduler", choices=["asha", "none", "pbt"], help="overrides the space")
    s.add_argument("--time-budget", type=float, metavar="SECONDS", help="stop the search after this long")
    s.add_argument("--cpus-per-trial", type=float, help="CPUs each trial reserves (overrides the space)")
    s.add_argument("--gpus-per-trial", type=float, help="GPUs each trial reserves (overrides the space)")
    s.add_argument("--max-failures", type=int, help="retries of a trial whose worker dies (default 1)")
    s.add_argument("--seed", type=int, help="searcher seed (overrides the space)")
    s.add_argument("--steps", type=int, metavar="N",
                   help="fidelity: intermediate_steps = target_steps = N (eval_every capped at N)")
    s.add_argument("--tracking-uri", help="MLflow tracking URI (default sqlite:///$XSTILTS_HOME/mlflow.db)")
    s.add_argument("--storage", help="Ray results folder (default $XSTILTS_HOME/ray)")
    s.add_argument("--ray-address", help="connect to a running Ray cluster (e.g. auto, 10.0.0.1:6379; "
                                         "default $RAY_ADDRESS, else a local Ray)")
    s.add_argument("--resume", metavar="RUN", help="continue search run RUN (its name, folder, or the search "
                                                   "name for its latest run) after its driver died")
    s.add_argument("--retry-failed", action="store_true", help="with --resume: run errored trials again")
    s.add_argument("--run-name", help="name the search run (default <name>-<timestamp>)")
    s.add_argument("--no-confirm", action="store_true",
                   help="skip the confirm phase (retraining the best trials on fresh seeds; the space's "
                        "search.confirm); the summary then has only the raw best")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a fixed trial setting, e.g. --set target_steps=100 (YAML value)")
    s.add_argument("--tracking-wait", type=float, default=120.0, metavar="SECONDS",
                   help="at the end, how long to wait for a tracking store that stopped answering before "
                        "listing what it lacks (then: xstilts sync RUN); default 120")

    add_study_parser(sub)

    t = sub.add_parser("train", help="run one trial without Ray (same trainer)")
    t.add_argument("config", help="TrialConfig YAML")
    t.add_argument("--output-dir", help="where results.json goes (overrides the config)")

    c = sub.add_parser("check", help="check a space, a study or a trial config before training: every data file a trial "
                                     "can need, the model, the tracking store, the home folder, DeepSpeed's op")
    c.add_argument("file", help="a space, study or trial config YAML")
    c.add_argument("--tracking-uri", help="MLflow tracking URI a search would use (default "
                                          "sqlite:///$XSTILTS_HOME/mlflow.db)")
    c.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a fixed trial setting, as for search")

    _add_bench_parser(sub)

    r = sub.add_parser("report", help="write a self-contained HTML report of a search or a study and log it")
    r.add_argument("name", help="search or study run name (or experiment name: its latest search)")
    r.add_argument("--tracking-uri")
    r.add_argument("--output", help="HTML path (default $XSTILTS_HOME/reports/<name>.html)")

    st = sub.add_parser("status", help="state of a running or finished search")
    st.add_argument("name", nargs="?", help="search run or experiment name (default: the latest)")
    st.add_argument("--tracking-uri")

    sy = sub.add_parser("sync", help="write a search run's results into the tracking store (only what it lacks)")
    sy.add_argument("name", help="search run name, its folder, or the search name (its latest run)")
    sy.add_argument("--tracking-uri", help="the store to write (default: the one the search used)")
    sy.add_argument("--storage", help="Ray results folder (default $XSTILTS_HOME/ray)")

    u = sub.add_parser("ui", help="start the MLflow UI over the tracking store, and link a search's trials ranked")
    u.add_argument("name", nargs="?", help="search run name or search name (default: the latest search)")
    u.add_argument("--no-browser", action="store_true", help="print the link to the runs table, open no browser")
    u.add_argument("--tracking-uri", help="tracking store (default sqlite:///$XSTILTS_HOME/mlflow.db)")
    u.add_argument("--host", default="127.0.0.1")
    u.add_argument("--port", type=int, help="default 5000 (MLflow), 8080 (--optuna)")
    u.add_argument("--optuna", metavar="NAME", help="optuna-dashboard over a search's Optuna study instead: a search "
                   "run name, a search name (its latest run) or a .journal file (needs the optuna extra)")
    return p


def _add_bench_parser(sub: Any) -> None:
    """``xstilts bench``: which benchmark, and the options each takes (``_BENCH_OPTIONS``)."""
    b = sub.add_parser("bench", help="benchmarks: print one JSON object (never timed tests)")
    b.add_argument("which", choices=["trainer", "search", "transfer", "faults"])
    b.add_argument("--json", action="store_true", help="print only the JSON object")
    b.add_argument("--quick", action="store_true", help="a short smoke-sized run (not for reported figures)")
    b.add_argument("--seeds", type=int, help="transfer: fine-tuning seeds for the zero-shot tables (default 8); "
                   "search: search seeds per arm in the efficiency parts (default 8)")
    b.add_argument("--tpe-alone", action="store_true",
                   help="search: also run TPE without early stopping in the live_efficiency part")
    b.add_argument("--trials", type=int, help="search: the budget per arm and seed, in full trials (efficiency: "
                   "default 5; live_efficiency: the default space's budget, 12)")
    b.add_argument("--pool", type=int, help="search: configurations of spaces/mixtures.yaml in the efficiency "
                   "part's table of real trials (default 20)")
    b.add_argument("--effect-seeds", type=int,
                   help="transfer: seeds for each intermediate task's effect on each target (default 2)")
    b.add_argument("--only", type=lambda v: tuple(x.strip() for x in v.split(",") if x.strip()),
                   help="transfer: zero_shot or effects; search: overhead, efficiency, rank_agreement, "
                   "live_efficiency, or several joined by commas (default: every part but live_efficiency)")
    b.add_argument("--configs", type=int, help="search: configurations of spaces/mixtures.yaml in the "
                   "rank_agreement part (default 14)")
    b.add_argument("--workers", type=int, help="transfer: trials run at once, one torch thread each "
                   "(default: one per CPU core, at most 8)")


def _parse_sets(items: list[str]) -> dict[str, Any]:
    import yaml

    out = {}
    for it in items:
        if "=" not in it:
            raise SystemExit(f"xstilts: --set expects KEY=VALUE, got {it!r}")
        k, v = it.split("=", 1)
        out[k.strip()] = yaml.safe_load(v)
    return out


_BENCH_OPTIONS = {"seeds": ("transfer", "search"), "trials": ("search",), "effect_seeds": ("transfer",),
                  "only": ("transfer", "search"), "tpe_alone": ("search",), "workers": ("transfer",),
                  "configs": ("search",), "pool": ("search",)}
_BENCH_PARTS = {"transfer": ("zero_shot", "effects"),
                "search": ("overhead", "efficiency", "rank_agreement", "live_efficiency")}


def main(argv: list[str] | None = None) -> int:
    from xstilts.trainer.home import HomeError

    args = build_parser().parse_args(argv)
    if args.home:
        os.environ["XSTILTS_HOME"] = str(Path(args.home).resolve())
    try:
        return _run(args)
    except HomeError as e:  # XSTILTS_HOME is a file, cannot be made or written: one line, no traceback
        print(f"xstilts: {e}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    if args.command in ("search", "train", "check"):
        from xstilts.trainer.home import home, use_home_torch_extensions

        use_home_torch_extensions(home())  # DeepSpeed's ops build here, for this process and the trials
    if args.command == "search":
        return _search(args)
    if args.command == "train":
        return _train(args)
    if args.command == "check":
        return _check(args)
    if args.command == "study":
        return study_command(args)
    if args.command == "bench":
        return _bench(args)
    if args.command == "report":
        return _report(args)
    if args.command == "status":
        from xstilts.dashboards.status import print_status

        return print_status(args.name, tracking_uri=args.tracking_uri)
    if args.command == "sync":
        return _sync(args)
    if args.command == "ui" and args.optuna:
        return _optuna_ui(args)
    if args.command == "ui":
        from xstilts.dashboards.ui import serve
        from xstilts.trainer.home import default_tracking_uri

        return serve(args.tracking_uri or default_tracking_uri(), args.host, args.port or 5000, search=args.name,
                     browser=not args.no_browser)
    return 2


def _optuna_ui(args: argparse.Namespace) -> int:
    """``xstilts ui --optuna NAME``: optuna-dashboard over the study of search run NAME (or a journal file)."""
    from xstilts.dashboards.optuna_ui import serve_optuna

    journal, study = Path(args.optuna), None
    if not (journal.suffix == ".journal" and journal.is_file()):
        from .search_run import SearchError, open_search_run

        try:
            run = open_search_run(args.optuna)
        except SearchError as e:
            print(f"xstilts ui --optuna: {e}", file=sys.stderr)
            return 1
        journal, study = run.journal, run.run_name
    return serve_optuna(journal, study, args.host, args.port or 8080)


def _bench(args: argparse.Namespace) -> int:
    import contextlib
    import importlib

    module = {"trainer": "xstilts.trainer.bench", "search": "xstilts.search.bench",
              "transfer": "xstilts.search.bench_transfer", "faults": "xstilts.search.bench_faults"}[args.which]
    with contextlib.redirect_stdout(sys.stderr):  # progress logs must not spoil the one JSON object
        extra: dict[str, Any] = {}
        for opt, benches in _BENCH_OPTIONS.items():  # each option goes to the benches that take it
            value = getattr(args, opt)
            if not value:
                continue
            if args.which not in benches:
                raise SystemExit(f"xstilts: --{opt.replace('_', '-')} is an option of "
                                 + " and ".join(f"'bench {b}'" for b in benches))
            if opt == "only":
                bad = [x for x in value if x not in _BENCH_PARTS[args.which]]
                if bad or not value:
                    raise SystemExit(f"xstilts: --only {','.join(value)}: the parts of 'bench {args.which}' are "
                                     + ", ".join(_BENCH_PARTS[args.which]))
            extra["parts" if opt == "only" else opt] = value
        result = importlib.import_module(module).run(quick=args.quick, **extra)
    print(json.dumps(result, indent=None if args.json else 2, default=str))
    return 0


def _report(args: argparse.Namespace) -> int:
    from xstilts.dashboards.report import write_report
    from xstilts.dashboards.store import SearchNotFound

    try:
        print(write_report(args.name, tracking_uri=args.tracking_uri, output=args.output))
    except SearchNotFound as e:  # as `status` answers: one line, and no store created on the way
        print(f"xstilts: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"xstilts: the report could not be written: {e}", file=sys.stderr)
        return 1
    return 0


def _check(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from xstilts.search.preflight import check_file
    from xstilts.spaces import SpaceError
    from xstilts.spaces.study import StudyError
    from xstilts.trainer.config import ConfigError
    from xstilts.trainer.home import home

    try:
        result = check_file(args.file, home(), tracking_uri=args.tracking_uri, overrides=_parse_sets(args.set))
    except (SpaceError, StudyError, ConfigError) as e:
        print(f"xstilts: {e}", file=sys.stderr)
        return 2
    except ValidationError as e:  # --set on a space
        print("\n".join(_option_errors(e, args)), file=sys.stderr)
        return 2
    print(result.text())
    return 0 if result.ok else 1


def _refused(result: Any) -> bool:
    """Print a preflight's outcome; True when it found problems (nothing may start)."""
    if not result.ok:
        print(result.text(), file=sys.stderr)
        return True
    for note in result.notes:
        print(f"[xstilts] {note}", flush=True)
    print(f"[xstilts] preflight: no problems ({result.seconds:.1f}s; {'; '.join(result.checked)})", flush=True)
    return False


def _train(args: argparse.Namespace) -> int:
    from xstilts.trainer.config import ConfigError, load_trial_config
    from xstilts.trainer.home import home
    from xstilts.trainer.hub import DataNotFoundError
    from xstilts.trainer.names import OBJECTIVE, TEST_OBJECTIVE, WORST
    from xstilts.trainer.preflight import preflight_trials
    from xstilts.trainer.records import RecordError
    from xstilts.trainer.trial import run_trial

    try:
        cfg, runtime = load_trial_config(args.config, {"output_dir": args.output_dir} if args.output_dir else None)
    except ConfigError as e:
        print(f"xstilts: {e}", file=sys.stderr)
        return 2
    if _refused(preflight_trials([cfg], home(runtime.home))):
        return 2

    def report(metrics: dict[str, Any], checkpoint_dir: str | None = None) -> None:
        keep = {k: round(v, 4) for k, v in metrics.items()
                if k in ("train/step", "train/loss", OBJECTIVE, WORST) or k.startswith("en/")}
        print(f"[train] {json.dumps(keep)}", flush=True)

    try:
        result = run_trial(cfg, report, runtime=runtime)
    except (DataNotFoundError, RecordError) as e:  # data that broke after the preflight: said in words
        kept = Path(runtime.output_dir) / "results.json" if runtime.output_dir else None
        print(f"xstilts: the trial failed: {e}" + (f"\nwhat it measured is in {kept} (marked partial)"
                                                  if kept and kept.exists() else ""), file=sys.stderr)
        return 1
    m = result["metrics"]
    print(json.dumps({"engine": result["engine"], OBJECTIVE: m.get(OBJECTIVE), TEST_OBJECTIVE: m[TEST_OBJECTIVE]}))
    return 0


def _sync(args: argparse.Namespace) -> int:
    from xstilts.search.search_run import SearchError
    from xstilts.search.sync import sync_search_run

    try:
        report = sync_search_run(args.name, args.storage, args.tracking_uri)
    except SearchError as e:
        print(f"xstilts: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # the store does not answer, or refuses a write: say which, no traceback
        print(f"xstilts sync: the tracking store did not take the writes ({type(e).__name__}: {str(e)[:300]}); "
              "nothing is lost: run it again when the store answers", file=sys.stderr)
        return 1
    print(f"[xstilts] sync {report.run_name} -> {report.tracking_uri}: {report.text()}")
    return 0


def _search(args: argparse.Namespace) -> int:
    from xstilts.search.runner import SearchError, SearchOptions, run_search

    opts = SearchOptions(
        name=args.name, trials=args.trials, max_concurrent=args.max_concurrent, tracking_uri=args.tracking_uri,
        storage=args.storage, ray_address=args.ray_address, searcher=args.searcher, scheduler=args.scheduler,
        time_budget_s=args.time_budget, cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
        max_failures=args.max_failures, seed=args.seed, resume=args.resume, retry_failed=args.retry_failed,
        tracking_wait_s=args.tracking_wait, run_name=args.run_name, confirm=not args.no_confirm,
        started_at=time.time())
    if args.retry_failed and not args.resume:
        print("xstilts: --retry-failed goes with --resume RUN", file=sys.stderr)
        return 2
    spec = None
    if args.resume:
        if args.space or args.set or args.steps or any(v is not None for v in (
                args.name, args.trials, args.searcher, args.scheduler, args.time_budget, args.seed, args.run_name)):
            print("xstilts: --resume continues a search as it was started; drop the space and the overrides",
                  file=sys.stderr)
            return 2
        resumed = _resumed_search(opts)
        if resumed is not None and _refused(_search_preflight(*resumed)):
            return 2
    else:
        spec = _prepared_space(args, opts)
        if spec is None or _refused(_search_preflight(spec, opts.trial_overrides, opts)):
            return 2
    try:
        out = run_search(spec, opts)  # type: ignore[arg-type]  # None only with resume
    except SearchError as e:
        print(f"xstilts: {e}", file=sys.stderr)
        return 2
    print(summary_text(out, out.metric))
    if out.interrupted:
        return 130
    return 0 if out.counts["completed"] + out.counts["pruned"] > 0 else 1


def _prepared_space(args: argparse.Namespace, opts: Any) -> Any:
    """The space with the command line's options (``opts.trial_overrides`` set), or None after
    printing why it is invalid (one line per problem, naming the option)."""
    from pydantic import ValidationError

    from xstilts.search.runner import apply_options
    from xstilts.spaces import SpaceError, load_space, sample_random, to_trial_config
    from xstilts.trainer.config import ConfigError

    try:
        spec = load_space(args.space)
        overrides = _parse_sets(args.set)
        if args.steps is not None:  # fidelity: both phases, evaluations at most every N steps
            every = overrides.get("eval_every", spec.trial.get("eval_every", 100))
            overrides.update(intermediate_steps=args.steps, target_steps=args.steps,
                             eval_every=min(args.steps, int(every)))
        if overrides.get("eval_dev") is False:  # as a space's trial block may not
            raise SpaceError("--set eval_dev=false: a search selects on dev scores, so its trials evaluate dev")
        opts.trial_overrides = overrides
        spec = apply_options(spec, opts)
        to_trial_config(spec, sample_random(spec, 0), **overrides)  # fail before Ray starts
    except (SpaceError, ConfigError) as e:
        print(f"xstilts: {e}", file=sys.stderr)
        return None
    except ValidationError as e:  # from the command line's options, or --set
        print("\n".join(_option_errors(e, args)), file=sys.stderr)
        return None
    return spec


def _option_errors(err: Any, args: argparse.Namespace) -> list[str]:
    """One line per invalid option, named as it was typed (``--trials 0``, ``--set KEY=VALUE``)."""
    lines, steps = [], getattr(args, "steps", None)
    for e in err.errors():
        loc = [str(x) for x in e["loc"]]
        if loc[:1] == ["search"] and len(loc) > 1:
            what = f"--{loc[1].replace('_', '-')} {e['input']}"
        elif loc[:1] == ["search"]:
            what = "the search options"
        elif steps is not None and loc[:1] and loc[0] in ("intermediate_steps", "target_steps", "eval_every"):
            what = f"--steps {steps}"
        else:
            what = f"--set {'.'.join(loc)}={e['input']}" if loc else "--set"
        msg = e["msg"].removeprefix("Value error, ")
        lines.append(f"xstilts: {what}: {msg[:1].lower()}{msg[1:]}")
    return list(dict.fromkeys(lines))


def _search_preflight(spec: Any, overrides: dict[str, Any], opts: Any, tracking_uri: str | None = None) -> Any:
    from xstilts.search.preflight import preflight_search
    from xstilts.trainer.home import default_tracking_uri, home

    root = home(opts.home)
    uri = opts.tracking_uri or tracking_uri or default_tracking_uri(root)
    # DeepSpeed's op builds beside the data and the model (run_search's prepare_assets waits for it)
    return preflight_search(spec, overrides, uri, root, log=lambda line: print(line, flush=True), op_background=True)


def _resumed_search(opts: Any) -> tuple[Any, dict[str, Any], Any, str] | None:
    """(space, trial overrides, opts, tracking URI) of the search run ``opts.resume`` names, as its
    saved state has them; None when there is none (the runner says so, with what to run)."""
    from xstilts.search.runner import STATE_FILE, SearchError, resolve_run_dir
    from xstilts.spaces import SearchSpec
    from xstilts.trainer.home import home

    storage = Path(opts.storage or home(opts.home) / "ray").resolve()
    try:
        state = json.loads((resolve_run_dir(opts.resume, storage) / STATE_FILE).read_text())
        return SearchSpec.model_validate_json(state["spec"]), state["trial_overrides"], opts, state["tracking_uri"]
    except (SearchError, OSError, ValueError, KeyError):
        return None


def _stopped_early(scheduler: str) -> str:
    return {"asha": "pruned by ASHA", "pbt": "stopped by PBT"}.get(scheduler, "stopped early")


def summary_text(out: Any, metric: str) -> str:
    from xstilts.trainer.codec import without_raw
    from xstilts.trainer.names import TEST_OBJECTIVE

    c = out.counts
    state = "interrupted" if getattr(out, "interrupted", False) else "finished"
    prep = getattr(out, "prep_seconds", 0.0)
    lines = ["", f"=== xstilts search {out.run_name} {state} after {out.seconds / 60:.1f} min"
                 + (f" ({prep / 60:.1f} min of it preparation)" if prep >= 1 else "") + ": "
                 f"{c['completed']} completed, {c['pruned']} {_stopped_early(getattr(out, 'scheduler', 'asha'))}, "
                 f"{c['failed']} failed"
                 + (f", {c['unfinished']} unfinished (xstilts search --resume {out.run_name})"
                    if c.get("unfinished") else "")]
    if len(getattr(out, "nodes", {})) > 1:
        lines.append(f"trials ran on {len(out.nodes)} Ray nodes: "
                     + ", ".join(f"{n[:8]}: {k}" for n, k in sorted(out.nodes.items())))
    rec = getattr(out, "recommendation", None)
    if out.best_config and out.best_metrics:
        cfg = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in without_raw(out.best_config).items()}
        m = out.best_metrics
        best = (f"{metric} = {m[metric]:.4f} (dev), {TEST_OBJECTIVE} = {m.get(TEST_OBJECTIVE, float('nan')):.4f}")
        if rec is not None:
            from xstilts.search.confirm import confirm_summary_lines

            lines += confirm_summary_lines(rec, f"raw best of the search (one training seed, likely lucky): "
                                                f"{m.get('trial', '')}  {best}")
        else:
            lines.append(f"best trial: {best}")
        lines.append(f"  config: {json.dumps(cfg)}")
        per_lang = {k.split("/", 2)[2]: round(v, 3) for k, v in m.items()
                    if k.startswith("zero_shot/") and k.count("/") == 2}
        en = {k.split("/", 1)[1]: round(v, 3) for k, v in m.items() if k.startswith("en/")}
        lines.append(f"  zero-shot per language (dev): {json.dumps(per_lang)}   English dev: {json.dumps(en)}")
    uri = out.tracking_uri
    lines += [
        f"MLflow: experiment {out.experiment!r}, parent run {out.parent_run_id}",
        f"  open the UI:  xstilts ui{'' if uri.endswith('.xstilts/mlflow.db') else f' --tracking-uri {uri}'}"
        "   -> http://127.0.0.1:5000",
        f"Ray results: {out.results_path}",
        f"Ray dashboard (live while a search runs): {out.dashboard_url or 'http://127.0.0.1:8265'}",
    ]
    pending = getattr(out, "tracking_pending", [])
    if pending:
        lines.append(f"MLflow lacks {len(pending)} write(s) the store did not take; when it answers:  "
                     f"xstilts sync {out.run_name}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
