"""Does a target analogue measure transfer? The validity rules, and the intermediate effects per target.

Pure helpers of ``xstilts bench transfer`` (no trials here), tested on their own:

* ``spearman``: the rank correlation the ``graded`` rule reads;
* ``target_validity`` / ``validity_table``: per target, from its zero-shot scores by language,
  the four rules below and a ``valid`` flag; ``validity_markdown`` renders the table for
  docs/benchmarks.md.
* ``effects_by_target``: each intermediate task's effect on each target, paired by seed, with its
  standard error, and the mean over intermediate tasks per target; ``paper_comparison`` sets it
  beside what X-STILTs reports.

A target is valid when, at the default trial fidelity:

==================  =============================================================================
rule                meaning
==================  =============================================================================
``learnable``       English scores at least chance + 0.2 (retrieval, which has no English score:
                    the best language)
``graded``          Spearman(overlap with English, score) over the objective languages >= 0.7
``control_gap``     the best objective language scores at least 0.15 above the control language
``below_ceiling``   no language (English and the control included) scores above 0.97
==================  =============================================================================
"""

from __future__ import annotations

import math
import statistics
from typing import Any

__all__ = [
    "LEARNABLE_MARGIN", "MIN_SPEARMAN", "MIN_CONTROL_GAP", "CEILING", "PAPER_LARGEST_GAINS", "spearman",
    "target_validity", "validity_table", "validity_markdown", "paired_effect", "effects_by_target",
    "paper_comparison",
]

LEARNABLE_MARGIN = 0.2  # English (retrieval: the best language) at least chance + this
MIN_SPEARMAN = 0.7  # Spearman(overlap, score) over the objective languages at least this
MIN_CONTROL_GAP = 0.15  # the best objective language at least this above the control
CEILING = 0.97  # no language above this, so mixtures can still be ranked
# X-STILTs (Phang et al. 2020): its largest gains on the retrieval tasks and on QA, none on XNLI
PAPER_LARGEST_GAINS = ("bucc", "tatoeba", "xquad", "mlqa", "tydiqa")


def spearman(x: list[float], y: list[float]) -> float:
    """Spearman's rank correlation (ties share their mean rank); nan when either has no spread."""

    def ranks(v: list[float]) -> list[float]:
        order = sorted(range(len(v)), key=lambda i: v[i])
        r = [0.0] * len(v)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
                j += 1
            for k in range(i, j + 1):
                r[order[k]] = (i + j) / 2
            i = j + 1
        return r

    rx, ry = ranks(x), ranks(y)
    mx, my = statistics.fmean(rx), statistics.fmean(ry)
    num = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    den = math.sqrt(sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry))
    return num / den if den else float("nan")


def target_validity(scores: dict[str, float], chance: float, overlap: dict[str, float], obj_langs: list[str],
                    controls: list[str]) -> dict[str, Any]:
    """One target's row: chance, English, every language, the control, Spearman, the control gap,
    each rule met or not and ``valid`` (all four). ``scores``: {language: zero-shot score}, with
    ``"en"`` for the trained targets."""
    en = scores.get("en")
    best = max(scores[lang] for lang in obj_langs)
    control = max(scores[lang] for lang in controls) if controls else float("nan")
    rho = spearman([overlap[lang] for lang in obj_langs], [scores[lang] for lang in obj_langs])
    reference = en if en is not None else best
    checks = {
        "learnable": reference >= chance + LEARNABLE_MARGIN,
        "graded": rho >= MIN_SPEARMAN,
        "control_gap": best - control >= MIN_CONTROL_GAP,
        "below_ceiling": max(scores.values()) <= CEILING,
    }
    return {"chance": chance, "en": en, "languages": {lang: scores[lang] for lang in obj_langs},
            "control": control, "spearman": rho, "control_gap": best - control, "checks": checks,
            "valid": all(checks.values())}


def validity_table(zero_shot: dict[str, dict[str, float]], chance: dict[str, float], overlap: dict[str, float],
                   obj_langs: list[str], controls: list[str]) -> dict[str, dict[str, Any]]:
    """``target_validity`` for every target of ``zero_shot``."""
    return {t: target_validity(s, chance[t], overlap, obj_langs, controls) for t, s in zero_shot.items()}


def validity_markdown(table: dict[str, dict[str, Any]], obj_langs: list[str]) -> str:
    """The validity table as a Markdown table (scores to three decimals; a failed rule's figure in bold)."""

    def num(x: float | None, bad: bool = False) -> str:
        text = "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}".replace("0.", ".", 1)
        return f"**{text}**" if bad else text

    head = ["target", "chance", "en", *obj_langs, "control", "Spearman", "control gap", "valid"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for t, row in table.items():
        c = row["checks"]
        ceiling = not c["below_ceiling"]
        en = row["en"]
        # learnable reads English, or without it (retrieval) the best language
        best = max(row["languages"].values()) if en is None and not c["learnable"] else None
        cells = [t, num(row["chance"]),
                 num(en, en is not None and (not c["learnable"] or (ceiling and en > CEILING))),
                 *(num(v, (ceiling and v > CEILING) or v == best) for v in row["languages"].values()),
                 num(row["control"]), num(row["spearman"], not c["graded"]),
                 num(row["control_gap"], not c["control_gap"]), "yes" if row["valid"] else "no"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired_effect(baseline: list[float], treated: list[float]) -> tuple[float, float]:
    """(mean of the paired differences treated[s] − baseline[s], its standard error)."""
    diffs = [b - a for a, b in zip(baseline, treated, strict=True)]
    se = statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else float("nan")
    return statistics.fmean(diffs), se


def effects_by_target(baseline: dict[str, list[float]], treated: dict[str, dict[str, list[float]]]
                      ) -> dict[str, dict[str, Any]]:
    """Per target: each intermediate task's paired effect and its SE, and their mean over tasks.

    ``baseline[target]``: the target's score (mean over the objective languages) per seed without
    an intermediate task; ``treated[target][task]``: the same seeds after ``task``. The mean over
    tasks has SE sqrt(Σ se²) / n: the tasks' runs are independent of each other (they share the
    baseline, which this leaves out, so it is a little optimistic)."""
    out: dict[str, dict[str, Any]] = {}
    for t, by_task in treated.items():
        effects = {task: paired_effect(baseline[t][: len(v)], v) for task, v in by_task.items()}
        means = [e for e, _ in effects.values()]
        ses = [s for _, s in effects.values()]
        out[t] = {"effect": {k: e for k, (e, _) in effects.items()}, "se": {k: s for k, (_, s) in effects.items()},
                  "mean": statistics.fmean(means) if means else float("nan"),
                  "mean_se": math.sqrt(sum(s * s for s in ses)) / len(ses) if ses else float("nan")}
    return out


def paper_comparison(by_target: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Where synth agrees with X-STILTs: the targets ranked by their mean intermediate effect; whether
    the paper's (retrieval, QA) lead that ranking; whether XNLI's mean effect is nil (within 2 SE)."""
    ranked = sorted(by_target, key=lambda t: by_target[t]["mean"], reverse=True)
    top = ranked[: len([t for t in PAPER_LARGEST_GAINS if t in by_target])]
    xnli = by_target.get("xnli")
    return {
        "ranked_by_mean_effect": ranked,
        "paper_largest_gains": [t for t in PAPER_LARGEST_GAINS if t in by_target],
        "paper_targets_in_top": sorted(set(top) & set(PAPER_LARGEST_GAINS)),
        "xnli_mean_effect_nil": (abs(xnli["mean"]) <= 2 * xnli["mean_se"]) if xnli else None,
    }
