"""What every task renderer shares: split sizes, record types and the random streams items are drawn from.

Why separate streams: the corpora and the ``mnli``, ``sst2`` and ``xnli`` records are drawn in turn
from the world's main stream, so anything drawn from it in between would move all that follows.
Every other task draws from a stream of its own (``task_rng``), each item rendered in several
languages from a stream of the item's own (``parallel``), and each language's clean test items
from a stream of the language's own (``clean_rows``). So changing one renderer, or the size of
one split, never moves the records of another.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .world import World, english_content_words

__all__ = ["SynthSizes", "Record", "ByLanguage", "Splits", "Tasks", "task_rng", "parallel", "clean_rows"]

Record = dict[str, Any]  # one record in the Hugging Face schema of its dataset
ByLanguage = dict[str, list[Record]]  # language -> records
Splits = dict[str, ByLanguage]  # the dataset's split name -> language -> records
Tasks = dict[str, Splits]  # task -> split -> language -> records


@dataclass(frozen=True)
class SynthSizes:
    corpus_docs_en: int = 6000  # English topic documents; other languages in proportion to corpus_size
    train: int = 4000  # records of a full train split (some tasks take a fraction)
    dev: int = 300  # records of a dev split
    test: int = 500  # records of a test split, per language


def task_rng(w: World, name: str) -> random.Random:
    """The stream of task ``name`` (use it with ``w.using``)."""
    return random.Random(f"{w.seed}-task-{name}")


def parallel(w: World, name: str, n: int, langs: list[str], make: Callable[[str], Record]) -> ByLanguage:
    """``n`` latent items, each rendered in every language from the same RNG state (parallel data)."""
    out: ByLanguage = {lang: [] for lang in langs}
    for i in range(n):
        for lang in langs:
            with w.using(random.Random(f"{w.seed}-{name}-{i}")):
                out[lang].append(make(lang))
    return out


def clean_rows(w: World, name: str, n: int, langs: list[str], make: Callable[[str], Record],
               fields: tuple[str, ...]) -> ByLanguage:
    """``n`` test items per language none of whose content words is an English word.

    The deciding words of the clause tasks (topic nouns, verbs and adjectives) are content words,
    so on these items a model can only be right through what pretraining aligned, not through a
    word it saw in English training. Drawn by rejection, each language on its own RNG stream.
    """
    shared = english_content_words(w)
    out: ByLanguage = {}
    for lang in langs:
        rows: list[Record] = []
        with w.using(random.Random(f"{w.seed}-{name}-{lang}")):
            while len(rows) < n:
                row = make(lang)
                if not any(x in shared for f in fields for x in str(row[f]).split()):
                    rows.append(row)
        out[lang] = rows
    return out
