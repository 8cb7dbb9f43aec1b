"""``xstilts sync RUN``: replay a search run's results into the tracking store, writing only what it lacks.

    <run>/xstilts_ledger.jsonl  +  each trial folder's result.json (Ray's results)
        ─► one LedgerTrial per trial: name, Optuna number, config, results by iteration, status
    the tracking store: the parent run (tag xstilts.search), its children by trial name
        ─► trial_gap: what the store lacks of each trial — the child, params, start artifacts, metric
           values (by key and step), the final plot, the status
        ─► write it with ``run_records``: the same records the live callback writes

Idempotent: a value the store has (same key and step) is not written again, a child is found by
its trial name before one is made, a status already right is left alone; running it twice, or on
a store that has everything, writes nothing. System metrics (sampled by the driver as results
came in) cannot be replayed. A parent run that is missing (a store the search never wrote) is
made from the run's state file; one left open after its search ended (the store was down at the
end) is closed with the summary the ledger recorded.

The confirm phase's trials (its own ledger, ``confirm``) are synced the same way, their children made
with the confirm tags. Used by ``xstilts sync``, by a resumed search before its Tuner starts (trials that ended while the
store or the driver was down get their results and status), and by ``bench faults``, which counts
the writes lost (``gaps`` only, nothing written).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from xstilts.dashboards.mlflow_logging import find_search_run_id, finish_search_run
from xstilts.dashboards.run_records import (
    FINAL_PLOT,
    START_ARTIFACTS,
    create_child,
    end_records,
    experiment_id,
    final_plot_expected,
    flatten_params,
    result_metrics,
    start_records,
    trial_children,
)
from xstilts.dashboards.tracking_queue import bounded_http_retries
from xstilts.trainer.names import REPLAYED, TRIAL_DONE

from .ledger import LedgerTrial, kept_result, read_ledger, search_end
from .search_run import open_search_run, start_parent_run

__all__ = ["TrialGap", "SyncReport", "trials_of_run", "trial_gap", "gaps", "sync_trials", "sync_search_run",
           "run_gaps"]

ParamsFn = Callable[[dict[str, Any]], Mapping[str, Any]]


@dataclass
class TrialGap:
    """What the tracking store lacks of one trial."""

    trial: LedgerTrial
    run_id: str | None  # its child run (None: there is none)
    params: int = 0  # params not logged
    artifacts: list[str] = field(default_factory=list)  # artifact paths not logged
    metrics: list[Metric] = field(default_factory=list)  # metric values not logged (key, step)
    status: bool = False  # its status in the store is not the ledger's

    @property
    def writes(self) -> int:
        """How many records are missing (a missing child counts once, beside its contents)."""
        return (self.run_id is None) + self.params + len(self.artifacts) + len(self.metrics) + int(self.status)


@dataclass
class SyncReport:
    trials: int = 0  # trials compared
    children: int = 0  # child runs made
    params: int = 0
    metrics: int = 0
    artifacts: int = 0
    statuses: int = 0
    parent: str = ""  # what was done to the parent run ("" nothing, "created", "closed")
    run_name: str = ""  # the search run synced (xstilts sync)
    tracking_uri: str = ""  # into this store

    def add(self, other: SyncReport) -> None:
        """Count ``other``'s writes in this report too (the confirm phase's trials beside the search's)."""
        for k in ("trials", "children", "params", "metrics", "artifacts", "statuses"):
            setattr(self, k, getattr(self, k) + getattr(other, k))

    @property
    def wrote(self) -> int:
        return self.children + self.params + self.metrics + self.artifacts + self.statuses + bool(self.parent)

    def text(self) -> str:
        if not self.wrote:
            return f"nothing missing ({self.trials} trials compared)"
        return (f"{self.children} child run(s) made, {self.params} params, {self.metrics} metric values, "
                f"{self.artifacts} artifacts, {self.statuses} statuses written"
                + (f"; parent run {self.parent}" if self.parent else "") + f" ({self.trials} trials compared)")


def trials_of_run(run_dir: Path) -> dict[str, LedgerTrial]:
    """The run's trials: the ledger's, with the results Ray's ``result.json`` has and the ledger lacks
    (a search from before the ledger: one trial per folder with ``params.json``, its status unknown
    unless it ran to its end)."""
    trials = read_ledger(run_dir)
    known = {t.dirname: t for t in trials.values() if t.dirname}
    for result_file in sorted(run_dir.glob("*/result.json")):
        folder = result_file.parent
        t = known.get(folder.name)
        if t is None:
            if folder.name in trials or not (folder / "params.json").exists():
                continue
            t = trials[folder.name] = LedgerTrial(folder.name, dirname=folder.name,
                                                  config=json.loads((folder / "params.json").read_text()))
        for line in result_file.read_text().splitlines():
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue
            it = r.get("training_iteration")
            if isinstance(it, int) and it not in t.results and not r.get(REPLAYED):
                t.results[it] = kept_result(r)
        if t.number is None and t.results and not t.ended and t.results[max(t.results)].get(TRIAL_DONE):
            t.status, t.last = "completed", t.results[max(t.results)]
    return trials


def _expected_metrics(t: LedgerTrial) -> list[Metric]:
    out: list[Metric] = []
    for it, r in sorted(t.results.items()):
        out += result_metrics(r, it, int(float(r.get("timestamp", 0)) * 1000))
    return out


def trial_gap(client: MlflowClient, t: LedgerTrial, run: Any | None, params_fn: ParamsFn, artifacts: bool) -> TrialGap:
    """Compare trial ``t`` with its child ``run`` (None: there is none)."""
    expected = _expected_metrics(t)
    want_artifacts = list(START_ARTIFACTS) if artifacts else []
    if artifacts and t.status in ("completed", "pruned") and final_plot_expected(t.final):
        want_artifacts.append(FINAL_PLOT)
    if run is None:
        return TrialGap(t, None, len(flatten_params(_params(params_fn, t))), want_artifacts, expected, t.ended)
    run_id = str(run.info.run_id)
    have_params = run.data.params
    params = sum(1 for k in flatten_params(_params(params_fn, t)) if k not in have_params)
    have_artifacts = {a.path for folder in ("config", "plots") for a in client.list_artifacts(run_id, folder)}
    steps: dict[str, set[int]] = {}
    for key in {m.key for m in expected}:
        steps[key] = {h.step for h in client.get_metric_history(run_id, key)}
    metrics = [m for m in expected if m.step not in steps[m.key]]
    status = t.ended and (run.data.tags.get("xstilts.status") != t.status or run.info.status == "RUNNING")
    return TrialGap(t, run_id, params, [a for a in want_artifacts if a not in have_artifacts], metrics, status)


def _params(params_fn: ParamsFn, t: LedgerTrial) -> dict[str, Any]:
    try:
        return dict(params_fn(dict(t.config)))
    except Exception as e:  # as the live callback does: never lose the run over a param
        return {**t.config, "xstilts.params_error": repr(e)}


def gaps(tracking_uri: str, experiment_id: str, parent_id: str, trials: dict[str, LedgerTrial],
         params_fn: ParamsFn, artifacts: bool = True) -> list[TrialGap]:
    """What the store lacks of each trial of the run (only trials that reported or ended)."""
    client = MlflowClient(tracking_uri)
    children = trial_children(client, experiment_id, parent_id)
    return [trial_gap(client, t, children.get(name), params_fn, artifacts)
            for name, t in trials.items() if t.results or t.ended or name in children]


def sync_trials(tracking_uri: str, experiment_id: str, parent_id: str, trials: dict[str, LedgerTrial],
                params_fn: ParamsFn, artifacts: bool = True,
                tags_fn: Callable[[dict[str, Any]], Mapping[str, str]] | None = None) -> SyncReport:
    """Write what the store lacks of each trial (see the module docstring); a child made here gets the
    tags ``tags_fn`` gives for its config (the confirm phase's: its phase, candidate and seed)."""
    client = MlflowClient(tracking_uri)
    report = SyncReport()
    for gap in gaps(tracking_uri, experiment_id, parent_id, trials, params_fn, artifacts):
        report.trials += 1
        t = gap.trial
        run_id = gap.run_id
        if run_id is None:
            run_id = create_child(client, experiment_id, parent_id, t.name, t.trial_id, t.number,
                                  tags_fn(dict(t.config)) if tags_fn else None)
            report.children += 1
        if gap.params or any(a in START_ARTIFACTS for a in gap.artifacts):
            start_records(client, run_id, t.name, t.config, _params(params_fn, t), artifacts,
                          only=tuple(a for a in gap.artifacts if a in START_ARTIFACTS))
        for i in range(0, len(gap.metrics), 1000):  # MLflow takes at most 1000 metrics a batch
            client.log_batch(run_id, metrics=gap.metrics[i:i + 1000])
        if gap.status or FINAL_PLOT in gap.artifacts:
            end_records(client, run_id, t.name, t.status, t.final, t.error, artifacts=FINAL_PLOT in gap.artifacts)
        report.params += gap.params
        report.metrics += len(gap.metrics)
        report.artifacts += len(gap.artifacts)
        report.statuses += int(gap.status)
    return report


def sync_search_run(name: str, storage: str | None = None, tracking_uri: str | None = None,
                    home_dir: str | None = None) -> SyncReport:
    """``xstilts sync NAME``: the run's parent (made if missing, closed if its search ended), then its trials."""
    from xstilts.spaces import trial_params

    bounded_http_retries()
    run = open_search_run(name, storage, home_dir, tracking_uri)
    report = SyncReport()
    client = MlflowClient(run.tracking_uri)
    parent_id = find_search_run_id(run.tracking_uri, run.run_name)
    if parent_id is None:
        parent_id = start_parent_run(run, nodes=0, write_state=False)
        report.parent = "created"
    exp_id = experiment_id(client, run.experiment, run.tracking_uri)
    trials = trials_of_run(run.run_dir)
    spec, overrides = run.spec, run.overrides
    done = sync_trials(run.tracking_uri, exp_id, parent_id, trials, lambda cfg: trial_params(spec, cfg, overrides))
    from .confirm import sync_confirm  # here: confirm imports this module

    done.add(sync_confirm(run, parent_id))
    done.parent, done.run_name, done.tracking_uri = report.parent, run.run_name, run.tracking_uri
    end = search_end(run.run_dir)
    parent = client.get_run(parent_id)
    if end and (parent.info.status == "RUNNING" or parent.data.tags.get("xstilts.status") != end["tags"].get(
            "xstilts.status")):
        if end["status"] == "FINISHED":
            from xstilts.dashboards.summary import log_search_summary  # never raises

            log_search_summary(run.tracking_uri, parent_id, metric=spec.search.metric, mode=spec.search.mode,
                               journal_path=run.journal)
        finish_search_run(run.tracking_uri, parent_id, end["summary"], end["tags"], status=end["status"])
        done.parent = done.parent or "closed"
    return done


def run_gaps(name: str, storage: str | None = None, tracking_uri: str | None = None,
             home_dir: str | None = None) -> list[TrialGap]:
    """What the tracking store lacks of search run ``name`` (nothing written); a missing parent run
    makes every trial a gap."""
    from xstilts.spaces import trial_params

    run = open_search_run(name, storage, home_dir, tracking_uri)
    trials = trials_of_run(run.run_dir)
    spec, overrides = run.spec, run.overrides

    def params_fn(cfg: dict[str, Any]) -> Mapping[str, Any]:
        return trial_params(spec, cfg, overrides)

    parent_id = find_search_run_id(run.tracking_uri, run.run_name)
    exp = MlflowClient(run.tracking_uri).get_experiment_by_name(run.experiment)
    if parent_id is None or exp is None:
        return [TrialGap(t, None, len(flatten_params(_params(params_fn, t))), list(START_ARTIFACTS),
                         _expected_metrics(t), t.ended) for t in trials.values()]
    return gaps(run.tracking_uri, str(exp.experiment_id), parent_id, trials, params_fn)
