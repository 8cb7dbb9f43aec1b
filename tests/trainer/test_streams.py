"""BatchStream: endless, seeded, every row once per epoch, and resumable from its state."""

from __future__ import annotations

import json
import random

from xstilts.trainer.families import Encoded
from xstilts.trainer.streams import BatchStream, as_random_state


def data(n: int) -> Encoded:
    return Encoded("classification", [[i] for i in range(n)], list(range(n)))


def test_each_epoch_visits_every_row_once_and_batches_cross_epochs() -> None:
    s = BatchStream(data(10), 4, "0-xnli")
    rows = [label for _ in range(5) for label in s.next()[1]]  # 20 rows: two epochs
    assert sorted(rows[:10]) == list(range(10)) and sorted(rows[10:]) == list(range(10))
    assert rows[:10] != rows[10:]  # a fresh shuffle each epoch
    ids, labels = BatchStream(data(3), 5, "x").next()  # a batch longer than the data wraps around
    assert len(ids) == 5 and [i[0] for i in ids] == labels


def test_same_seed_same_batches_other_seed_other_batches() -> None:
    a, b, c = BatchStream(data(50), 8, "0-xnli"), BatchStream(data(50), 8, "0-xnli"), BatchStream(data(50), 8, "1-xnli")
    first = [a.next() for _ in range(10)]
    assert first == [b.next() for _ in range(10)]
    assert first != [c.next() for _ in range(10)]


def test_resumed_from_its_state_it_draws_what_it_would_have() -> None:
    s = BatchStream(data(13), 5, "7-panx")
    for _ in range(4):
        s.next()
    saved = json.loads(json.dumps(s.state_dict()))  # as a checkpoint may give it back: lists, not tuples
    want = [s.next() for _ in range(6)]
    fresh = BatchStream(data(13), 5, "7-panx")
    fresh.load_state_dict(saved)
    assert [fresh.next() for _ in range(6)] == want


def test_as_random_state_turns_nested_lists_back_into_a_settable_state() -> None:
    rng = random.Random(3)
    rng.random()
    state = rng.getstate()
    back = as_random_state(json.loads(json.dumps(state)))
    assert back == state
    other = random.Random()
    other.setstate(back)
    assert other.random() == rng.random()
