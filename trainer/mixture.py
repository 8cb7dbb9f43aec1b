"""Mixtures: what each training step draws its batch from.

A ``Mixture`` names its components and demands a rate for each (rates are normalised).
The multilingual MLM component is itself a mixture over languages, with rates from the
language temperature: ``q_l ∝ n_l^(1/T)`` (T=1: proportional to corpus size; T→∞: uniform).

``MixtureSampler`` draws one component per step from its own seeded RNG, so the sequence
of components is deterministic given the seed, and its state can be saved and restored.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Mixture", "temperature_rates", "MixtureSampler"]


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

    def __init__(self, mixture: Mixture, seed: int) -> None:
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
