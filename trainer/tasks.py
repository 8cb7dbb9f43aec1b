"""The task registry: which tasks exist, their family, and how a record becomes model input.

A task's records keep the Hugging Face schema of the real dataset; ``TaskInfo.example``
turns one record into ``(text_a, text_b, label)`` for the family's head. ``synth`` and the
real datasets share this table, which is what lets one trainer serve both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .synth import NLI_LABELS

__all__ = ["TaskInfo", "TASKS", "INTERMEDIATE_TASKS", "TARGET_TASKS", "task_info"]

Example = tuple[str, str | None, int]


@dataclass(frozen=True)
class TaskInfo:
    name: str
    family: str  # "pair_cls" | "single_cls"
    num_labels: int
    role: str  # "intermediate" | "target"
    splits: dict[str, str]  # our split name (train/dev/test) -> the dataset's split name
    example: Callable[[dict[str, Any]], Example]
    metric: str = "accuracy"


def _nli_str(r: dict[str, Any]) -> Example:
    if "gold_label" not in r:  # English XNLI training data is MNLI's (glue schema)
        return r["premise"], r["hypothesis"], int(r["label"])
    return r["sentence1"], r["sentence2"], NLI_LABELS.index(r["gold_label"])


TASKS: dict[str, TaskInfo] = {
    t.name: t
    for t in (
        TaskInfo("mnli", "pair_cls", 3, "intermediate", {"train": "train", "dev": "validation_matched"},
                 lambda r: (r["premise"], r["hypothesis"], int(r["label"]))),
        TaskInfo("sst2", "single_cls", 2, "intermediate", {"train": "train", "dev": "validation"},
                 lambda r: (r["sentence"], None, int(r["label"]))),
        TaskInfo("xnli", "pair_cls", 3, "target",
                 {"train": "train", "dev": "validation", "test": "test", "translate_train": "translate_train"},
                 _nli_str),
    )
}
INTERMEDIATE_TASKS = tuple(n for n, t in TASKS.items() if t.role == "intermediate")
TARGET_TASKS = tuple(n for n, t in TASKS.items() if t.role == "target")


def task_info(name: str) -> TaskInfo:
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}") from None
