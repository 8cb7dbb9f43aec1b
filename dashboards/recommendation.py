"""A search's recommendation: its best trials retrained on fresh seeds, compared by mean ± SE.

    the search's completed trials ──pick_top(k)──► candidates (search rank 1..k)
    each candidate × fresh seed (the confirm phase's trials) ──► SeedScore (completed / failed / ...)
    ──recommend──► the candidate with the best mean over its completed seeds

A search's best trial is the maximum of many noisy scores of one training seed each: the seed
alone moves ``zero_shot/avg`` by an SD of .04-.06 on the default space, so the raw best is partly
luck (the winner's curse). The recommendation is made on the fresh seeds only: the candidate's
own search score is left out of its mean, because it was picked for being high and would bias
the mean upwards. SE = sample SD / √n over the completed seeds (undefined with one). Ties in the
mean go to the candidate ranked higher by the search. A confirm trial that failed, or ended
before its final evaluation, is listed with its reason and left out of the mean; a candidate
with no completed seed cannot be recommended.

Pure functions over plain values (``xstilts.search.confirm`` runs the phase and records it; the
report and ``xstilts status`` read it back from the tracking store with ``from_records``). The
confirm children carry ``PHASE_TAG`` = ``CONFIRM``, ``CONFIRM_OF_TAG`` (the search trial they
retrain) and ``SEED_TAG`` (their training seed).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .store import CONFIRM, PHASE_TAG, TrialRecord, objective_value
from .study_record import SEED_TAG

__all__ = ["PHASE_TAG", "CONFIRM", "CONFIRM_OF_TAG", "SEED_TAG", "RECOMMENDED_TAG", "SeedScore", "Candidate",
           "Recommendation", "mean_se", "pick_top", "recommend", "seed_score", "from_records", "confirm_trial_name",
           "fresh_seeds", "estimate_text"]

CONFIRM_OF_TAG = "xstilts.confirm_of"  # on a confirm child: the name of the search trial it retrains
RECOMMENDED_TAG = "xstilts.recommended_trial"  # on the parent: the recommended search trial's name


def confirm_trial_name(candidate: str, seed: int) -> str:
    """The Ray trial and MLflow child name of ``candidate`` retrained on ``seed``."""
    return f"{candidate}-confirm-s{seed}"


def fresh_seeds(used: Sequence[int], n: int) -> list[int]:
    """``n`` training seeds none of the search's trials used: the ones after the largest used."""
    start = max(used, default=0) + 1
    return list(range(start, start + n))


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """(mean, standard error = sample SD / √n); SE is NaN with fewer than 2 values, both with none."""
    if not values:
        return math.nan, math.nan
    mean = statistics.fmean(values)
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else math.nan
    return mean, se


@dataclass
class SeedScore:
    """One candidate on one fresh seed: how its confirm trial ended and what it scored."""

    seed: int
    status: str  # completed / failed / pruned (ended before its final evaluation) / running / missing
    value: float | None = None  # the objective it reached (counted only when completed)
    reason: str = ""  # why it is left out of the mean
    trial: str = ""  # the confirm trial's name

    @property
    def counted(self) -> bool:
        return self.status == "completed" and self.value is not None and math.isfinite(self.value)

    def as_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "trial": self.trial, "status": self.status, "value": self.value,
                "counted": self.counted, **({"reason": self.reason} if self.reason else {})}


@dataclass
class Candidate:
    """A search trial retrained on fresh seeds."""

    name: str  # the search trial
    search_value: float  # its score in the search (one seed: the one that made it a candidate)
    rank: int  # its rank in the search (1: the raw best)
    scores: list[SeedScore] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)  # its sampled configuration

    @property
    def values(self) -> list[float]:
        return [float(s.value) for s in self.scores if s.counted and s.value is not None]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return mean_se(self.values)[0]

    @property
    def se(self) -> float:
        return mean_se(self.values)[1]

    def as_dict(self) -> dict[str, Any]:
        return {"trial": self.name, "search_rank": self.rank, "search_value": self.search_value, "mean": _plain(self.mean),
                "se": _plain(self.se), "n": self.n, "seeds": [s.as_dict() for s in self.scores],
                **({"config": self.config} if self.config else {})}


def _plain(v: float) -> float | None:
    return v if math.isfinite(v) else None


@dataclass
class Recommendation:
    """The confirm phase's outcome: every candidate and the one recommended (None: no candidate has a
    completed seed)."""

    metric: str
    mode: str
    candidates: list[Candidate]
    recommended: Candidate | None

    @property
    def seeds(self) -> list[int]:
        return sorted({s.seed for c in self.candidates for s in c.scores})

    def as_dict(self) -> dict[str, Any]:
        r = self.recommended
        return {"metric": self.metric, "mode": self.mode, "seeds": self.seeds,
                "rule": "best mean over the fresh seeds (the search's own score left out); SE = SD/sqrt(n)",
                "recommended": None if r is None else {"trial": r.name, "mean": _plain(r.mean), "se": _plain(r.se),
                                                       "n": r.n},
                "candidates": [c.as_dict() for c in self.candidates]}


def pick_top(scored: Sequence[tuple[str, float]], k: int, mode: str) -> list[tuple[str, float]]:
    """The ``k`` best of (trial name, objective) by ``mode`` (fewer if there are fewer); on a tie the
    one listed first (the earlier trial) wins. Non-finite values are left out."""
    sign = 1.0 if mode == "max" else -1.0
    ok = [(i, n, float(v)) for i, (n, v) in enumerate(scored) if math.isfinite(v)]
    ok.sort(key=lambda x: (-sign * x[2], x[0]))
    return [(n, v) for _, n, v in ok[:k]]


def recommend(candidates: list[Candidate], metric: str, mode: str) -> Recommendation:
    """The candidate with the best mean over its counted seeds; a tie goes to the higher search rank."""
    sign = 1.0 if mode == "max" else -1.0
    eligible = [c for c in candidates if c.n > 0]
    best = min(eligible, key=lambda c: (-sign * c.mean, c.rank)) if eligible else None
    return Recommendation(metric, mode, sorted(candidates, key=lambda c: c.rank), best)


def seed_score(seed: int, status: str, value: float | None, error: str, trial: str, metric: str) -> SeedScore:
    """A confirm trial as a ``SeedScore``: counted when it completed with a finite ``metric``, else
    with the reason it is left out (a failure's last error line)."""
    ok = value is not None and math.isfinite(value)
    if status == "completed" and ok:
        return SeedScore(seed, status, value, "", trial)
    reason = {"failed": f"failed: {_last_line(error)}", "pruned": "ended before its final evaluation",
              "running": "not finished", "missing": "never started"}.get(status, f"no {metric} in its final result")
    return SeedScore(seed, status if status != "completed" else "failed", value if ok else None, reason, trial)


def _last_line(text: str) -> str:
    lines = [x.strip() for x in (text or "").strip().splitlines() if x.strip()]
    return lines[-1][:200] if lines else "no error recorded"


def from_records(search: list[TrialRecord], confirm: list[TrialRecord], metric: str, mode: str) -> Recommendation | None:
    """The recommendation as the tracking store holds it: the confirm children grouped by the search
    trial they retrain (``CONFIRM_OF_TAG``), ranked by that trial's search score. None without
    confirm children."""
    if not confirm:
        return None
    by_name = {t.name: t for t in search}
    groups: dict[str, list[TrialRecord]] = {}
    for t in confirm:
        groups.setdefault(t.tags.get(CONFIRM_OF_TAG, ""), []).append(t)
    named = [(n, objective_value(by_name[n], metric) if n in by_name else None) for n in groups]
    ranked = pick_top([(n, math.nan if v is None else v) for n, v in named], len(named), mode)
    ranked += [(n, math.nan) for n, v in named if v is None]
    candidates = []
    for rank, (name, value) in enumerate(ranked, start=1):
        scores = [seed_score(int(t.tags.get(SEED_TAG, "-1")), t.status, objective_value(t, metric), t.error, t.name,
                             metric) for t in groups[name]]
        candidates.append(Candidate(name, value, rank, sorted(scores, key=lambda s: s.seed)))
    return recommend(candidates, metric, mode)


def estimate_text(c: Candidate, metric: str) -> str:
    """``zero_shot/avg 0.8312 ± 0.0104 over 3 fresh seeds`` (``± n/a`` with one seed)."""
    se = f"{c.se:.4f}" if math.isfinite(c.se) else "n/a"
    return f"{metric} {c.mean:.4f} ± {se} over {c.n} fresh seed{'s' if c.n != 1 else ''}"
