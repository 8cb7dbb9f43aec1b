"""One loader API over both sources: the generated ``synth`` benchmark and the real datasets.

``load_records(benchmark, task, split, lang)`` returns records in the task's Hugging Face
schema, whichever the source; ``split`` is ours (``train``/``dev``/``test``/
``translate_train``) and is mapped to the dataset's own split name by the task registry.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from .hub import DataNotFoundError
from .synth import SynthBenchmark, ensure_synth
from .tasks import XTREME_LANGUAGES, task_info

__all__ = ["DataNotFoundError", "load_records", "benchmark_languages", "synth_benchmark"]


@lru_cache(maxsize=8)
def synth_benchmark(home: str, seed: int = 0, log: Callable[[str], None] = print) -> SynthBenchmark:
    return ensure_synth(Path(home), seed, log=log)


def benchmark_languages(benchmark: str, home: str, seed: int = 0) -> tuple[list[str], list[str]]:
    """(all languages, control languages) of a benchmark."""
    if benchmark == "synth":
        b = synth_benchmark(home, seed)
        return b.languages, b.control_languages
    if benchmark == "xtreme":
        return list(XTREME_LANGUAGES), []
    raise ValueError(f"unknown benchmark {benchmark!r}: use 'synth' or 'xtreme'")


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
