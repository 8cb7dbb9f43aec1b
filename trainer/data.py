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
from .tasks import task_info

__all__ = ["DataNotFoundError", "load_records", "benchmark_languages", "synth_benchmark"]


@lru_cache(maxsize=8)
def synth_benchmark(home: str, seed: int = 0, log: Callable[[str], None] = print) -> SynthBenchmark:
    return ensure_synth(Path(home), seed, log=log)


def benchmark_languages(benchmark: str, home: str, seed: int = 0) -> tuple[list[str], list[str]]:
    """(all languages, control languages) of a benchmark."""
    if benchmark == "synth":
        b = synth_benchmark(home, seed)
        return b.languages, b.control_languages
    raise ValueError(f"unknown benchmark {benchmark!r}: use 'synth' or 'xtreme'")


def load_records(benchmark: str, task: str, split: str, lang: str = "en", *, home: str,
                 seed: int = 0, data_dir: str | None = None) -> list[dict[str, Any]]:
    info = task_info(task)
    if split not in info.splits:
        raise DataNotFoundError(f"task {task!r} has no {split!r} split (it has {', '.join(info.splits)})")
    if benchmark == "synth":
        return synth_benchmark(home, seed).records(task, info.splits[split], lang)
    if benchmark == "xtreme":
        from .hub import load_hub

        return load_hub(task, split, lang, data_dir=data_dir)
    raise ValueError(f"unknown benchmark {benchmark!r}: use 'synth' or 'xtreme'")
