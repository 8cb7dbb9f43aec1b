"""Mixtures: what each training step draws its batch from.

A ``Mixture`` names its components and demands a rate for each (rates are normalised).
The multilingual MLM component is itself a mixture over languages, with rates from the
language temperature: ``q_l ∝ n_l^(1/T)`` (T=1: proportional to corpus size; T→∞: uniform).
So is an intermediate task drawn in several languages (English and its translations):
``language_rates``.

``MixtureSampler`` draws one component per step from its own seeded RNG, so the sequence
of components is deterministic given the seed, and its state can be saved and restored.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Mixture",
    "MixtureSampler",
    "temperature_rates",
    "proportional_rates",
    "scaled_rates",
    "uniform_rates",
    "unimax_rates",
    "stickland_murray_rates",
    "check_mixture",
    "with_mlm_share",
    "language_rates",
    "LANGUAGE_RULES",
    "MLM",
]

MLM = "mlm"  # the multilingual MLM component of a phase-1 mixture
LANGUAGE_RULES = ("uniform", "temperature")  # how a task's examples are spread over its languages


def temperature_rates(sizes: Mapping[str, int], temperature: float) -> dict[str, float]:
    """``q_l ∝ n_l^(1/T)``, normalised. Raises on an empty or non-positive input."""
    if temperature <= 0:
        raise ValueError(f"language temperature must be > 0, got {temperature}")
    if not sizes:
        raise ValueError("temperature sampling over no languages")
    bad = [k for k, n in sizes.items() if n <= 0]
    if bad:
        raise ValueError(f"languages with no data: {', '.join(bad)}")
    w = {k: n ** (1.0 / temperature) for k, n in sizes.items()}
    z = sum(w.values())
    return {k: v / z for k, v in w.items()}


@dataclass(frozen=True)
class Mixture:
    """Named components with rates; the rates are normalised on construction."""

    rates: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        bad = {k: v for k, v in self.rates.items() if not math.isfinite(v)}
        if bad:
            raise ValueError(f"non-finite mixture rates: {bad}")
        neg = {k: v for k, v in self.rates.items() if v < 0}
        if neg:
            raise ValueError(f"negative mixture rates: {neg}")
        z = sum(self.rates.values())
        if self.rates and z <= 0:
            raise ValueError(f"all mixture rates are zero: {dict(self.rates)}")
        if self.rates:
            object.__setattr__(self, "rates", {k: v / z for k, v in self.rates.items() if v > 0})

    @property
    def components(self) -> list[str]:
        return list(self.rates)

    def __bool__(self) -> bool:
        return bool(self.rates)


class MixtureSampler:
    """Draws a component name per step, deterministically from ``seed``."""

    def __init__(self, mixture: Mixture, seed: int | str) -> None:
        if not mixture:
            raise ValueError("cannot sample from an empty mixture")
        self.names = mixture.components
        self.weights = [mixture.rates[n] for n in self.names]
        self.rng = random.Random(seed)
        self.drawn = 0

    def __call__(self) -> str:
        self.drawn += 1
        return self.rng.choices(self.names, weights=self.weights)[0]

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.getstate(), "drawn": self.drawn}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.setstate(state["rng"])
        self.drawn = state["drawn"]


# --- rate functions (seqio's mixing_rate_num_examples, T5 / jiant temperature, UniMax) -----------


def _check_sizes(sizes: Mapping[str, int | float]) -> None:
    if not sizes:
        raise ValueError("a mixture over no components")
    empty = [k for k, n in sizes.items() if n <= 0]
    if empty:
        raise ValueError(f"components with no data: {', '.join(empty)}")


def proportional_rates(sizes: Mapping[str, int], cap: int | None = None) -> dict[str, float]:
    """Examples-proportional mixing, each size capped at ``cap`` (T5's K)."""
    return scaled_rates(sizes, 1.0, cap)


def scaled_rates(sizes: Mapping[str, int], temperature: float = 1.0, cap: int | None = None) -> dict[str, float]:
    """Temperature-scaled mixing with an examples cap: ``r_i ∝ min(n_i, K)^(1/T)`` (T5, jiant)."""
    _check_sizes(sizes)
    if cap is not None and cap <= 0:
        raise ValueError(f"examples cap K must be > 0, got {cap}")
    return temperature_rates({k: min(n, cap) if cap else n for k, n in sizes.items()}, temperature)


def uniform_rates(names: list[str] | tuple[str, ...]) -> dict[str, float]:
    if not names:
        raise ValueError("a mixture over no components")
    return {n: 1.0 / len(names) for n in names}


def unimax_rates(sizes: Mapping[str, int], budget: float, max_epochs: float = 1.0) -> dict[str, float]:
    """UniMax (Chung et al. 2023): spread ``budget`` examples as uniformly as possible over the
    components, never more than ``max_epochs`` epochs of any one; what a small component cannot
    use goes to the larger ones. Returns the budget shares (normalised)."""
    _check_sizes(sizes)
    if budget <= 0 or max_epochs <= 0:
        raise ValueError(f"UniMax needs budget > 0 and max_epochs > 0, got {budget}, {max_epochs}")
    left = float(budget)
    alloc: dict[str, float] = {}
    order = sorted(sizes, key=lambda k: (sizes[k], k))
    for i, k in enumerate(order):
        share = left / (len(order) - i)
        alloc[k] = min(share, sizes[k] * max_epochs)
        left -= alloc[k]
    z = sum(alloc.values())
    return {k: alloc[k] / z for k in sizes}


def stickland_murray_rates(sizes: Mapping[str, int], progress: float, alpha_end: float = 0.2) -> dict[str, float]:
    """Annealed sampling (Stickland & Murray 2019): ``r_i ∝ n_i^α`` with α going linearly from 1
    (proportional) at ``progress`` 0 to ``alpha_end`` (toward uniform) at ``progress`` 1."""
    alpha = 1.0 - (1.0 - alpha_end) * min(1.0, max(0.0, progress))
    return temperature_rates(sizes, 1.0 / alpha)


def check_mixture(rates: Mapping[str, float], *, known: list[str] | tuple[str, ...] | None = None,
                  sizes: Mapping[str, int] | None = None) -> Mixture:
    """A ``Mixture`` after the checks that need context; errors name the offending components:
    unknown names (not in ``known``), negative or all-zero rates, components with no data."""
    if known is not None:
        unknown = [k for k in rates if k not in known]
        if unknown:
            raise ValueError(f"unknown mixture components: {', '.join(unknown)}; known: {', '.join(known)}")
    mix = Mixture(dict(rates))
    if not mix:
        raise ValueError("an empty mixture: give at least one component a positive rate")
    if sizes is not None:
        empty = [k for k in mix.components if sizes.get(k, 0) <= 0]
        if empty:
            raise ValueError(f"mixture components with no data: {', '.join(empty)}")
    return mix


def with_mlm_share(tasks: Mapping[str, float], share: float) -> dict[str, float]:
    """The phase-1 rule: multilingual MLM gets a share ``m`` of the steps and the intermediate
    tasks ``(1 − m)·r`` (``r`` their normalised rates); with no task, MLM alone (rate 1)."""
    out = {t: (1.0 - share) * r for t, r in tasks.items()}
    if share > 0:
        out[MLM] = share if out else 1.0
    return out


def language_rates(sizes: Mapping[str, int], rule: str, temperature: float = 1.0,
                   translated_share: float | None = None) -> dict[str, float]:
    """The languages one intermediate task is drawn in, ``sizes`` its examples per language (``en``
    its English train, the others its translations), by ``rule``: ``uniform`` or ``temperature``
    (``q_l ∝ n_l^(1/T)``). With ``translated_share`` s, English gets ``1 − s`` and the translations
    ``s``, split among them by the rule; without, the rule spreads over every language. Languages of
    rate 0 are left out."""
    if rule not in LANGUAGE_RULES:
        raise ValueError(f"unknown language rule {rule!r}; known: {', '.join(LANGUAGE_RULES)}")

    def spread(langs: Mapping[str, int]) -> dict[str, float]:
        return uniform_rates(list(langs)) if rule == "uniform" else temperature_rates(langs, temperature)

    translations = {k: n for k, n in sizes.items() if k != "en"}
    if translated_share is None or not translations or "en" not in sizes:
        return spread(sizes)
    out = {k: translated_share * q for k, q in spread(translations).items()}
    out["en"] = 1.0 - translated_share
    return {k: v for k, v in out.items() if v > 0}
