"""Schedules: how the phase-1 mixture moves over training time.

A ``Schedule`` is a list of stages, each ``steps`` long with a mixture; an annealed schedule
has one stage whose rates move from its mixture to ``anneal_to`` along a curve. The kinds a
trial can name (``TrialConfig.schedule``):

* ``sequential``: English intermediate tasks only (then the target phase): the X-STILTs baseline;
* ``interleaved``: one joint mixture of the tasks and multilingual MLM for the whole phase;
* ``annealed``: rates interpolated from one mixture to another (e.g. English-only to
  interleaved; or Stickland & Murray's α from 1 to 0.2 with ``stickland_murray_rates``);
* ``stages``: an explicit list of ``{steps, mixture}``.

``phase1_schedule(config)`` is the one function that turns a ``TrialConfig`` into its phase-1
mixture over steps: the trainer runs it, the mixture plot draws it, the PBT export replays it.

``ScheduleSampler`` draws one component per step from its own seeded RNG: deterministic given
the seed, and its ``state_dict`` (RNG and position) resumes the exact continuation.
``rates_over_steps`` prints a schedule as a table; ``plot_schedule`` draws it.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import TrialConfig
from .mixture import (
    MLM,
    Mixture,
    check_mixture,
    proportional_rates,
    scaled_rates,
    uniform_rates,
    unimax_rates,
    with_mlm_share,
)

__all__ = ["Stage", "Schedule", "ScheduleSampler", "rates_over_steps", "format_rates", "plot_schedule", "CURVES",
           "task_mixture", "phase1_mixture", "phase1_schedule", "phase1_tasks", "phase1_uses_mlm"]

CURVES = ("linear", "cosine")


def _curve(name: str, t: float) -> float:
    t = min(1.0, max(0.0, t))
    if name == "linear":
        return t
    if name == "cosine":
        return (1.0 - math.cos(math.pi * t)) / 2.0
    raise ValueError(f"unknown anneal curve {name!r}; known: {', '.join(CURVES)}")


@dataclass(frozen=True)
class Stage:
    steps: int
    mixture: Mixture

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"a stage needs at least one step, got {self.steps}")
        if not self.mixture:
            raise ValueError("a stage needs a non-empty mixture")


@dataclass(frozen=True)
class Schedule:
    kind: str
    stages: tuple[Stage, ...]
    anneal_to: Mixture | None = None  # annealed: the mixture at the last step
    curve: str = "linear"

    def __post_init__(self) -> None:
        if not self.stages:
            raise ValueError("a schedule needs at least one stage")
        if self.anneal_to is not None and len(self.stages) != 1:
            raise ValueError("an annealed schedule has exactly one stage")
        _curve(self.curve, 0.0)

    @classmethod
    def constant(cls, kind: str, mixture: Mixture, steps: int) -> Schedule:
        return cls(kind, (Stage(steps, mixture),))

    @classmethod
    def annealed(cls, start: Mixture, end: Mixture, steps: int, curve: str = "linear") -> Schedule:
        return cls("annealed", (Stage(steps, start),), anneal_to=end, curve=curve)

    @property
    def total_steps(self) -> int:
        return sum(s.steps for s in self.stages)

    @property
    def components(self) -> list[str]:
        out: list[str] = []
        for m in [*(s.mixture for s in self.stages), *([self.anneal_to] if self.anneal_to else [])]:
            out += [c for c in m.components if c not in out]
        return out

    def rates(self, step: int) -> dict[str, float]:
        """The mixture's rates at ``step`` (0-based); past the end, the last rates."""
        start = 0
        for stage in self.stages:
            if step < start + stage.steps or stage is self.stages[-1]:
                if self.anneal_to is None:
                    return dict(stage.mixture.rates)
                w = _curve(self.curve, (step - start) / max(1, stage.steps - 1))
                names = self.components
                return {n: (1 - w) * stage.mixture.rates.get(n, 0.0) + w * self.anneal_to.rates.get(n, 0.0)
                        for n in names}
            start += stage.steps
        raise AssertionError("unreachable")

    def describe(self) -> str:
        def fmt(m: Mixture) -> str:
            return ", ".join(f"{k} {v:.2f}" for k, v in m.rates.items())

        if self.anneal_to is not None:
            return (f"{self.kind}: {self.total_steps} steps, {self.curve} from [{fmt(self.stages[0].mixture)}] "
                    f"to [{fmt(self.anneal_to)}]")
        parts = [f"{s.steps} steps [{fmt(s.mixture)}]" for s in self.stages]
        return f"{self.kind}: " + " -> ".join(parts)


# --- a trial's phase-1 schedule, from its config --------------------------------------------------


def phase1_tasks(cfg: TrialConfig) -> list[str]:
    """The intermediate tasks phase 1 may draw (a positive ratio or a stage's positive rate), sorted:
    the trainer loads their train splits."""
    stages = {t for s in cfg.stages or [] for t, r in s.mixture.items() if r > 0 and t != MLM}
    return sorted({t for t, r in cfg.intermediate.items() if r > 0} | stages)


def phase1_uses_mlm(cfg: TrialConfig) -> bool:
    """Whether phase 1 draws multilingual MLM, and so needs the monolingual corpora."""
    share = (cfg.multilingual_share > 0 or (cfg.schedule == "annealed" and cfg.multilingual_share_start > 0)
             or any(s.mixture.get(MLM, 0) > 0 for s in cfg.stages or []))
    return share and cfg.intermediate_steps > 0 and cfg.schedule != "sequential"


def task_mixture(cfg: TrialConfig, sizes: dict[str, int] | None = None) -> dict[str, float]:
    """The intermediate tasks' rates (normalised): the given ratios, or a function of the chosen
    tasks' train sizes (``task_rates``). ``sizes`` is needed for every kind but explicit/uniform."""
    chosen = {t: r for t, r in cfg.intermediate.items() if r > 0}
    if not chosen:
        return {}
    kind = cfg.task_rates
    if kind == "explicit":
        z = sum(chosen.values())
        return {t: r / z for t, r in chosen.items()}
    if kind == "uniform":
        return uniform_rates(list(chosen))
    if sizes is None:
        raise ValueError(f"task_rates {kind!r} needs the tasks' train sizes")
    n = {t: sizes.get(t, 0) for t in chosen}
    if kind == "proportional":
        return proportional_rates(n, cfg.examples_cap)
    if kind == "temperature":
        return scaled_rates(n, cfg.task_temperature, cfg.examples_cap)
    budget = cfg.intermediate_steps * cfg.batch_size * cfg.grad_accum  # examples seen in phase 1
    return unimax_rates(n, budget, cfg.unimax_epochs)


def phase1_mixture(cfg: TrialConfig, sizes: dict[str, int] | None = None) -> Mixture:
    """The phase-1 mixture at its end: intermediate tasks share ``1 - m``, multilingual MLM ``m``
    (``m`` = 0 under ``sequential``). For ``stages``, the last stage's mixture."""
    if cfg.schedule == "stages" and cfg.stages:
        return Mixture(dict(cfg.stages[-1].mixture))
    m = cfg.multilingual_share if cfg.schedule in ("interleaved", "annealed") else 0.0
    return Mixture(with_mlm_share(task_mixture(cfg, sizes), m))


def phase1_schedule(cfg: TrialConfig, sizes: dict[str, int] | None = None) -> Schedule | None:
    """The phase-1 schedule of a trial (None when phase 1 is empty)."""
    if cfg.intermediate_steps == 0:
        return None
    known = sorted(n for n in (sizes or {}) if n != MLM)
    if cfg.schedule == "stages":
        assert cfg.stages
        stages = []
        for k, s in enumerate(cfg.stages):
            try:
                mix = check_mixture(s.mixture, sizes=sizes) if sizes is not None else Mixture(dict(s.mixture))
            except ValueError as e:
                raise ValueError(f"stage {k + 1}: {e}") from None
            stages.append(Stage(s.steps, mix))
        return Schedule("stages", tuple(stages))
    end = phase1_mixture(cfg, sizes)
    if not end:
        return None
    if sizes is not None:
        check_mixture(end.rates, sizes=sizes, known=[*known, MLM])
    if cfg.schedule == "annealed":
        start = Mixture(with_mlm_share(task_mixture(cfg, sizes), cfg.multilingual_share_start))
        if not start:
            start = end
        return Schedule.annealed(start, end, cfg.intermediate_steps, cfg.anneal_curve)
    return Schedule.constant(cfg.schedule, end, cfg.intermediate_steps)


class ScheduleSampler:
    """Draws the component of each step, deterministically from ``seed``; resumable exactly."""

    def __init__(self, schedule: Schedule, seed: int) -> None:
        self.schedule = schedule
        self.names = schedule.components
        self.rng = random.Random(seed)
        self.step = 0

    def __call__(self) -> str:
        r = self.schedule.rates(self.step)
        self.step += 1
        return self.rng.choices(self.names, weights=[r.get(n, 0.0) for n in self.names])[0]

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.getstate(), "step": self.step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.setstate(state["rng"])
        self.step = state["step"]


def rates_over_steps(schedule: Schedule, points: int = 11) -> list[dict[str, float]]:
    """A table: ``points`` rows evenly spaced over the schedule, each ``{"step": s, component: rate}``."""
    total = schedule.total_steps
    steps = sorted({round(i * (total - 1) / max(1, points - 1)) for i in range(points)})
    for s in schedule.stages[:-1]:  # show every stage boundary
        boundary = sum(x.steps for x in schedule.stages[: schedule.stages.index(s) + 1])
        steps = sorted({*steps, boundary - 1, boundary})
    return [{"step": float(s), **{n: schedule.rates(s).get(n, 0.0) for n in schedule.components}} for s in steps]


def format_rates(schedule: Schedule, points: int = 11) -> str:
    rows = rates_over_steps(schedule, points)
    names = schedule.components
    head = "step   " + "  ".join(f"{n:>8}" for n in names)
    lines = [schedule.describe(), head]
    lines += [f"{int(r['step']):>5}  " + "  ".join(f"{r[n]:8.3f}" for n in names) for r in rows]
    return "\n".join(lines)


def plot_schedule(schedule: Schedule, path: str | Path, points: int = 101) -> Path:
    """Rates over steps as a stacked area plot (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = rates_over_steps(schedule, points)
    x = [r["step"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.stackplot(x, *[[r[n] for r in rows] for n in schedule.components], labels=schedule.components)
    ax.set_xlabel("phase-1 step")
    ax.set_ylabel("sampling rate")
    ax.set_ylim(0, 1)
    ax.set_title(schedule.describe()[:90], fontsize=8)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
