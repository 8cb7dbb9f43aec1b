"""One loader API over both sources: the generated ``synth`` benchmark and the real datasets.

``load_records(benchmark, task, split, lang)`` returns records in the task's Hugging Face
schema, whichever the source, each checked against the task's schema as it is read;
``split`` is ours (``train``/``dev``/``test``/``translate_train``) and is mapped to the
dataset's own split name by the task registry. ``task_languages`` says which languages a task
has in a benchmark (and in which of them a split exists), without reading any data.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from .hub import DataNotFoundError, hub_languages
from .synth import LANGUAGES, SynthBenchmark, ensure_synth
from .tasks import task_info

__all__ = ["DataNotFoundError", "load_records", "synth_benchmark", "task_languages",
           "control_languages", "BENCHMARKS"]

BENCHMARKS = ("synth", "xtreme")
_SYNTH_NON_ENGLISH = ("translate_train", "test_clean")  # synth writes these splits in every language but English


def task_languages(benchmark: str, task: str, split: str | None = None) -> tuple[str, ...]:
    """The languages ``task`` has in ``benchmark``; with ``split`` (ours: train, dev, test,
    translate_train, test_clean), only those that have that split. Reads no data: synth's are its
    generator's languages, xtreme's the hub datasets' (``hub.hub_languages``)."""
    info = task_info(task)
    if benchmark == "xtreme":
        langs = hub_languages(task, info.splits.get(split, split) if split else None)
        return tuple(c for c in langs if c != "en") if split == "translate_train" else langs
    if benchmark != "synth":
        raise ValueError(f"unknown benchmark {benchmark!r}: use 'synth' or 'xtreme'")
    if split is not None and split not in info.splits:
        return ()
    if split == "train":
        return ("en",)
    codes = tuple(spec.code for spec in LANGUAGES)
    if info.family == "retrieval" or split in _SYNTH_NON_ENGLISH:
        return tuple(c for c in codes if c != "en")
    return codes


def control_languages(benchmark: str) -> tuple[str, ...]:
    """Languages scored but left out of the objective (synth's negative control)."""
    return tuple(spec.code for spec in LANGUAGES if spec.control) if benchmark == "synth" else ()


@lru_cache(maxsize=8)
def synth_benchmark(home: str, seed: int = 0, log: Callable[[str], None] = print) -> SynthBenchmark:
    return ensure_synth(Path(home), seed, log=log)


def load_records(benchmark: str, task: str, split: str, lang: str = "en", *, home: str,
                 seed: int = 0, data_dir: str | None = None) -> list[dict[str, Any]]:
    info = task_info(task)
    if split not in info.splits:
        raise DataNotFoundError(f"task {task!r} has no {split!r} split (it has {', '.join(info.splits)})")
    if split == "train" and info.english_train:  # zero-shot: trained on another dataset's English train
        if lang != "en":
            raise DataNotFoundError(f"task {task!r} is zero-shot: its only train split is English "
                                    f"({info.english_train!r} train), not {lang!r}")
        return load_records(benchmark, info.english_train, "train", "en", home=home, seed=seed, data_dir=data_dir)
    if benchmark == "synth":
        return synth_benchmark(home, seed).records(task, info.splits[split], lang)
    if benchmark == "xtreme":
        from .hub import load_hub

        # the dataset's own split name: the hub knows no "dev" for XQuAD, TyDiQA or Tatoeba
        return load_hub(task, info.splits[split], lang, data_dir=data_dir)
    raise ValueError(f"unknown benchmark {benchmark!r}: use 'synth' or 'xtreme'")
