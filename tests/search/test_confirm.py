"""The confirm phase without Ray: choosing the candidates and the fresh seeds, what a resume runs again,
mean ± SE and the recommendation (ties, failures, fewer completed trials than top_k), the space option,
and how the console, ``xstilts status`` and the report show it."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from xstilts.dashboards.recommendation import (
    Candidate,
    SeedScore,
    confirm_trial_name,
    fresh_seeds,
    from_records,
    mean_se,
    pick_top,
    recommend,
)
from xstilts.dashboards.report import recommendation_table
from xstilts.dashboards.status import confirm_lines
from xstilts.dashboards.store import SearchRecord, TrialRecord
from xstilts.search.cli import summary_text
from xstilts.search.confirm import confirm_points, plan_confirm, recommendation_of
from xstilts.search.ledger import CONFIRM_LEDGER, LEDGER_FILE, Ledger, ledger_events, read_ledger
from xstilts.search.runner import SearchOptions, apply_options
from xstilts.search.search_run import SearchRun
from xstilts.spaces import SpaceError, load_space, sample_random

SPEC = load_space()
M = "zero_shot/avg"


# ---- mean, SE, the top k, the recommendation -------------------------------------------------------


def test_mean_and_standard_error() -> None:
    mean, se = mean_se([0.80, 0.84, 0.86])
    assert mean == pytest.approx(0.8333333)
    assert se == pytest.approx(statistics.stdev([0.80, 0.84, 0.86]) / math.sqrt(3))
    assert mean_se([0.7])[0] == 0.7 and math.isnan(mean_se([0.7])[1])  # one seed: no SE
    assert all(math.isnan(x) for x in mean_se([]))


def test_top_k_by_mode_ties_to_the_earlier_trial_and_fewer_than_k() -> None:
    scored = [("t0", 0.5), ("t1", 0.7), ("t2", 0.7), ("t3", math.nan), ("t4", 0.6)]
    assert pick_top(scored, 2, "max") == [("t1", 0.7), ("t2", 0.7)]
    assert pick_top(scored, 1, "max") == [("t1", 0.7)]  # a tie: the earlier trial
    assert pick_top(scored, 2, "min") == [("t0", 0.5), ("t4", 0.6)]
    assert pick_top(scored, 10, "max") == [("t1", 0.7), ("t2", 0.7), ("t4", 0.6), ("t0", 0.5)]  # no NaN
    assert pick_top([], 3, "max") == []


def _cand(name: str, rank: int, values: list[float | None], statuses: list[str] | None = None) -> Candidate:
    statuses = statuses or ["completed"] * len(values)
    return Candidate(name, 0.9 - rank / 100, rank, [SeedScore(101 + i, st, v, "" if st == "completed" else "failed: x")
                                                    for i, (v, st) in enumerate(zip(values, statuses, strict=True))])


def test_the_best_mean_is_recommended_not_the_best_search_score() -> None:
    lucky, steady = _cand("t0001", 1, [0.70, 0.72, 0.71]), _cand("t0004", 2, [0.80, 0.79, 0.81])
    r = recommend([steady, lucky], M, "max")
    assert r.recommended is steady and [c.name for c in r.candidates] == ["t0001", "t0004"]  # search rank order
    assert r.recommended.mean == pytest.approx(0.80) and r.recommended.n == 3
    assert recommend([steady, lucky], M, "min").recommended is lucky
    assert r.seeds == [101, 102, 103]


def test_a_tie_in_the_mean_goes_to_the_higher_search_rank() -> None:
    a, b = _cand("t0002", 2, [0.8, 0.7]), _cand("t0009", 1, [0.7, 0.8])
    assert recommend([a, b], M, "max").recommended is b


def test_a_failed_confirm_trial_is_listed_with_its_reason_and_left_out_of_the_mean() -> None:
    c = _cand("t0001", 1, [0.80, None, 0.70], ["completed", "failed", "completed"])
    assert c.values == [0.80, 0.70] and c.n == 2 and c.mean == pytest.approx(0.75)
    only_failed = _cand("t0002", 2, [None, None], ["failed", "failed"])
    r = recommend([c, only_failed], M, "max")
    assert r.recommended is c
    doc = r.as_dict()
    seeds = doc["candidates"][0]["seeds"]
    assert seeds[1] == {"seed": 102, "trial": "", "status": "failed", "value": None, "counted": False,
                        "reason": "failed: x"}
    assert doc["candidates"][1]["mean"] is None and doc["candidates"][1]["n"] == 0
    assert recommend([only_failed], M, "max").recommended is None  # nothing completed: no recommendation


def test_fresh_seeds_follow_every_seed_the_search_used() -> None:
    assert fresh_seeds([0], 3) == [1, 2, 3]
    assert fresh_seeds([4, 0, 17], 2) == [18, 19]
    assert fresh_seeds([], 2) == [1, 2]


# ---- the plan and its resume, from the ledgers -------------------------------------------------------


def _run(tmp_path: Path) -> SearchRun:
    run_dir = tmp_path / "ray" / "cf-1"
    run_dir.mkdir(parents=True)
    return SearchRun(SPEC, {}, "cf-1", "cf", f"sqlite:///{tmp_path / 't.db'}", tmp_path, tmp_path / "ray", run_dir)


def _search_trial(ledger: Ledger, n: int, status: str, value: float | None, seed: int | None = None) -> str:
    cfg = {**sample_random(SPEC, n), "trial_number": n}
    name = f"t{n:04d}-x"
    ledger.append({"event": "start", "trial": name, "number": n, "config": cfg}, durable=True)
    result = {"training_iteration": 2, **({M: value} if value is not None else {}),
              **({"trial_done": 1} if status == "completed" else {})}
    ledger.append({"event": "end", "trial": name, "number": n, "status": status, "result": result}, durable=True)
    return name


def test_the_plan_takes_the_top_completed_trials_and_is_read_back_on_resume(tmp_path: Path) -> None:
    run = _run(tmp_path)
    ledger = Ledger(run.run_dir / LEDGER_FILE)
    _search_trial(ledger, 0, "completed", 0.60)
    best = _search_trial(ledger, 1, "completed", 0.75)
    _search_trial(ledger, 2, "pruned", 0.90)  # a partial score: never a candidate
    _search_trial(ledger, 3, "failed", None)
    ledger.close()
    plan = plan_confirm(run, top_k=5, n_seeds=3)  # fewer completed trials than top_k: both of them
    assert plan is not None and plan.names() == [best, "t0000-x"] and plan.seeds == [1, 2, 3]
    assert plan.candidates[0]["value"] == 0.75 and plan.candidates[0]["config"]["trial_number"] == 1
    assert plan.trials()[:2] == [(best, 1), ("t0000-x", 1)]  # seed-major
    (line,) = ledger_events(run.run_dir, CONFIRM_LEDGER)
    assert line["event"] == "confirm" and line["seeds"] == [1, 2, 3]

    # a resume reads the recorded plan back, whatever the search's ledger says now
    more = Ledger(run.run_dir / LEDGER_FILE)
    _search_trial(more, 4, "completed", 0.99)
    more.close()
    again = plan_confirm(run, top_k=1, n_seeds=2)
    assert again is not None and again.names() == plan.names() and again.seeds == plan.seeds
    assert len(ledger_events(run.run_dir, CONFIRM_LEDGER)) == 1


def test_no_completed_trial_means_no_plan(tmp_path: Path) -> None:
    run = _run(tmp_path)
    ledger = Ledger(run.run_dir / LEDGER_FILE)
    _search_trial(ledger, 0, "pruned", 0.6)
    ledger.close()
    assert plan_confirm(run, 2, 3) is None
    assert not (run.run_dir / CONFIRM_LEDGER).exists()


def _confirm_trial(ledger: Ledger, name: str, end: str | None, value: float | None = None, error: str = "") -> None:
    ledger.append({"event": "start", "trial": name, "config": {}}, durable=True)
    if end:
        result = {M: value, "trial_done": 1} if end == "completed" else {}
        ledger.append({"event": "end", "trial": name, "status": end, "result": result,
                       **({"error": error} if error else {})}, durable=True)


def test_a_resume_runs_only_the_confirm_trials_without_an_end(tmp_path: Path) -> None:
    run = _run(tmp_path)
    ledger = Ledger(run.run_dir / LEDGER_FILE)
    a, b = _search_trial(ledger, 0, "completed", 0.7), _search_trial(ledger, 1, "completed", 0.6)
    ledger.close()
    plan = plan_confirm(run, 2, 2)
    assert plan is not None
    c = Ledger(run.run_dir / CONFIRM_LEDGER)
    _confirm_trial(c, confirm_trial_name(a, 1), "completed", 0.71)
    _confirm_trial(c, confirm_trial_name(b, 1), "failed", error="Traceback ...\nRuntimeError: out of memory")
    _confirm_trial(c, confirm_trial_name(a, 2), None)  # the driver was killed while it ran
    c.close()
    done = read_ledger(run.run_dir, CONFIRM_LEDGER)
    # Tune configs: the candidate, the seed, and the trial's place in the plan (the key of its resume point)
    assert confirm_points(plan, done) == [{"candidate": a, "seed": 2, "confirm_index": 2},
                                          {"candidate": b, "seed": 2, "confirm_index": 3}]
    assert [(p["candidate"], p["seed"]) for p in confirm_points(plan, done, retry_failed=True)] == [(b, 1), (a, 2), (b, 2)]
    rec = recommendation_of(plan, done)
    (ca, cb) = rec.candidates
    assert [s.status for s in ca.scores] == ["completed", "running"] and ca.values == [0.71]
    assert cb.scores[0].reason == "failed: RuntimeError: out of memory" and cb.scores[1].status == "missing"
    assert rec.recommended is ca  # the only candidate with a completed seed


# ---- the space option and the CLI's switch --------------------------------------------------------


def test_the_default_space_confirms_its_top_2_on_3_seeds_and_no_confirm_turns_it_off() -> None:
    assert SPEC.search.confirm is not None and (SPEC.search.confirm.top_k, SPEC.search.confirm.seeds) == (2, 3)
    assert apply_options(SPEC, SearchOptions(confirm=False)).search.confirm is None
    assert apply_options(SPEC, SearchOptions()).search.confirm == SPEC.search.confirm


@pytest.mark.parametrize(("confirm", "message"), [
    ({"top_k": 2, "seed": 3}, "search.confirm.seed"),
    ({"top_k": 0, "seeds": 3}, "search.confirm.top_k"),
    ({"top_k": 2, "seeds": 1}, "search.confirm.seeds"),
    ("yes", "search.confirm"),
])
def test_an_invalid_confirm_option_names_the_file_and_the_key(tmp_path: Path, confirm: object, message: str) -> None:
    raw = yaml.safe_load(Path(SPEC.source).read_text())
    raw["search"]["confirm"] = confirm
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(raw))
    with pytest.raises(SpaceError) as e:
        load_space(p)
    assert str(p) in str(e.value) and message in str(e.value)


def test_a_space_without_confirm_has_no_confirm_phase(tmp_path: Path) -> None:
    raw = yaml.safe_load(Path(SPEC.source).read_text())
    raw["search"].pop("confirm")
    p = tmp_path / "plain.yaml"
    p.write_text(yaml.safe_dump(raw))
    assert load_space(p).search.confirm is None


# ---- how it is shown ------------------------------------------------------------------------------


def _record(name: str, status: str, value: float | None, tags: dict[str, str] | None = None,
            error: str = "") -> TrialRecord:
    return TrialRecord(f"id-{name}", name, "", status, {}, {M: value} if value is not None else {}, 0, 1,
                       error=error, tags=tags or {})


def _kid(of: str, seed: int, status: str, value: float | None, error: str = "") -> TrialRecord:
    return _record(confirm_trial_name(of, seed), status, value,
                   {"xstilts.phase": "confirm", "xstilts.confirm_of": of, "xstilts.seed": str(seed)}, error)


def test_status_and_report_read_the_recommendation_from_the_confirm_children() -> None:
    search = [_record("t0000-a", "completed", 0.82), _record("t0001-b", "completed", 0.78)]
    confirm = [_kid("t0000-a", 1, "completed", 0.74), _kid("t0001-b", 1, "completed", 0.77),
               _kid("t0000-a", 2, "completed", 0.76), _kid("t0001-b", 2, "failed", None, "E\nValueError: nan loss")]
    rec = SearchRecord("p", "cf-1", "1", "cf", "finished", "FINISHED", {"metric": M, "confirm.seeds": "2"}, {}, {},
                       search, confirm)
    r = from_records(rec.trials, rec.confirm, M, "max")
    assert r is not None and [c.name for c in r.candidates] == ["t0000-a", "t0001-b"]
    assert r.recommended is not None and r.recommended.name == "t0001-b"  # 0.77 on its one completed seed
    lines = confirm_lines(rec)
    assert lines[0] == "confirm: 3 of 4 retrainings of the top 2 on fresh seeds completed, 0 running, 1 failed"
    assert lines[1].startswith("recommended: t0001-b  zero_shot/avg 0.7700 ± n/a over 1 fresh seed (mean ± SE")
    rows = recommendation_table(r)
    assert rows[0]["mean"] == "0.7500" and rows[0]["seed 1"] == "0.7400" and rows[0]["recommended"] == ""
    assert rows[1]["seed 2"] == "failed" and rows[1]["left out"] == "seed 2: failed: ValueError: nan loss"
    assert rows[1]["recommended"] == "yes"
    assert confirm_lines(SearchRecord("p", "x", "1", "x", "finished", "FINISHED", {}, {}, {}, search)) == []


def test_the_console_summary_shows_mean_and_se_and_labels_the_raw_best() -> None:
    rec = recommend([_cand("t0003-x", 1, [0.70, 0.72, 0.71]), _cand("t0005-y", 2, [0.80, 0.79, 0.81])], M, "max")
    out = SimpleNamespace(
        run_name="cf-1", counts={"completed": 5, "pruned": 1, "failed": 0, "unfinished": 0}, seconds=60.0,
        best_config={"schedule": "sequential", "learning_rate": 0.001}, recommendation=rec,
        best_metrics={M: 0.89, "test/zero_shot/avg": 0.8, "trial": "t0003-x"}, experiment="cf", parent_run_id="p",
        tracking_uri="sqlite:///x.db", results_path="/r", dashboard_url=None)
    text = summary_text(out, M)
    se = statistics.stdev([0.80, 0.79, 0.81]) / math.sqrt(3)
    assert f"recommended: t0005-y  zero_shot/avg 0.8000 ± {se:.4f} over 3 fresh seeds (mean ± SE" in text
    assert "confirm #1 t0003-x: search 0.8900 -> s101: 0.7000, s102: 0.7200, s103: 0.7100" in text
    assert "raw best of the search (one training seed, likely lucky): t0003-x  zero_shot/avg = 0.8900 (dev)" in text
    assert "best trial:" not in text
    out.recommendation = None
    assert "best trial: zero_shot/avg = 0.8900 (dev)" in summary_text(out, M)
