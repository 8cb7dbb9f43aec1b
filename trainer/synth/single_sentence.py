"""Single-sentence classification: ``sst2`` (glue/sst2), drawn from the world's main stream.

A sentence's label is its adjective's polarity, flipped by "not": the polarity labels NLI reads
from "not", read from another word (a conflicting intermediate task by design).
"""

from __future__ import annotations

from .splits import Record, SynthSizes, Tasks
from .world import World

__all__ = ["render_sst2"]


def render_sst2(w: World, sz: SynthSizes, langs: list[str]) -> Tasks:
    """English only: ``{"sentence", "label", "idx"}``, label 1 for positive."""

    def rows(n: int) -> list[Record]:
        out = []
        for i in range(n):
            c = w.clause()
            y = int(w.polarity[c.adj[0]][c.adj[1]] != c.neg)
            out.append({"sentence": w.render(c, "en"), "label": y, "idx": i})
        return out

    return {"sst2": {"train": {"en": rows(sz.train)}, "validation": {"en": rows(sz.dev)}}}
