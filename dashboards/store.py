"""Reading a search back from the tracking store: the parent run and its trials.

Everything a person looks at after the fact (``xstilts report``, ``xstilts status``, the
parent-run summary) is built from what the MLflow callback wrote, never from Ray's results
folder: the tracking store is the one record that survives the driver, a resume and a
move to another machine.

A search's children are its trials (``SearchRecord.trials``) and, when it ran a confirm phase,
the retrainings of its best trials on fresh seeds (``SearchRecord.confirm``: tag ``PHASE_TAG`` =
``CONFIRM``), kept apart so that counts, the leaderboard and the best trial are the search's own.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from xstilts.trainer.names import OBJECTIVE

from .store_check import sqlite_path, tracking_store_problem

__all__ = ["TrialRecord", "SearchRecord", "find_search_run", "load_search", "child_runs", "resolve_tracking_uri",
           "best_trial", "objective_value", "SearchNotFound", "StoreUnavailable", "trial_records", "PHASE_TAG",
           "CONFIRM", "ranked_trials"]

PHASE_TAG = "xstilts.phase"  # on a child of the confirm phase: CONFIRM (a search trial has none)
CONFIRM = "confirm"


class SearchNotFound(LookupError):
    """No search run of that name (nor experiment of that name) in the tracking store, or no
    store at all (a SQLite file that does not exist, a server that does not answer)."""


class StoreUnavailable(SearchNotFound):
    """The tracking store is not there (a SQLite file never made) or does not answer: nothing in it can be found."""


def resolve_tracking_uri(tracking_uri: str | None) -> str:
    """The URI given, else the default store ``sqlite:///$XSTILTS_HOME/mlflow.db``."""
    if tracking_uri:
        return tracking_uri
    from xstilts.trainer.home import default_tracking_uri

    return default_tracking_uri()


@dataclass
class TrialRecord:
    """One child run, as the callback wrote it (params are strings, metrics their last value)."""

    run_id: str
    name: str
    trial_id: str
    status: str  # running / completed / pruned / failed (tag xstilts.status)
    params: dict[str, str]
    metrics: dict[str, float]
    start_ms: int
    end_ms: int | None
    error: str = ""
    mlflow_status: str = "RUNNING"
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        """Trial wall time: Ray's ``time_total_s`` when reported, else the run's start-to-end."""
        t = self.metrics.get("ray/time_total_s")
        if t is not None and math.isfinite(t):
            return float(t)
        if self.end_ms:
            return max(0.0, (self.end_ms - self.start_ms) / 1000.0)
        return 0.0


@dataclass
class SearchRecord:
    run_id: str
    run_name: str
    experiment_id: str
    experiment: str
    status: str  # tag xstilts.status of the parent (finished / interrupted / ...) or the run status
    mlflow_status: str
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]
    trials: list[TrialRecord] = field(default_factory=list)  # the search's trials
    confirm: list[TrialRecord] = field(default_factory=list)  # its confirm phase's trials (PHASE_TAG)
    start_ms: int = 0
    end_ms: int | None = None
    tracking_uri: str = ""

    @property
    def metric(self) -> str:
        return self.params.get("metric", OBJECTIVE)

    @property
    def mode(self) -> str:
        return self.params.get("mode", "max")

    def counts(self) -> dict[str, int]:
        out = {"running": 0, "completed": 0, "pruned": 0, "failed": 0}
        for t in self.trials:
            out[t.status] = out.get(t.status, 0) + 1
        return out

    def searched_keys(self) -> list[str]:
        """Child params that are not fixed settings of the search (what the searcher chose)."""
        fixed = {k[len("trial."):] for k in self.params if k.startswith("trial.")}
        keys: dict[str, None] = {}
        for t in self.trials:
            for k in t.params:
                if k not in fixed and not k.startswith("xstilts."):
                    keys[k] = None
        return list(keys)


def _iter_runs(client: MlflowClient, experiment_ids: list[str], filter_string: str,
               order_by: list[str] | None = None) -> Iterator[Run]:
    token: str | None = None
    while True:
        page = client.search_runs(experiment_ids, filter_string=filter_string, max_results=1000,
                                  order_by=order_by, page_token=token)
        yield from page
        token = page.token
        if not token:
            return


def child_runs(client: MlflowClient, experiment_id: str, parent_run_id: str) -> list[Run]:
    """The nested runs of a parent, oldest first."""
    return list(_iter_runs(client, [experiment_id], f"tags.mlflow.parentRunId = '{parent_run_id}'",
                           order_by=["attributes.start_time ASC"]))


def find_search_run(client: MlflowClient, name: str | None = None) -> Run:
    """The parent run of search ``name`` (its run name, tag ``xstilts.search``), else the latest
    search of the experiment called ``name``, else (no name) the latest search in the store."""
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        raise SearchNotFound("the tracking store holds no experiments (has a search run yet?)")
    kind = "tags.`xstilts.kind` = 'search'"
    if name:
        esc = name.replace("'", "\\'")
        runs = list(_iter_runs(client, experiments, f"{kind} and tags.`xstilts.search` = '{esc}'",
                               order_by=["attributes.start_time DESC"]))
        if runs:
            return runs[0]
        exp = client.get_experiment_by_name(name)
        if exp is not None:
            runs = list(_iter_runs(client, [exp.experiment_id], kind, order_by=["attributes.start_time DESC"]))
            if runs:
                return runs[0]
        raise SearchNotFound(f"no search run or experiment named {name!r} in the tracking store")
    runs = list(_iter_runs(client, experiments, kind, order_by=["attributes.start_time DESC"]))
    if not runs:
        raise SearchNotFound("the tracking store holds no search runs")
    return runs[0]


def _trial_record(run: Run) -> TrialRecord:
    tags = run.data.tags
    return TrialRecord(
        run_id=run.info.run_id, name=run.info.run_name or run.info.run_id, trial_id=tags.get("ray.trial_id", ""),
        status=tags.get("xstilts.status", "running"), params=dict(run.data.params),
        metrics={k: float(v) for k, v in run.data.metrics.items()}, start_ms=int(run.info.start_time or 0),
        end_ms=int(run.info.end_time) if run.info.end_time else None, error=tags.get("xstilts.error", ""),
        mlflow_status=run.info.status, tags=dict(tags))


def trial_records(client: MlflowClient, experiment_id: str, parent_run_id: str) -> list[TrialRecord]:
    """The child runs of a parent (a search's trials, a study's arm x seed runs), oldest first."""
    return [_trial_record(r) for r in child_runs(client, experiment_id, parent_run_id)]


def load_search(tracking_uri: str | None, name: str | None = None) -> SearchRecord:
    """The search ``name`` (see ``find_search_run``) with all its trials. Reading never creates a
    store: a SQLite file that is not there, or a server that does not answer, is ``SearchNotFound``."""
    uri = resolve_tracking_uri(tracking_uri)
    db = sqlite_path(uri)
    if db is not None and not db.exists():
        raise StoreUnavailable(f"no tracking store at {db}: no search has been tracked there (pass --tracking-uri "
                               "or --home to read another)")
    problem = tracking_store_problem(uri) if db is None else None
    if problem:
        raise StoreUnavailable(problem)
    client = MlflowClient(uri)
    parent = find_search_run(client, name)
    exp = client.get_experiment(parent.info.experiment_id)
    tags = dict(parent.data.tags)
    rec = SearchRecord(
        run_id=parent.info.run_id, run_name=tags.get("xstilts.search", parent.info.run_name or ""),
        experiment_id=exp.experiment_id, experiment=exp.name,
        status=tags.get("xstilts.status", parent.info.status.lower()), mlflow_status=parent.info.status,
        params=dict(parent.data.params), metrics={k: float(v) for k, v in parent.data.metrics.items()}, tags=tags,
        start_ms=int(parent.info.start_time or 0), end_ms=int(parent.info.end_time) if parent.info.end_time else None,
        tracking_uri=uri)
    kids = [_trial_record(r) for r in child_runs(client, exp.experiment_id, parent.info.run_id)]
    rec.trials = [t for t in kids if t.tags.get(PHASE_TAG) != CONFIRM]
    rec.confirm = [t for t in kids if t.tags.get(PHASE_TAG) == CONFIRM]
    return rec


def objective_value(trial: TrialRecord, metric: str) -> float | None:
    v = trial.metrics.get(metric)
    return float(v) if v is not None and math.isfinite(v) else None


def best_trial(trials: list[TrialRecord], metric: str, mode: str = "max",
               statuses: tuple[str, ...] = ("completed",)) -> TrialRecord | None:
    """The best trial among those with one of ``statuses`` and a finite objective."""
    ok = [t for t in trials if t.status in statuses and objective_value(t, metric) is not None]
    if not ok:
        return None
    sign = 1.0 if mode == "max" else -1.0
    return max(ok, key=lambda t: sign * (objective_value(t, metric) or 0.0))


def ranked_trials(rec: SearchRecord) -> list[TrialRecord]:
    """The trials best first: completed ones by the objective, then those with an early value (pruned,
    running) by it, then those without one (failed)."""
    sign = -1.0 if rec.mode == "max" else 1.0

    def key(t: TrialRecord) -> tuple[int, float]:
        v = objective_value(t, rec.metric)
        return (0 if t.status == "completed" else 1 if v is not None else 2, sign * v if v is not None else 0.0)

    return sorted(rec.trials, key=key)


def as_float(params: Mapping[str, Any], key: str, default: float = 0.0) -> float:
    try:
        return float(params[key])
    except (KeyError, TypeError, ValueError):
        return default
