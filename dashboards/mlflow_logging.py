"""MLflow: one parent run per search, one nested child run per Ray trial.

Ray's own ``MLflowLoggerCallback`` makes no nested runs (ray-project/ray#19978), so this
callback writes them itself with ``MlflowClient``, from the driver only — SQLite takes one
writer at a time, and trials on other nodes need not reach the tracking store.

Contract (read back by the tests):

* experiment = the search name; parent run tagged ``xstilts.kind=search`` and
  ``xstilts.search=<run name>``, with params ``space_file``, ``searcher``, ``scheduler``, budget
  (a study's parent: ``xstilts.kind=study`` and ``xstilts.study=<run name>``);
* child run per trial: tags ``mlflow.parentRunId``, ``xstilts.kind=trial``, ``xstilts.trial`` (the
  trial name), ``xstilts.trial_number``, ``ray.trial_id`` (the Ray trial now running it),
  ``xstilts.status`` (running / completed / pruned / failed, with ``xstilts.error``), and those
  ``tags_fn`` gives (a study's children: ``xstilts.arm``, ``xstilts.seed``);
  params: every sampled dimension flattened and the fixed ones; metrics: everything the
  trainer reports with a ``/`` in its name (``zero_shot/avg``, ``zero_shot/<task>/<lang>``,
  ``en/<task>``, ``train/loss`` ...), stepped by Ray's ``training_iteration``, plus
  ``ray/time_total_s`` and ``system/*`` (see ``sysmetrics``);
* child artifacts: ``config/trial_config.yaml`` (the resolved trial config and the point as
  sampled), ``plots/mixture_schedule.png`` (sampling rates over steps),
  ``plots/zero_shot_by_language.png`` (final per-language scores) — see ``run_records``;
* resume: a callback constructed again on the same parent re-attaches to the child runs it
  finds by trial name (one child run per trial, however often the search resumes and whatever
  Ray trial id runs it now); a re-opened run is set RUNNING again and counts ``xstilts.resumes``;
  a trial that Tune retries after a failure keeps its run, which counts ``xstilts.retries`` and
  keeps the failure in ``xstilts.last_error``. Results a resumed trial hands Tune again
  (``REPLAYED``) are not logged twice.

Writes happen off Tune's event loop: the callback snapshots what it needs from the trial when
Tune calls it and hands the MLflow calls (SQLite writes, plots) to one background thread, in
order (``TrackingQueue``). Tune's loop only queues (microseconds instead of ~0.3 s per trial and
~2 s for the first plot, during which no trial was started and no running trial got its next
step). While the store does not answer, the queue keeps every write, in order, and retries with
backoff; a write the store refuses is logged and counted (``write_errors``), never raised into
Tune: tracking must not stop a search. ``finish()`` (Tune's ``on_experiment_end``, then the runner)
waits for the queue at most ``end_wait_s``; what is left then is ``pending()``, which the runner
reports and ``xstilts sync`` replays from the search's ledger. Nothing waits in ``get_state``
(Tune's experiment snapshot): a resume reconciles the store from the ledger instead.

With a SQLite store, experiments keep their artifacts beside the database
(``<db folder>/mlartifacts``), not in ``./mlruns`` of whatever folder the search ran from.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.tracking import MlflowClient
from ray.tune import Callback

from xstilts.trainer.codec import NUMBER
from xstilts.trainer.names import OBJECTIVE, REPLAYED, TRIAL_DONE

from .run_records import (
    artifact_root_for,
    create_child,
    end_records,
    experiment_id,
    find_child,
    finite,
    flatten_params,
    redact,
    resolved_trial_config,
    result_metrics,
    start_records,
    trial_children,
)
from .sysmetrics import SystemSampler
from .tracking_queue import TrackingQueue, store_answers

__all__ = ["MLflowTrialsCallback", "start_search_run", "finish_search_run", "find_search_run_id",
           "reopen_search_run", "flatten_params", "redact", "resolved_trial_config", "artifact_root_for",
           "trial_error_text"]

log = logging.getLogger(__name__)


def start_search_run(tracking_uri: str, experiment: str, run_name: str, params: Mapping[str, Any],
                     kind: str = "search", start_ms: int | None = None) -> str:
    """Create the parent run of a search (``kind`` "study": of a study); returns its run id. Tagged
    ``xstilts.kind=<kind>`` and ``xstilts.<kind>=<run name>``. ``start_ms``: when the command began
    (epoch ms), so that the run's duration includes the preparation before it (default: now)."""
    client = MlflowClient(tracking_uri)
    run = client.create_run(experiment_id(client, experiment, tracking_uri), run_name=run_name, start_time=start_ms,
                            tags={"xstilts.kind": kind, f"xstilts.{kind}": run_name, "xstilts.status": "running"})
    client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in flatten_params(params).items()])
    return str(run.info.run_id)


def find_search_run_id(tracking_uri: str, run_name: str) -> str | None:
    """The parent run of search ``run_name`` (tag ``xstilts.search``), or None."""
    client = MlflowClient(tracking_uri)
    ids = [e.experiment_id for e in client.search_experiments()]
    if not ids:
        return None
    esc = run_name.replace("'", "\\'")
    runs = client.search_runs(ids, filter_string=f"tags.`xstilts.kind` = 'search' and tags.`xstilts.search` = '{esc}'",
                              order_by=["attributes.start_time ASC"], max_results=1)
    return str(runs[0].info.run_id) if runs else None


def reopen_search_run(tracking_uri: str, run_id: str) -> None:
    """Mark a parent run RUNNING again (a resumed search); counts ``xstilts.resumes``."""
    client = MlflowClient(tracking_uri)
    tags = client.get_run(run_id).data.tags
    client.update_run(run_id, status="RUNNING")
    client.set_tag(run_id, "xstilts.status", "running")
    client.set_tag(run_id, "xstilts.resumes", str(int(tags.get("xstilts.resumes", "0")) + 1))


def finish_search_run(tracking_uri: str, run_id: str, metrics: Mapping[str, float], tags: Mapping[str, str],
                      status: str = "FINISHED") -> None:
    client = MlflowClient(tracking_uri)
    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items() if finite(v)],
                     tags=[RunTag(k, redact(k, v)) for k, v in tags.items()])
    client.set_terminated(run_id, status=status)


@dataclass(frozen=True)
class _TrialView:
    """What the writer needs of a Ray trial, taken when Tune calls: the trial object moves on."""

    trial_id: str
    name: str
    config: dict[str, Any]

    @classmethod
    def of(cls, trial: Any) -> _TrialView:
        return cls(str(trial.trial_id), str(trial), dict(trial.config or {}))


class MLflowTrialsCallback(Callback):
    """Ray Tune callback writing one nested MLflow child run per trial (driver side, from a
    background writer thread that retries through an outage; see the module docstring)."""

    def __init__(self, tracking_uri: str, experiment: str, parent_run_id: str,
                 params_fn: Callable[[dict[str, Any]], Mapping[str, Any]] = dict,
                 done_key: str = TRIAL_DONE, metric: str = OBJECTIVE, mode: str = "max",
                 system_metrics: bool = True, artifacts: bool = True, progress: bool = True,
                 end_wait_s: float = 120.0,
                 tags_fn: Callable[[dict[str, Any]], Mapping[str, str]] | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.parent_run_id = parent_run_id
        self.params_fn = params_fn
        self.done_key = done_key
        self.metric = metric
        self.mode = mode
        self.system_metrics = system_metrics
        self.artifacts = artifacts
        self.progress = progress
        self.end_wait_s = end_wait_s  # at the end of a search: how long to wait for an unreachable store
        self.tags_fn = tags_fn  # a trial's config -> extra tags of its child run (a study's arm and seed)
        self._reset()

    def _reset(self) -> None:
        self.runs: dict[str, str] = {}  # trial name -> mlflow run id
        self.status: dict[str, str] = {}  # trial name -> xstilts.status
        self.best: tuple[float, str] | None = None
        self._opened: set[str] = set()  # trial names whose run this callback has (re)opened
        self._unrecorded: set[str] = set()  # children this callback created whose params are not written yet
        self._client: MlflowClient | None = None
        self._exp_id: str | None = None
        self._sampler: SystemSampler | None = None
        self._end_deadline: float | None = None
        self._queue = TrackingQueue(probe=lambda: store_answers(self.tracking_uri))
        if self.artifacts:  # pyplot's first import costs ~1-2 s: pay it on the writer, before any trial
            self._queue.submit("plotting warm-up", _warm_plotting)

    def __getstate__(self) -> dict[str, Any]:
        # Tune may pickle its callbacks with the experiment; clients, caches and the writer stay
        # behind and the run mapping is found again in the store (see ``_attach``).
        keep = ("tracking_uri", "experiment", "parent_run_id", "params_fn", "done_key", "metric", "mode",
                "system_metrics", "artifacts", "progress", "end_wait_s", "tags_fn")
        return {k: self.__dict__[k] for k in keep}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset()

    # ---- the queue

    def flush(self, timeout: float | None = None) -> bool:
        """Block until every write queued so far is in the store (at most ``timeout`` seconds);
        False if some are still waiting for the store."""
        return self._queue.flush(timeout)

    def finish(self) -> bool:
        """The end of a search: wait for the queue, ``end_wait_s`` at most in all however often this
        is called (Tune's ``on_experiment_end``, then the runner); False if writes are left."""
        if self._end_deadline is None:
            self._end_deadline = time.monotonic() + self.end_wait_s
        return self._queue.flush(max(0.0, self._end_deadline - time.monotonic()))

    @property
    def write_errors(self) -> int:
        """MLflow writes that failed and were dropped so far (each was logged as a warning)."""
        return self._queue.errors

    def pending(self) -> list[str]:
        """The writes not in the store yet, by trial ("t0003-...: result 2")."""
        return self._queue.pending()

    def tracking_report(self) -> dict[str, Any]:
        """How the writes went: errors (dropped), retries, outages, pending."""
        return self._queue.describe()

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        self.finish()

    def get_state(self) -> dict[str, Any] | None:
        """No state of our own for Tune's snapshot (the runs are found again in the store by trial
        name), and no waiting either: an unreachable store must not stall Tune's event loop."""
        return None

    # ---- Tune's hooks: snapshot now, write later (in order)

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        view = _TrialView.of(trial)
        self._queue.submit(f"{view.name}: start", lambda: self._run_for(view))

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any],
                        **info: Any) -> None:
        if result.get(REPLAYED):
            return  # a resumed trial handing Tune a result the store already has
        view, result = _TrialView.of(trial), dict(result)
        now = int(time.time() * 1000)
        system: dict[str, float] = {}
        if self.system_metrics:  # sampled now: the moment of the result, not of the write
            if self._sampler is None:
                self._sampler = SystemSampler()
            system = self._sampler.sample(result)
        self._queue.submit(f"{view.name}: result {result.get('training_iteration', '?')}",
                           lambda: self._log_result(view, result, system, now))

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        view, last = _TrialView.of(trial), dict(trial.last_result or {})
        self._queue.submit(f"{view.name}: end", lambda: self._complete(view, last))

    def on_trial_recover(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """A failed trial that Tune retries (``FailureConfig``): same run, the failure noted."""
        view, error = _TrialView.of(trial), trial_error_text(trial)[-5000:]
        self._queue.submit(f"{view.name}: retry", lambda: self._recover(view, error))

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        view, error = _TrialView.of(trial), trial_error_text(trial)[-5000:]
        self._queue.submit(f"{view.name}: failure", lambda: self._error(view, error))

    # ---- the writes (writer thread)

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            client = MlflowClient(self.tracking_uri)
            self._exp_id = experiment_id(client, self.experiment, self.tracking_uri)
            self._attach(client, self._exp_id)
            self._client = client  # only once attached: a failed attach is tried again with the write
        return self._client

    def _attach(self, client: MlflowClient, exp_id: str) -> None:
        """Find the child runs already under the parent (a resumed search), by trial name."""
        for name, run in trial_children(client, exp_id, self.parent_run_id).items():
            if name not in self.runs:
                self.runs[name] = str(run.info.run_id)
                self.status[name] = run.data.tags.get("xstilts.status", "running")
                v = run.data.metrics.get(self.metric)
                if self.status[name] == "completed" and v is not None:
                    self._note_best(float(v), name)

    def _note_best(self, value: float, name: str) -> None:
        if not math.isfinite(value):
            return
        sign = 1.0 if self.mode == "max" else -1.0
        if self.best is None or sign * value > sign * self.best[0]:
            self.best = (value, name)

    def _run_for(self, trial: _TrialView) -> str:
        """The trial's child run: known, found in the store, or created (with its params and plots)."""
        client, name = self.client, trial.name
        assert self._exp_id is not None
        if name not in self.runs:  # not there at attach; a create the store did but never confirmed?
            found = find_child(client, self._exp_id, self.parent_run_id, name)
            if found is None:
                extra = self.tags_fn(dict(trial.config)) if self.tags_fn else {}
                self.runs[name] = create_child(client, self._exp_id, self.parent_run_id, name, trial.trial_id,
                                               trial.config.get(NUMBER), extra)
                self._unrecorded.add(name)
                self._opened.add(name)
            else:
                self.runs[name] = str(found.info.run_id)
            self.status[name] = "running"
        run_id = self.runs[name]
        if name in self._unrecorded:
            try:
                params = dict(self.params_fn(dict(trial.config)))
            except Exception as e:  # never lose the run because a param could not be resolved
                params = {**trial.config, "xstilts.params_error": repr(e)}
            start_records(client, run_id, name, trial.config, params, self.artifacts)
            self._unrecorded.discard(name)
        elif name not in self._opened:
            self._reopen(run_id, trial.trial_id)
            self._opened.add(name)
        return run_id

    def _reopen(self, run_id: str, trial_id: str) -> None:
        """A run found in the store is this callback's from now on: RUNNING again if it had ended,
        tagged with the Ray trial that now runs it."""
        run = self.client.get_run(run_id)
        tags = run.data.tags
        self.client.set_tag(run_id, "xstilts.resumes", str(int(tags.get("xstilts.resumes", "0")) + 1))
        if run.info.status != RunStatus.to_string(RunStatus.RUNNING):
            self.client.update_run(run_id, status="RUNNING")
        if tags.get("xstilts.status") != "running":
            self.client.set_tag(run_id, "xstilts.status", "running")
        if tags.get("ray.trial_id") != trial_id:
            self.client.set_tag(run_id, "ray.trial_id", trial_id)
        for t, r in self.runs.items():
            if r == run_id:
                self.status[t] = "running"

    def _log_result(self, trial: _TrialView, result: dict[str, Any], system: dict[str, float], now: int) -> None:
        run_id = self._run_for(trial)
        step = int(result.get("training_iteration", 0))
        metrics = result_metrics(result, step, now) + [Metric(k, v, now, step) for k, v in system.items() if finite(v)]
        if metrics:
            self.client.log_batch(run_id, metrics=metrics)

    def _complete(self, trial: _TrialView, last: dict[str, Any]) -> None:
        run_id = self._run_for(trial)
        status = "completed" if last.get(self.done_key) else "pruned"
        end_records(self.client, run_id, trial.name, status, last, artifacts=self.artifacts)
        self.status[trial.name] = status
        value = last.get(self.metric)
        if status == "completed" and finite(value):
            self._note_best(float(last[self.metric]), trial.name)
        self._print_progress(trial.name, status, value)

    def _recover(self, trial: _TrialView, error: str) -> None:
        run_id = self._run_for(trial)
        tags = self.client.get_run(run_id).data.tags
        self.client.set_tag(run_id, "xstilts.retries", str(int(tags.get("xstilts.retries", "0")) + 1))
        self.client.set_tag(run_id, "xstilts.last_error", error)

    def _error(self, trial: _TrialView, error: str) -> None:
        run_id = self._run_for(trial)
        end_records(self.client, run_id, trial.name, "failed", {}, error, artifacts=self.artifacts)
        self.status[trial.name] = "failed"
        self._print_progress(trial.name, "failed", None)

    def _print_progress(self, name: str, status: str, value: Any) -> None:
        """One line per finished trial, so ``xstilts search`` shows where the search stands."""
        if not self.progress:
            return
        counts = {s: 0 for s in ("completed", "pruned", "failed", "running")}
        for s in self.status.values():
            counts[s] = counts.get(s, 0) + 1
        score = f" {self.metric}={float(value):.4f}" if finite(value) else ""
        best = f"; best {self.best[0]:.4f} ({self.best[1]})" if self.best else ""
        print(f"[xstilts] trial {name} {status}{score}{best} | {counts['completed']} completed, "
              f"{counts['pruned']} pruned, {counts['failed']} failed, {counts['running']} running", flush=True)


def _warm_plotting() -> None:
    from . import plots  # noqa: F401  (Agg backend + pyplot)


def trial_error_text(trial: Any) -> str:
    """A failed Ray trial's error: its error file, else its error message."""
    path = getattr(trial, "error_file", None)
    try:
        if path:
            with open(path) as f:
                return f.read()
    except OSError:
        pass
    return str(getattr(trial, "error_msg", "") or "trial failed (no error file)")
