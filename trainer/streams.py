"""Training data as endless streams of batches: ``BatchStream`` (seeded, resumable).

    Encoded split ─► BatchStream(data, batch_size, seed) ─► .next() ─► (ids, labels) of one batch
                     (a fresh shuffle of all rows each epoch, drawn from the stream's own RNG)

A stream's position (its RNG, the current epoch's order and the place in it) is its
``state_dict``; a checkpoint holds it, so a resumed trial draws the very batches it would have.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from .families import Encoded

__all__ = ["BatchStream", "as_random_state"]


@dataclass
class BatchStream:
    """Endless shuffled batches over one dataset, deterministic from its seed; resumable."""

    data: Encoded  # the rows it draws from
    batch_size: int  # rows per batch
    seed: str  # seeds the shuffles (a string: the trial seed and the stream's name)
    rng: random.Random = field(init=False)  # draws each epoch's order
    order: list[int] = field(default_factory=list)  # this epoch's row order
    pos: int = 0  # the next place in ``order``

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def next(self) -> tuple[list[Any], list[Any]]:
        ids: list[Any] = []
        labels: list[Any] = []
        while len(ids) < self.batch_size:
            if self.pos >= len(self.order):
                self.order = list(range(len(self.data.ids)))
                self.rng.shuffle(self.order)
                self.pos = 0
            i = self.order[self.pos]
            self.pos += 1
            ids.append(self.data.ids[i])
            labels.append(self.data.labels[i])
        return ids, labels

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.getstate(), "order": list(self.order), "pos": self.pos}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.setstate(as_random_state(state["rng"]))
        self.order, self.pos = list(state["order"]), int(state["pos"])


def as_random_state(saved: Any) -> Any:
    """A ``random.Random`` state as ``setstate`` wants it: states come back from a checkpoint with
    lists where the state had tuples."""
    return tuple(as_random_state(x) for x in saved) if isinstance(saved, list | tuple) else saved
