"""``xstilts report NAME``: one self-contained HTML file describing a search (or a study:
``study_report`` renders it, this module writes and logs it).

Self-contained means the file opens on a machine with no network: no scripts, no CDN,
no external stylesheet; every plot is a PNG inlined as a ``data:`` URI. The report is
built from the tracking store (what the MLflow callback wrote), written to
``$XSTILTS_HOME/reports/<search run>.html`` (or ``--output``) and logged to the search's
parent run under ``report/``.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import math
import os
from pathlib import Path
from typing import Any

from mlflow.tracking import MlflowClient

from xstilts.trainer.codec import decode_mixture, is_bookkeeping, mixture_text

from .mlflow_logging import redact
from .plots import zero_shot_scores
from .recommendation import Recommendation, estimate_text, from_records
from .store import (
    SearchNotFound,
    SearchRecord,
    StoreUnavailable,
    TrialRecord,
    best_trial,
    load_search,
    objective_value,
    resolve_tracking_uri,
)
from .summary import Baseline, Plot, best_trial_plots, comparison_baseline, leaderboard, search_plots

__all__ = ["write_report", "render_report", "report_leaderboard", "language_table", "recommendation_table"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1200px;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
th,td{border:1px solid #ddd;padding:.25em .5em;text-align:right}th{background:#f4f4f4}
td.l,th.l{text-align:left}td.n{white-space:nowrap}tr.completed td:first-child{font-weight:bold}
tr.failed{color:#a33}tr.pruned{color:#777}
figure{margin:1em 0}figcaption{font-size:.85em;color:#555}img{max-width:100%}
.note{color:#777;font-style:italic}.scroll{overflow-x:auto}code{background:#f4f4f4;padding:0 .2em}
"""


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "" if not math.isfinite(v) else f"{v:.4f}" if abs(v) < 10 else f"{v:.1f}"
    s = str(v)
    try:
        f = float(s)
        if "." in s and len(s) > 8 and math.isfinite(f):
            return f"{f:.4g}"
    except ValueError:
        pass
    return s


def _table(rows: list[dict[str, Any]], left: tuple[str, ...] = ("trial", "status", "schedule", "error", "run_id"),
           row_class: str | None = None, nowrap: tuple[str, ...] = ("trial", "mixture")) -> str:
    if not rows:
        return '<p class="note">no rows</p>'
    cols: list[str] = []
    for r in rows:
        cols += [c for c in r if c not in cols]
    head = "".join(f'<th class="{"l" if c in left else ""}">{html.escape(c)}</th>' for c in cols)
    body = []
    for r in rows:
        cls = html.escape(str(r.get(row_class, ""))) if row_class else ""
        cells = "".join(f'<td class="{"l" if c in left else ""}{" n" if c in nowrap else ""}">'
                        f"{html.escape(_fmt(r.get(c)))}</td>" for c in cols)
        body.append(f'<tr class="{cls}">{cells}</tr>')
    return (f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody>'
            "</table></div>")


def _figure(p: Plot) -> str:
    if p.png is None:
        return f'<h3>{html.escape(p.title)}</h3><p class="note">not drawn: {html.escape(p.note)}</p>'
    data = base64.b64encode(p.png).decode("ascii")
    cap = f"<figcaption>{html.escape(p.note)}</figcaption>" if p.note else ""
    return (f'<figure id="{html.escape(p.key)}"><h3>{html.escape(p.title)}</h3>'
            f'<img alt="{html.escape(p.title)}" src="data:image/png;base64,{data}">{cap}</figure>')


def _when(ms: int | None) -> str:
    if not ms:
        return "—"
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _num(v: Any, spec: str) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "" if v is None else str(v)
    return format(f, spec) if math.isfinite(f) else ""


def _time_text(rec: SearchRecord) -> str:
    """The search's time, preparation included: "14.2 min in all: 11.0 min preparation (checks, data,
    pretraining, Ray), 3.0 min of trials"."""
    total = rec.metrics.get("search/seconds")
    if total is None:
        if not rec.start_ms:
            return "—"
        end = rec.end_ms or dt.datetime.now().timestamp() * 1000
        return f"{(end - rec.start_ms) / 60000:.1f} min so far, preparation included"
    parts = [f"{total / 60:.1f} min in all"]
    prep, fit = rec.metrics.get("search/prep_seconds"), rec.metrics.get("search/fit_seconds")
    if prep is not None:
        parts.append(f"{prep / 60:.1f} min preparation (checks, data, pretraining, Ray)")
    if fit is not None:
        parts.append(f"{fit / 60:.1f} min of trials")
    return parts[0] + (": " + ", ".join(parts[1:]) if len(parts) > 1 else "")


def report_leaderboard(rec: SearchRecord) -> list[dict[str, str]]:
    """The leaderboard as read in the report: the key columns first, each in one format
    (objective 4 decimals, lr 3 significant digits, shares and temperatures 2 decimals, seconds whole),
    the mixture as ``mnli 0.80 / sst2 0.20``; every row of ``leaderboard`` in its order."""
    by_name = {t.name: t for t in rec.trials}
    out = []
    for row in leaderboard(rec):
        t = by_name[row["trial"]]
        p = t.params
        out.append({"rank": "" if row["rank"] is None else str(row["rank"]), "trial": t.name, "status": t.status,
                    rec.metric: _num(row.get(rec.metric), ".4f"), "test": _num(t.metrics.get("test/zero_shot/avg"), ".4f"),
                    "mixture": mixture_text(decode_mixture(p)), "schedule": p.get("schedule", ""),
                    "lr": _num(p.get("learning_rate"), ".3g"), "share": _num(p.get("multilingual_share"), ".2f"),
                    "T": _num(p.get("language_temperature"), ".2f"), "seconds": _num(t.seconds, ".0f"),
                    "error": row.get("error", "")})
    return out


def language_table(best: TrialRecord, base: Baseline | None) -> list[dict[str, str]]:
    """Task × language scores of the best trial, the baseline and their difference (test split when
    the best trial logged it), one row per task and trial: the numbers behind the heatmap."""
    split = "test" if zero_shot_scores(best.metrics, "test") else "dev"
    ours = zero_shot_scores(best.metrics, split)
    theirs = zero_shot_scores(base.trial.metrics, split) if base else {}
    rows = []
    for task, scores in ours.items():
        rows.append({"task": task, "split": split, "trial": f"best: {best.name}",
                     **{lang: f"{v:.3f}" for lang, v in scores.items()}})
        if task in theirs:
            rows.append({"task": task, "split": split, "trial": f"baseline: {base.trial.name}" if base else "",
                         **{lang: f"{v:.3f}" for lang, v in theirs[task].items()}})
            rows.append({"task": task, "split": split, "trial": "best − baseline",
                         **{lang: f"{v - theirs[task][lang]:+.3f}" for lang, v in scores.items() if lang in theirs[task]}})
    return rows


def recommendation_table(r: Recommendation) -> list[dict[str, str]]:
    """One row per confirm candidate: its search rank and score, mean ± SE over the fresh seeds, each
    seed's score (or how it ended), and why a seed is left out."""
    rows = []
    for c in r.candidates:
        row = {"candidate": c.name, "rank": str(c.rank), "search": _num(c.search_value, ".4f"),
               "mean": _num(c.mean, ".4f"), "SE": _num(c.se, ".4f"), "n": str(c.n)}
        row.update({f"seed {s.seed}": _num(s.value, ".4f") if s.counted else s.status for s in c.scores})
        row["left out"] = "; ".join(f"seed {s.seed}: {s.reason}" for s in c.scores if not s.counted)
        row["recommended"] = "yes" if r.recommended is c else ""
        rows.append(row)
    return rows


def _recommendation_section(r: Recommendation) -> list[str]:
    best = r.recommended
    head = ('<p class="note">no confirm trial completed: no recommendation</p>' if best is None else
            f"<p><b>{html.escape(best.name)}</b>: {html.escape(estimate_text(best, r.metric))} (mean ± SE)</p>")
    return ['<h2 id="recommendation">Recommendation (confirmed on fresh seeds)</h2>', head,
            "<p>The best trials of the search, trained again on training seeds no trial of the search used. The "
            "recommendation is the best mean over those seeds; a candidate's own search score is left out of it "
            "(it was picked for being high). The best trial below is the search's raw maximum: one seed each.</p>",
            _table(recommendation_table(r), left=("candidate", "left out"))]


def render_report(rec: SearchRecord, tracking_uri: str = "") -> str:
    """The HTML text of the report of ``rec`` (no I/O)."""
    counts = rec.counts()
    best = best_trial(rec.trials, rec.metric, rec.mode)
    base = comparison_baseline(rec, best)
    planned = rec.params.get("trials", "?")
    overview = [
        {"": "search run", "value": rec.run_name}, {"": "experiment", "value": rec.experiment},
        {"": "state", "value": f"{rec.status} ({rec.mlflow_status})"},
        {"": "trials", "value": (f"{len(rec.trials)} of {planned} planned: {counts['completed']} completed, "
                                 f"{counts['pruned']} pruned, {counts['failed']} failed, {counts['running']} running")},
        {"": "objective", "value": f"{rec.metric} ({rec.mode})"},
        {"": "searcher / scheduler",
         "value": f"{rec.params.get('searcher', '?')} / {rec.params.get('scheduler', '?')}"},
        {"": "space file", "value": rec.params.get("space_file", "")},
        {"": "started / ended", "value": f"{_when(rec.start_ms)} / {_when(rec.end_ms)}"},
        {"": "time", "value": _time_text(rec)},
        {"": "tracking store", "value": redact("tracking_uri", tracking_uri)},
        {"": "parent run id", "value": rec.run_id},
    ]
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
             f"<title>xstilts report: {html.escape(rec.run_name)}</title><style>{_CSS}</style></head><body>",
             f"<h1>xstilts search <code>{html.escape(rec.run_name)}</code></h1>",
             _table(overview, left=("", "value"))]
    confirmed = from_records(rec.trials, rec.confirm, rec.metric, rec.mode)
    if confirmed is not None:
        parts += _recommendation_section(confirmed)
    parts.append("<h2>Best trial</h2>" if confirmed is None else "<h2>Best trial (raw: one training seed)</h2>")
    if best is None:
        parts.append('<p class="note">no completed trial yet</p>')
    else:
        v = objective_value(best, rec.metric)
        parts.append(f"<p><b>{html.escape(best.name)}</b>: {html.escape(rec.metric)} = {_fmt(v)} (dev), "
                     f"test/zero_shot/avg = {_fmt(best.metrics.get('test/zero_shot/avg'))}; "
                     f"MLflow run <code>{html.escape(best.run_id)}</code></p>")
        if base is not None:
            parts.append(f"<p>Compared with the {html.escape(base.label)}: <b>{html.escape(base.trial.name)}</b>, "
                         f"{html.escape(rec.metric)} = {_fmt(objective_value(base.trial, rec.metric))} (dev), "
                         f"test/zero_shot/avg = {_fmt(base.trial.metrics.get('test/zero_shot/avg'))}</p>")
        else:
            parts.append('<p class="note">No trial of the other schedule family completed: nothing to compare '
                         "the best trial with.</p>")
        searched = [k for k in rec.searched_keys() if k in best.params and not is_bookkeeping(k)]
        parts.append(_table([{"param": k, "value": best.params[k]} for k in searched], left=("param", "value")))
        parts.append('<h3 id="per-language">Scores per task and language</h3>')
        parts.append(_table(language_table(best, base), left=("task", "split", "trial")))
    parts.append("<h2>Leaderboard</h2>")
    parts.append(_table(report_leaderboard(rec), left=("trial", "status", "mixture", "schedule", "error"),
                        row_class="status"))
    parts.append("<h2>Search</h2>")
    parts += [_figure(p) for p in search_plots(rec)]
    if best is not None:
        parts.append("<h2>Best trial in detail</h2>")
        parts += [_figure(p) for p in best_trial_plots(rec)]
    failed = [t for t in rec.trials if t.status == "failed"]
    if failed:
        parts.append("<h2>Failed trials</h2>")
        for t in failed:
            parts.append(f"<h3>{html.escape(t.name)}</h3><pre>{html.escape(t.error[-3000:])}</pre>")
    parts.append(f'<p class="note">written {_when(int(dt.datetime.now().timestamp() * 1000))} by '
                 f"<code>xstilts report</code></p></body></html>")
    return "\n".join(parts)


def write_report(name: str | None, tracking_uri: str | None = None, output: str | None = None) -> str:
    """Write the report of search ``name`` (run name, or experiment: its latest search) — or of
    study ``name`` when no search has that name (``study_report``) — and log it to the parent run
    under ``report/``; returns the path written."""
    uri = resolve_tracking_uri(tracking_uri)
    try:
        search = load_search(uri, name)
        run_name, run_id, text = search.run_name, search.run_id, render_report(search, uri)
    except StoreUnavailable:
        raise
    except SearchNotFound as no_search:
        if not name:
            raise
        from .study_report import study_report_text

        try:
            study, text = study_report_text(name, uri)
        except SearchNotFound:
            raise no_search from None  # neither: the search's message, as `status` gives it
        run_name, run_id = study.run_name, study.run_id
    if output:
        path = Path(output)
    else:
        from xstilts.trainer.home import home

        path = home() / "reports" / f"{run_name}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    MlflowClient(uri).log_artifact(run_id, str(path), "report")
    return os.fspath(path.resolve())
