"""MLflow: one parent run per search, one nested child run per Ray trial.

Ray's own ``MLflowLoggerCallback`` makes no nested runs (ray-project/ray#19978), so this
callback writes them itself with ``MlflowClient``, from the driver only — SQLite takes one
writer at a time, and trials on other nodes need not reach the tracking store.

Contract (read back by the tests):

* experiment = the search name; parent run tagged ``xstilts.kind=search`` with params
  ``space_file``, ``searcher``, ``scheduler``, budget;
* child run per trial: tags ``mlflow.parentRunId``, ``xstilts.kind=trial``, ``ray.trial_id``,
  ``xstilts.status`` (running / completed / pruned / failed, with ``xstilts.error``);
  params: every sampled dimension flattened and the fixed ones; metrics: everything the
  trainer reports with a ``/`` in its name (``zero_shot/avg``, ``zero_shot/<task>/<lang>``,
  ``en/<task>``, ``train/loss`` ...), stepped by Ray's ``training_iteration``.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from ray.tune import Callback

__all__ = ["MLflowTrialsCallback", "start_search_run", "finish_search_run", "flatten_params", "redact"]

_SECRET = re.compile(r"(token|password|passwd|secret|api[_-]?key|credential)", re.I)
_URI_CRED = re.compile(r"(://[^/:@\s]+:)[^@/\s]+@")


def redact(key: str, value: Any) -> str:
    """Secrets never become params: token-like keys are masked, passwords in URIs removed."""
    if _SECRET.search(key):
        return "***"
    return _URI_CRED.sub(r"\1***@", str(value))[:6000]


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


def _experiment_id(client: MlflowClient, name: str) -> str:
    exp = client.get_experiment_by_name(name)
    return exp.experiment_id if exp else client.create_experiment(name)


def start_search_run(tracking_uri: str, experiment: str, run_name: str, params: Mapping[str, Any]) -> str:
    """Create the parent run of a search; returns its run id."""
    client = MlflowClient(tracking_uri)
    run = client.create_run(_experiment_id(client, experiment), run_name=run_name,
                            tags={"xstilts.kind": "search", "xstilts.search": run_name})
    client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in flatten_params(params).items()])
    return str(run.info.run_id)


def finish_search_run(tracking_uri: str, run_id: str, metrics: Mapping[str, float], tags: Mapping[str, str],
                      status: str = "FINISHED") -> None:
    client = MlflowClient(tracking_uri)
    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items() if _finite(v)],
                     tags=[RunTag(k, redact(k, v)) for k, v in tags.items()])
    client.set_terminated(run_id, status=status)


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


class MLflowTrialsCallback(Callback):
    """Ray Tune callback writing one nested MLflow child run per trial (driver side)."""

    def __init__(self, tracking_uri: str, experiment: str, parent_run_id: str,
                 params_fn: Callable[[dict[str, Any]], Mapping[str, Any]] = dict,
                 done_key: str = "trial_done") -> None:
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.parent_run_id = parent_run_id
        self.params_fn = params_fn
        self.done_key = done_key
        self.runs: dict[str, str] = {}  # ray trial id -> mlflow run id
        self._client: MlflowClient | None = None
        self._exp_id: str | None = None

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = MlflowClient(self.tracking_uri)
            self._exp_id = _experiment_id(self._client, self.experiment)
        return self._client

    def _run_for(self, trial: Any) -> str:
        if trial.trial_id in self.runs:
            return self.runs[trial.trial_id]
        client = self.client
        assert self._exp_id is not None
        run = client.create_run(self._exp_id, run_name=str(trial), tags={
            "mlflow.parentRunId": self.parent_run_id,
            "xstilts.kind": "trial",
            "ray.trial_id": trial.trial_id,
            "xstilts.status": "running",
        })
        run_id = str(run.info.run_id)
        self.runs[trial.trial_id] = run_id
        try:
            params = self.params_fn(dict(trial.config))
        except Exception as e:  # never lose the run because a param could not be resolved
            params = {**trial.config, "xstilts.params_error": repr(e)}
        client.log_batch(run_id, params=[Param(k, v) for k, v in flatten_params(params).items()])
        return run_id

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._run_for(trial)

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any],
                        **info: Any) -> None:
        run_id = self._run_for(trial)
        step = int(result.get("training_iteration", 0))
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, step) for k, v in result.items() if "/" in k and _finite(v)]
        if _finite(result.get("time_total_s")):
            metrics.append(Metric("ray/time_total_s", float(result["time_total_s"]), now, step))
        if metrics:
            self.client.log_batch(run_id, metrics=metrics)

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        run_id = self._run_for(trial)
        last = trial.last_result or {}
        status = "completed" if last.get(self.done_key) else "pruned"
        self.client.set_tag(run_id, "xstilts.status", status)
        self.client.set_terminated(run_id, status="FINISHED")

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        run_id = self._run_for(trial)
        self.client.set_tag(run_id, "xstilts.status", "failed")
        self.client.set_tag(run_id, "xstilts.error", _error_text(trial)[-5000:])
        self.client.set_terminated(run_id, status="FAILED")


def _error_text(trial: Any) -> str:
    path = getattr(trial, "error_file", None)
    try:
        if path:
            with open(path) as f:
                return f.read()
    except OSError:
        pass
    return str(getattr(trial, "error_msg", "") or "trial failed (no error file)")
