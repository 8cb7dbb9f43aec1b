"""Parent-run summary, ``xstilts report`` and ``xstilts status`` over the synthetic search."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.dashboards.conftest import SyntheticSearch
from xstilts.dashboards.report import write_report
from xstilts.dashboards.status import is_trial_actor, print_status, status_text
from xstilts.dashboards.store import SearchNotFound, load_search
from xstilts.dashboards.summary import derived_study, log_search_summary, search_plots

PNG = b"\x89PNG\r\n\x1a\n"


def test_parent_run_holds_leaderboard_plots_and_best_trial(synthetic_search: SyntheticSearch, tmp_path: Path) -> None:
    s = synthetic_search
    client = MlflowClient(s.uri)
    parent = client.get_run(s.parent_id)
    children = {c.info.run_name: c.info.run_id for c in client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{s.parent_id}'")}
    assert parent.data.tags["xstilts.best_run_id"] == children[s.trials["int"].name]
    assert parent.data.tags["xstilts.best_trial_name"] == s.trials["int"].name
    assert parent.data.tags["xstilts.baseline_run_id"] == children[s.trials["seq"].name]
    assert parent.data.tags["xstilts.baseline_rule"] == "sequential"  # no one-task sequential trial ran

    summary = {f.path for f in client.list_artifacts(s.parent_id, "summary")}
    assert summary == {f"summary/{k}.png" for k in ("best_so_far", "parallel_coordinates", "param_importances",
                                                    "task_language_heatmap", "best_mixture_schedule",
                                                    "best_zero_shot_by_language")}
    for f in summary:
        assert Path(client.download_artifacts(s.parent_id, f, str(tmp_path))).read_bytes().startswith(PNG)

    table = json.loads(Path(client.download_artifacts(s.parent_id, "leaderboard.json", str(tmp_path))).read_text())
    rows = [dict(zip(table["columns"], r, strict=True)) for r in table["data"]]
    assert [r["trial"] for r in rows[:2]] == [s.trials["int"].name, s.trials["seq"].name]
    assert [r["rank"] for r in rows[:2]] == [1, 2]
    assert rows[0]["zero_shot/avg"] == pytest.approx(0.52)
    assert rows[0]["ratio_mnli"] == "0.4" and rows[0]["schedule"] == "interleaved"
    assert not [c for c in table["columns"] if "." in c]  # MLflow's table viewer shows dotted columns empty
    assert {r["status"] for r in rows[2:]} == {"pruned", "failed"}
    failed = next(r for r in rows if r["status"] == "failed")
    assert failed["error"] == "RuntimeError: out of memory"


def test_derived_study_uses_the_dimensions_a_person_reads(synthetic_search: SyntheticSearch) -> None:
    rec = load_search(synthetic_search.uri, synthetic_search.run_name)
    study, dims = derived_study(rec)
    assert len(study.trials) == 2  # completed trials only
    assert {"ratio.mnli", "ratio.sst2", "schedule", "learning_rate", "multilingual_share",
            "language_temperature"} <= set(dims)
    assert not any(d.startswith(("tasks.", "_u.")) for d in dims)
    assert study.best_trial.user_attrs["name"] == synthetic_search.trials["int"].name
    assert study.best_value == pytest.approx(0.52)


def test_plots_that_need_more_trials_say_why(synthetic_search: SyntheticSearch) -> None:
    rec = load_search(synthetic_search.uri, synthetic_search.run_name)
    rec.trials = [t for t in rec.trials if t.name != synthetic_search.trials["seq"].name]  # one completed trial
    plots = {p.key: p for p in search_plots(rec)}
    assert plots["best_so_far"].png and plots["task_language_heatmap"].png
    assert plots["param_importances"].png is None
    assert "at least 2 completed trials" in plots["param_importances"].note
    assert "no trial of the other schedule family completed" in plots["task_language_heatmap"].note


def test_summary_never_raises(new_store: str) -> None:
    assert log_search_summary(new_store, "0123456789abcdef") is None


def test_report_is_self_contained_and_logged(synthetic_search: SyntheticSearch, tmp_path: Path) -> None:
    s = synthetic_search
    out = write_report(s.run_name, tracking_uri=s.uri, output=str(tmp_path / "r.html"))
    text = Path(out).read_text()
    assert "<script" not in text and "<link" not in text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)  # nothing fetched from anywhere
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(images) == 6
    assert all(base64.b64decode(i).startswith(PNG) for i in images)
    for t in s.trials.values():
        assert t.name in text
    assert "Leaderboard" in text and "RuntimeError: out of memory" in text
    assert "hf_secret_value" not in text and "s3cret" not in text
    assert f"Compared with the best sequential English-only trial: <b>{s.trials['seq'].name}</b>" in text
    assert 'id="per-language"' in text and "best − baseline" in text  # the heatmap's numbers as a table
    assert "mnli 0.40 / sst2 0.60" in text  # the leaderboard's mixture, not one column per ratio
    client = MlflowClient(s.uri)
    assert [f.path for f in client.list_artifacts(s.parent_id, "report")] == ["report/r.html"]
    # by experiment name: its latest search
    assert Path(write_report("synthetic", tracking_uri=s.uri, output=str(tmp_path / "e.html"))).is_file()
    with pytest.raises(SearchNotFound):
        write_report("nope", tracking_uri=s.uri, output=str(tmp_path / "n.html"))


def test_status_from_the_tracking_store(synthetic_search: SyntheticSearch, capsys: pytest.CaptureFixture[str]) -> None:
    s = synthetic_search
    buf = io.StringIO()
    assert print_status(s.run_name, tracking_uri=s.uri, out=buf) == 0
    text = buf.getvalue()
    assert f"search {s.run_name} (experiment 'synthetic'): finished" in text
    assert "trials: 0 running, 2 completed, 1 pruned, 1 failed (4 of 4 planned)" in text
    assert f"best so far: zero_shot/avg = 0.5200 ({s.trials['int'].name})" in text
    assert "RuntimeError: out of memory" in text
    # rows best first, the best starred, where the pruned trial stopped
    rows = [line for line in text.splitlines() if " t000" in line]
    assert [r.split()[1] if r.startswith("*") else r.split()[0] for r in rows] == [
        s.trials[k].name for k in ("int", "seq", "pruned", "failed")]
    assert rows[0].startswith(f"* {s.trials['int'].name}") and not any(r.startswith("*") for r in rows[1:])
    assert rows[2].endswith("stopped at phase 2 (target fine-tuning), step 20 of 40")
    assert print_status("no-such-search", tracking_uri=s.uri) == 1
    assert "no search run or experiment named 'no-such-search'" in capsys.readouterr().err


def test_status_and_report_count_the_preparation_in_the_search_time(synthetic_search: SyntheticSearch) -> None:
    from xstilts.dashboards.report import render_report

    rec = load_search(synthetic_search.uri, synthetic_search.run_name)
    rec.metrics.update({"search/seconds": 900.0, "search/prep_seconds": 660.0, "search/fit_seconds": 200.0})
    assert "; took 15.0 min (11.0 min preparation)" in status_text(rec).splitlines()[0]
    html_text = render_report(rec)
    assert "15.0 min in all: 11.0 min preparation (checks, data, pretraining, Ray), 3.3 min of trials" in html_text


def test_status_text_shows_live_ray_state(synthetic_search: SyntheticSearch) -> None:
    rec = load_search(synthetic_search.uri, None)  # the latest search in the store
    text = status_text(rec, {"address": "127.0.0.1:6379", "actors": 3, "trial_actors": 2, "trial_pids": [11, 12]})
    assert text.endswith("Ray (live, 127.0.0.1:6379): 2 trial actor(s) alive (pids 11, 12) of 3 actors")
    assert is_trial_actor("ImplicitFunc") and is_trial_actor("xstilts_trial") and not is_trial_actor("_StatsActor")


def _trial(name: str, schedule: str, mix: dict[str, float], score: float, status: str = "completed"):
    from xstilts.dashboards.store import TrialRecord

    params = {"schedule": schedule, "learning_rate": "0.001",
              **{f"ratio.{t}": str(r) for t, r in mix.items()}, **{f"tasks.{t}": "1" for t in mix}}
    return TrialRecord(run_id=name, name=name, trial_id=name, status=status, params=params,
                       metrics={"zero_shot/avg": score, "zero_shot/xnli/xa": score, "en/xnli": score + 0.1},
                       start_ms=0, end_ms=1)


def _record(trials: list) -> object:
    from xstilts.dashboards.store import SearchRecord

    return SearchRecord(run_id="p", run_name="s", experiment_id="0", experiment="s", status="finished",
                        mlflow_status="FINISHED", params={}, metrics={}, tags={}, trials=trials)


def test_a_sequential_winner_is_compared_with_the_other_family_not_its_near_copy() -> None:
    """The case a user met: the winner sequential MNLI, the runner-up the same with another lr. The
    baseline is the best multilingual trial, named as such, never the near-copy."""
    from xstilts.dashboards.summary import comparison_baseline

    win, copy = _trial("t0-seq-mnli", "sequential", {"mnli": 1}, 0.62), _trial("t1-seq-mnli", "sequential", {"mnli": 1}, 0.61)
    inter = _trial("t2-int", "interleaved", {"mnli": 1}, 0.55)
    pruned = _trial("t3-int", "annealed", {"mnli": 1}, 0.60, status="pruned")
    base = comparison_baseline(_record([win, copy, inter, pruned]), win)  # type: ignore[arg-type]
    assert base is not None and base.trial.name == "t2-int" and base.rule == "multilingual"
    assert "other schedule family" in base.label
    assert comparison_baseline(_record([win, copy, pruned]), win) is None  # type: ignore[arg-type]


def test_a_multilingual_winner_is_compared_with_the_x_stilts_point() -> None:
    """Best interleaved: the baseline is the best sequential trial with one task (the X-STILTs point),
    even when a sequential two-task mixture scored higher."""
    from xstilts.dashboards.summary import comparison_baseline

    win = _trial("t0-int", "interleaved", {"mnli": 0.5, "sst2": 0.5}, 0.70)
    two = _trial("t1-seq-two", "sequential", {"mnli": 0.5, "sst2": 0.5}, 0.66)
    one = _trial("t2-seq-mnli", "sequential", {"mnli": 1.0, "sst2": 0.0}, 0.60)
    one.params["tasks.sst2"] = "0"
    base = comparison_baseline(_record([win, two, one]), win)  # type: ignore[arg-type]
    assert base is not None and base.trial.name == "t2-seq-mnli" and base.rule == "x-stilts"
    assert base.text.startswith("X-STILTs point")
    only_two = comparison_baseline(_record([win, two]), win)  # type: ignore[arg-type]
    assert only_two is not None and only_two.rule == "sequential" and only_two.trial.name == "t1-seq-two"


def test_plots_that_leave_out_a_dimension_or_rest_on_few_trials_say_so() -> None:
    """Completed trials all sequential: schedule is constant and leaves the plots; that, the pruned
    trial left out, and the few points are written on the plots (and in their captions)."""
    from xstilts.dashboards.summary import left_out_dimensions

    ts = [_trial(f"t{i}", "sequential", {"mnli": 0.2 * i + 0.1, "sst2": 0.9 - 0.2 * i}, 0.5 + 0.01 * i) for i in range(4)]
    for i, t in enumerate(ts):
        t.params["learning_rate"] = str(0.001 * (i + 1))
    pruned = _trial("t9", "interleaved", {"mnli": 0.5, "sst2": 0.5}, 0.3, status="pruned")
    pruned.params["multilingual_share"] = "0.4"
    rec = _record([*ts, pruned])
    assert left_out_dimensions(rec) == {"schedule": "sequential in every completed trial",  # type: ignore[arg-type]
                                        "multilingual_share": "set in no completed trial"}
    plots = {p.key: p for p in search_plots(rec)}  # type: ignore[arg-type]
    for key in ("parallel_coordinates", "param_importances"):
        note = plots[key].note
        assert "only 4 completed trials" in note and "1 pruned, failed or running" in note, note
        assert "not shown: schedule (sequential in every completed trial); multilingual_share (set in no" in note
