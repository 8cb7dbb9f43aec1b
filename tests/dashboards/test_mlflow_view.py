"""What the MLflow UI opens on, read back from the synthetic search's real SQLite store: the
experiment tagged as model training, the saved view of the trials ranked by the objective, the
parent's description linking the winner; and the pure helpers (scores, where a trial stopped)."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlparse

import pytest
from mlflow.tracking import MlflowClient

from tests.dashboards.conftest import SyntheticSearch
from xstilts.dashboards.mlflow_view import (
    EXPERIMENT_KIND_TAG,
    MODEL_TRAINING,
    NOTE_TAG,
    VIEW_TAG_PREFIX,
    run_url,
    runs_view_url,
    save_runs_view,
    score_metrics,
    stopped_at,
    view_columns,
)
from xstilts.dashboards.store import load_search
from xstilts.dashboards.ui import search_link


def _view(client: MlflowClient, exp_id: str, key: str) -> tuple[dict, dict]:
    envelope = json.loads(client.get_experiment(exp_id).tags[VIEW_TAG_PREFIX + key])
    return envelope, json.loads(envelope["state"])


def test_the_experiment_opens_as_model_training(synthetic_search: SyntheticSearch) -> None:
    exp = MlflowClient(synthetic_search.uri).get_experiment_by_name(synthetic_search.experiment)
    assert exp.tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING


def test_a_kind_set_by_someone_else_is_kept(new_store: str) -> None:
    from xstilts.dashboards.run_records import experiment_id

    client = MlflowClient(new_store)
    exp = client.create_experiment("mine", tags={EXPERIMENT_KIND_TAG: "genai_development"})
    assert experiment_id(client, "mine", new_store) == exp
    assert client.get_experiment(exp).tags[EXPERIMENT_KIND_TAG] == "genai_development"


def test_the_search_saves_a_view_of_its_trials_ranked_by_the_objective(synthetic_search: SyntheticSearch) -> None:
    s = synthetic_search
    client = MlflowClient(s.uri)
    rec = load_search(s.uri, s.run_name)
    envelope, state = _view(client, rec.experiment_id, s.parent_id)
    assert envelope["name"] == f"{s.run_name}: trials by zero_shot/avg"
    assert isinstance(envelope["createdAt"], int) and envelope["updatedAt"] >= envelope["createdAt"]
    assert state["searchFilter"] == f"tags.mlflow.parentRunId = '{s.parent_id}'"
    assert state["orderByKey"] == "metrics.`zero_shot/avg`" and state["orderByAsc"] is False
    cols = state["selectedColumns"]
    assert cols[:4] == ["tags.`xstilts.status`", "metrics.`zero_shot/avg`", "metrics.`test/zero_shot/avg`",
                        "metrics.`zero_shot/worst`"]
    assert cols[4:8] == ["params.`ratio.mnli`", "params.`ratio.sst2`", "params.`schedule`", "params.`learning_rate`"]
    assert {"params.`multilingual_share`", "params.`language_temperature`"} <= set(cols)
    assert not [c for c in cols if c.startswith(("params.`tasks.", "params.`_u.", "params.`trial."))]
    # MLflow's search accepts the view's filter and order: the trials, best first
    runs = client.search_runs([rec.experiment_id], filter_string=state["searchFilter"],
                              order_by=[f"{state['orderByKey']} {'ASC' if state['orderByAsc'] else 'DESC'}"])
    assert [r.info.run_name for r in runs][:3] == [s.trials["int"].name, s.trials["seq"].name, s.trials["pruned"].name]
    # saving again (`xstilts ui`) refreshes it under the same key, its creation time kept
    assert save_runs_view(client, rec) == s.parent_id
    again, _ = _view(client, rec.experiment_id, s.parent_id)
    assert again["createdAt"] == envelope["createdAt"]


def test_links_open_the_view_and_runs_in_the_model_training_view(synthetic_search: SyntheticSearch) -> None:
    s = synthetic_search
    link, what = search_link(s.uri, "http://127.0.0.1:5000", s.experiment)  # an experiment name: its latest search
    assert link is not None and what == f"search {s.run_name}: 4 trials ranked by zero_shot/avg"
    u = urlparse(link)
    assert (u.scheme, u.netloc, u.path) == ("http", "127.0.0.1:5000", "/")
    route, _, query = u.fragment.partition("?")
    exp = MlflowClient(s.uri).get_experiment_by_name(s.experiment)
    assert route == f"/experiments/{exp.experiment_id}/runs"
    assert parse_qs(query) == {"viewStateShareKey": [s.parent_id], "workflowType": ["machine_learning"]}
    assert run_url("3", "abc") == "#/experiments/3/runs/abc?workflowType=machine_learning"
    assert runs_view_url("http://h:1/", "3", "k") == "http://h:1/#/experiments/3/runs?viewStateShareKey=k&workflowType=machine_learning"
    assert search_link(s.uri, "http://x", "no-such-search")[0] is None


def test_the_parent_description_links_the_winner_and_its_config(synthetic_search: SyntheticSearch) -> None:
    s = synthetic_search
    client = MlflowClient(s.uri)
    parent = client.get_run(s.parent_id)
    note = parent.data.tags[NOTE_TAG]
    best = parent.data.tags["xstilts.best_run_id"]
    exp_id = parent.info.experiment_id
    assert f"**Best trial: [{s.trials['int'].name}](#/experiments/{exp_id}/runs/{best}?workflowType=machine_learning)**" in note
    assert "`zero_shot/avg` = 0.5200 (dev)" in note and "`test/zero_shot/avg` = 0.5100" in note
    assert "| `ratio.mnli` | 0.4 |" in note and "| `schedule` | interleaved |" in note
    assert "| `multilingual_share` | 0.3 |" in note
    assert f"[{s.trials['seq'].name}](#/experiments/{exp_id}/runs/" in note  # the baseline, linked
    assert f"viewStateShareKey={s.parent_id}" in note  # every trial, ranked
    assert "{" not in note  # no Python dict repr


def test_view_columns_put_the_mixture_then_schedule_lr_share_first() -> None:
    cols = view_columns("zero_shot/avg", ["learning_rate", "zeta", "ratio.sst2", "schedule", "tasks.mnli",
                                          "ratio.mnli", "trial_number", "multilingual_share"])
    assert [c.split("`")[1] for c in cols if c.startswith("params.")] == [
        "ratio.mnli", "ratio.sst2", "schedule", "learning_rate", "multilingual_share", "zeta"]
    assert view_columns("test/zero_shot/avg", [])[1:3] == ["metrics.`test/zero_shot/avg`", "metrics.`zero_shot/worst`"]


def test_best_metrics_are_scores_only() -> None:
    final = {"zero_shot/avg": 0.5, "zero_shot/worst": 0.3, "zero_shot/xnli": 0.5, "zero_shot/xnli/xa": 0.6,
             "test/zero_shot/avg": 0.4, "test/zero_shot/xnli/xa": 0.5, "en/xnli": 0.8, "test/en/xnli": 0.7,
             "train/phase": 2, "train/loss": 0.1, "ray/resumed_from_checkpoint": 0, "time/trial_s": 3.0,
             "trial/partial": 1, "intermediate/loss": 2.0, "zero_shot/nan": float("nan"), "trial_id": "x"}
    assert set(score_metrics(final)) == {"zero_shot/avg", "zero_shot/worst", "zero_shot/xnli", "zero_shot/xnli/xa",
                                         "test/zero_shot/avg", "test/zero_shot/xnli/xa", "en/xnli", "test/en/xnli"}


@pytest.mark.parametrize(("metrics", "params", "expected"), [
    ({"train/step": 40, "train/phase": 2}, {"target_steps": "80"}, "phase 2 (target fine-tuning), step 40 of 80"),
    ({"train/step": 100.0, "train/phase": 1}, {"intermediate_steps": "300", "target_steps": "80"},
     "phase 1 (intermediate training), step 100 of 300"),
    ({"train/step": 20}, {}, "phase 2 (target fine-tuning), step 20"),
    ({"zero_shot/avg": 0.5}, {"target_steps": "80"}, ""),
])
def test_where_a_pruned_trial_stopped(metrics: dict, params: dict, expected: str) -> None:
    assert stopped_at(metrics, params) == expected
