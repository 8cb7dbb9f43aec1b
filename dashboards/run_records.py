"""What a search writes into the tracking store, and how: redacted params, the experiment, and one
child run per trial under the search's parent run.

    trial starts  ─► child_for(name): the child tagged xstilts.trial=<name> under the parent, or a new one
                     ─► start_records: params (every sampled dimension, redacted), config YAML, mixture plot
    trial reports ─► result_metrics: every metric with a "/" in its name, stepped by Tune's iteration
    trial ends    ─► end_records: the zero-shot plot, xstilts.status (completed / pruned / failed), run status
                     (FINISHED / KILLED / FAILED: a pruned trial shows as killed, with where it stopped)

A child is found by its trial name (``t0007-...``: the Optuna trial number and what it tries), so the
same trial keeps one child however often it starts: retried by Tune, resumed in a new driver, or
replayed by ``xstilts sync``. Creating a child looks for it first, so a create that the store
carried out but did not confirm (an outage mid-request) and is then tried again makes no second one.
The driver's callback (``mlflow_logging``) writes these live; ``xstilts sync`` writes what is missing.
"""

from __future__ import annotations

import logging
import math
import re
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import yaml
from mlflow.entities import Metric, Param, Run
from mlflow.tracking import MlflowClient

from .mlflow_view import (
    EXPERIMENT_KIND_TAG,
    MODEL_TRAINING,
    NOTE_TAG,
    STOPPED_AT_TAG,
    format_param,
    mark_model_training,
    stopped_at,
)

__all__ = ["TRIAL_TAG", "redact", "flatten_params", "redact_tree", "artifact_root_for", "experiment_id", "finite",
           "resolved_trial_config", "trial_children", "find_child", "create_child", "start_records",
           "result_metrics", "end_records", "final_plot_expected", "START_ARTIFACTS", "FINAL_PLOT"]

log = logging.getLogger(__name__)

TRIAL_TAG = "xstilts.trial"  # a child run's trial name: how a resumed search and `xstilts sync` find it
START_ARTIFACTS = ("config/trial_config.yaml", "plots/mixture_schedule.png")  # logged when a child is created
FINAL_PLOT = "plots/zero_shot_by_language.png"  # logged when a trial with zero-shot scores ends

_RUN_STATUS = {"completed": "FINISHED", "pruned": "KILLED", "failed": "FAILED"}  # MLflow's run status, shown in its table
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
    """Params as MLflow keeps them: nested keys dotted, lists comma-joined, floats to 4 significant
    digits (``format_param``: the full values are in the trial's config artifact), secrets redacted."""
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten_params(v, key + "."))
        elif isinstance(v, list | tuple):
            out[key] = redact(key, ",".join(map(str, v)))
        else:
            out[key] = redact(key, format_param(v))
    return out


def redact_tree(d: Any, key: str = "") -> Any:
    if isinstance(d, Mapping):
        return {k: redact_tree(v, str(k)) for k, v in d.items()}
    if isinstance(d, list | tuple):
        return [redact_tree(v, key) for v in d]
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


def experiment_id(client: MlflowClient, name: str, tracking_uri: str) -> str:
    """The id of experiment ``name``, created (artifacts beside a SQLite store) if missing; either way
    tagged as model training, so MLflow's UI shows its runs table (``mlflow_view``)."""
    exp = client.get_experiment_by_name(name)
    if exp:
        mark_model_training(client, str(exp.experiment_id), exp.tags)
        return str(exp.experiment_id)
    try:
        exp_id = str(client.create_experiment(name, artifact_location=artifact_root_for(tracking_uri),
                                              tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING}))
    except Exception:  # created meanwhile by another process
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        exp_id = str(exp.experiment_id)
    return exp_id


def finite(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def resolved_trial_config(params: Mapping[str, Any]) -> dict[str, Any]:
    """The full ``TrialConfig`` (defaults filled in) a trial with these params runs, as plain data.

    ``params`` is what the search logs for a trial (sampled dimensions with ``tasks.*``/``ratio.*``,
    plus the fixed settings); raises ``ValueError`` if they do not make a valid config."""
    from .plots import trial_config_of

    return trial_config_of(params).model_dump(mode="json")


def _quoted(s: str) -> str:
    return s.replace("\\", "\\\\").replace("'", "\\'")


def _children_page(client: MlflowClient, exp_id: str, where: str) -> list[Run]:
    runs: list[Run] = []
    token: str | None = None
    while True:
        page = client.search_runs([exp_id], filter_string=where, order_by=["attributes.start_time ASC"],
                                  max_results=1000, page_token=token)
        runs += list(page)
        token = page.token
        if not token:
            return runs


def trial_children(client: MlflowClient, exp_id: str, parent_id: str) -> dict[str, Run]:
    """The child runs of ``parent_id`` by trial name (tag ``xstilts.trial``, else the run's name); the
    oldest wins, should a store hold two."""
    out: dict[str, Run] = {}
    for run in _children_page(client, exp_id, f"tags.mlflow.parentRunId = '{parent_id}'"):
        name = run.data.tags.get(TRIAL_TAG) or run.info.run_name
        if name and name not in out:
            out[name] = run
    return out


def find_child(client: MlflowClient, exp_id: str, parent_id: str, name: str) -> Run | None:
    """The child run of trial ``name`` under ``parent_id``, or None."""
    for where in (f"tags.`{TRIAL_TAG}` = '{_quoted(name)}'", f"attributes.run_name = '{_quoted(name)}'"):
        runs = client.search_runs([exp_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}' and {where}",
                                  order_by=["attributes.start_time ASC"], max_results=1)
        if runs:
            return runs[0]
    return None


def create_child(client: MlflowClient, exp_id: str, parent_id: str, name: str, trial_id: str,
                 number: Any = None, extra_tags: Mapping[str, str] | None = None) -> str:
    """A new child run for trial ``name`` (tags: parent, kind, trial name and number, Ray id, status,
    and ``extra_tags``)."""
    tags = {"mlflow.parentRunId": parent_id, "xstilts.kind": "trial", TRIAL_TAG: name, "ray.trial_id": trial_id,
            "xstilts.status": "running", **(extra_tags or {})}
    if number is not None:
        tags["xstilts.trial_number"] = str(number)
    return str(client.create_run(exp_id, run_name=name, tags=tags).info.run_id)


def start_records(client: MlflowClient, run_id: str, name: str, config: Mapping[str, Any],
                  params: Mapping[str, Any], artifacts: bool = True, only: tuple[str, ...] = START_ARTIFACTS) -> None:
    """A child's params and, with ``artifacts``, those of ``START_ARTIFACTS`` named in ``only``."""
    flat = flatten_params(params)
    have = client.get_run(run_id).data.params
    missing = [Param(k, v) for k, v in flat.items() if k not in have]
    for i in range(0, len(missing), 100):  # MLflow takes at most 100 params a batch
        client.log_batch(run_id, params=missing[i:i + 100])
    if not artifacts:
        return
    from .plots import plot_mixture_schedule

    doc: dict[str, Any] = {"trial": name}
    try:
        doc["trial_config"] = resolved_trial_config(params)
    except Exception as e:
        doc["trial_config_error"] = str(e)
    doc["sampled"] = dict(config)
    doc["params"] = dict(params)
    if START_ARTIFACTS[0] in only:
        client.log_text(run_id, yaml.safe_dump(redact_tree(doc), sort_keys=False), START_ARTIFACTS[0])
    if START_ARTIFACTS[1] in only:
        _log_figure(client, run_id, lambda: plot_mixture_schedule(params, title=f"{name}: sampling rates over steps"),
                    START_ARTIFACTS[1], name)


def _log_figure(client: MlflowClient, run_id: str, make: Callable[[], Any], path: str, name: str) -> None:
    """Draw a matplotlib figure, log it as a PNG artifact, and close it; a plot that cannot be drawn
    is a warning (a plot must never fail a trial's record), one the store does not take raises."""
    import matplotlib.pyplot as plt

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fig = make()
        except Exception as e:
            log.warning("xstilts: %s for %s not drawn: %s", path, name, e)
            return
        try:
            client.log_figure(run_id, fig, path, save_kwargs={"bbox_inches": "tight", "dpi": 110})
        finally:
            plt.close(fig)


def result_metrics(result: Mapping[str, Any], step: int, now: int) -> list[Metric]:
    """A result's metrics for the store: every finite value with a "/" in its name, and Ray's time."""
    metrics = [Metric(k, float(v), now, step) for k, v in result.items() if "/" in k and finite(v)]
    if finite(result.get("time_total_s")):
        metrics.append(Metric("ray/time_total_s", float(result["time_total_s"]), now, step))
    return metrics


def final_plot_expected(last: Mapping[str, Any]) -> bool:
    """Whether a trial that ended with ``last`` gets the zero-shot plot (it has per-language scores)."""
    from .plots import zero_shot_scores

    return bool(zero_shot_scores({k: float(v) for k, v in last.items() if "/" in k and finite(v)}))


def end_records(client: MlflowClient, run_id: str, name: str, status: str, last: Mapping[str, Any],
                error: str = "", artifacts: bool = True) -> None:
    """A child's end: the zero-shot plot (with ``artifacts``, when it has scores), its status and error."""
    from .plots import plot_zero_shot

    scores = {k: float(v) for k, v in last.items() if "/" in k and finite(v)}
    if artifacts and status != "failed" and final_plot_expected(last):
        _log_figure(client, run_id, lambda: plot_zero_shot(scores, title=f"{name}: zero-shot scores per language"),
                    FINAL_PLOT, name)
    client.set_tag(run_id, "xstilts.status", status)
    if status == "failed":
        client.set_tag(run_id, "xstilts.error", error[-5000:] or "trial failed")
    if status == "pruned":
        _note_pruned(client, run_id, last)
    client.set_terminated(run_id, status=_RUN_STATUS.get(status, "FINISHED"))


def _note_pruned(client: MlflowClient, run_id: str, last: Mapping[str, Any]) -> None:
    """Say on a pruned trial's run where it stopped (tag and description): its scores are early ones."""
    where = stopped_at(last, client.get_run(run_id).data.params)
    if where:
        client.set_tag(run_id, STOPPED_AT_TAG, where)
    client.set_tag(run_id, NOTE_TAG, f"**Pruned**: stopped early{' at ' + where if where else ''}. Its scores are "
                   "from then, not final ones; it is not ranked with the completed trials.")
