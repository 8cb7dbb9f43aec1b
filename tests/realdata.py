"""A local data folder of real-schema records, laid out as the hub's parquet export is.

Rows follow the Hugging Face schemas of the real datasets (google/xtreme XNLI, PAWS-X, udpos,
XQuAD, tatoeba; nyu-mll/glue mnli; rajpurkar/squad), a few dozen per file: enough to train and
score a trial on, small enough to write in milliseconds. Tests break one file at a time.
``mlm/<lang>.txt``: monolingual text for multilingual MLM, one document a line (CC-100's layout).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["write_real_data", "write_rows", "write_corpora", "REAL_FILES", "N_ROWS", "PAWSX_LANGUAGES",
           "MLM_LANGUAGES"]

N_ROWS = 48
PAWSX_LANGUAGES = ("de", "en", "es", "fr", "ja", "ko", "zh")
MLM_LANGUAGES = ("en", "de")  # mlm/<lang>.txt
_NLI = ("entailment", "neutral", "contradiction")
_WORDS = {"en": ("the", "man", "sleeps", "house", "is", "red"), "de": ("der", "Mann", "schläft", "Haus", "ist", "rot"),
          "fr": ("le", "homme", "dort", "maison", "est", "rouge")}


def _sentence(lang: str, i: int, k: int = 4) -> str:
    words = _WORDS.get(lang, _WORDS["de"])
    return " ".join(words[(i + j) % len(words)] for j in range(k))


def _xnli(lang: str, i: int) -> dict[str, Any]:
    return {"language": lang, "sentence1": _sentence(lang, i, 5), "sentence2": _sentence(lang, i + 1),
            "gold_label": _NLI[i % 3]}


def _qa(lang: str, i: int, *, title: bool) -> dict[str, Any]:
    context = f"{_sentence(lang, i, 6)} . Anna {_sentence(lang, i + 2, 3)} ."
    start = context.index("Anna")
    row = {"id": f"q{lang}{i}", "title": "Anna", "context": context, "question": f"{_sentence(lang, i, 2)} ?",
           "answers": {"answer_start": [start], "text": ["Anna"]}}
    if not title:
        del row["title"]
    return row


def _tags(lang: str, i: int) -> dict[str, Any]:
    tokens = _sentence(lang, i, 4).split()
    return {"tokens": tokens, "pos_tags": [(5, 7, 15, 0)[j % 4] for j in range(len(tokens))]}


REAL_FILES: dict[str, Any] = {
    # path under the data folder -> a row maker (language, index) and its language
    "google/xtreme/XNLI/validation.jsonl": (_xnli, ("en", "de", "fr")),
    "google/xtreme/XNLI/test.jsonl": (_xnli, ("en", "de", "fr")),
    "nyu-mll/glue/mnli/train.jsonl": (lambda lang, i: {"premise": _sentence(lang, i, 5),
                                                       "hypothesis": _sentence(lang, i + 1), "label": i % 3,
                                                       "idx": i}, ("en",)),
    "google/xtreme/PAWS-X.en/train.jsonl": (lambda lang, i: {"sentence1": _sentence(lang, i),
                                                             "sentence2": _sentence(lang, i + i % 2),
                                                             "label": str(i % 2)}, ("en",)),
    **{f"google/xtreme/PAWS-X.{lang}/{split}.jsonl": (
        lambda lang, i: {"sentence1": _sentence(lang, i), "sentence2": _sentence(lang, i + i % 2),
                         "label": str(i % 2)}, (lang,))
       for lang in PAWSX_LANGUAGES for split in ("validation", "test")},  # every language PAWS-X has
    **{f"google/xtreme/XQuAD.{lang}/validation.jsonl": (lambda lang, i: _qa(lang, i, title=False), (lang,))
       for lang in ("en", "de")},
    "rajpurkar/squad/plain_text/train.jsonl": (lambda lang, i: _qa(lang, i, title=True), ("en",)),
    "google/xtreme/udpos.English/train.jsonl": (_tags, ("en",)),
    **{f"google/xtreme/udpos.{name}/{split}.jsonl": (_tags, (lang,))
       for lang, name in (("en", "English"), ("de", "German")) for split in ("validation", "test")},
    "google/xtreme/tatoeba.deu/validation.jsonl": (
        lambda lang, i: {"source_sentence": _sentence("de", i), "target_sentence": _sentence("en", i),
                         "source_lang": "deu", "target_lang": "eng"}, ("de",)),
}  # fmt: skip


def write_rows(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def write_corpora(folder: Path, langs: tuple[str, ...] = MLM_LANGUAGES, n: int = N_ROWS) -> Path:
    """``<folder>/<lang>.txt`` for each of ``langs``: ``n`` documents, one a line, a blank line
    between every fourth (CC-100 separates its documents so); returns ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for lang in langs:
        lines = [_sentence(lang, i, 3 + i % 5) + " ." + "\n" * (1 + (i % 4 == 3)) for i in range(n)]
        (folder / f"{lang}.txt").write_text("".join(lines), encoding="utf-8")
    return folder


def write_real_data(root: Path, n: int = N_ROWS) -> Path:
    """Write every file of ``REAL_FILES`` under ``root`` (``n`` rows per language) and the MLM
    corpora under ``root/mlm``; returns ``root``."""
    for rel, (make, langs) in REAL_FILES.items():
        write_rows(root / rel, [make(lang, i) for lang in langs for i in range(n)])
    write_corpora(root / "mlm", n=n)
    return root
