"""The study's statistics on synthetic numbers with a known answer."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from xstilts.dashboards.paired_stats import (
    bootstrap_ci,
    compare_to_reference,
    evp_curve,
    expected_max,
    holm,
    method_text,
    paired_difference,
    permutation_p_value,
    smallest_p,
    summarise_arms,
    verdict,
)

SCORES = [0.81, 0.79, 0.84, 0.80, 0.77, 0.83, 0.82, 0.78]


def test_an_arm_against_a_copy_of_itself_gives_zero_a_ci_containing_zero_and_p_one() -> None:
    d = paired_difference(SCORES, list(SCORES))
    assert d.n == 8 and d.mean == 0.0
    assert d.ci_low <= 0.0 <= d.ci_high
    assert d.p_value == 1.0


def test_a_copy_with_noise_of_mean_zero_still_has_zero_inside_the_ci() -> None:
    rng = np.random.default_rng(3)
    noise = rng.normal(0, 0.01, size=8)
    noise -= noise.mean()  # mean difference exactly 0: the interval must straddle it
    d = paired_difference(list(np.add(SCORES, noise)), SCORES)
    assert d.mean == pytest.approx(0.0, abs=1e-12)
    assert d.ci_low < 0.0 < d.ci_high
    assert d.p_value > 0.5


def test_a_constant_shift_gives_that_shift_back_with_a_degenerate_ci() -> None:
    d = paired_difference([s + 0.025 for s in SCORES], SCORES)
    assert d.mean == pytest.approx(0.025)
    assert d.ci_low == pytest.approx(0.025) and d.ci_high == pytest.approx(0.025)
    # every seed improves: only the identity and the all-flipped pattern reach |sum| (2 of 2^8)
    assert d.p_value == pytest.approx(2 / 2**8)


def test_a_negative_shift_comes_back_negative() -> None:
    d = paired_difference([s - 0.1 for s in SCORES], SCORES)
    assert d.mean == pytest.approx(-0.1) and d.ci_high == pytest.approx(-0.1)


def test_the_exact_permutation_p_value_by_hand() -> None:
    # d = (1, 2, 3): |sum| = 6; sign patterns reaching |sum| >= 6: (+,+,+) and (-,-,-): 2 of 8
    assert permutation_p_value([1.0, 2.0, 3.0]) == pytest.approx(2 / 8)
    # d = (1, 1, -3): |sum| = 1; patterns with |±1 ±1 ±3| >= 1: all 8
    assert permutation_p_value([1.0, 1.0, -3.0]) == 1.0
    # one seed can never show anything
    assert permutation_p_value([0.3]) == 1.0


def test_the_permutation_p_value_agrees_with_scipy() -> None:
    rng = np.random.default_rng(0)
    d = rng.normal(0.01, 0.02, size=10)
    ref = stats.permutation_test((d,), np.mean, permutation_type="samples", alternative="two-sided",
                                 n_resamples=np.inf)
    assert permutation_p_value(d) == pytest.approx(ref.pvalue)


def test_the_monte_carlo_permutation_test_is_close_to_the_exact_one() -> None:
    rng = np.random.default_rng(1)
    d = rng.normal(0.005, 0.02, size=14)
    exact = permutation_p_value(d)
    mc = permutation_p_value(d, resamples=40_000, exact_up_to=0)
    assert abs(exact - mc) < 0.01


def test_the_bootstrap_ci_covers_the_mean_and_narrows_with_more_seeds() -> None:
    rng = np.random.default_rng(2)
    few, many = rng.normal(0.02, 0.01, size=6), rng.normal(0.02, 0.01, size=60)
    lo_f, hi_f = bootstrap_ci(few)
    lo_m, hi_m = bootstrap_ci(many)
    assert lo_f <= few.mean() <= hi_f and lo_m <= many.mean() <= hi_m
    assert hi_m - lo_m < hi_f - lo_f
    assert bootstrap_ci(few, seed=5) == bootstrap_ci(few, seed=5)  # seeded: the same interval again


def test_holm_on_known_p_values() -> None:
    # m = 4: sorted .005, .01, .03, .04 -> 4*.005=.02, 3*.01=.03, 2*.03=.06, max(.06, 1*.04)=.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    out = holm([0.01, math.nan, 0.02])  # nan is not a comparison: m = 2
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1]) and out[2] == pytest.approx(0.02)
    assert holm([]) == []


def test_expected_max_by_hand() -> None:
    scores = [1.0, 2.0, 3.0]
    assert expected_max(scores, 1) == pytest.approx(2.0)  # the mean
    # n = 2: P(max=1) = 1/9, P(max=2) = 4/9 - 1/9, P(max=3) = 1 - 4/9
    assert expected_max(scores, 2) == pytest.approx((1 + 2 * 3 + 3 * 5) / 9)
    assert expected_max(scores, 200) == pytest.approx(3.0)
    curve = evp_curve([0.3, 0.9, 0.5, 0.7], 6)
    assert len(curve) == 6 and all(a < b for a, b in zip(curve, curve[1:], strict=False))
    assert math.isnan(expected_max([], 3))


def _values(shift: dict[str, float], seeds: int = 8) -> dict[str, dict[int, dict[str, float]]]:
    return {arm: {s: {"xnli/xa": SCORES[s] + d, "xnli/avg": SCORES[s] + d / 2} for s in range(seeds)}
            for arm, d in shift.items()}


def test_the_table_compares_every_arm_on_every_cell_with_holm_across_all() -> None:
    values = _values({"sequential": 0.0, "interleaved": 0.03, "same": 0.0})
    rows = compare_to_reference(values, "sequential", ["xnli/xa", "xnli/avg"])
    assert [(c.arm, c.cell) for c in rows] == [("interleaved", "xnli/xa"), ("interleaved", "xnli/avg"),
                                               ("same", "xnli/xa"), ("same", "xnli/avg")]
    by = {(c.arm, c.cell): c for c in rows}
    assert by["interleaved", "xnli/xa"].diff == pytest.approx(0.03)
    assert by["interleaved", "xnli/avg"].diff == pytest.approx(0.015)
    assert by["interleaved", "xnli/xa"].p_value == pytest.approx(2 / 256)
    assert by["interleaved", "xnli/xa"].p_holm == pytest.approx(4 * 2 / 256)  # the smallest of 4 (a tie)
    assert by["interleaved", "xnli/xa"].survives
    assert by["same", "xnli/xa"].diff == 0.0 and not by["same", "xnli/xa"].survives
    assert by["same", "xnli/avg"].p_holm == 1.0


def test_unpaired_seeds_are_left_out_of_a_comparison() -> None:
    values = _values({"ref": 0.0, "arm": 0.01})
    del values["arm"][3]
    values["ref"][5]["xnli/xa"] = math.nan  # a trial without that score
    (c,) = compare_to_reference(values, "ref", ["xnli/xa"])
    assert c.n == 6 and c.diff == pytest.approx(0.01)


def test_the_verdict_names_the_best_arm_and_turns_around_when_the_reference_wins() -> None:
    values = _values({"ref": 0.0, "up": 0.02, "down": -0.01})
    cells = ["xnli/xa", "xnli/avg"]
    comps, sums = compare_to_reference(values, "ref", cells), summarise_arms(values, cells)
    (row,) = verdict(comps, sums, "ref", [("xnli", "xnli/avg")])
    assert (row.best, row.versus) == ("up", "ref") and row.diff == pytest.approx(0.01)

    values = _values({"ref": 0.0, "close": -0.005, "far": -0.02})
    comps, sums = compare_to_reference(values, "ref", cells), summarise_arms(values, cells)
    (row,) = verdict(comps, sums, "ref", [("xnli", "xnli/avg")])
    assert (row.best, row.versus) == ("ref", "close")
    assert row.diff == pytest.approx(0.0025) and row.ci_low == pytest.approx(0.0025)


def test_arm_summaries_and_the_method_text() -> None:
    values = _values({"a": 0.0})
    (xa, _) = summarise_arms(values, ["xnli/xa", "xnli/avg"])
    assert xa.n == 8 and xa.mean == pytest.approx(np.mean(SCORES)) and xa.sd == pytest.approx(np.std(SCORES, ddof=1))
    text = method_text(12, 0.95, 10_000, 8)
    assert "Holm" in text and "12 comparisons" in text and "bootstrap" in text and "exact" in text


def test_the_smallest_p_value_few_seeds_allow() -> None:
    assert smallest_p(5) == pytest.approx(0.0625)  # 5 seeds can never reach 0.05
    assert smallest_p(5) == permutation_p_value([0.1, 0.2, 0.3, 0.1, 0.4])  # all of one sign
    assert smallest_p(20, resamples=999) == pytest.approx(1e-3)
