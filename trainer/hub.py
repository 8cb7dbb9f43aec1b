"""Real data: XTREME targets and English intermediate tasks, in their Hugging Face schemas.

``load_hub(task, split, lang)`` looks first in a local folder laid out like the hub's
parquet export, ``<data_dir>/<hf path>/<config>/<split>-*.parquet`` (also
``<split>.parquet``, ``<split>/*.parquet``, ``<split>.jsonl``, ``<split>.json``), with
``data_dir`` from the argument or ``$XSTILTS_DATA_DIR``; then on the hub through
``datasets.load_dataset``. Records come back as plain dicts, exactly as the dataset has them.

Split names: the dataset's own (``validation_matched``, ``dev_r3`` ...) or ours: ``dev`` is
the development set, ``test`` the set XTREME reports on (for XQuAD, TyDiQA-GoldP and
Tatoeba that is the hub's ``validation``). Targets are zero-shot: their English ``train`` is
the dataset XTREME trains on, *in that dataset's schema* — ``xnli`` train is ``glue/mnli``
train (premise, hypothesis, label, idx), ``xquad``/``mlqa`` train is SQuAD v1.1 train.
ANLI's ``train``/``dev``/``test`` are round 3 (``train_r3``/``dev_r3``/``test_r3``); the
other rounds are reachable by their own names. ``translate_train`` is mapped where the hub has
it: PAWS-X's non-English ``train`` split is the machine-translated English train set.

An intermediate task's machine-translated train data (``translate_train``: e.g. XTREME's
translate-train of XNLI as translated MNLI) is read from the local folder only, in the task's own
schema, in the task's folder (``<data_dir>/nyu-mll/glue/mnli/`` for MNLI) as one file per language,
``translate_train.<lang>.{jsonl,json,parquet}`` (or ``translate_train.<lang>-*.parquet``; a
``language`` column, if any, must be that language), or as the files of every language together,
``translate_train.{jsonl,json,parquet}`` (``translate_train-*.parquet``, ``translate_train/*.parquet``)
with a ``language`` column (ISO 639-1 codes) that says each row's language.

Every record is checked against its task's schema (``tasks.TaskInfo.schema``) as it is read:
a bad row is a ``records.RecordError`` naming the file and line or row, the field, the value
and what is allowed; a language without rows is one too.
"""

from __future__ import annotations

import glob
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import urlparse

from .records import RecordError, RecordSchema, Text, check_records, read_file, require_rows, show
from .tasks import XTREME_LANGUAGES, task_info

__all__ = [
    "DataNotFoundError",
    "HubSource",
    "HUB_TASKS",
    "UDPOS_LANGUAGES",
    "TATOEBA_LANGUAGES",
    "TYDIQA_LANGUAGES",
    "load_hub",
    "hub_languages",
    "hub_unavailable",
    "SYNTH_HINT",
]

DATA_DIR_ENV = "XSTILTS_DATA_DIR"
HUB_TIMEOUT_ENV = "XSTILTS_HUB_TIMEOUT"  # seconds for the hub reachability probe (default 3)
XTREME = "google/xtreme"
SYNTH_HINT = "To run without real data, set `benchmark: synth` in the trial config (a space's `trial:` block)."


class DataNotFoundError(FileNotFoundError):
    """Neither a local folder nor the hub had the data; the message says where it looked."""


def _ro(d: Mapping[str, str] | None = None) -> Mapping[str, str]:
    return MappingProxyType(dict(d or {}))


@dataclass(frozen=True)
class HubSource:
    """Where one task's real data lives and what its records look like."""

    path: str  # hub dataset id
    config: str | None  # config name; "{lang}" is replaced by the dataset's language code
    splits: Mapping[str, str] = field(hash=False)  # accepted split name -> the hub's split name
    languages: tuple[str, ...]  # ISO 639-1 codes
    lang_codes: Mapping[str, str] = field(default_factory=_ro, hash=False)  # ISO code -> dataset's code
    lang_filter: Literal["language", "id_prefix"] | None = None  # languages share one config
    english_train: str | None = None  # task whose train split XTREME trains this target on
    legacy_paths: tuple[str, ...] = ()  # older hub ids, also accepted as local folder names
    manual_download: str | None = None
    # languages whose config lacks some of the hub's splits: ISO code -> the splits it has
    only_splits: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}), hash=False)

    def code(self, lang: str) -> str:
        return self.lang_codes.get(lang, lang)

    def config_for(self, lang: str) -> str | None:
        return None if self.config is None else self.config.replace("{lang}", self.code(lang))

    def has(self, split: str, lang: str) -> bool:
        """Whether the hub has ``split`` (an accepted name) in ``lang``."""
        hub_split = self.splits.get(split)
        return hub_split is not None and hub_split in self.only_splits.get(lang, (hub_split,))


def _splits(hub: tuple[str, ...], **aliases: str) -> Mapping[str, str]:
    return _ro({**{s: s for s in hub}, **aliases})


# XTREME language lists (google/xtreme); udpos configs use English language names and
# tatoeba configs ISO 639-3 codes, TyDiQA ids start with "<language name>-".
_XNLI_LANGS = ("ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh")
_PAWSX_LANGS = ("de", "en", "es", "fr", "ja", "ko", "zh")
_PANX_LANGS = (
    "af", "ar", "bg", "bn", "de", "el", "en", "es", "et", "eu", "fa", "fi", "fr", "he", "hi", "hu", "id",
    "it", "ja", "jv", "ka", "kk", "ko", "ml", "mr", "ms", "my", "nl", "pt", "ru", "sw", "ta", "te", "th",
    "tl", "tr", "ur", "vi", "yo", "zh",
)  # fmt: skip
_XQUAD_LANGS = ("ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh")
_MLQA_LANGS = ("ar", "de", "en", "es", "hi", "vi", "zh")
_BUCC_LANGS = ("de", "fr", "ru", "zh")
UDPOS_LANGUAGES: Mapping[str, str] = _ro({
    "af": "Afrikaans", "ar": "Arabic", "eu": "Basque", "bg": "Bulgarian", "nl": "Dutch", "en": "English",
    "et": "Estonian", "fi": "Finnish", "fr": "French", "de": "German", "el": "Greek", "he": "Hebrew",
    "hi": "Hindi", "hu": "Hungarian", "id": "Indonesian", "it": "Italian", "ja": "Japanese", "kk": "Kazakh",
    "ko": "Korean", "zh": "Chinese", "mr": "Marathi", "fa": "Persian", "pt": "Portuguese", "ru": "Russian",
    "es": "Spanish", "tl": "Tagalog", "ta": "Tamil", "te": "Telugu", "th": "Thai", "tr": "Turkish",
    "ur": "Urdu", "vi": "Vietnamese", "yo": "Yoruba",
})  # fmt: skip
TATOEBA_LANGUAGES: Mapping[str, str] = _ro({
    "af": "afr", "ar": "ara", "bn": "ben", "bg": "bul", "de": "deu", "zh": "cmn", "el": "ell", "et": "est",
    "eu": "eus", "fi": "fin", "fr": "fra", "he": "heb", "hi": "hin", "hu": "hun", "id": "ind", "it": "ita",
    "jv": "jav", "ja": "jpn", "ka": "kat", "kk": "kaz", "ko": "kor", "ml": "mal", "mr": "mar", "nl": "nld",
    "fa": "pes", "pt": "por", "ru": "rus", "es": "spa", "sw": "swh", "ta": "tam", "tl": "tgl", "th": "tha",
    "tr": "tur", "ur": "urd", "vi": "vie",
})  # fmt: skip
TYDIQA_LANGUAGES: Mapping[str, str] = _ro({
    "ar": "arabic", "bn": "bengali", "en": "english", "fi": "finnish", "id": "indonesian", "ko": "korean",
    "ru": "russian", "sw": "swahili", "te": "telugu",
})  # fmt: skip

_EN = ("en",)
_PANX_HELP = (
    "PAN-X (WikiANN) needs a manual download (the original XTREME loader does not fetch it): "
    "download AmazonPhotos.zip (link in github.com/google-research/xtreme, "
    "https://www.amazon.com/clouddrive/share/d3KGCRCIYwhKJF0H3eWA26hjg2ZCRhjpEQtDL70FSBN), "
    "turn panx_dataset/{lang}.tar.gz into records (tokens, ner_tags, langs) and put them at "
    "{where} (or copy the PAN-X.{lang} parquet files of google/xtreme there)."
)
_TEST_ONLY = ("test",)

HUB_TASKS: dict[str, HubSource] = {
    # --- XTREME targets -------------------------------------------------------------
    "xnli": HubSource(
        XTREME, "XNLI", _splits(("validation", "test"), dev="validation"), _XNLI_LANGS,
        lang_filter="language", english_train="mnli", legacy_paths=("xtreme",),
    ),
    "pawsx": HubSource(  # a non-English PAWS-X "train" is XTREME's translate-train data
        XTREME, "PAWS-X.{lang}",
        _splits(("train", "validation", "test"), dev="validation", translate_train="train"), _PAWSX_LANGS,
        legacy_paths=("xtreme",),
    ),
    "panx": HubSource(
        XTREME, "PAN-X.{lang}", _splits(("train", "validation", "test"), dev="validation"), _PANX_LANGS,
        legacy_paths=("xtreme",), manual_download=_PANX_HELP,
    ),
    "udpos": HubSource(  # four treebanks have no validation split (three no train split either)
        XTREME, "udpos.{lang}", _splits(("train", "validation", "test"), dev="validation"),
        tuple(UDPOS_LANGUAGES), lang_codes=UDPOS_LANGUAGES, legacy_paths=("xtreme",),
        only_splits=MappingProxyType({"kk": ("train", "test"), "tl": _TEST_ONLY, "th": _TEST_ONLY,
                                      "yo": _TEST_ONLY}),
    ),
    "xquad": HubSource(
        XTREME, "XQuAD.{lang}", _splits(("validation",), test="validation"), _XQUAD_LANGS,
        english_train="squad", legacy_paths=("xtreme",),
    ),
    "mlqa": HubSource(
        XTREME, "MLQA.{lang}.{lang}", _splits(("validation", "test"), dev="validation"), _MLQA_LANGS,
        english_train="squad", legacy_paths=("xtreme",),
    ),
    "tydiqa": HubSource(
        XTREME, "tydiqa", _splits(("train", "validation"), test="validation"), tuple(TYDIQA_LANGUAGES),
        lang_codes=TYDIQA_LANGUAGES, lang_filter="id_prefix", legacy_paths=("xtreme",),
    ),
    "bucc": HubSource(
        XTREME, "bucc18.{lang}", _splits(("validation", "test"), dev="validation"), _BUCC_LANGS,
        legacy_paths=("xtreme",),
    ),
    "tatoeba": HubSource(
        XTREME, "tatoeba.{lang}", _splits(("validation",), test="validation"), tuple(TATOEBA_LANGUAGES),
        lang_codes=TATOEBA_LANGUAGES, legacy_paths=("xtreme",),
    ),
    # --- English intermediate tasks -------------------------------------------------
    "mnli": HubSource(
        "nyu-mll/glue", "mnli",
        _splits(("train", "validation_matched", "validation_mismatched", "test_matched", "test_mismatched"),
                dev="validation_matched", validation="validation_matched"),
        _EN, legacy_paths=("glue",),
    ),
    "qqp": HubSource(
        "nyu-mll/glue", "qqp", _splits(("train", "validation", "test"), dev="validation"), _EN,
        legacy_paths=("glue",),
    ),
    "sst2": HubSource(
        "nyu-mll/glue", "sst2", _splits(("train", "validation", "test"), dev="validation"), _EN,
        legacy_paths=("glue",),
    ),
    "anli": HubSource(
        "facebook/anli", "plain_text",
        _splits(tuple(f"{s}_r{r}" for r in (1, 2, 3) for s in ("train", "dev", "test")),
                train="train_r3", dev="dev_r3", validation="dev_r3", test="test_r3"),
        _EN, legacy_paths=("anli",),
    ),
    "squad": HubSource(
        "rajpurkar/squad", "plain_text", _splits(("train", "validation"), dev="validation"), _EN,
        legacy_paths=("squad",),
    ),
    "hellaswag": HubSource(
        "Rowan/hellaswag", None, _splits(("train", "validation", "test"), dev="validation"), _EN,
        legacy_paths=("hellaswag",),
    ),
    "cosmosqa": HubSource(
        "allenai/cosmos_qa", None, _splits(("train", "validation", "test"), dev="validation"), _EN,
        legacy_paths=("cosmos_qa",),
    ),
    "ccg": HubSource(
        "ccgbank", None, _splits(("train", "validation", "test"), dev="validation"), _EN,
        manual_download=(
            "CCG supertagging (X-STILTs' CCG task) is CCGbank, licensed by the LDC (LDC2005T13), not on the "
            "hub: convert it to records (tokens, ccg_tags) and put them at {where}."
        ),
    ),
    "commonsenseqa": HubSource(
        "tau/commonsense_qa", None, _splits(("train", "validation", "test"), dev="validation"), _EN,
        legacy_paths=("commonsense_qa",),
    ),
}


def hub_languages(task: str, split: str | None = None) -> tuple[str, ...]:
    """The languages of ``task`` on the hub; with ``split`` (ours or the hub's name), only those that
    have it (a zero-shot target's ``train`` is English)."""
    src = HUB_TASKS[task]
    if split is None:
        return src.languages
    if _local_translations(task, split):
        return tuple(lang for lang in XTREME_LANGUAGES if lang != "en")
    if split == "train" and "train" not in src.splits and src.english_train:
        return _EN
    return tuple(lang for lang in src.languages if src.has(split, lang))


def _truthy(value: str | None) -> bool:
    return (value or "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def _resolve_lang(task: str, src: HubSource, lang: str) -> str:
    if lang in src.languages:
        return lang
    for iso, code in src.lang_codes.items():  # the dataset's own code is accepted too
        if code == lang:
            return iso
    raise ValueError(f"task {task!r} has no language {lang!r}; allowed: {', '.join(src.languages)}")


def _local_dirs(root: Path, src: HubSource, config: str | None) -> list[Path]:
    dirs: list[Path] = []
    for p in (src.path, *src.legacy_paths):
        base = root / p
        dirs += [base / config] if config else [base / "data", base / "default", base]
    return dirs


def _patterns(split: str) -> tuple[str, ...]:
    return (f"{split}-*.parquet", f"{split}.parquet", f"{split}/*.parquet", f"{split}.jsonl", f"{split}.json")


def _find_local(dirs: list[Path], split: str) -> list[str]:
    for d in dirs:
        for pat in _patterns(split):
            files = sorted(glob.glob(os.path.join(glob.escape(str(d)), pat)))
            if files:
                return files
    return []


def _load_files(files: list[str], task: str, split: str, schema: RecordSchema | None = None) -> list[dict[str, Any]]:
    """The records of local files, every one checked against the task's schema (or ``schema``; one
    ``RecordError`` lists the problems of all the files)."""
    schema = schema or task_info(task).schema.for_split(split)
    rows: list[dict[str, Any]] = []
    errors: list[RecordError] = []
    for f in files:
        items, unit, bad = read_file(f)
        try:
            rows += check_records(items, schema, f, unit, bad, f"{task} records")
        except RecordError as e:
            errors.append(e)
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise RecordError(f"invalid {task} records in {len(errors)} files:",
                          [f"{e.header} {p}" for e in errors for p in e.problems])
    return rows


_PROBES: dict[tuple[str, int], tuple[float, str | None]] = {}  # (host, port) -> (when, why unreachable)
_PROBE_TTL_S = 60.0  # a probe's answer is reused this long: a preflight asks once, not once per file


def hub_unavailable() -> str | None:
    """Why the hub should not be tried now, or None (fails fast instead of retrying for ~30 s)."""
    import datasets

    if datasets.config.HF_HUB_OFFLINE:
        return None  # datasets itself is offline: it will answer from its cache, quickly
    if _truthy(os.environ.get("HF_HUB_OFFLINE")):
        return "skipped: HF_HUB_OFFLINE is set"
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host, port = url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)
    when, why = _PROBES.get((host, port), (-_PROBE_TTL_S, None))
    if time.monotonic() - when < _PROBE_TTL_S:
        return why
    try:
        timeout = float(os.environ.get(HUB_TIMEOUT_ENV) or 3.0)
        socket.create_connection((host, port), timeout=timeout).close()
        why = None
    except (OSError, ValueError) as exc:
        why = f"skipped: {host}:{port} unreachable ({exc}); set HF_HUB_OFFLINE=1 to use the datasets cache"
    _PROBES[(host, port)] = (time.monotonic(), why)
    return why


def _load_from_hub(task: str, path: str, config: str | None, split: str
                   ) -> tuple[list[dict[str, Any]] | None, str]:
    call = f"datasets.load_dataset({path!r}, {config!r}, split={split!r})"
    why = hub_unavailable()
    if why:
        return None, f"{call}: {why}"
    import datasets

    try:
        ds = datasets.load_dataset(path, config, split=split)
    except Exception as exc:  # noqa: BLE001 - any hub failure becomes DataNotFoundError below
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return None, f"{call}: {type(exc).__name__}: {first}"
    if not isinstance(ds, datasets.Dataset):
        raise TypeError(f"expected a datasets.Dataset, got {type(ds).__name__}")
    schema = task_info(task).schema.for_split(split)
    return check_records(enumerate(ds.to_list()), schema, f"the hub's {call}", "row", (), f"{task} records"), call


def _filter(src: HubSource, rows: list[dict[str, Any]], lang: str) -> list[dict[str, Any]]:
    code = src.code(lang)
    if src.lang_filter == "language":
        return [r for r in rows if r.get("language") == code]
    if src.lang_filter == "id_prefix":
        return [r for r in rows if str(r.get("id", "")).startswith(f"{code}-")]
    return rows


def load_hub(
    task: str,
    split: str,
    lang: str = "en",
    *,
    data_dir: str | os.PathLike[str] | None = None,
) -> list[dict[str, Any]]:
    """Records of ``task``/``split`` in ``lang``, in the real dataset's schema.

    Raises ``ValueError`` for an unknown task, split or language, ``DataNotFoundError`` when
    neither the local folder nor the hub has the data, and ``records.RecordError`` for records
    that break the task's schema or a language without rows.
    """
    src = HUB_TASKS.get(task)
    if src is None:
        raise ValueError(f"unknown task {task!r}; allowed: {', '.join(HUB_TASKS)}")
    if _local_translations(task, split):
        return _load_translations(task, src, lang, data_dir)
    lang = _resolve_lang(task, src, lang)
    if split == "train" and "train" not in src.splits and src.english_train:
        if lang != "en":
            raise ValueError(
                f"task {task!r} is zero-shot: its only train split is English "
                f"({HUB_TASKS[src.english_train].path} {src.english_train!r}), not {lang!r}"
            )
        return load_hub(src.english_train, "train", "en", data_dir=data_dir)
    if split not in src.splits:
        allowed = sorted({*src.splits, *(("train",) if src.english_train else ())})
        raise ValueError(f"task {task!r} has no split {split!r}; allowed: {', '.join(allowed)}")
    hub_split, config = src.splits[split], src.config_for(lang)
    if not src.has(split, lang):
        raise DataNotFoundError(f"task {task!r} has no split {hub_split!r} in language {lang!r}: the hub's "
                                f"{config} has only {', '.join(src.only_splits[lang])}")

    root = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV) or None
    dirs = _local_dirs(Path(root).expanduser(), src, config) if root is not None else []
    files = _find_local(dirs, hub_split)
    if files:
        rows, where = _load_files(files, task, hub_split), ", ".join(files)
    else:
        loaded, where = _load_from_hub(task, src.path, config, hub_split)
        if loaded is None:
            raise DataNotFoundError(_not_found(task, src, lang, config, hub_split, root, dirs, where))
        rows = loaded
    return require_rows(_filter(src, rows, lang), task, hub_split, lang, where)


def _not_found(
    task: str, src: HubSource, lang: str, config: str | None, split: str,
    root: str | os.PathLike[str] | None, dirs: list[Path], tried: str,
) -> str:  # fmt: skip
    lines = [
        f"no data for task {task!r} (language {lang!r}): dataset {src.path!r}, "
        f"config {config!r}, split {split!r}."
    ]
    if dirs:
        lines.append(f"Local paths looked at (data_dir={root}):")
        lines += [f"  {d}/{{{', '.join(_patterns(split))}}}" for d in dirs]
    else:
        lines.append(f"No local folder looked at: pass data_dir or set ${DATA_DIR_ENV} to a folder laid out as "
                     f"<data_dir>/{src.path}/{config or 'data'}/{split}-*.parquet.")
    lines.append(f"Hub tried: {tried}")
    if src.manual_download:
        where = dirs[0] / f"{split}.parquet" if dirs else f"<data_dir>/{src.path}/{config}/{split}.parquet"
        lines.append(src.manual_download.format(lang=src.code(lang), where=where))
    lines.append(SYNTH_HINT)
    return "\n".join(lines)


# --- an intermediate task's machine-translated train data (local folder only) -------------------------

TRANSLATED = "translate_train"  # our split name of an intermediate task's translations
LANGUAGE_COLUMN = "language"  # the column that says a translated row's language (XNLI's name for it)


def _local_translations(task: str, split: str) -> bool:
    """Whether ``split`` of ``task`` is an intermediate task's translations (which the hub does not have)."""
    info = task_info(task)
    return split == TRANSLATED and info.role == "intermediate" and TRANSLATED in info.splits


def _translated_schema(task: str, lang: str | None) -> RecordSchema:
    """The task's schema plus ``language``: required in a file of every language (``lang`` None); in
    a file of one language optional, and then that language."""
    base = task_info(task).schema
    fields = {**base.fields, LANGUAGE_COLUMN: Text()}
    if lang is None:
        return RecordSchema(fields, (*base.required, LANGUAGE_COLUMN), base.checks)

    def is_lang(r: dict[str, Any]) -> tuple[str, str] | None:
        if r.get(LANGUAGE_COLUMN, lang) == lang:
            return None
        return LANGUAGE_COLUMN, f"{show(r[LANGUAGE_COLUMN])} is not {lang!r}, the language the file is named for"

    return RecordSchema(fields, base.required, (*base.checks, is_lang))


def _load_translations(task: str, src: HubSource, lang: str, data_dir: str | os.PathLike[str] | None
                       ) -> list[dict[str, Any]]:
    """``task``'s translations into ``lang`` from the local folder: a file of that language, else the
    files of every language filtered by their ``language`` column (see the module's docstring)."""
    if lang not in XTREME_LANGUAGES or lang == "en":
        others = [x for x in XTREME_LANGUAGES if x != "en"]
        raise ValueError(f"task {task!r} has no translations into {lang!r}; allowed: {', '.join(others)}")
    root = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV) or None
    dirs = _local_dirs(Path(root).expanduser(), src, src.config) if root is not None else []
    one = _find_local(dirs, f"{TRANSLATED}.{lang}")
    if one:
        return require_rows(_load_files(one, task, TRANSLATED, _translated_schema(task, lang)), task, TRANSLATED,
                            lang, ", ".join(one))
    every = _find_local(dirs, TRANSLATED)
    if every:
        rows = _load_files(every, task, TRANSLATED, _translated_schema(task, None))
        return require_rows([r for r in rows if r[LANGUAGE_COLUMN] == lang], task, TRANSLATED, lang,
                            f"{', '.join(every)} (no row whose {LANGUAGE_COLUMN!r} is {lang!r})")
    if not dirs:
        where = f"<data_dir>/{src.path}/{src.config or 'data'}"
        raise DataNotFoundError(f"no translated {task} data in {lang!r}: translations are read from a local "
                                f"folder only; pass data_dir or set ${DATA_DIR_ENV} to a folder with "
                                f"{where}/{TRANSLATED}.{lang}.jsonl (the task's schema).\n{SYNTH_HINT}")
    looked = [f"  {d}/{{{', '.join(_patterns(f'{TRANSLATED}.{lang}') + _patterns(TRANSLATED))}}}" for d in dirs]
    raise DataNotFoundError("\n".join([
        f"no translated {task} data in {lang!r} (data_dir={root}); local paths looked at:", *looked,
        f"A file of one language is {TRANSLATED}.{lang}.jsonl; a file of every language needs a "
        f"{LANGUAGE_COLUMN!r} column. The hub has no translations of {task}.", SYNTH_HINT]))
