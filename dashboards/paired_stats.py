"""Paired comparisons of arms over shared seeds, and expected validation performance: numbers only.

A study runs every arm with the same seeds, so arm and reference are compared seed by seed::

    d_s = score(arm, seed s) - score(reference, seed s)          for the n seeds both completed
    difference       d̄ = (1/n) Σ d_s
    confidence       percentile bootstrap over seeds: draw n seeds with replacement, B times; the
                     (1-c)/2 and (1+c)/2 quantiles of the B means d̄*
    p-value          two-sided paired permutation (sign-flip) test: under "no difference" the sign
                     of each d_s is as likely + as -, so p = share of the 2^n sign patterns ε with
                     |Σ ε_s d_s| >= |Σ d_s| (every pattern for n <= 16; else B random patterns,
                     p = (k + 1) / (B + 1))
    Holm             the m p-values of the comparisons shown, ascending p_(1) <= ... <= p_(m):
                     adjusted p_(i) = max_{j<=i} min(1, (m - j + 1) p_(j)); a comparison survives
                     when its adjusted p < 1 - c (family-wise error rate 1 - c)

Expected validation performance (Dodge et al. 2019, "Show Your Work"): the expected best score
after n trials drawn at random from the N a search ran, with scores sorted v_(1) <= ... <= v_(N)::

    E[max of n] = Σ_i v_(i) [(i/N)^n - ((i-1)/N)^n]

Cells (what is compared: ``xnli/xa``, ``xnli/avg``, ``avg``) and arm names are opaque strings
here; ``xstilts.dashboards.study_record`` builds them from a trial's metrics.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = ["PairedDifference", "Comparison", "ArmSummary", "VerdictRow", "bootstrap_ci", "permutation_p_value",
           "paired_difference", "holm", "expected_max", "evp_curve", "compare_to_reference", "summarise_arms",
           "verdict", "method_text", "smallest_p", "EXACT_UP_TO"]

EXACT_UP_TO = 16  # seeds up to which the permutation test enumerates every sign pattern (2^16)
Values = Mapping[str, Mapping[int, Mapping[str, float]]]  # arm -> seed -> cell -> score


@dataclass(frozen=True)
class PairedDifference:
    """Arm minus reference over the seeds both have: mean, confidence interval, p-value."""

    n: int  # seeds in the comparison
    mean: float
    ci_low: float
    ci_high: float
    p_value: float  # two-sided paired permutation test, not corrected


@dataclass(frozen=True)
class Comparison:
    """One row of a study's statistics: an arm against the reference on one cell."""

    arm: str
    cell: str
    n: int
    arm_mean: float
    reference_mean: float
    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    p_holm: float  # Holm-adjusted across every comparison of the table
    survives: bool  # p_holm < 1 - confidence

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ArmSummary:
    """An arm's scores on one cell over its seeds."""

    arm: str
    cell: str
    n: int
    mean: float
    sd: float  # sample standard deviation over seeds (nan for one seed)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class VerdictRow:
    """Per task (or the average): the best arm, what it is compared with, by how much, and whether
    that comparison survives the correction."""

    label: str  # the task, or "avg"
    cell: str
    best: str  # the arm with the highest mean
    versus: str  # the reference; when the reference is best, the runner-up
    diff: float  # best - versus
    ci_low: float
    ci_high: float
    p_holm: float
    survives: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _array(x: Iterable[float]) -> np.ndarray:
    return np.asarray(list(x), dtype=float)


def bootstrap_ci(diffs: Sequence[float], confidence: float = 0.95, resamples: int = 10_000,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``diffs`` (resampling seeds with replacement)."""
    d = _array(diffs)
    if d.size == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(resamples, d.size))].mean(axis=1)
    low, high = np.quantile(means, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)


def permutation_p_value(diffs: Sequence[float], resamples: int = 10_000, seed: int = 0,
                        exact_up_to: int = EXACT_UP_TO) -> float:
    """Two-sided paired permutation (sign-flip) test of mean difference 0: exact over every sign
    pattern for up to ``exact_up_to`` seeds, else ``resamples`` random patterns."""
    d = _array(diffs)
    if d.size == 0:
        return math.nan
    observed = abs(d.sum())
    tolerance = 1e-9 * max(1.0, float(np.abs(d).sum()))  # sums of the same numbers in another order
    if d.size <= exact_up_to:
        patterns = np.array(np.meshgrid(*[[1.0, -1.0]] * d.size, indexing="ij")).reshape(d.size, -1).T
        return float(np.mean(np.abs(patterns @ d) >= observed - tolerance))
    rng = np.random.default_rng(seed)
    signs = rng.choice([1.0, -1.0], size=(resamples, d.size))
    k = int(np.sum(np.abs(signs @ d) >= observed - tolerance))
    return (k + 1) / (resamples + 1)


def paired_difference(arm: Sequence[float], reference: Sequence[float], confidence: float = 0.95,
                      resamples: int = 10_000, seed: int = 0) -> PairedDifference:
    """``arm - reference``, seed by seed (same order, same length): mean, bootstrap CI, p-value."""
    a, r = _array(arm), _array(reference)
    if a.shape != r.shape:
        raise ValueError(f"paired scores need one value per seed on both sides ({a.size} and {r.size})")
    d = a - r
    if d.size == 0:
        return PairedDifference(0, math.nan, math.nan, math.nan, math.nan)
    low, high = bootstrap_ci(d, confidence, resamples, seed)
    return PairedDifference(int(d.size), float(d.mean()), low, high, permutation_p_value(d, resamples, seed))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the order given (nan stays nan and is not counted)."""
    p = _array(p_values)
    out = np.full(p.size, math.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = ok.size
    running = 0.0
    for rank, i in enumerate(ok[np.argsort(p[ok], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * float(p[i])))
        out[i] = running
    return [float(v) for v in out]


def expected_max(scores: Sequence[float], n: int) -> float:
    """Expected best of ``n`` draws (with replacement) from ``scores``: Dodge et al.'s EVP at budget n."""
    v = np.sort(_array(scores))
    if v.size == 0 or n < 1:
        return math.nan
    i = np.arange(1, v.size + 1)
    weights = (i / v.size) ** n - ((i - 1) / v.size) ** n
    return float(np.dot(weights, v))


def evp_curve(scores: Sequence[float], n_max: int | None = None) -> list[float]:
    """``expected_max(scores, n)`` for n = 1 .. n_max (default: as many as there are scores)."""
    return [expected_max(scores, n) for n in range(1, (n_max or len(scores)) + 1)]


def _paired_cell(values: Values, arm: str, reference: str, cell: str) -> tuple[list[float], list[float]]:
    """The two arms' scores on ``cell`` for the seeds both have it, seed by seed."""
    a, r = values.get(arm, {}), values.get(reference, {})
    seeds = sorted(s for s in a if s in r and cell in a[s] and cell in r[s]
                   and math.isfinite(a[s][cell]) and math.isfinite(r[s][cell]))
    return [a[s][cell] for s in seeds], [r[s][cell] for s in seeds]


def compare_to_reference(values: Values, reference: str, cells: Sequence[str], confidence: float = 0.95,
                         resamples: int = 10_000, seed: int = 0) -> list[Comparison]:
    """Every other arm against ``reference`` on every cell, Holm-corrected across all of them."""
    raw: list[tuple[str, str, PairedDifference, float, float]] = []
    for arm in values:
        if arm == reference:
            continue
        for cell in cells:
            a, r = _paired_cell(values, arm, reference, cell)
            pd = paired_difference(a, r, confidence, resamples, seed)
            raw.append((arm, cell, pd, float(np.mean(a)) if a else math.nan, float(np.mean(r)) if r else math.nan))
    adjusted = holm([pd.p_value for _, _, pd, _, _ in raw])
    alpha = 1 - confidence
    return [Comparison(arm, cell, pd.n, am, rm, pd.mean, pd.ci_low, pd.ci_high, pd.p_value, ph,
                       bool(ph < alpha)) for (arm, cell, pd, am, rm), ph in zip(raw, adjusted, strict=True)]


def summarise_arms(values: Values, cells: Sequence[str]) -> list[ArmSummary]:
    """Mean and standard deviation of each arm on each cell, over its seeds."""
    out = []
    for arm, by_seed in values.items():
        for cell in cells:
            v = _array(s[cell] for s in by_seed.values() if cell in s and math.isfinite(s[cell]))
            sd = float(v.std(ddof=1)) if v.size > 1 else math.nan
            out.append(ArmSummary(arm, cell, int(v.size), float(v.mean()) if v.size else math.nan, sd))
    return out


def verdict(comparisons: Sequence[Comparison], summaries: Sequence[ArmSummary], reference: str,
            rows: Sequence[tuple[str, str]]) -> list[VerdictRow]:
    """One row per (label, cell) of ``rows``: the best arm by mean and its comparison with the
    reference; when the reference is best, the runner-up's comparison, turned around."""
    out = []
    for label, cell in rows:
        means = sorted(((s.mean, s.arm) for s in summaries if s.cell == cell and math.isfinite(s.mean)),
                       reverse=True)
        if len(means) < 2:
            continue
        best = means[0][1]
        other = best if best != reference else means[1][1]
        c = next((c for c in comparisons if c.arm == other and c.cell == cell), None)
        if c is None:
            continue
        if best == reference:  # reference - runner-up = -(runner-up - reference)
            out.append(VerdictRow(label, cell, best, other, -c.diff, -c.ci_high, -c.ci_low, c.p_holm, c.survives))
        else:
            out.append(VerdictRow(label, cell, best, reference, c.diff, c.ci_low, c.ci_high, c.p_holm, c.survives))
    return out


def smallest_p(seeds: int, resamples: int = 10_000) -> float:
    """The smallest p-value the permutation test can give with ``seeds`` paired seeds: 2 / 2^n
    exactly (only the observed signs and their mirror image reach the observed sum), else 1/(B+1)."""
    if seeds < 1:
        return math.nan
    return 2.0 / 2**seeds if seeds <= EXACT_UP_TO else 1.0 / (resamples + 1)


def method_text(n_comparisons: int, confidence: float, resamples: int, seeds: int) -> str:
    """The statistical method in one paragraph, for the report, the console and the parent run."""
    test = ("exact (every sign pattern)" if seeds <= EXACT_UP_TO else f"Monte Carlo ({resamples:,} sign patterns)")
    return (f"Paired differences against the reference arm over {seeds} shared seeds; "
            f"{confidence:.0%} percentile bootstrap confidence intervals ({resamples:,} resamples of seeds); "
            f"two-sided paired permutation (sign-flip) test, {test}; p-values Holm-Bonferroni-corrected across "
            f"the {n_comparisons} comparisons shown (family-wise error rate {1 - confidence:.2f}).")
