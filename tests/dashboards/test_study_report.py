"""A study's cells, records, report and verdict, on synthetic trials (no Ray, no training)."""

from __future__ import annotations

import math

import pytest

from xstilts.dashboards.store import SearchRecord, TrialRecord
from xstilts.dashboards.study_record import (
    StudyRecord,
    cell_metric,
    params_match,
    pick_search_trial,
    study_cells,
    study_statistics,
)
from xstilts.dashboards.study_report import plot_forest, power_note, render_study_report, verdict_text

METRICS = {"test/zero_shot/xnli/xa": 0.8, "test/zero_shot/xnli/xb": 0.7, "test/zero_shot/xnli": 0.75,
           "test/zero_shot/tatoeba/xa": 0.5, "test/zero_shot/tatoeba": 0.5, "test/zero_shot/avg": 0.625,
           "zero_shot/xnli/xa": 0.9, "zero_shot/xnli": 0.9, "test/en/xnli": 0.95, "test_clean/zero_shot/xnli/xa": 0.1}


def test_cells_read_one_split_per_language_then_the_means() -> None:
    cells = study_cells(METRICS, "test", ["xnli", "tatoeba"])
    assert cells == {"xnli/xa": 0.8, "xnli/xb": 0.7, "xnli/avg": 0.75, "tatoeba/xa": 0.5, "tatoeba/avg": 0.5,
                     "avg": 0.625}
    assert study_cells(METRICS, "test", ["xnli", "tatoeba"], averages_only=True) == {
        "xnli/avg": 0.75, "tatoeba/avg": 0.5, "avg": 0.625}
    assert study_cells(METRICS, "dev", ["xnli"]) == {"xnli/xa": 0.9, "xnli/avg": 0.9}  # one target: no overall
    for cell, v in cells.items():
        assert METRICS[cell_metric(cell, "test")] == v


def _trial(name: str, params: dict[str, str], metrics: dict[str, float], status: str = "completed") -> TrialRecord:
    return TrialRecord(run_id=f"id-{name}", name=name, trial_id=name, status=status, params=params, metrics=metrics,
                       start_ms=0, end_ms=1)


def test_a_search_arm_picks_the_best_matching_completed_trial() -> None:
    trials = [_trial("t0", {"schedule": "sequential", "learning_rate": "0.001"}, {"zero_shot/avg": 0.7}),
              _trial("t1", {"schedule": "interleaved", "learning_rate": "0.002"}, {"zero_shot/avg": 0.9}),
              _trial("t2", {"schedule": "sequential", "learning_rate": "0.0005"}, {"zero_shot/avg": 0.8}),
              _trial("t3", {"schedule": "sequential"}, {"zero_shot/avg": 0.99}, status="pruned")]
    rec = SearchRecord("p", "s-1", "0", "s", "finished", "FINISHED", {}, {}, {}, trials)
    assert pick_search_trial(rec, {"schedule": "sequential"}).name == "t2"  # type: ignore[union-attr]
    assert pick_search_trial(rec, {}).name == "t1"  # type: ignore[union-attr]
    assert pick_search_trial(rec, {"schedule": ["annealed", "interleaved"]}).name == "t1"  # type: ignore[union-attr]
    assert pick_search_trial(rec, {"learning_rate": 1e-3}).name == "t0"  # type: ignore[union-attr]  # as numbers
    assert pick_search_trial(rec, {"schedule": "annealed"}) is None
    assert not params_match({"schedule": "sequential"}, {"multilingual_share": 0.3})


def _study(shift: float = 0.02, seeds: int = 8) -> StudyRecord:
    trials = []
    for s in range(seeds):
        for arm, d in (("seq", 0.0), ("inter", shift), ("none", -0.05)):
            base = 0.7 + 0.01 * (s % 3)
            trials.append(_trial(f"{arm}-s{s}", {"arm": arm, "seed": str(s), "schedule": "sequential",
                                                 "intermediate_steps": "0" if arm == "none" else "300",
                                                 "target_steps": "300", "ratio.mnli": "1.0", "tasks.mnli": "1"},
                                 {"test/zero_shot/xnli/xa": base + d, "test/zero_shot/xnli/xb": base + d / 2,
                                  "test/zero_shot/xnli": base + 0.75 * d}))
    params = {"reference": "seq", "arms": "seq,inter,none", "seeds": ",".join(map(str, range(seeds))),
              "target_tasks": "xnli", "statistics.split": "test", "statistics.cells": "all",
              "statistics.confidence": "0.95", "statistics.resamples": "2000", "statistics.seed": "0"}
    return StudyRecord("pid", "q-1", "q", "finished", "FINISHED", params, {}, trials, tracking_uri="sqlite:///x.db")


def test_the_record_gives_values_per_arm_and_seed_and_their_statistics() -> None:
    rec = _study()
    values = rec.values()
    assert list(values) == ["seq", "inter", "none"] and sorted(values["inter"]) == list(range(8))
    stats = rec.statistics()
    assert stats.cells == ["xnli/xa", "xnli/xb", "xnli/avg"]
    by = {(c.arm, c.cell): c for c in stats.comparisons}
    assert by["inter", "xnli/xa"].diff == pytest.approx(0.02) and by["inter", "xnli/xa"].survives
    assert by["none", "xnli/avg"].diff == pytest.approx(-0.0375)
    (row,) = stats.verdict
    assert (row.label, row.best, row.versus) == ("xnli", "inter", "seq")
    metrics = stats.parent_metrics()
    assert metrics["diff/inter/xnli/xa"] == pytest.approx(0.02)
    # a constant shift: the interval is the shift itself
    assert metrics["ci_low/inter/xnli/xa"] == pytest.approx(0.02) == metrics["ci_high/inter/xnli/xa"]
    assert metrics["mean/seq/xnli/avg"] == pytest.approx(stats.means[2].mean)
    assert all(math.isfinite(v) for v in metrics.values())


def test_the_verdict_table_and_the_report_say_what_was_compared_and_how() -> None:
    rec = _study()
    stats = rec.statistics()
    text = verdict_text(stats)
    assert "inter" in text and "+1.50" in text and "yes" in text and "Holm" in text and "bootstrap" in text
    html = render_study_report(rec, stats)
    for part in ("Verdict", "Forest plot", "Arms", "Comparisons", "Expected validation performance",
                 "data:image/png;base64", "seq (reference)", "Holm-Bonferroni", "drawn when arms come from a search"):
        assert part in html, part
    assert "<script" not in html
    fig = plot_forest(stats)
    ax = fig.axes[0]
    assert any(line.get_xdata()[0] == 0.0 for line in ax.get_lines())  # the zero line
    assert len(ax.get_yticks()) == len(stats.comparisons)


def test_too_few_seeds_are_said_to_be_too_few() -> None:
    few = _study(seeds=4).statistics()
    assert "none can survive" in power_note(few) and "none can survive" in verdict_text(few)
    assert power_note(_study(seeds=10).statistics()) == ""


def test_a_study_with_nothing_completed_yet_still_renders() -> None:
    rec = _study(seeds=0)
    stats = study_statistics(rec.values(), "seq", ["xnli"])
    assert stats.comparisons == [] and stats.verdict == []
    assert "no comparison yet" in verdict_text(stats)
    assert "no completed seed" in render_study_report(rec, stats)
