"""``xstilts study FILE``: the command line of a study (``cli.py`` adds it to the ``xstilts`` parser).

    xstilts study studies/question.yaml [--name N] [--tracking-uri URI] [--ray-address ADDR] [--json]
    xstilts study --resume RUN                  (after the driver died: its run, folder, or the study name)

It prints progress, then the verdict table; ``--json`` prints one JSON object instead (progress
goes to stderr): every arm × seed with its scores, the statistics, the EVP curves, the report.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from typing import Any

__all__ = ["add_study_parser", "study_command", "study_summary"]


def add_study_parser(sub: Any) -> None:
    """The ``study`` subcommand's arguments."""
    s = sub.add_parser("study", help="compare arms over shared seeds: paired differences, bootstrap CIs, Holm; "
                                     "trials on Ray, tracked in MLflow")
    s.add_argument("file", nargs="?", help="study YAML (e.g. studies/question.yaml)")
    s.add_argument("--name", help="MLflow experiment (default: the study's name)")
    s.add_argument("--tracking-uri", help="MLflow tracking URI (default sqlite:///$XSTILTS_HOME/mlflow.db)")
    s.add_argument("--ray-address", help="connect to a running Ray cluster (default $RAY_ADDRESS, else a local Ray)")
    s.add_argument("--json", action="store_true", help="print one JSON object (progress goes to stderr)")
    s.add_argument("--resume", metavar="RUN", help="continue study run RUN (its name, folder, or the study name "
                                                   "for its latest run) after its driver died")
    s.add_argument("--storage", help="Ray results folder (default $XSTILTS_HOME/ray)")
    s.add_argument("--seeds", type=int, metavar="N", help="run only the study's first N seeds")
    s.add_argument("--max-concurrent", type=int, help="trials at a time (overrides the study)")
    s.add_argument("--steps", type=int, metavar="N", help="fidelity: intermediate_steps = target_steps = N in the "
                                                          "shared trial block (an arm's own setting wins)")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="set a shared trial setting, e.g. --set target_steps=100 (YAML value)")


def study_command(args: argparse.Namespace) -> int:
    """Run (or resume) the study; exit 0 when every trial completed, 130 when interrupted."""
    from xstilts.search.cli import _parse_sets
    from xstilts.search.study import StudyOptions, run_study
    from xstilts.spaces.study import StudyError, load_study

    if args.resume and (args.file or args.set or args.steps or args.seeds or args.name):
        print("xstilts: --resume continues a study as it was started; drop the file and the overrides",
              file=sys.stderr)
        return 2
    if not args.resume and not args.file:
        print("xstilts: study needs a study file (e.g. studies/question.yaml), or --resume RUN", file=sys.stderr)
        return 2
    opts = StudyOptions(name=args.name, tracking_uri=args.tracking_uri, storage=args.storage,
                        ray_address=args.ray_address, seeds=args.seeds, max_concurrent=args.max_concurrent,
                        resume=args.resume, verbose=0 if args.json else 1)
    out_stream = sys.stdout
    try:
        spec = None if args.resume else load_study(args.file)
        overrides = _parse_sets(args.set)
        if args.steps is not None and spec is not None:  # fidelity of the shared block; evaluations at most every N
            every = overrides.get("eval_every", spec.trial.get("eval_every", 100))
            overrides.update(intermediate_steps=args.steps, target_steps=args.steps,
                             eval_every=min(args.steps, int(every)))
        opts.overrides = overrides
        with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
            out = run_study(spec, opts)
    except StudyError as e:
        print(f"xstilts: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(out.as_dict(), default=str), file=out_stream)
    else:
        print(study_summary(out))
    if out.interrupted:
        return 130
    return 0 if out.counts["completed"] else 1


def study_summary(out: Any) -> str:
    """What the console shows at the end: the counts, the verdict table, where to look."""
    from xstilts.dashboards.study_report import verdict_text

    c = out.counts
    state = "interrupted" if out.interrupted else "finished"
    lines = ["", f"=== xstilts study {out.run_name} {state} after {out.seconds / 60:.1f} min: {c['completed']} of "
                 f"{len(out.arms) * len(out.seeds)} trials completed, {c['failed']} failed"
             + (f", {c['unfinished']} unfinished (xstilts study --resume {out.run_name})" if c["unfinished"] else ""),
             verdict_text(out.statistics),
             f"MLflow: experiment {out.experiment!r}, parent run {out.parent_run_id} (statistics/, report/)",
             f"report: {out.report_path or f'xstilts report {out.run_name}'}",
             f"Ray results: {out.results_path}"]
    return "\n".join(lines)
