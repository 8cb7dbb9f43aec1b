"""``synth`` on disk: ``ensure_synth`` writes a generated benchmark once, ``SynthBenchmark`` reads it.

Layout under ``$XSTILTS_HOME/data/synth-v<SYNTH_VERSION>-s<seed>/``::

    manifest.json                 version, seed, languages (LanguageSpec fields), measured overlap,
                                  translated (intermediate task -> split, languages, records), seconds
    corpus/train.<lang>.jsonl     {"text": ...} documents
    <task>/<split>.<lang>.jsonl   records in the task's Hugging Face schema, one JSON object a line
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..hub import DataNotFoundError
from ..records import RecordSchema, Text, load_file, require_rows
from ..tasks import task_info
from .generator import SYNTH_VERSION, generate
from .world import LANGUAGES

__all__ = ["SynthBenchmark", "ensure_synth", "synth_folder", "CORPUS_SCHEMA"]

CORPUS_SCHEMA = RecordSchema({"text": Text()}, ("text",))  # corpus/train.<lang>.jsonl: one document a line


class SynthBenchmark:
    """A generated ``synth`` benchmark on disk (JSON Lines in the HF schemas)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.manifest: dict[str, Any] = json.loads((root / "manifest.json").read_text())

    @property
    def languages(self) -> list[str]:
        return [s["code"] for s in self.manifest["languages"]]

    @property
    def translated(self) -> dict[str, Any]:
        """The translated intermediate tasks: ``{task: {"split", "languages", "records"}}``."""
        return dict(self.manifest.get("translated", {}))

    @property
    def control_languages(self) -> list[str]:
        return [s["code"] for s in self.manifest["languages"] if s["control"]]

    def path(self, task: str, split: str, lang: str) -> Path:
        return self.root / task / f"{split}.{lang}.jsonl"

    def records(self, task: str, split: str, lang: str = "en") -> list[dict[str, Any]]:
        """The records of ``task``'s ``split`` (the dataset's split name) in ``lang``, each checked
        against the task's schema as it is read (``RecordError`` lists every problem)."""
        p = self.path(task, split, lang)
        if not p.exists():
            have = sorted(f"{d.name}/{f.name}" for d in self.root.iterdir() if d.is_dir() for f in d.glob("*.jsonl"))
            raise DataNotFoundError(
                f"synth has no {task!r} split {split!r} in language {lang!r}: looked for {p}. "
                f"Available: {', '.join(h for h in have if not h.startswith('corpus/'))}"
            )
        schema = CORPUS_SCHEMA if task == "corpus" else task_info(task).schema.for_split(split)
        return require_rows(load_file(p, schema, f"{task} records"), task, split, lang, str(p))

    def corpus(self, lang: str) -> list[str]:
        return [r["text"] for r in self.records("corpus", "train", lang)]


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def _write(folder: Path, data: dict[str, Any], seed: int, t0: float) -> None:
    """Write ``generate``'s output and the manifest into ``folder``."""
    for lang, docs in data["corpus"].items():
        _write_jsonl(folder / "corpus" / f"train.{lang}.jsonl", docs)
    for task, splits in data["tasks"].items():
        for split, by_lang in splits.items():
            for lang, rows in by_lang.items():
                _write_jsonl(folder / task / f"{split}.{lang}.jsonl", rows)
    manifest = {
        "version": SYNTH_VERSION,
        "seed": seed,
        "languages": [asdict(s) for s in LANGUAGES],
        "overlap": data["overlap"],
        "translated": data["translated"],
        "seconds": round(time.perf_counter() - t0, 2),
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))


def synth_folder(home: Path, seed: int = 0) -> Path:
    """Where ``synth`` of ``seed`` is (or will be) cached; its ``manifest.json`` marks it finished."""
    return home / "data" / f"synth-v{SYNTH_VERSION}-s{seed}"


def ensure_synth(home: Path, seed: int = 0, *, log: Callable[[str], None] = print) -> SynthBenchmark:
    """Generate ``synth`` under ``home/data`` unless it is cached; return it."""
    root = synth_folder(home, seed)
    if (root / "manifest.json").exists():
        return SynthBenchmark(root)
    t0 = time.perf_counter()
    log(f"[xstilts] generating synth benchmark (seed {seed}) into {root} ...")
    tmp = root.with_name(root.name + f".tmp{os.getpid()}")
    _write(tmp, generate(seed), seed, t0)
    try:
        tmp.rename(root)  # atomic: concurrent generators race benignly
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"[xstilts] synth ready in {time.perf_counter() - t0:.1f}s")
    return SynthBenchmark(root)
