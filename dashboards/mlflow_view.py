"""What the MLflow UI opens on: the model-training runs table, a saved view of a search's trials
ranked by the objective, the winner in the parent run's description, values a person can read.

How MLflow 3.17's web UI decides these (read in its bundled frontend, ``mlflow/server/js``):

* **Model training or GenAI.** The experiment page shows one or the other by the URL parameter
  ``workflowType`` (``machine_learning`` / ``genai``), else by the browser's last choice, GenAI at
  first. The experiment tag ``mlflow.experimentKind`` = ``custom_model_development`` marks an
  experiment as model training (its experiment list filters by it), so every link here carries
  ``workflowType=machine_learning`` and every search's experiment carries the tag.
* **A saved view.** An experiment tag ``mlflow.sharedViewState.<key>`` holding
  ``{"name", "createdAt", "updatedAt", "state"}``, ``state`` the JSON text of the runs table's search
  facets (``searchFilter``, ``orderByKey``, ``orderByAsc``) and display state (``selectedColumns``
  as ``params.`k```, ``metrics.`k```, ``tags.`k```). ``#/experiments/<id>/runs?viewStateShareKey=<key>``
  opens it, and the page's *Views* list names it. Expanded parent rows are not part of a view, so the
  view filters on the search's parent run: the trials are the table's rows, flat.

    search ends ─► present_search: experiment kind, the view (key = the parent's run id), the
                   parent's description (``mlflow.note.content``: the winner linked, its config)
    xstilts ui  ─► save_runs_view again (a running search gets its columns) ─► runs_view_url printed

Without the link (another MLflow client, an old search), two clicks give the same table: the
*Model training* switch in the side bar, then *Columns* → the params and ``zero_shot/avg``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from xstilts.trainer.codec import RATIO, is_bookkeeping
from xstilts.trainer.names import TEST_OBJECTIVE, WORST

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from .store import SearchRecord, TrialRecord
    from .summary import Baseline

__all__ = ["EXPERIMENT_KIND_TAG", "MODEL_TRAINING", "VIEW_TAG_PREFIX", "NOTE_TAG", "STOPPED_AT_TAG", "format_param",
           "mark_model_training", "runs_view_state", "save_runs_view", "runs_view_url", "run_url", "view_columns",
           "is_score", "score_metrics", "stopped_at", "winner_note", "present_search"]

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"  # MLflow's ExperimentKind for classic model training
VIEW_TAG_PREFIX = "mlflow.sharedViewState."  # + the view's key: a saved view of the runs table
SHARE_KEY_PARAM = "viewStateShareKey"  # the URL parameter that opens a saved view
WORKFLOW = {"workflowType": "machine_learning"}  # the model-training chrome, whatever the browser chose last
NOTE_TAG = "mlflow.note.content"  # a run's description (markdown), shown at the top of its page
STOPPED_AT_TAG = "xstilts.stopped_at"  # a pruned trial: where the scheduler stopped it
_PHASES = {1: ("intermediate training", "intermediate_steps"), 2: ("target fine-tuning", "target_steps")}
_FIRST_PARAMS = ("schedule", "learning_rate", "multilingual_share", "language_temperature", "translated_share")


def format_param(value: Any) -> Any:
    """A float as a person reads it: 4 significant digits (``0.676``, ``0.0001235``); anything else
    unchanged. The full value stays in the trial's ``config/trial_config.yaml``."""
    if isinstance(value, float) and math.isfinite(value):
        return float(f"{value:.4g}")
    return value


def mark_model_training(client: MlflowClient, experiment_id: str, tags: Mapping[str, str] | None = None) -> None:
    """Tag the experiment as model training, unless it says otherwise already (``tags``: its tags, if read)."""
    if tags is None:
        tags = client.get_experiment(experiment_id).tags
    if EXPERIMENT_KIND_TAG not in tags:
        client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING)


def _column(kind: str, key: str) -> str:
    return f"{kind}.`{key}`"


def view_columns(metric: str, params: Sequence[str]) -> list[str]:
    """The runs table's columns for a search: its status, the objective (dev, test, worst language),
    the mixture's ratios, then the other searched params (schedule, lr, share, temperature first)."""
    ratios = sorted(p for p in params if p.startswith(RATIO))
    rest = sorted((p for p in params if not p.startswith(RATIO) and not is_bookkeeping(p)),
                  key=lambda p: (p not in _FIRST_PARAMS, _FIRST_PARAMS.index(p) if p in _FIRST_PARAMS else 0, p))
    metrics = list(dict.fromkeys([metric, TEST_OBJECTIVE, WORST]))
    return ([_column("tags", "xstilts.status")] + [_column("metrics", m) for m in metrics]
            + [_column("params", p) for p in [*ratios, *rest]])


def runs_view_state(parent_run_id: str, metric: str, mode: str, params: Sequence[str]) -> dict[str, Any]:
    """The runs table showing the trials of one search, best first, with what was searched as columns."""
    return {"searchFilter": f"tags.mlflow.parentRunId = '{parent_run_id}'",
            "orderByKey": _column("metrics", metric), "orderByAsc": mode != "max",
            "selectedColumns": view_columns(metric, params)}


def save_runs_view(client: MlflowClient, rec: SearchRecord) -> str:
    """Save (or refresh) the view of ``rec``'s trials on its experiment; returns its key (the parent's run id)."""
    key = rec.run_id
    tag = VIEW_TAG_PREFIX + key
    params = [k for k in rec.searched_keys() if not is_bookkeeping(k)]
    state = json.dumps(runs_view_state(rec.run_id, rec.metric, rec.mode, params), separators=(",", ":"))
    now = int(time.time() * 1000)
    try:
        created = int(json.loads(client.get_experiment(rec.experiment_id).tags[tag])["createdAt"])
    except (KeyError, ValueError, TypeError):
        created = now
    envelope = {"name": f"{rec.run_name}: trials by {rec.metric}", "createdAt": created, "updatedAt": now,
                "state": state}
    client.set_experiment_tag(rec.experiment_id, tag, json.dumps(envelope, separators=(",", ":")))
    return key


def _root(base_url: str) -> str:
    """The UI's address before ``#``; "" for a link relative to the page (inside a description)."""
    return f"{base_url.rstrip('/')}/" if base_url else ""


def runs_view_url(base_url: str, experiment_id: str, key: str) -> str:
    """The runs table of a saved view, in the model-training view."""
    query = urlencode({SHARE_KEY_PARAM: key, **WORKFLOW})
    return f"{_root(base_url)}#/experiments/{experiment_id}/runs?{query}"


def run_url(experiment_id: str, run_id: str, base_url: str = "") -> str:
    """A run's page, in the model-training view."""
    return f"{_root(base_url)}#/experiments/{experiment_id}/runs/{run_id}?{urlencode(WORKFLOW)}"


def is_score(key: str) -> bool:
    """Whether a metric is a score worth a ``best/`` copy on the parent: the objective, the worst
    language, per task and per task × language, English dev, on dev or test. Not training state
    (``train/phase``), timings, Ray's or system figures."""
    k = key.removeprefix("test/")
    return k.startswith(("zero_shot/", "en/"))


def score_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The finite scores of ``metrics`` (``is_score``)."""
    return {k: float(v) for k, v in metrics.items()
            if is_score(k) and isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)}


def stopped_at(metrics: Mapping[str, Any], params: Mapping[str, Any]) -> str:
    """Where a trial stopped, from its last report: ``phase 2 (target fine-tuning), step 40 of 80``
    ("" when it reported no step)."""
    step = metrics.get("train/step")
    if not isinstance(step, int | float) or isinstance(step, bool) or not math.isfinite(step):
        return ""
    phase = int(metrics.get("train/phase", 2) or 2)
    name, steps_key = _PHASES.get(phase, (f"phase {phase}", ""))
    try:
        total = f" of {int(float(params[steps_key]))}"
    except (KeyError, TypeError, ValueError):
        total = ""
    return f"phase {phase} ({name}), step {int(step)}{total}"


def _value(v: float | None) -> str:
    return "—" if v is None or not math.isfinite(v) else f"{v:.4f}"


def _config_rows(best: TrialRecord, keys: Sequence[str]) -> list[str]:
    return [f"| `{k}` | {best.params[k]} |" for k in keys if k in best.params]


def winner_note(rec: SearchRecord, best: TrialRecord | None, base: Baseline | None, base_url: str = "") -> str:
    """The parent run's description (markdown): the winner linked, its scores and searched config
    as a table, the baseline it was compared with, and the ranked runs table."""
    from .store import objective_value

    counts = rec.counts()
    lines = [f"**Search `{rec.run_name}`** — {counts['completed']} completed, {counts['pruned']} pruned, "
             f"{counts['failed']} failed. [All trials ranked by `{rec.metric}`]"
             f"({runs_view_url(base_url, rec.experiment_id, rec.run_id)})", ""]
    if best is None:
        return "\n".join([*lines, "No trial completed."])
    lines += [f"**Best trial: [{best.name}]({run_url(rec.experiment_id, best.run_id, base_url)})** — "
              f"`{rec.metric}` = {_value(objective_value(best, rec.metric))} (dev), "
              f"`{TEST_OBJECTIVE}` = {_value(best.metrics.get(TEST_OBJECTIVE))}, "
              f"`{WORST}` = {_value(best.metrics.get(WORST))}", ""]
    keys = view_columns(rec.metric, [k for k in rec.searched_keys() if not is_bookkeeping(k)])
    params = [c[len("params.`"):-1] for c in keys if c.startswith("params.")]
    lines += ["| searched | value |", "| --- | --- |", *_config_rows(best, params), ""]
    if base is not None:
        lines.append(f"Compared with the {base.label}: [{base.trial.name}]"
                     f"({run_url(rec.experiment_id, base.trial.run_id, base_url)}), `{rec.metric}` = "
                     f"{_value(objective_value(base.trial, rec.metric))} (dev).")
    lines.append("The full configuration of each trial: its `config/trial_config.yaml` artifact.")
    return "\n".join(lines)


def present_search(client: MlflowClient, rec: SearchRecord, best: TrialRecord | None,
                   base: Baseline | None) -> None:
    """What a person opens at the end of a search: the experiment as model training, the ranked
    view of its trials, and the parent's description naming and linking the winner."""
    mark_model_training(client, rec.experiment_id)
    save_runs_view(client, rec)
    client.set_tag(rec.run_id, NOTE_TAG, winner_note(rec, best, base))
