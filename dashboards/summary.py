"""The search summary on the parent run: best trial, leaderboard, search-level plots.

Built from the tracking store (``store.load_search``), so the same figures come out at the
end of a search (``log_search_summary``, called by the runner after ``tuner.fit()``), in
``xstilts report`` and after a resume.

Plots (PNG, ``summary/`` on the parent run):

* ``best_so_far.png`` — best objective so far against cumulative trial-seconds;
* ``parallel_coordinates.png`` and ``param_importances.png`` — drawn by
  ``optuna.visualization.matplotlib`` on an in-memory Optuna study rebuilt from the child
  runs over the dimensions a person reads (``ratio.*``, ``schedule``, ``multilingual_share``,
  ``language_temperature``, ...), not the raw simplex coordinates the searcher samples;
  importances are Optuna's default (fANOVA) over completed trials. A dimension left out (the
  same value in every completed trial, or set in only some) and an importance resting on few
  trials are said on the plot itself;
* ``task_language_heatmap.png`` — the best trial's task × language scores (test split when
  logged) against a baseline from the *other* schedule family (``comparison_baseline``), so
  the winner is never set against a near-copy of itself, and their difference.

The leaderboard is logged with ``MlflowClient.log_table`` as ``leaderboard.json``, its column
names without dots (``ratio_mnli``): MLflow's artifact table viewer shows dotted columns empty.
The parent's description links the winner, and a saved view ranks the trials (``mlflow_view``).
"""

from __future__ import annotations

import logging
import math
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.figure import Figure
from mlflow.tracking import MlflowClient

from xstilts.trainer.codec import RATIO, candidate_tasks, decode_mixture, is_bookkeeping
from xstilts.trainer.names import TEST_OBJECTIVE, WORST

from .mlflow_view import present_search
from .plots import (
    plot_best_so_far,
    plot_mixture_schedule,
    plot_task_language_heatmap,
    plot_zero_shot,
    png_bytes,
    zero_shot_scores,
)
from .store import SearchRecord, TrialRecord, best_trial, load_search, objective_value, ranked_trials

__all__ = ["Plot", "Baseline", "leaderboard", "search_plots", "best_trial_plots", "comparison_baseline",
           "derived_study", "left_out_dimensions", "is_bookkeeping", "log_search_summary", "FEW_TRIALS"]

log = logging.getLogger(__name__)

FEW_TRIALS = 10  # fewer completed trials than this: importances and coordinates are indicative only
_LEADERBOARD_PARAMS = ("intermediate_tasks", "schedule", "multilingual_share", "language_temperature", "learning_rate")


@dataclass
class Plot:
    """A rendered plot, or the reason there is none (``png`` None, ``note`` says why)."""

    key: str  # file stem
    title: str
    png: bytes | None
    note: str = ""


def leaderboard(rec: SearchRecord) -> list[dict[str, Any]]:
    """One row per trial, completed first, by objective (rank counts completed trials only)."""
    ratio_keys = sorted({f"{RATIO}{k}" for t in rec.trials for k in candidate_tasks(t.params)})
    dims = [k for k in rec.searched_keys() if not is_bookkeeping(k) and k not in ratio_keys]
    shown = [*ratio_keys, *sorted(dims, key=lambda k: (k not in _LEADERBOARD_PARAMS, k))]
    rows: list[dict[str, Any]] = []
    rank = 0
    for t in ranked_trials(rec):
        v = objective_value(t, rec.metric)
        if t.status == "completed" and v is not None:
            rank += 1
        row: dict[str, Any] = {"rank": rank if t.status == "completed" and v is not None else None,
                               "trial": t.name, "status": t.status, rec.metric: v}
        for m in (TEST_OBJECTIVE, WORST):
            if m != rec.metric:
                row[m] = t.metrics.get(m)
        for k in sorted(k for k in t.metrics if k.startswith("en/") and k.count("/") == 1):
            row[k] = t.metrics[k]
        for k in shown:
            if k in t.params:
                row[k] = t.params[k]
        row["trial_seconds"] = round(t.seconds, 1)
        row["error"] = (t.error.strip().splitlines() or [""])[-1][:200] if t.status == "failed" else ""
        row["run_id"] = t.run_id
        rows.append(row)
    return rows


@dataclass
class Baseline:
    """The trial the best one is compared with, and the rule that chose it (said wherever shown)."""

    trial: TrialRecord
    rule: str  # "x-stilts", "sequential" or "multilingual": which rule of comparison_baseline
    label: str  # what it is, for captions and headings

    @property
    def text(self) -> str:
        return f"{self.label}: {self.trial.name}"


def _is_sequential(t: TrialRecord) -> bool:
    return t.params.get("schedule") == "sequential"


def comparison_baseline(rec: SearchRecord, best: TrialRecord | None) -> Baseline | None:
    """What the best trial is compared with: always a trial of the other schedule family.

    * The best is multilingual (interleaved, annealed, staged): the **X-STILTs point** as the search
      ran it, the best completed sequential English-only trial with one intermediate task (any
      sequential trial when none has one task).
    * The best is sequential: the best completed trial that continued multilingual MLM.

    None when no trial of the other family completed."""
    if best is None:
        return None
    done = [t for t in rec.trials if t.status == "completed" and t.run_id != best.run_id]
    if not _is_sequential(best):
        seq = [t for t in done if _is_sequential(t)]
        single = [t for t in seq if len(decode_mixture(t.params)) == 1]
        if single:
            found = best_trial(single, rec.metric, rec.mode)
            return Baseline(found, "x-stilts", "X-STILTs point (best sequential English-only, one task)") if found else None
        found = best_trial(seq, rec.metric, rec.mode)
        return Baseline(found, "sequential", "best sequential English-only trial") if found else None
    other = best_trial([t for t in done if not _is_sequential(t)], rec.metric, rec.mode)
    return Baseline(other, "multilingual", "best trial with multilingual MLM (other schedule family)") if other else None


def _param_value(v: str) -> float | str:
    try:
        f = float(v)
    except ValueError:
        return v
    return f if math.isfinite(f) else v


def _completed(rec: SearchRecord) -> list[TrialRecord]:
    return [t for t in rec.trials if t.status == "completed" and objective_value(t, rec.metric) is not None]


def _dimension_values(rec: SearchRecord) -> dict[str, list[float | str]]:
    """Every searched dimension a person reads, and its values over the completed trials that set it."""
    done = _completed(rec)
    return {k: [_param_value(t.params[k]) for t in done if k in t.params]
            for k in rec.searched_keys() if not is_bookkeeping(k)}


def left_out_dimensions(rec: SearchRecord) -> dict[str, str]:
    """The searched dimensions ``derived_study`` leaves out, and why (said on the plots)."""
    n = len(_completed(rec))
    out: dict[str, str] = {}
    for k, vals in _dimension_values(rec).items():
        if not vals:
            out[k] = "set in no completed trial"
        elif len(vals) != n:
            out[k] = f"set in {len(vals)} of the {n} completed trials"
        elif len(set(vals)) < 2:
            out[k] = f"{vals[0] if vals else '-'} in every completed trial"
    return out


def derived_study(rec: SearchRecord) -> tuple[Any, list[str]]:
    """An in-memory Optuna study of the completed trials over the searched dimensions that vary.

    Returns ``(study, dimension names)``."""
    import optuna
    from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution

    done = _completed(rec)
    dropped = left_out_dimensions(rec)
    dists: dict[str, BaseDistribution] = {}
    for k, vals in _dimension_values(rec).items():
        if k in dropped:
            continue
        if all(isinstance(v, float) for v in vals):
            nums = [float(v) for v in vals]
            dists[k] = FloatDistribution(min(nums), max(nums))
        else:
            dists[k] = CategoricalDistribution(sorted({str(v) for v in vals}))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize" if rec.mode == "max" else "minimize",
                                study_name=rec.run_name)
    for t in done:
        params = {k: (float(t.params[k]) if isinstance(d, FloatDistribution) else str(t.params[k]))
                  for k, d in dists.items()}
        study.add_trial(optuna.trial.create_trial(params=params, distributions=dists,
                                                  value=objective_value(t, rec.metric),
                                                  user_attrs={"mlflow_run_id": t.run_id, "name": t.name}))
    return study, list(dists)


def _caveats(rec: SearchRecord, n: int) -> str:
    """What the Optuna plots leave out or rest on, in one line ("" when nothing)."""
    parts = []
    if n < FEW_TRIALS:
        parts.append(f"only {n} completed trials: indicative, not a ranking")
    others = len(rec.trials) - n
    if others:
        parts.append(f"{others} pruned, failed or running trial(s) left out")
    dropped = left_out_dimensions(rec)
    if dropped:
        parts.append("not shown: " + "; ".join(f"{k} ({why})" for k, why in dropped.items()))
    return "; ".join(parts)


def _with_caveat(fig: Figure, caveat: str) -> Figure:
    """``caveat`` written on the figure itself, under the axes (a PNG travels without its caption)."""
    if caveat:
        w, h = fig.get_size_inches()
        fig.set_size_inches(w, h + 0.5)
        fig.subplots_adjust(bottom=min(0.45, 0.5 / (h + 0.5) + 0.12))
        fig.text(0.01, 0.01, caveat, fontsize=7, color="#8a1c1c", ha="left", va="bottom", wrap=True)
    return fig


def _optuna_plots(rec: SearchRecord) -> list[Plot]:
    import optuna
    from optuna.visualization import matplotlib as ovm

    titles = {"parallel_coordinates": "parallel coordinates: sampled dimensions against the objective",
              "param_importances": "parameter importances (fANOVA, completed trials)"}
    try:
        study, dims = derived_study(rec)
    except Exception as e:
        return [Plot(k, t, None, f"no Optuna study could be rebuilt: {e}") for k, t in titles.items()]
    n = len(study.trials)
    if n < 2 or not dims:
        why = (f"needs at least 2 completed trials ({n} so far)" if n < 2
               else "no sampled dimension varies across completed trials")
        caveat = _caveats(rec, n)
        return [Plot(k, t, None, f"{why}; {caveat}" if caveat and n >= 2 else why) for k, t in titles.items()]
    titles["param_importances"] = f"parameter importances (fANOVA over {n} completed trials)"
    caveat = _caveats(rec, n)
    out: list[Plot] = []
    # optuna's matplotlib plots switch the global style (ggplot): keep that to these two figures
    with warnings.catch_warnings(), matplotlib.rc_context():
        warnings.simplefilter("ignore")  # optuna.visualization.matplotlib is "experimental"
        try:
            fig = _root(ovm.plot_parallel_coordinate(study, params=dims, target_name=rec.metric))
            fig.set_size_inches(max(7.0, 1.6 * len(dims) + 3), 4.2)
            out.append(Plot("parallel_coordinates", titles["parallel_coordinates"],
                            png_bytes(_with_caveat(fig, caveat)), caveat))
        except Exception as e:
            out.append(Plot("parallel_coordinates", titles["parallel_coordinates"], None, f"not drawn: {e}"))
        try:
            imp = optuna.importance.get_param_importances(study)
            if not imp or not all(math.isfinite(v) for v in imp.values()):
                raise ValueError(f"importances not finite: {imp}")
            fig = _root(ovm.plot_param_importances(study, target_name=rec.metric))
            fig.set_size_inches(7, max(2.5, 0.5 * len(dims) + 1.5))
            note = ", ".join(f"{k} {v:.2f}" for k, v in imp.items())
            out.append(Plot("param_importances", titles["param_importances"], png_bytes(_with_caveat(fig, caveat)),
                            f"{note}; {caveat}" if caveat else note))
        except Exception as e:
            out.append(Plot("param_importances", titles["param_importances"], None, f"not computed: {e}"))
    return out


def _root(ax: Any) -> Figure:
    fig = ax.get_figure(root=True)
    assert isinstance(fig, Figure)
    return fig


def search_plots(rec: SearchRecord) -> list[Plot]:
    """Every search-level plot (or why it is missing), in report order."""
    import matplotlib.pyplot as plt

    out: list[Plot] = []
    done_order = sorted((t for t in rec.trials if t.status != "running"), key=lambda t: t.end_ms or t.start_ms)
    points = [(t.name, t.seconds, objective_value(t, rec.metric), t.status) for t in done_order]
    title = "best objective so far against cumulative trial-seconds"
    if any(v is not None for _, _, v, _ in points):
        out.append(Plot("best_so_far", title, png_bytes(plot_best_so_far(points, rec.metric, rec.mode))))
    else:
        out.append(Plot("best_so_far", title, None, "no finished trial with an objective yet"))
    out += _optuna_plots(rec)
    best = best_trial(rec.trials, rec.metric, rec.mode)
    base = comparison_baseline(rec, best)
    title = "task × language: best trial against " + (base.label if base else "a trial of the other schedule family")
    if best is None:
        out.append(Plot("task_language_heatmap", title, None, "no completed trial yet"))
    elif not zero_shot_scores(best.metrics, "dev"):
        out.append(Plot("task_language_heatmap", title, None, f"{best.name} logged no per-language score"))
    else:
        split = "test" if zero_shot_scores(best.metrics, "test") else "dev"
        family = "sequential" if _is_sequential(best) else "multilingual MLM"
        note = (f"{split} split; best {best.name} ({family}) against {base.text}" if base else
                f"{split} split; best {best.name} ({family}): no trial of the other schedule family completed, "
                "so nothing to compare with")
        fig = plot_task_language_heatmap(
            zero_shot_scores(best.metrics, split), f"best: {best.name} ({best.params.get('schedule', '?')})",
            zero_shot_scores(base.trial.metrics, split) if base else None, base.text if base else "",
            title=f"task × language scores ({split})")
        out.append(Plot("task_language_heatmap", title, png_bytes(fig), note))
    plt.close("all")
    return out


def _logged_png(rec: SearchRecord, run_id: str, path: str) -> bytes | None:
    """A PNG the callback logged for a trial (drawn from the typed config), if it is there."""
    if not rec.tracking_uri:
        return None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(MlflowClient(rec.tracking_uri).download_artifacts(run_id, path, tmp)).read_bytes()
    except Exception:
        return None
    return data if data.startswith(b"\x89PNG") else None


def best_trial_plots(rec: SearchRecord) -> list[Plot]:
    """The best trial's mixture schedule and per-language scores."""
    best = best_trial(rec.trials, rec.metric, rec.mode)
    if best is None:
        return []
    # the logged plot was drawn from the trial's typed config (explicit stages survive there,
    # not in the flattened params); redraw from the params only when it is missing
    schedule = _logged_png(rec, best.run_id, "plots/mixture_schedule.png") or png_bytes(
        plot_mixture_schedule(best.params, title=f"{best.name}: sampling rates over steps"))
    return [Plot("best_mixture_schedule", f"best trial {best.name}: mixture schedule", schedule),
            Plot("best_zero_shot_by_language", f"best trial {best.name}: zero-shot scores per language",
                 png_bytes(plot_zero_shot(best.metrics, title=f"{best.name}: zero-shot scores per language")))]


def log_search_summary(tracking_uri: str, parent_run_id: str, metric: str | None = None, mode: str | None = None,
                       journal_path: str | Path | None = None) -> dict[str, Any] | None:
    """Write the summary onto the parent run; never raises (a plot must not fail a search).

    Returns what was written (``best_run_id``, ``plots``, ``leaderboard`` rows), or None on failure."""
    try:
        return _log_search_summary(tracking_uri, parent_run_id, metric, mode, journal_path)
    except Exception as e:
        log.warning("xstilts: search summary for run %s not logged: %r", parent_run_id, e)
        print(f"[xstilts] warning: search summary not logged: {e!r}", flush=True)
        return None


def _log_search_summary(tracking_uri: str, parent_run_id: str, metric: str | None, mode: str | None,
                        journal_path: str | Path | None) -> dict[str, Any]:
    import pandas as pd

    client = MlflowClient(tracking_uri)
    run = client.get_run(parent_run_id)
    name = run.data.tags.get("xstilts.search") or run.info.run_name
    rec = load_search(tracking_uri, name)
    if rec.run_id != parent_run_id:
        raise LookupError(f"search {name!r} resolves to run {rec.run_id}, not {parent_run_id}")
    if metric:
        rec.params["metric"] = metric
    if mode:
        rec.params["mode"] = mode
    rows = leaderboard(rec)
    if rows:  # MLflow's artifact table viewer leaves dotted column names empty
        frame = pd.DataFrame(rows).rename(columns=lambda c: str(c).replace(".", "_"))
        client.log_table(parent_run_id, data=frame, artifact_file="leaderboard.json")
    plots = search_plots(rec) + best_trial_plots(rec)
    with tempfile.TemporaryDirectory() as tmp:
        for p in plots:
            if p.png:
                (Path(tmp) / f"{p.key}.png").write_bytes(p.png)
        client.log_artifacts(parent_run_id, tmp, "summary")
    if journal_path and Path(journal_path).is_file():
        client.log_artifact(parent_run_id, str(journal_path), "optuna")
    best = best_trial(rec.trials, rec.metric, rec.mode)
    tags = {"xstilts.summary_plots": ",".join(p.key for p in plots if p.png)}
    if best is not None:
        tags.update({"xstilts.best_run_id": best.run_id, "xstilts.best_trial_name": best.name})
        base = comparison_baseline(rec, best)
        if base is not None:
            tags.update({"xstilts.baseline_run_id": base.trial.run_id, "xstilts.baseline_rule": base.rule})
    for k, v in tags.items():
        client.set_tag(parent_run_id, k, v)
    present_search(client, rec, best, comparison_baseline(rec, best))  # the winner linked, the ranked view
    return {"best_run_id": best.run_id if best else None, "plots": [p.key for p in plots if p.png],
            "skipped": {p.key: p.note for p in plots if not p.png}, "leaderboard": rows}
