"""Plots of trials and searches: pure data helpers plus matplotlib figures rendered to PNG.

PNG is the one format that the MLflow UI shows inline, that a self-contained HTML report can
embed (base64) and that needs neither a browser engine nor a CDN to render, so every plot
here is a PNG. Each figure comes from a pure helper (``mixture_phases``,
``zero_shot_scores``, ``best_so_far``, ...) that the tests check without drawing.

Params arrive either typed (from the trial's config) or as MLflow strings; the helpers
accept both.
"""

from __future__ import annotations

import ast
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: the driver, CI and servers draw off-screen

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from pydantic import ValidationError  # noqa: E402

from xstilts.trainer.config import TrialConfig  # noqa: E402
from xstilts.trainer.mixture import MLM  # noqa: E402
from xstilts.trainer.schedule import Schedule, phase1_schedule  # noqa: E402

__all__ = ["Phase", "mixture_phases", "trial_config_of", "zero_shot_scores", "best_so_far", "png_bytes",
           "plot_mixture_schedule", "plot_zero_shot", "plot_best_so_far", "plot_task_language_heatmap",
           "task_language_matrix"]

_TARGET_PREFIX = "target: "


def trial_config_of(params: Mapping[str, Any]) -> TrialConfig:
    """The ``TrialConfig`` a trial with these params runs: typed params (a config, what the search
    hands the callback) or MLflow's strings (``"300"``, ``"['xnli']"``, ``"xnli"``). The mixture
    is decoded by the one codec; raises ``ValueError`` when the params make no valid config."""
    from xstilts.trainer.codec import trial_fields

    fields = TrialConfig.model_fields
    raw = {k: _from_string(v, fields[k].annotation) for k, v in trial_fields(params, fields).items()}
    try:
        return TrialConfig.model_validate(raw)
    except ValidationError as e:
        raise ValueError(f"these params make no valid trial config: {e}") from None


def _from_string(v: Any, annotation: Any) -> Any:
    """An MLflow param string back to the list or mapping it was logged from, or to None (an inactive
    conditional param is logged as "None"); others: pydantic parses."""
    if v == "None" and "None" in str(annotation):
        return None
    if not isinstance(v, str) or not any(t in str(annotation) for t in ("list", "dict", "StageConfig")):
        return v
    s = v.strip()
    if s.startswith(("[", "{")):
        try:
            return ast.literal_eval(s)
        except (ValueError, SyntaxError):
            return v
    if "+" in s and "," not in s:  # a list written "en+xa+xb" (intermediate_languages): pydantic parses it
        return v
    return [x.strip() for x in s.split(",") if x.strip()] if "list" in str(annotation) else v


@dataclass(frozen=True)
class Phase:
    """A stretch of training steps and its sampling rates: a stage of the trainer's phase-1
    ``Schedule`` (which gives the rates at each step, annealed or not), or the target phase."""

    name: str
    start: int
    steps: int
    rates: dict[str, float]  # at its first step, components under their shown labels
    schedule: Schedule | None = None  # phase 1: the trainer's schedule (steps counted from phase 1's start)
    labels: Mapping[str, str] = field(default_factory=dict)  # component -> label shown (mlm's temperature)

    @property
    def annealed(self) -> bool:
        return self.schedule is not None and self.schedule.anneal_to is not None

    @property
    def components(self) -> list[str]:
        if self.schedule is None:
            return list(self.rates)
        return [self.labels.get(c, c) for c in self.schedule.components]

    def at(self, step: int) -> dict[str, float]:
        """The rates at training ``step`` (absolute; clamped to the phase)."""
        if self.schedule is None:
            return dict(self.rates)
        step = min(max(step, self.start), self.start + self.steps - 1)
        return {self.labels.get(c, c): r for c, r in self.schedule.rates(step).items()}


def mixture_phases(params: Mapping[str, Any]) -> list[Phase]:
    """The sampling rates over training steps that a trial with these params follows.

    Phase 1 is the trainer's own ``phase1_schedule`` of the trial's config (one phase per stage);
    phase 2 (``target_steps``) is English fine-tuning on the target task(s). ``params``: a
    resolved config or the params a trial logs (strings too). Task rates that the trainer derives
    from train sizes (``task_rates`` proportional, temperature, unimax) are shown as the
    configured ratios, and the phase name says so."""
    cfg = trial_config_of(params)
    by_data = cfg.task_rates not in ("explicit", "uniform")
    shown = cfg.model_copy(update={"task_rates": "explicit"}) if by_data else cfg
    schedule = phase1_schedule(shown)
    labels = {MLM: f"mlm (multilingual, T={cfg.language_temperature:.2g})"}
    suffix = f" (task rates: {cfg.task_rates} from train sizes at run time; configured ratios shown)" if by_data else ""
    out: list[Phase] = []
    if schedule is not None:
        start = 0
        for k, stage in enumerate(schedule.stages):
            if schedule.kind == "stages":
                name = f"stage {k + 1}"
            elif schedule.kind == "sequential":
                name = "intermediate, English only"
            elif schedule.anneal_to is not None:
                name = f"intermediate, annealed ({schedule.curve})"
            else:
                name = f"intermediate, {schedule.kind}"
            rates = {labels.get(c, c): r for c, r in stage.mixture.rates.items()}
            out.append(Phase(name + suffix, start, stage.steps, rates, schedule, labels))
            start += stage.steps
    targets = cfg.target_tasks
    start = out[-1].start + out[-1].steps if out else 0
    out.append(Phase("target, English", start, cfg.target_steps,
                     {f"{_TARGET_PREFIX}{t}": 1.0 / len(targets) for t in targets}))
    return out


def zero_shot_scores(metrics: Mapping[str, float], split: str = "dev") -> dict[str, dict[str, float]]:
    """``{task: {lang: score}}`` from ``zero_shot/<task>/<lang>`` and ``en/<task>`` metrics
    (``split='test'``: the ``test/`` ones). English first, then the other languages sorted."""
    prefix = "test/" if split == "test" else ""
    out: dict[str, dict[str, float]] = {}
    for k, v in metrics.items():
        if not k.startswith(prefix) or v is None or not math.isfinite(float(v)):
            continue
        parts = k[len(prefix):].split("/")
        if len(parts) == 3 and parts[0] == "zero_shot":
            out.setdefault(parts[1], {})[parts[2]] = float(v)
        elif len(parts) == 2 and parts[0] == "en":
            out.setdefault(parts[1], {})["en"] = float(v)
    return {t: dict(sorted(s.items(), key=lambda kv: (kv[0] != "en", kv[0]))) for t, s in sorted(out.items())}


def best_so_far(points: Sequence[tuple[float, float | None]], mode: str = "max") -> list[tuple[float, float]]:
    """``[(cumulative trial-seconds, best objective so far)]`` from ``(trial seconds, objective)``
    in completion order; trials without an objective (failed) add time but no point."""
    better = (lambda a, b: a > b) if mode == "max" else (lambda a, b: a < b)
    t = 0.0
    best: float | None = None
    out: list[tuple[float, float]] = []
    for secs, value in points:
        t += max(0.0, secs)
        if value is not None and math.isfinite(value) and (best is None or better(value, best)):
            best = value
        if best is not None:
            out.append((t, best))
    return out


def task_language_matrix(scores: Mapping[str, Mapping[str, float]]) -> tuple[list[str], list[str], list[list[float]]]:
    """Rows (tasks), columns (languages, English first) and values (NaN where missing)."""
    tasks = sorted(scores)
    langs = sorted({lang for s in scores.values() for lang in s}, key=lambda x: (x != "en", x))
    return tasks, langs, [[scores[t].get(lang, math.nan) for lang in langs] for t in tasks]


def png_bytes(fig: Figure, dpi: int = 110) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def plot_mixture_schedule(params: Mapping[str, Any], title: str = "") -> Figure:
    """Stacked area: the share of each component in the batches drawn at each step."""
    phases = mixture_phases(params)
    comps: list[str] = []
    for p in phases:
        comps += [c for c in p.components if c not in comps]
    xs: list[float] = []
    ys: list[list[float]] = [[] for _ in comps]
    for p in phases:
        last = p.start + max(1, p.steps) - 1
        n = 41 if p.annealed else 2
        steps = sorted({p.start + round(i * (last - p.start) / (n - 1)) for i in range(n)})
        for step in steps:
            r = p.at(step)
            xs.append(float(step))
            for i, c in enumerate(comps):
                ys[i].append(r.get(c, 0.0))
        xs.append(float(p.start + p.steps))  # hold the last rates to the phase's end
        for i in range(len(comps)):
            ys[i].append(ys[i][-1])
    fig, ax = plt.subplots(figsize=(8, 3.6))
    cmap = plt.get_cmap("tab10")
    colors = [cmap(i % 10) for i in range(len(comps))]
    ax.stackplot(xs, ys, labels=comps, colors=colors, alpha=0.85, step=None)
    for p in phases[1:]:
        ax.axvline(p.start, color="black", lw=1, ls="--")
    notes = []
    for p in phases:
        short, _, note = p.name.partition(" (task rates")
        ax.text(p.start + p.steps / 2, 1.02, short, ha="center", va="bottom", fontsize=8)
        if note:
            notes.append("task rates" + note.rstrip(")"))
    if notes:
        ax.text(0, -0.28, "; ".join(notes), transform=ax.transAxes, fontsize=7, color="#555555")
    ax.set_xlim(0, max(1, phases[-1].start + phases[-1].steps))
    ax.set_ylim(0, 1)
    ax.set_xlabel("training step")
    ax.set_ylabel("sampling rate")
    schedule = params.get("schedule", "")
    ax.set_title(title or f"mixture schedule ({schedule})", pad=16)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    return fig


def plot_zero_shot(metrics: Mapping[str, float], title: str = "") -> Figure:
    """Per-language scores of each target task: dev and test bars; English marked."""
    dev, test = zero_shot_scores(metrics, "dev"), zero_shot_scores(metrics, "test")
    tasks = sorted(set(dev) | set(test)) or ["(no zero-shot metrics)"]
    fig, axes = plt.subplots(1, len(tasks), figsize=(max(6.0, 4.5 * len(tasks)), 3.8), squeeze=False,
                             layout="constrained")
    for ax, task in zip(axes[0], tasks, strict=True):
        d, te = dev.get(task, {}), test.get(task, {})
        langs = sorted(set(d) | set(te), key=lambda x: (x != "en", x))
        xs = range(len(langs))
        w = 0.4
        ax.bar([x - w / 2 for x in xs], [d.get(lang, 0.0) for lang in langs], w, label="dev", color="#4c72b0")
        ax.bar([x + w / 2 for x in xs], [te.get(lang, 0.0) for lang in langs], w, label="test", color="#dd8452")
        mean = metrics.get(f"zero_shot/{task}")
        if mean is not None and math.isfinite(mean):
            ax.axhline(mean, color="black", lw=1, ls=":", label=f"zero-shot mean (dev) {mean:.3f}")
        ax.set_xticks(list(xs), [f"{lang}\n(English)" if lang == "en" else lang for lang in langs])
        ax.set_ylim(0, 1)
        ax.set_ylabel("score")
        ax.set_title(task)
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(title or "zero-shot scores per language")
    return fig


def plot_best_so_far(points: Sequence[tuple[str, float, float | None, str]], metric: str, mode: str = "max",
                     title: str = "") -> Figure:
    """Best objective so far against cumulative trial-seconds; every trial as a dot.

    ``points``: ``(trial name, trial seconds, objective or None, status)`` in completion order."""
    curve = best_so_far([(s, v) for _, s, v, _ in points], mode)
    fig, ax = plt.subplots(figsize=(7, 3.8))
    t = 0.0
    markers = {"completed": ("o", "#4c72b0"), "pruned": ("v", "#999999"), "running": ("s", "#55a868")}
    seen: set[str] = set()
    for _, secs, v, status in points:
        t += max(0.0, secs)
        if v is None or not math.isfinite(v):
            continue
        mk, col = markers.get(status, ("x", "#c44e52"))
        ax.scatter([t], [v], marker=mk, color=col, zorder=3, label=None if status in seen else status)
        seen.add(status)
    if curve:  # from the first trial that ended with a score: there is no "best" before it
        ax.step([x for x, _ in curve], [y for _, y in curve], where="post", color="black", lw=1.5,
                label="best so far")
    ax.set_xlabel("cumulative trial-seconds")
    ax.set_ylabel(metric)
    ax.set_title(title or f"best {metric} so far")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def plot_task_language_heatmap(best: Mapping[str, Mapping[str, float]], best_label: str,
                               baseline: Mapping[str, Mapping[str, float]] | None = None,
                               baseline_label: str = "", title: str = "") -> Figure:
    """Task × language scores of the best trial, the baseline and their difference."""
    panels: list[tuple[str, Mapping[str, Mapping[str, float]], str]] = [(best_label, best, "viridis")]
    if baseline:
        diff = {t: {lang: best[t][lang] - baseline[t][lang] for lang in best[t] if lang in baseline.get(t, {})}
                for t in best}
        panels += [(baseline_label, baseline, "viridis"), ("best − baseline", diff, "RdBu")]
    tasks, langs, _ = task_language_matrix(best)
    # panels stacked: a task × language grid is wide and short, so they read best one above another
    fig, axes = plt.subplots(len(panels), 1, figsize=(max(5.0, 0.75 * len(langs) + 2.5),
                                                      len(panels) * (1.1 + 0.45 * len(tasks)) + 0.4),
                             squeeze=False, layout="constrained")
    for ax, (label, scores, cmap) in zip(axes[:, 0], panels, strict=True):
        vals = [[scores.get(t, {}).get(lang, math.nan) for lang in langs] for t in tasks]
        diverging = cmap == "RdBu"
        lim = 1.0
        if diverging:
            finite = [abs(v) for row in vals for v in row if math.isfinite(v)]
            lim = max(finite, default=0.05) or 0.05
            im = ax.imshow(vals, cmap=cmap, vmin=-lim, vmax=lim, aspect="auto")
        else:
            im = ax.imshow(vals, cmap=cmap, vmin=0, vmax=1, aspect="auto")
        for i, row in enumerate(vals):
            for j, v in enumerate(row):
                if math.isfinite(v):
                    dark = abs(v) > 0.6 * lim if diverging else v < 0.5
                    ax.text(j, i, f"{v:+.2f}" if diverging else f"{v:.2f}", ha="center", va="center",
                            fontsize=8, color="white" if dark else "black")
        ax.set_xticks(range(len(langs)), langs)
        ax.set_yticks(range(len(tasks)), tasks)
        ax.set_title(label if len(label) <= 80 else label[:77] + "...", fontsize=9)
        ax.grid(False)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.suptitle(title or "task × language scores")
    return fig
