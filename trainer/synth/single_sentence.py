"""Single-sentence classification: ``sst2`` (glue/sst2), drawn from the world's main stream.

A sentence's label is its adjective's polarity, flipped by "not": the polarity labels NLI reads
from "not", read from another word (a conflicting intermediate task by design).
"""

from __future__ import annotations

from .splits import Record, SynthSizes, Tasks
from .world import World

__all__ = ["sst2_rows", "render_sst2"]


def sst2_rows(w: World, n: int, lang: str = "en") -> list[Record]:
    """``n`` records ``{"sentence", "label", "idx"}`` in ``lang``, label 1 for positive (draws
    independent of ``lang``: replayed, another language renders the same sentences)."""
    out = []
    for i in range(n):
        c = w.clause()
        y = int(w.polarity[c.adj[0]][c.adj[1]] != c.neg)
        out.append({"sentence": w.render(c, lang), "label": y, "idx": i})
    return out


def render_sst2(w: World, sz: SynthSizes, langs: list[str]) -> Tasks:
    """English (its translations: ``translated``)."""
    return {"sst2": {"train": {"en": sst2_rows(w, sz.train)}, "validation": {"en": sst2_rows(w, sz.dev)}}}
