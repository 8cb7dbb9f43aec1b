"""A study's report and verdict: the forest plot, the per-arm table, every comparison, the EVP
curves (one self-contained HTML file, like a search's report), and the console's verdict table.

    StudyRecord (the store) ─► StudyStatistics, EvpCurves ─► render_study_report ─► HTML
        written to $XSTILTS_HOME/reports/<study run>.html (or --output), logged under report/

``xstilts report`` (``report.write_report``) writes it for a study, as the driver of ``xstilts
study`` does at its end; at any time it is rebuilt from the store (a study still running: what has
finished). Differences are shown in
points (100 × the score: accuracy or F1 in percent).
"""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from xstilts.trainer.codec import decode_mixture, mixture_text

from .mlflow_logging import redact
from .paired_stats import smallest_p
from .plots import png_bytes
from .report import _CSS, _figure, _table, _when
from .store import resolve_tracking_uri
from .study_record import EvpCurves, StudyRecord, StudyStatistics, load_study_record, searches_evp
from .summary import Plot

__all__ = ["plot_forest", "plot_evp", "verdict_text", "power_note", "arm_rows", "render_study_report", "study_report_text",
           "points"]


def points(x: float, sign: bool = True) -> str:
    """A score difference in points (100 ×), e.g. ``+1.23``; empty when not a number."""
    if x is None or not math.isfinite(x):
        return ""
    return f"{100 * x:+.2f}" if sign else f"{100 * x:.2f}"


def _p(x: float) -> str:
    return "" if not math.isfinite(x) else f"{x:.4f}" if x >= 1e-4 else f"{x:.1e}"


def plot_forest(stats: StudyStatistics, title: str = "") -> Figure:
    """Each arm's paired difference against the reference with its confidence interval, per cell
    (target × language, the targets' means), one row per comparison; a line at zero. Filled
    markers survive the Holm correction, open ones do not."""
    comps = stats.comparisons
    arms = list(dict.fromkeys(c.arm for c in comps))
    colours = plt.get_cmap("tab10")
    fig, ax = plt.subplots(figsize=(7.5, max(2.5, 0.28 * len(comps) + 1.2)))
    ys: list[float] = []
    labels: list[str] = []
    for k, cell in enumerate(stats.cells):
        for j, arm in enumerate(arms):
            c = next((c for c in comps if c.arm == arm and c.cell == cell), None)
            if c is None or not math.isfinite(c.diff):
                continue
            y = -(k * (len(arms) + 1) + j)
            col = colours(j % 10)
            ax.errorbar([100 * c.diff], [y], xerr=[[100 * (c.diff - c.ci_low)], [100 * (c.ci_high - c.diff)]],
                        fmt="o", color=col, mfc=col if c.survives else "white", capsize=2, ms=5,
                        label=arm if k == 0 else None)
            ys.append(y)
            labels.append(f"{cell}  {arm}")
    ax.axvline(0.0, color="black", lw=1)
    ax.set_yticks(ys, labels, fontsize=7)
    ax.set_xlabel(f"difference against {stats.reference} (points, {stats.split}); {stats.confidence:.0%} CI")
    ax.set_title(title or f"paired differences against {stats.reference} (filled: survives Holm)")
    ax.grid(axis="x", alpha=0.3)
    if arms:
        ax.legend(fontsize=8, loc="best")
    return fig


def plot_evp(evps: Sequence[EvpCurves]) -> Figure:
    """Expected best objective against the number of trials, per schedule family, one panel per search."""
    fig, axes = plt.subplots(1, len(evps), figsize=(6.0 * len(evps), 3.8), squeeze=False)
    for ax, e in zip(axes[0], evps, strict=True):
        for fam, curve in e.curves.items():
            ns = list(range(1, len(curve) + 1))
            line = ax.plot(ns, curve, marker=".", label=f"{fam} ({e.counts[fam]} trials)")[0]
            ax.axvline(e.counts[fam], color=line.get_color(), lw=0.6, ls=":")  # beyond: draws with replacement
        ax.set_xlabel("trials (n)")
        ax.set_ylabel(f"expected best {e.metric}")
        ax.set_title(f"search {e.search}", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("expected validation performance (Dodge et al. 2019) per schedule family", fontsize=10)
    return fig


def _text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows])


def verdict_text(stats: StudyStatistics) -> str:
    """The console's verdict: per target (and the average), the best arm, by how much against the
    reference (the runner-up when the reference is best), its CI, and whether it survives Holm."""
    rows = [[v.label, v.best, v.versus, points(v.diff), f"[{points(v.ci_low)}, {points(v.ci_high)}]", _p(v.p_holm),
             "yes" if v.survives else "no"] for v in stats.verdict]
    head = [f"verdict ({stats.split} split, points = 100 × score; vs: the reference, or the runner-up where the "
            f"reference is best)"]
    if not rows:
        return "\n".join(head + ["  no comparison yet: an arm or the reference has no completed seed"])
    table = _text_table(["task", "best", "vs", "diff", f"{stats.confidence:.0%} CI", "p (Holm)", "survives"], rows)
    return "\n".join(head + [table, stats.method] + ([power_note(stats)] if power_note(stats) else []))


def power_note(stats: StudyStatistics) -> str:
    """A warning when too few seeds for any comparison to survive Holm, whatever the scores."""
    m = sum(1 for c in stats.comparisons if math.isfinite(c.p_value))
    alpha = 1 - stats.confidence
    if not m or smallest_p(stats.seeds) * m < alpha:
        return ""
    return (f"note: with {stats.seeds} seeds the smallest possible p-value is {smallest_p(stats.seeds):.2g}; "
            f"across {m} comparisons Holm needs one below {alpha / m:.2g}, so none can survive: add seeds, or "
            "compare fewer cells (statistics.cells: averages)")


def _describe(params: dict[str, str]) -> dict[str, str]:
    """An arm's configuration for people, from one of its children's params."""
    steps = params.get("intermediate_steps", "")
    out = {"schedule": params.get("schedule", "") if steps not in ("0", "") else "none",
           "intermediate": mixture_text(decode_mixture(params)) if steps not in ("0", "") else "none",
           "steps": f"{steps} + {params.get('target_steps', '')}"}
    if params.get("schedule") in ("interleaved", "annealed") and steps not in ("0", ""):
        share = params.get("multilingual_share", "")
        start = params.get("multilingual_share_start", "")
        out["mlm share"] = f"{start} → {share}" if params.get("schedule") == "annealed" else share
        out["T"] = params.get("language_temperature", "")
    langs = params.get("intermediate_languages", "en").replace(",", "+")
    if langs not in ("en", "") and steps not in ("0", ""):
        share = params.get("translated_share", "")
        out["translated"] = f"{share} of {langs}" if share not in ("", "None") else langs
    return out


def arm_rows(rec: StudyRecord, stats: StudyStatistics) -> list[dict[str, Any]]:
    """One row per arm: its configuration, where it came from, and its mean ± sd on each mean cell."""
    first: dict[str, dict[str, str]] = {}
    for t in rec.trials:
        first.setdefault(t.params.get("arm", ""), t.params)
    sources = rec.arm_sources()
    rows = []
    for arm in rec.arms:
        row: dict[str, Any] = {"arm": arm + (" (reference)" if arm == rec.reference else "")}
        row.update(_describe(first.get(arm, {})))
        if arm in sources:
            row["from"] = f"{sources[arm]}: {rec.params.get(f'arm.{arm}.search_trial', '?')}"
        for m in stats.means:
            if m.arm == arm and m.cell.endswith("avg"):
                row["seeds"] = m.n
                row[m.cell] = f"{points(m.mean, False)} ± {points(m.sd, False) or '–'}"
        rows.append(row)
    return rows


def _comparison_rows(stats: StudyStatistics) -> list[dict[str, Any]]:
    return [{"arm": c.arm, "cell": c.cell, "seeds": c.n, "arm mean": points(c.arm_mean, False),
             "reference mean": points(c.reference_mean, False), "diff": points(c.diff),
             "CI low": points(c.ci_low), "CI high": points(c.ci_high), "p": _p(c.p_value), "p (Holm)": _p(c.p_holm),
             "survives": "yes" if c.survives else "no"} for c in stats.comparisons]


def _means_rows(stats: StudyStatistics) -> list[dict[str, Any]]:
    by_arm: dict[str, dict[str, Any]] = {}
    for m in stats.means:
        by_arm.setdefault(m.arm, {"arm": m.arm})[m.cell] = points(m.mean, False)
    return list(by_arm.values())


def _plots(stats: StudyStatistics, evps: Sequence[EvpCurves]) -> list[Plot]:
    forest_title = "paired differences against the reference, per target and language"
    forest = (Plot("forest", forest_title, png_bytes(plot_forest(stats))) if stats.comparisons
              else Plot("forest", forest_title, None, "no completed seed of an arm and the reference yet"))
    evp_title = "expected validation performance per schedule family"
    if not any(e.curves for e in evps):
        return [forest, Plot("evp", evp_title, None, "drawn when arms come from a search (from_search); none here "
                                                     "does, or its search has no completed trial")]
    return [forest, Plot("evp", evp_title, png_bytes(plot_evp([e for e in evps if e.curves])),
                         "the expected best dev objective after n trials drawn from the search's completed trials of "
                         "each family; dotted: the trials it has (beyond them, draws repeat)")]


def render_study_report(rec: StudyRecord, stats: StudyStatistics, evps: Sequence[EvpCurves] = ()) -> str:
    """The HTML text of a study's report (no I/O)."""
    done = sum(1 for t in rec.trials if t.status == "completed")
    overview = [
        {"": "study run", "value": rec.run_name}, {"": "experiment", "value": rec.experiment},
        {"": "state", "value": f"{rec.status} ({rec.mlflow_status})"},
        {"": "trials", "value": f"{done} of {len(rec.arms) * len(rec.seeds)} completed ({len(rec.arms)} arms × "
                                f"{len(rec.seeds)} seeds), {sum(t.status == 'failed' for t in rec.trials)} failed"},
        {"": "reference arm", "value": rec.reference}, {"": "seeds", "value": ", ".join(map(str, rec.seeds))},
        {"": "scores compared", "value": f"{stats.split} split: {', '.join(rec.target_tasks)}"},
        {"": "study file", "value": rec.params.get("study_file", "")},
        {"": "started / ended", "value": f"{_when(rec.start_ms)} / {_when(rec.end_ms)}"},
        {"": "tracking store", "value": redact("tracking_uri", rec.tracking_uri)},
        {"": "parent run id", "value": rec.run_id},
    ]
    verdict = [{"task": v.label, "best arm": v.best, "vs": v.versus, "diff (points)": points(v.diff),
                f"{stats.confidence:.0%} CI": f"[{points(v.ci_low)}, {points(v.ci_high)}]",
                "p (Holm)": _p(v.p_holm), "survives": "yes" if v.survives else "no"} for v in stats.verdict]
    plots = _plots(stats, evps)
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
             f"<title>xstilts study: {html.escape(rec.run_name)}</title><style>{_CSS}</style></head><body>",
             f"<h1>xstilts study <code>{html.escape(rec.run_name)}</code></h1>", _table(overview, left=("", "value")),
             "<h2>Verdict</h2>", _table(verdict, left=("task", "best arm", "vs")),
             f"<p>{html.escape(stats.method)} Differences in points (100 × score). Where the reference is best, "
             "<i>vs</i> is the runner-up and the difference is the reference's lead.</p>",
             "<h2>Forest plot</h2>", _figure(plots[0]),
             "<h2>Arms</h2>", _table(arm_rows(rec, stats), left=("arm", "schedule", "intermediate", "from")),
             "<h3>Mean per target and language (points)</h3>", _table(_means_rows(stats), left=("arm",)),
             "<h2>Comparisons</h2>", _table(_comparison_rows(stats), left=("arm", "cell", "survives")),
             "<h2>Expected validation performance</h2>", _figure(plots[1])]
    failed = [t for t in rec.trials if t.status == "failed"]
    if failed:
        parts.append("<h2>Failed trials</h2>")
        parts += [f"<h3>{html.escape(t.name)}</h3><pre>{html.escape(t.error[-3000:])}</pre>" for t in failed]
    parts.append(f'<p class="note">written {_when(int(dt.datetime.now().timestamp() * 1000))} by '
                 f"<code>xstilts</code></p></body></html>")
    return "\n".join(parts)


def study_report_text(name: str, tracking_uri: str | None = None) -> tuple[StudyRecord, str]:
    """Study ``name`` (run name, or experiment: its latest study) from the store, and its report's
    HTML; ``SearchNotFound`` if there is no such study. ``xstilts report`` writes and logs it."""
    rec = load_study_record(resolve_tracking_uri(tracking_uri), name)
    return rec, render_study_report(rec, rec.statistics(), searches_evp(rec.tracking_uri, rec.arm_sources().values()))
