"""Machine-"translated" intermediate tasks: the English train items rendered in every other language.

X-STILTs' third alternative to English intermediate training is training on the intermediate
task's data machine-translated into the target languages. synth renders it the way it renders
its targets' translate-train data (``pawsx``, ``squad`` -> ``xquad``/``mlqa``): the same latent items
as the English train split, in another language. Every ``*_rows`` renderer draws its items
independently of the language it renders them in, so replaying its stream from where the English
train split started gives, item for item, the translation of the English records::

    stream at the English train's start ──replay, lang──► <task>/translate_train.<lang>.jsonl
                                                           (the first TRANSLATED_SHARE of the train items)

Covered: the NLI-like (``mnli``, ``anli``), paraphrase (``qqp``), sentiment (``sst2``), QA (``squad``, the
split ``qa`` already renders for ``xquad``/``mlqa``) and multiple-choice (``hellaswag``, ``cosmosqa``,
``commonsenseqa``) tasks, in every language but English (the control ``xz`` too, as for the targets).
Not ``ccg``: a translation does not carry token-level tags over (XTREME translates no tagging task).
The translations are perfect renderings: synth's "machine" translation makes no errors.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any

from .multiple_choice import commonsenseqa_rows, cosmosqa_rows, hellaswag_rows
from .nli import anli_rows, mnli_rows
from .paraphrase import qqp_rows
from .single_sentence import sst2_rows
from .splits import ByLanguage, SynthSizes, Tasks, task_rng
from .world import World

__all__ = ["TRANSLATED_TASKS", "TRANSLATED_SHARE", "MAIN_STREAM_TASKS", "render_translated", "translated_summary"]

TRANSLATED_SHARE = 4  # a task's translations are the first 1/4 of its English train items (squad: 1/2, as ``qa``)
# tasks whose English records come from the world's main stream: their translations replay it from where
# the renderer started (``generate`` records it); the others replay their own stream (``task_rng``)
MAIN_STREAM_TASKS = ("mnli", "sst2")
Rows = Callable[[World, int, str], list[dict[str, Any]]]  # (world, n, lang) -> the first n train records
_ROWS: dict[str, Rows] = {
    "mnli": lambda w, n, lang: mnli_rows(w, n, 0, lang),
    "sst2": lambda w, n, lang: sst2_rows(w, n, lang),
    "anli": lambda w, n, lang: anli_rows(w, n, 0, lang),
    "qqp": lambda w, n, lang: qqp_rows(w, n, 0, lang),
    "hellaswag": lambda w, n, lang: hellaswag_rows(w, n, "train", lang),
    "cosmosqa": lambda w, n, lang: cosmosqa_rows(w, n, 0, lang),
    "commonsenseqa": lambda w, n, lang: commonsenseqa_rows(w, n, 0, lang),
}
# every intermediate task synth translates (squad's translations are rendered by ``qa``)
TRANSLATED_TASKS = (*_ROWS, "squad")


def _stream(w: World, task: str, main_starts: Mapping[str, Any]) -> random.Random:
    """A fresh copy of the stream ``task``'s English train split was drawn from, at its start."""
    if task in MAIN_STREAM_TASKS:
        rng = random.Random()
        rng.setstate(main_starts[task])
        return rng
    return task_rng(w, task)


def render_translated(w: World, sz: SynthSizes, langs: list[str], main_starts: Mapping[str, Any]) -> Tasks:
    """``{task: {"translate_train": {lang: records}}}`` for every task of ``_ROWS`` and every language
    but English; ``main_starts[task]`` is the main stream's state where the English ``task`` began."""
    n = sz.train // TRANSLATED_SHARE
    out: Tasks = {}
    for task, rows in _ROWS.items():
        by_lang: ByLanguage = {}
        for lang in langs:
            if lang != "en":
                with w.using(_stream(w, task, main_starts)):
                    by_lang[lang] = rows(w, n, lang)
        out[task] = {"translate_train": by_lang}
    return out


def translated_summary(tasks: Tasks) -> dict[str, dict[str, Any]]:
    """What the manifest lists: ``{task: {"split": "translate_train", "languages": [...], "records": n}}``
    (records per language) for every translated intermediate task."""
    out: dict[str, dict[str, Any]] = {}
    for task in TRANSLATED_TASKS:
        by_lang = tasks.get(task, {}).get("translate_train", {})
        if by_lang:
            out[task] = {"split": "translate_train", "languages": list(by_lang),
                         "records": len(next(iter(by_lang.values())))}
    return out
