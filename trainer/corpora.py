"""Monolingual text for multilingual MLM on real benchmarks: one file per language, read streaming.

    <mlm_corpus_dir, or <data_dir>/mlm>/<lang>.txt (or <lang>.txt.gz)   one document per line
        ──corpus_plan(cfg)──► CorpusPlan: the folder, each MLM language's file, what is missing
        ──read_docs(file, max_docs)──► the file's first ``max_docs`` documents, one line at a time
        ──encode_docs(tok, docs, max_len)──► token ids, one compact int32 array per document

The layout is CC-100's (XLM-R's corpus, one file per language) and a Wikipedia extract's (X-STILTs'
MLM text): a line is a document (CC-100's blank lines between documents are skipped). Real corpora
are gigabytes, so a file is never read whole: ``read_docs`` stops after ``mlm_max_docs`` documents,
reads a line at most ``LINE_BYTES`` at a time (the rest of a longer line is skipped), and
``encode_docs`` tokenizes ``ENCODE_CHUNK`` documents at a time into int32 arrays, so a language
holds at most ``mlm_max_docs`` x ``max_seq_len`` x 4 bytes of ids (100 000 x 256: about 100 MB; a
CC-100 paragraph is usually far shorter than 256 tokens).

Language codes are ISO 639-1, as everywhere else (``de.txt``, not ``deu.txt``). Synth's MLM reads
synth's own corpora (``trainer.synth``), never these files.
"""

from __future__ import annotations

import codecs
import gzip
import io
import itertools
import os
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import TrialConfig
from .data import synth_benchmark
from .hub import DATA_DIR_ENV

__all__ = ["CorpusPlan", "CorpusError", "corpus_plan", "corpus_folder", "default_mlm_languages", "read_docs",
           "encode_docs", "mlm_documents", "MLM_FOLDER", "SUFFIXES", "LINE_BYTES", "ENCODE_CHUNK"]

MLM_FOLDER = "mlm"  # the corpus folder inside data_dir when mlm_corpus_dir is not set
SUFFIXES = (".txt", ".txt.gz")  # a language's file: <lang>.txt, else <lang>.txt.gz
LINE_BYTES = 1 << 20  # the most of one line read (the tokenizer keeps max_seq_len tokens of it anyway)
ENCODE_CHUNK = 1000  # documents tokenized at a time


class CorpusError(ValueError):
    """A corpus file that cannot be read as UTF-8 text; the message names the file and the line."""


@dataclass(frozen=True)
class CorpusPlan:
    """Where a config's MLM text is and what of it is there."""

    folder: Path | None  # where the files are looked for (None: neither mlm_corpus_dir nor data_dir is set)
    files: dict[str, Path] = field(default_factory=dict)  # MLM language -> its file, in sampling order
    missing: list[str] = field(default_factory=list)  # languages looked for without a file
    explicit: bool = False  # languages listed by mlm_languages (each required), not the default

    @property
    def languages(self) -> list[str]:
        return list(self.files)

    def problems(self) -> list[str]:
        """What stops MLM from reading this plan, one line each: no folder, or a required language
        (every listed one; with the default, each when none has a file) without its file."""
        if self.folder is None:
            return ["mlm corpus: multilingual MLM in phase 1 needs monolingual text: set mlm_corpus_dir to a folder "
                    "with one <lang>.txt per language (one document per line), or give data_dir (or "
                    f"${DATA_DIR_ENV}) an {MLM_FOLDER}/ folder"]
        if not self.folder.is_dir():
            return [f"mlm corpus: folder {self.folder} does not exist (it should hold one <lang>.txt per MLM "
                    "language, one document per line)"]
        if self.explicit or not self.files:
            return [f"mlm corpus {self.folder}: no file {lang}.txt (nor {lang}.txt.gz) for MLM language {lang!r}"
                    for lang in self.missing]
        return []

    def notes(self) -> list[str]:
        """Languages the default would have taken that have no file (MLM goes on without them)."""
        if self.explicit or not self.files or not self.missing:
            return []
        return [f"mlm corpus {self.folder}: no file for {', '.join(self.missing)} (scored languages); MLM uses "
                f"{', '.join(self.files)} (list mlm_languages to require a language)"]


def corpus_folder(cfg: TrialConfig) -> Path | None:
    """``mlm_corpus_dir``, else ``<data_dir>/mlm`` (data_dir: the config's, else ``$XSTILTS_DATA_DIR``,
    as the datasets' loader has it); None when none of them is set."""
    if cfg.mlm_corpus_dir:
        return Path(cfg.mlm_corpus_dir)
    data_dir = cfg.data_dir if cfg.data_dir is not None else os.environ.get(DATA_DIR_ENV) or None
    return Path(data_dir) / MLM_FOLDER if data_dir else None


def default_mlm_languages(cfg: TrialConfig) -> list[str]:
    """Every language a target task is scored in (dev or test: English, then the others sorted),
    so the MLM covers what the objective covers, and English, as synth's MLM does."""
    langs = {lang for t in cfg.target_tasks for split in ("dev", "test") for lang in cfg.languages(t, split)}
    return sorted(langs, key=lambda lang: (lang != "en", lang))


def _file(folder: Path, lang: str) -> Path | None:
    for suffix in SUFFIXES:
        path = folder / f"{lang}{suffix}"
        if path.is_file():
            return path
    return None


def corpus_plan(cfg: TrialConfig) -> CorpusPlan:
    """The MLM languages of ``cfg`` and their files: ``mlm_languages`` (each required), or by
    default every scored language that has a file. Reads no text."""
    folder = corpus_folder(cfg)
    if folder is None or not folder.is_dir():
        return CorpusPlan(folder)
    wanted = cfg.mlm_languages or default_mlm_languages(cfg)
    found = {lang: _file(folder, lang) for lang in wanted}
    return CorpusPlan(folder, {lang: p for lang, p in found.items() if p is not None},
                      [lang for lang, p in found.items() if p is None], explicit=cfg.mlm_languages is not None)


def _open(path: Path) -> io.BufferedIOBase:
    return gzip.open(path, "rb") if path.name.endswith(".gz") else path.open("rb")


def _lines(f: io.BufferedIOBase) -> Iterator[bytes]:
    """The file's lines, each cut at ``LINE_BYTES`` (the rest of a longer line is skipped)."""
    while line := f.readline(LINE_BYTES):
        if len(line) == LINE_BYTES and not line.endswith(b"\n"):
            while (rest := f.readline(LINE_BYTES)) and not rest.endswith(b"\n"):
                pass
        yield line


def read_docs(path: Path, max_docs: int) -> Iterator[str]:
    """The first ``max_docs`` documents of ``path`` (its non-blank lines, stripped), streamed: the
    file is read only as far as they go. Raises ``CorpusError`` on a line that is not UTF-8 and on
    a broken gzip file."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    n = 0
    try:
        with _open(path) as f:
            for i, raw in enumerate(_lines(f), 1):
                try:  # not final: a line cut at LINE_BYTES may end inside a character
                    text = decoder.decode(raw, final=False).strip()
                except UnicodeDecodeError as e:
                    raise CorpusError(f"{path}: line {i} is not UTF-8 (byte {e.start + 1}: {e.reason})") from None
                decoder.reset()
                if text:
                    yield text
                    n += 1
                    if n >= max_docs:
                        return
    except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError
        raise CorpusError(f"{path}: cannot be read ({type(e).__name__}: {e})") from None


def mlm_documents(cfg: TrialConfig, home: Path) -> dict[str, Iterator[str]]:
    """Each MLM language's documents, at most ``mlm_max_docs``, streamed: synth's own corpora (every
    language, or ``mlm_languages``), or a real benchmark's files (``corpus_plan``; a ``ValueError``
    lists its problems, one line each)."""
    cap = cfg.mlm_max_docs
    if cfg.benchmark == "synth":
        bench = synth_benchmark(str(home), cfg.data_seed)
        return {lang: itertools.islice(bench.corpus(lang), cap) for lang in cfg.mlm_languages or bench.languages}
    plan = corpus_plan(cfg)
    if plan.problems():
        raise ValueError("\n".join(plan.problems()))
    return {lang: read_docs(path, cap) for lang, path in plan.files.items()}


def encode_docs(tok: Any, docs: Iterable[str], max_len: int) -> list[array]:
    """Token ids of ``docs`` (truncated to ``max_len``), one int32 array per document, tokenized
    ``ENCODE_CHUNK`` at a time so that only one chunk's text is held at once."""
    out: list[array] = []
    it = iter(docs)
    while chunk := list(itertools.islice(it, ENCODE_CHUNK)):
        out += [array("i", ids) for ids in tok(chunk, truncation=True, max_length=max_len)["input_ids"]]
    return out
