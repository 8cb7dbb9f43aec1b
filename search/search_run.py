"""A search run: its name, its folder, its state file, its MLflow parent run.

    <storage>/<name>-<timestamp>/          the run folder (Ray's results of every trial, and ours:)
        xstilts_search.json                STATE_FILE: the space, the overrides, the tracking URI, the parent
        xstilts_ledger.jsonl               the ledger (``ledger``): what ran
    $XSTILTS_HOME/optuna/<run name>.journal  the Optuna study

``start_parent_run`` opens the MLflow parent run of a new search run and writes its state file;
``open_search_run`` reads a run back (``xstilts search --resume``, ``xstilts sync``), found by
``resolve_run_dir`` from a run name, its folder, or its search's name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xstilts.dashboards.mlflow_logging import start_search_run
from xstilts.spaces import SearchSpec
from xstilts.trainer.home import home

from .resume import ResumePlan

__all__ = ["STATE_FILE", "SearchError", "SearchRun", "resolve_run_dir", "open_search_run", "start_parent_run"]

STATE_FILE = "xstilts_search.json"  # in the Ray run folder: what a resume needs


class SearchError(RuntimeError):
    """A search cannot start or resume; the message says why and what to do."""


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
    plan: ResumePlan | None = None  # resume (not PBT): what finished, what runs again, what is left
    started_ms: int | None = None  # when the command began (epoch ms): the parent run starts then, preparation included

    @property
    def journal(self) -> Path:
        """The Optuna journal of this run's study."""
        return self.root / "optuna" / f"{self.run_name}.journal"


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


def open_search_run(name: str, storage: str | Path | None = None, home_dir: str | None = None,
                    tracking_uri: str | None = None) -> SearchRun:
    """Search run ``name`` (a run name, its folder, or a search name: its latest run) as its state
    file recorded it; ``tracking_uri`` replaces the recorded store. SearchError if there is none."""
    root = home(home_dir)
    run_dir = resolve_run_dir(name, Path(storage or root / "ray").resolve())
    try:
        state = json.loads((run_dir / STATE_FILE).read_text())
        spec = SearchSpec.model_validate_json(state["spec"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SearchError(f"{run_dir / STATE_FILE} cannot be read ({e}); the search run cannot be continued "
                          "from it") from e
    return SearchRun(spec, state["trial_overrides"], state["run_name"], state["experiment"],
                     tracking_uri or state["tracking_uri"], root, run_dir.parent, run_dir, resumed=True,
                     saved_parent_id=state.get("parent_run_id"))


def start_parent_run(run: SearchRun, nodes: int, write_state: bool = True) -> str:
    """Start the parent run with the search's settings as params, then (``write_state``) write the
    run's state file."""
    spec, s, n_trials = run.spec, run.spec.search, run.spec.n_trials()
    cheap = s.proxy_fidelity()  # ASHA's first rung on a cheap fidelity (asha.proxy)
    parent_params = {
        "space_file": spec.source or "(in memory)", "searcher": s.searcher, "scheduler": s.scheduler,
        "trials": n_trials, "max_concurrent": s.max_concurrent, "cpus_per_trial": s.cpus_per_trial,
        "gpus_per_trial": s.gpus_per_trial, "time_budget_s": s.time_budget_s or "none",
        "max_failures": s.max_failures, "metric": s.metric, "mode": s.mode, "seed": s.seed,
        "ray_results": str(run.run_dir), "ray_nodes": nodes,
        **({"objectives": ",".join(f"{k}:{v}" for k, v in s.objectives.items())} if s.objectives else {}),
        **({"confirm.top_k": s.confirm.top_k, "confirm.seeds": s.confirm.seeds} if s.confirm else {}),
        **({f"asha.proxy.{k}": v for k, v in {"name": s.asha.proxy, **cheap.model_dump()}.items()}
           if cheap else {}),
        **{f"trial.{k}": v for k, v in {**spec.trial, **run.overrides}.items()},
    }
    parent_id = start_search_run(run.tracking_uri, run.experiment, run.run_name, parent_params, start_ms=run.started_ms)
    if not write_state:
        return parent_id
    run.run_dir.mkdir(parents=True, exist_ok=True)
    (run.run_dir / STATE_FILE).write_text(json.dumps({
        "spec": spec.model_dump_json(), "trial_overrides": run.overrides, "run_name": run.run_name,
        "experiment": run.experiment, "tracking_uri": run.tracking_uri, "parent_run_id": parent_id,
        "journal": str(run.journal)}, indent=1))
    print(f"[xstilts] search {run.run_name}: {n_trials} trials, {s.max_concurrent} at a time, "
          f"{s.searcher} + {s.scheduler}; MLflow experiment {run.experiment!r} at {run.tracking_uri}", flush=True)
    if cheap:
        print(f"[xstilts] ASHA's first rung: each trial first runs fidelity {s.asha.proxy!r} "
              f"({cheap.intermediate_steps} + {cheap.target_steps} steps) and reports its score", flush=True)
    return parent_id
