"""MLflow: one parent run per search, one nested child run per Ray trial.

Ray's own ``MLflowLoggerCallback`` makes no nested runs (ray-project/ray#19978), so this
callback writes them itself with ``MlflowClient``, from the driver only — SQLite takes one
writer at a time, and trials on other nodes need not reach the tracking store.

Contract (read back by the tests):

* experiment = the search name; parent run tagged ``xstilts.kind=search`` and
  ``xstilts.search=<run name>``, with params ``space_file``, ``searcher``, ``scheduler``, budget
  (a study's parent: ``xstilts.kind=study`` and ``xstilts.study=<run name>``);
* child run per trial: tags ``mlflow.parentRunId``, ``xstilts.kind=trial``, ``ray.trial_id``,
  ``xstilts.status`` (running / completed / pruned / failed, with ``xstilts.error``), and those
  ``tags_fn`` gives (a study's children: ``xstilts.arm``, ``xstilts.seed``);
  params: every sampled dimension flattened and the fixed ones; metrics: everything the
  trainer reports with a ``/`` in its name (``zero_shot/avg``, ``zero_shot/<task>/<lang>``,
  ``en/<task>``, ``train/loss`` ...), stepped by Ray's ``training_iteration``, plus
  ``ray/time_total_s`` and ``system/*`` (see ``sysmetrics``);
* child artifacts: ``config/trial_config.yaml`` (the resolved trial config and the point as
  sampled), ``plots/mixture_schedule.png`` (sampling rates over steps),
  ``plots/zero_shot_by_language.png`` (final per-language scores);
* resume: a callback constructed again on the same parent re-attaches to the child runs it
  finds by tag ``ray.trial_id`` (one child run per trial, however often the search resumes);
  a re-opened run is set RUNNING again and counts ``xstilts.resumes``; a trial that Tune
  retries after a failure keeps its run, which counts ``xstilts.retries`` and keeps the
  failure in ``xstilts.last_error``.

Writes happen off Tune's event loop: the callback snapshots what it needs from the trial when
Tune calls it and hands the MLflow calls (SQLite writes, plots) to one background thread, in
order. Tune's loop only queues (microseconds instead of ~0.3 s per trial and ~2 s for the first
plot, during which no trial was started and no running trial got its next step). ``flush()``
waits for the queue; Tune's ``on_experiment_end`` and the runner call it, so the store is
complete when ``Tuner.fit`` returns, and so does ``get_state``, which Tune calls at each
experiment snapshot: the store never lags what a ``--resume`` would restore. A failed write is logged and counted (``write_errors``),
never raised into Tune: tracking must not stop a search.

With a SQLite store, experiments keep their artifacts beside the database
(``<db folder>/mlartifacts``), not in ``./mlruns`` of whatever folder the search ran from.
"""

from __future__ import annotations

import logging
import math
import queue
import re
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import yaml
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.tracking import MlflowClient
from ray.tune import Callback

from xstilts.trainer.names import OBJECTIVE, TRIAL_DONE

from .sysmetrics import SystemSampler

__all__ = ["MLflowTrialsCallback", "start_search_run", "finish_search_run", "find_search_run_id",
           "reopen_search_run", "flatten_params", "redact", "resolved_trial_config", "artifact_root_for"]

log = logging.getLogger(__name__)

_SECRET = re.compile(r"(token|password|passwd|secret|api[_-]?key|credential|private[_-]?key|access[_-]?key)", re.I)
_URI_CRED = re.compile(r"(://[^/:@\s]+:)[^@/\s]+@")
_URI_TOKEN = re.compile(r"([?&](?:[^=&\s]*(?:token|password|secret|key|sig|signature|credential)[^=&\s]*)=)[^&\s]+",
                        re.I)


def redact(key: str, value: Any) -> str:
    """Secrets never become params: token-like keys are masked, passwords in URIs removed
    (``scheme://user:***@host``), token-like query parameters masked; values capped at 6000 chars."""
    if _SECRET.search(key):
        return "***"
    text = _URI_CRED.sub(r"\1***@", str(value))
    return _URI_TOKEN.sub(r"\1***", text)[:6000]


def flatten_params(d: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten_params(v, key + "."))
        elif isinstance(v, list | tuple):
            out[key] = redact(key, ",".join(map(str, v)))
        else:
            out[key] = redact(key, v)
    return out


def _redact_tree(d: Any, key: str = "") -> Any:
    if isinstance(d, Mapping):
        return {k: _redact_tree(v, str(k)) for k, v in d.items()}
    if isinstance(d, list | tuple):
        return [_redact_tree(v, key) for v in d]
    if isinstance(d, str) or (key and _SECRET.search(key)):
        return redact(key, d)
    return d


def artifact_root_for(tracking_uri: str) -> str | None:
    """Where a new experiment keeps its artifacts: beside a SQLite database, else the store's default."""
    if not tracking_uri.startswith("sqlite:"):
        return None
    path = unquote(urlparse(tracking_uri).path)
    if not path or path == "/:memory:":
        return None
    return (Path(path).resolve().parent / "mlartifacts").as_uri()


def _experiment_id(client: MlflowClient, name: str, tracking_uri: str) -> str:
    exp = client.get_experiment_by_name(name)
    if exp:
        return str(exp.experiment_id)
    try:
        return str(client.create_experiment(name, artifact_location=artifact_root_for(tracking_uri)))
    except Exception:  # created meanwhile by another process
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return str(exp.experiment_id)


def start_search_run(tracking_uri: str, experiment: str, run_name: str, params: Mapping[str, Any],
                     kind: str = "search") -> str:
    """Create the parent run of a search (``kind`` "study": of a study); returns its run id. Tagged
    ``xstilts.kind=<kind>`` and ``xstilts.<kind>=<run name>``."""
    client = MlflowClient(tracking_uri)
    run = client.create_run(_experiment_id(client, experiment, tracking_uri), run_name=run_name,
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
    client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items() if _finite(v)],
                     tags=[RunTag(k, redact(k, v)) for k, v in tags.items()])
    client.set_terminated(run_id, status=status)


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def resolved_trial_config(params: Mapping[str, Any]) -> dict[str, Any]:
    """The full ``TrialConfig`` (defaults filled in) a trial with these params runs, as plain data.

    ``params`` is what the search logs for a trial (sampled dimensions with ``tasks.*``/``ratio.*``,
    plus the fixed settings); raises ``ValueError`` if they do not make a valid config."""
    from .plots import trial_config_of

    return trial_config_of(params).model_dump(mode="json")


@dataclass(frozen=True)
class _TrialView:
    """What the writer needs of a Ray trial, taken when Tune calls: the trial object moves on."""

    trial_id: str
    name: str
    config: dict[str, Any]

    @classmethod
    def of(cls, trial: Any) -> _TrialView:
        return cls(str(trial.trial_id), str(trial), dict(trial.config or {}))


class _Writer:
    """One daemon thread running submitted calls in order; errors are logged and counted."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Callable[[], object]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.errors = 0

    def submit(self, fn: Callable[[], object]) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="xstilts-mlflow-writer", daemon=True)
                self._thread.start()
        self._queue.put(fn)

    def _loop(self) -> None:
        while True:
            fn = self._queue.get()
            try:
                fn()
            except Exception as e:  # tracking must never stop the search
                self.errors += 1
                log.warning("xstilts: an MLflow write failed (%s: %s); the search goes on", type(e).__name__, e,
                            exc_info=log.isEnabledFor(logging.DEBUG))
            finally:
                self._queue.task_done()

    def flush(self) -> None:
        """Wait until every submitted call has run."""
        self._queue.join()


class MLflowTrialsCallback(Callback):
    """Ray Tune callback writing one nested MLflow child run per trial (driver side, from a
    background writer thread; see the module docstring)."""

    def __init__(self, tracking_uri: str, experiment: str, parent_run_id: str,
                 params_fn: Callable[[dict[str, Any]], Mapping[str, Any]] = dict,
                 done_key: str = TRIAL_DONE, metric: str = OBJECTIVE, mode: str = "max",
                 system_metrics: bool = True, artifacts: bool = True, progress: bool = True,
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
        self.tags_fn = tags_fn  # a trial's config -> extra tags of its child run (a study's arm and seed)
        self._reset()

    def _reset(self) -> None:
        self.runs: dict[str, str] = {}  # ray trial id -> mlflow run id
        self.status: dict[str, str] = {}  # ray trial id -> xstilts.status
        self.best: tuple[float, str] | None = None
        self._opened: set[str] = set()  # trial ids whose run this callback has (re)opened
        self._client: MlflowClient | None = None
        self._exp_id: str | None = None
        self._sampler: SystemSampler | None = None
        self._writer = _Writer()
        if self.artifacts:  # pyplot's first import costs ~1-2 s: pay it on the writer, before any trial
            self._writer.submit(_warm_plotting)

    def __getstate__(self) -> dict[str, Any]:
        # Tune may pickle its callbacks with the experiment; clients, caches and the writer stay
        # behind and the run mapping is found again in the store (see ``_attach``).
        keep = ("tracking_uri", "experiment", "parent_run_id", "params_fn", "done_key", "metric", "mode",
                "system_metrics", "artifacts", "progress", "tags_fn")
        return {k: self.__dict__[k] for k in keep}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset()

    # ---- the queue

    def flush(self) -> None:
        """Block until every write queued so far is in the store."""
        self._writer.flush()

    @property
    def write_errors(self) -> int:
        """MLflow writes that failed so far (each was logged as a warning)."""
        return self._writer.errors

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        self.flush()

    def get_state(self) -> dict[str, Any] | None:
        """Tune asks for this when it snapshots the experiment (what ``--resume`` restores from):
        the store must hold every trial the snapshot holds as finished, or a driver killed right
        after the snapshot would leave runs "running" that the resumed search never revisits. So
        wait for the queue here; no state of our own (the runs are found again in the store)."""
        self.flush()
        return None

    # ---- Tune's hooks: snapshot now, write later (in order)

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        view = _TrialView.of(trial)
        self._writer.submit(lambda: self._run_for(view))

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any],
                        **info: Any) -> None:
        view, result = _TrialView.of(trial), dict(result)
        now = int(time.time() * 1000)
        system: dict[str, float] = {}
        if self.system_metrics:  # sampled now: the moment of the result, not of the write
            if self._sampler is None:
                self._sampler = SystemSampler()
            system = self._sampler.sample(result)
        self._writer.submit(lambda: self._log_result(view, result, system, now))

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        view, last = _TrialView.of(trial), dict(trial.last_result or {})
        self._writer.submit(lambda: self._complete(view, last))

    def on_trial_recover(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """A failed trial that Tune retries (``FailureConfig``): same run, the failure noted."""
        view, error = _TrialView.of(trial), _error_text(trial)[-5000:]
        self._writer.submit(lambda: self._recover(view, error))

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        view, error = _TrialView.of(trial), _error_text(trial)[-5000:]
        self._writer.submit(lambda: self._error(view, error))

    # ---- the writes (writer thread)

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = MlflowClient(self.tracking_uri)
            self._exp_id = _experiment_id(self._client, self.experiment, self.tracking_uri)
            self._attach()
        return self._client

    def _attach(self) -> None:
        """Find the child runs already under the parent (a resumed search), by ``ray.trial_id``."""
        assert self._client is not None and self._exp_id is not None
        token: str | None = None
        while True:
            page = self._client.search_runs([self._exp_id],
                                            filter_string=f"tags.mlflow.parentRunId = '{self.parent_run_id}'",
                                            order_by=["attributes.start_time ASC"], max_results=1000,
                                            page_token=token)
            for run in page:
                tid = run.data.tags.get("ray.trial_id")
                if tid and tid not in self.runs:  # the oldest wins, should an older bug have made two
                    self.runs[tid] = str(run.info.run_id)
                    self.status[tid] = run.data.tags.get("xstilts.status", "running")
                    v = run.data.metrics.get(self.metric)
                    if self.status[tid] == "completed" and v is not None:
                        self._note_best(float(v), run.info.run_name or tid)
            token = page.token
            if not token:
                return

    def _note_best(self, value: float, name: str) -> None:
        if not math.isfinite(value):
            return
        sign = 1.0 if self.mode == "max" else -1.0
        if self.best is None or sign * value > sign * self.best[0]:
            self.best = (value, name)

    def _run_for(self, trial: _TrialView) -> str:
        client = self.client
        tid = trial.trial_id
        if tid in self.runs:
            run_id = self.runs[tid]
            if tid not in self._opened:
                self._opened.add(tid)
                self._reopen(run_id)
            return run_id
        assert self._exp_id is not None
        run = client.create_run(self._exp_id, run_name=trial.name, tags={
            "mlflow.parentRunId": self.parent_run_id,
            "xstilts.kind": "trial",
            "ray.trial_id": tid,
            "xstilts.status": "running",
            **(self.tags_fn(dict(trial.config)) if self.tags_fn else {}),
        })
        run_id = str(run.info.run_id)
        self.runs[tid] = run_id
        self.status[tid] = "running"
        self._opened.add(tid)
        try:
            params = dict(self.params_fn(dict(trial.config)))
        except Exception as e:  # never lose the run because a param could not be resolved
            params = {**trial.config, "xstilts.params_error": repr(e)}
        client.log_batch(run_id, params=[Param(k, v) for k, v in flatten_params(params).items()])
        if self.artifacts:
            self._trial_start_artifacts(run_id, trial.name, dict(trial.config), params)
        return run_id

    def _reopen(self, run_id: str) -> None:
        """A run found in the store is this callback's from now on: RUNNING again if it had ended."""
        run = self.client.get_run(run_id)
        tags = run.data.tags
        self.client.set_tag(run_id, "xstilts.resumes", str(int(tags.get("xstilts.resumes", "0")) + 1))
        if run.info.status != RunStatus.to_string(RunStatus.RUNNING):
            self.client.update_run(run_id, status="RUNNING")
        if tags.get("xstilts.status") != "running":
            self.client.set_tag(run_id, "xstilts.status", "running")
        for t, r in self.runs.items():
            if r == run_id:
                self.status[t] = "running"

    def _trial_start_artifacts(self, run_id: str, name: str, config: dict[str, Any], params: Mapping[str, Any]) -> None:
        from .plots import plot_mixture_schedule

        doc: dict[str, Any] = {"trial": name}
        try:
            doc["trial_config"] = resolved_trial_config(params)
        except Exception as e:
            doc["trial_config_error"] = str(e)
        doc["sampled"] = {k: v for k, v in config.items()}
        doc["params"] = dict(params)
        try:
            self.client.log_text(run_id, yaml.safe_dump(_redact_tree(doc), sort_keys=False),
                                 "config/trial_config.yaml")
            self._log_figure(run_id, lambda: plot_mixture_schedule(params, title=f"{name}: sampling rates over steps"),
                             "plots/mixture_schedule.png")
        except Exception as e:  # a plot must never fail a trial's record
            log.warning("xstilts: trial artifacts for %s not logged: %s", name, e)

    def _log_figure(self, run_id: str, make: Callable[[], Any], path: str) -> None:
        """Draw a matplotlib figure, log it as a PNG artifact, and close it."""
        import matplotlib.pyplot as plt

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fig = make()
            try:
                self.client.log_figure(run_id, fig, path, save_kwargs={"bbox_inches": "tight", "dpi": 110})
            finally:
                plt.close(fig)

    def _final_artifacts(self, run_id: str, name: str, metrics: Mapping[str, Any]) -> None:
        from .plots import plot_zero_shot, zero_shot_scores

        finite = {k: float(v) for k, v in metrics.items() if "/" in k and _finite(v)}
        if not zero_shot_scores(finite):
            return
        try:
            self._log_figure(run_id, lambda: plot_zero_shot(finite, title=f"{name}: zero-shot scores per language"),
                             "plots/zero_shot_by_language.png")
        except Exception as e:
            log.warning("xstilts: zero-shot plot for %s not logged: %s", name, e)

    def _log_result(self, trial: _TrialView, result: dict[str, Any], system: dict[str, float], now: int) -> None:
        run_id = self._run_for(trial)
        step = int(result.get("training_iteration", 0))
        metrics = [Metric(k, float(v), now, step) for k, v in result.items() if "/" in k and _finite(v)]
        if _finite(result.get("time_total_s")):
            metrics.append(Metric("ray/time_total_s", float(result["time_total_s"]), now, step))
        metrics += [Metric(k, v, now, step) for k, v in system.items() if _finite(v)]
        if metrics:
            self.client.log_batch(run_id, metrics=metrics)

    def _complete(self, trial: _TrialView, last: dict[str, Any]) -> None:
        run_id = self._run_for(trial)
        status = "completed" if last.get(self.done_key) else "pruned"
        if self.artifacts:
            self._final_artifacts(run_id, trial.name, last)
        self.client.set_tag(run_id, "xstilts.status", status)
        self.client.set_terminated(run_id, status="FINISHED")
        self.status[trial.trial_id] = status
        value = last.get(self.metric)
        if status == "completed" and _finite(value):
            self._note_best(float(last[self.metric]), trial.name)
        self._print_progress(trial.name, status, value)

    def _recover(self, trial: _TrialView, error: str) -> None:
        run_id = self._run_for(trial)
        tags = self.client.get_run(run_id).data.tags
        self.client.set_tag(run_id, "xstilts.retries", str(int(tags.get("xstilts.retries", "0")) + 1))
        self.client.set_tag(run_id, "xstilts.last_error", error)

    def _error(self, trial: _TrialView, error: str) -> None:
        run_id = self._run_for(trial)
        self.client.set_tag(run_id, "xstilts.status", "failed")
        self.client.set_tag(run_id, "xstilts.error", error)
        self.client.set_terminated(run_id, status="FAILED")
        self.status[trial.trial_id] = "failed"
        self._print_progress(trial.name, "failed", None)

    def _print_progress(self, name: str, status: str, value: Any) -> None:
        """One line per finished trial, so ``xstilts search`` shows where the search stands."""
        if not self.progress:
            return
        counts = {s: 0 for s in ("completed", "pruned", "failed", "running")}
        for s in self.status.values():
            counts[s] = counts.get(s, 0) + 1
        score = f" {self.metric}={float(value):.4f}" if _finite(value) else ""
        best = f"; best {self.best[0]:.4f} ({self.best[1]})" if self.best else ""
        print(f"[xstilts] trial {name} {status}{score}{best} | {counts['completed']} completed, "
              f"{counts['pruned']} pruned, {counts['failed']} failed, {counts['running']} running", flush=True)


def _warm_plotting() -> None:
    from . import plots  # noqa: F401  (Agg backend + pyplot)


def _error_text(trial: Any) -> str:
    path = getattr(trial, "error_file", None)
    try:
        if path:
            with open(path) as f:
                return f.read()
    except OSError:
        pass
    return str(getattr(trial, "error_msg", "") or "trial failed (no error file)")
