"""Record schemas, and the readers that check every record as they read it.

A ``RecordSchema`` says what one record of a dataset must look like: its fields, each with a
type and, for labels, the allowed values (``Text``, ``Integer``, ``ClassLabel``,
``StringLabel``, ``Texts``, ``Tags``, ``Answers``, ``Choices``), and cross-field checks that
are cheap and certain (tokens and tags of equal length, a QA answer inside its context). The
facts, which task has which schema, live in the task registry (``tasks.TaskInfo.schema``);
this module holds the machinery::

    file ──read_file──► (position, record) ... ──check_records(schema)──► records | RecordError

Positions are 1-based lines of a JSON Lines file (as an editor shows them) and 0-based rows of
a parquet file or a JSON array (as ``datasets`` and pandas index them). Every problem names
the file and position, the field, the value and what is allowed; ``RecordError`` lists them
together, at most ``MAX_LISTED`` of them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

__all__ = [
    "Field", "Text", "Integer", "ClassLabel", "StringLabel", "Texts", "Tags", "Answers", "Choices",
    "RecordSchema", "RecordError", "MAX_LISTED", "same_length", "answers_in_context", "key_among_choices",
    "read_file", "check_records", "load_file", "require_rows", "show",
]

MAX_LISTED = 10  # problems listed in one error; the rest are counted
Check = Callable[[dict[str, Any]], "tuple[str, str] | None"]  # a record -> (field, what is wrong) or None


class RecordError(ValueError):
    """Records that do not follow their dataset's schema (or no records at all); the message
    lists every problem found, each with its file and line or row, field, value and what is allowed."""

    def __init__(self, header: str, problems: Sequence[str] = ()) -> None:
        self.header, self.problems = header, list(problems)
        lines = [header, *(f"  {p}" for p in self.problems[:MAX_LISTED])]
        if len(self.problems) > MAX_LISTED:
            lines.append(f"  ... and {len(self.problems) - MAX_LISTED} more")
        super().__init__("\n".join(lines))


def show(value: Any, width: int = 60) -> str:
    """A value as the error shows it: JSON-like, cut to ``width`` characters."""
    text = repr(value) if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= width else text[: width - 3] + "..."


# --- fields -------------------------------------------------------------------------------------


class Field:
    """One field of a record; ``check`` says what is wrong with a value, or None."""

    def check(self, value: Any) -> str | None:
        raise NotImplementedError

    def accepting_unlabelled(self) -> Field:
        """The field as it is in an unlabelled split (a label field accepts its unlabelled marker)."""
        return self


@dataclass(frozen=True)
class Text(Field):
    def check(self, value: Any) -> str | None:
        return None if type(value) is str else f"{show(value)} is not a string"


@dataclass(frozen=True)
class Integer(Field):
    def check(self, value: Any) -> str | None:
        return None if type(value) is int else f"{show(value)} is not an integer"


@dataclass(frozen=True)
class ClassLabel(Field):
    """A ``datasets.ClassLabel``: an integer id into ``names``."""

    names: tuple[str, ...]
    unlabelled: int | None = None  # the id of an unlabelled row (GLUE's test splits: -1)
    accept_unlabelled: bool = False

    def check(self, value: Any) -> str | None:
        if type(value) is int and (0 <= value < len(self.names) or (self.accept_unlabelled
                                                                     and value == self.unlabelled)):
            return None
        ids = ", ".join(f"{i} ({n})" for i, n in enumerate(self.names))
        return f"{show(value)} is not a label id; allowed: {ids}"

    def accepting_unlabelled(self) -> Field:
        return replace(self, accept_unlabelled=True) if self.unlabelled is not None else self


@dataclass(frozen=True)
class StringLabel(Field):
    """A label stored as a string (XNLI's ``gold_label``, PAWS-X's and HellaSwag's ``label``);
    its id is its place in ``names``."""

    names: tuple[str, ...]
    unlabelled: str | None = None  # the value of an unlabelled row (HellaSwag's test split: "")
    accept_unlabelled: bool = False

    def check(self, value: Any) -> str | None:
        if value in self.names and type(value) is str or (self.accept_unlabelled and value == self.unlabelled):
            return None
        return f"{show(value)} is not a label; allowed: {', '.join(map(repr, self.names))}"

    def accepting_unlabelled(self) -> Field:
        return replace(self, accept_unlabelled=True) if self.unlabelled is not None else self

    def id(self, value: str) -> int:
        """The label id of a checked value (-1 for the unlabelled marker)."""
        return self.names.index(value) if value in self.names else -1


@dataclass(frozen=True)
class Texts(Field):
    """A list of strings; ``size``: exactly that many, ``nonempty``: at least one."""

    size: int | None = None
    nonempty: bool = False

    def check(self, value: Any) -> str | None:
        if type(value) is not list or not all(type(x) is str for x in value):
            return f"{show(value)} is not a list of strings"
        if self.size is not None and len(value) != self.size:
            return f"has {len(value)} items; {self.size} are needed"
        if self.nonempty and not value:
            return "is empty; at least one item is needed"
        return None


@dataclass(frozen=True)
class Tags(Field):
    """A list of ``datasets.ClassLabel`` ids (a ``Sequence(ClassLabel)``), one per token."""

    names: tuple[str, ...]

    def check(self, value: Any) -> str | None:
        if type(value) is not list:
            return f"{show(value)} is not a list of tag ids"
        n = len(self.names)
        for i, v in enumerate(value):
            if type(v) is not int or not 0 <= v < n:
                return f"item {i}: {show(v)} is not a tag id; allowed: 0..{n - 1} ({', '.join(self.names)})"
        return None


def _string_lists(value: Any, keys: tuple[str, str], kinds: tuple[type, type]) -> str | None:
    """What is wrong with a mapping of two equally long lists (``keys``) of ``kinds``, or None."""
    if not isinstance(value, Mapping) or any(k not in value for k in keys):
        return f"{show(value)} is not a mapping with {' and '.join(map(repr, keys))}"
    a, b = value[keys[0]], value[keys[1]]
    for k, v, kind in ((keys[0], a, kinds[0]), (keys[1], b, kinds[1])):
        if type(v) is not list or not all(type(x) is kind for x in v):
            return f"{k}: {show(v)} is not a list of {kind.__name__}"
    if len(a) != len(b):
        return f"{keys[0]} has {len(a)} items and {keys[1]} {len(b)}; they must pair up"
    return None


@dataclass(frozen=True)
class Answers(Field):
    """SQuAD's ``answers``: ``{answer_start: [int], text: [str]}``, paired up."""

    def check(self, value: Any) -> str | None:
        return _string_lists(value, ("answer_start", "text"), (int, str))


@dataclass(frozen=True)
class Choices(Field):
    """CommonsenseQA's ``choices``: ``{label: [str], text: [str]}``, paired up, not empty."""

    def check(self, value: Any) -> str | None:
        why = _string_lists(value, ("label", "text"), (str, str))
        if why is None and not value["label"]:
            return "has no choices"
        return why


# --- cross-field checks ---------------------------------------------------------------------------


def same_length(first: str, *others: str) -> Check:
    """Fields that pair up item by item (tokens and their tags)."""

    def check(r: dict[str, Any]) -> tuple[str, str] | None:
        n = len(r[first])
        for o in others:
            if o in r and len(r[o]) != n:
                return o, f"has {len(r[o])} items but {first} has {n}; they must pair up"
        return None

    return check


def answers_in_context(r: dict[str, Any]) -> tuple[str, str] | None:
    """Every answer lies inside the context (``answer_start`` + its text's length)."""
    n = len(r["context"])
    a = r["answers"]
    for start, text in zip(a["answer_start"], a["text"], strict=True):
        if not 0 <= start or start + len(text) > n:
            return "answers", (f"answer_start {start} with text {show(text, 30)} lies outside the context "
                               f"({n} characters)")
    return None


def key_among_choices(key: str, choices: str, unlabelled: str = "") -> Check:
    """The answer key names one of the choices (CommonsenseQA's ``answerKey`` in ``choices.label``)."""

    def check(r: dict[str, Any]) -> tuple[str, str] | None:
        labels = r[choices]["label"]
        if r[key] in labels or r[key] == unlabelled:
            return None
        return key, f"{show(r[key])} is not a choice; allowed: {', '.join(map(repr, labels))}"

    return check


# --- schemas -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordSchema:
    """The record of one dataset: its fields in the dataset's order, those the trainer needs, and
    the cross-field checks. Fields not in ``required`` are checked when present; unknown extra
    fields are allowed (a dataset may grow columns)."""

    fields: Mapping[str, Field]
    required: tuple[str, ...]
    checks: tuple[Check, ...] = ()
    unlabelled_splits: tuple[str, ...] = ()  # the dataset's splits without labels (GLUE's test)
    _variants: dict[bool, RecordSchema] = field(default_factory=dict, compare=False, repr=False)

    def for_split(self, split: str) -> RecordSchema:
        """The schema of ``split``: in an unlabelled split, the label fields accept their marker."""
        if split not in self.unlabelled_splits:
            return self
        if True not in self._variants:
            self._variants[True] = replace(
                self, fields={k: f.accepting_unlabelled() for k, f in self.fields.items()}, unlabelled_splits=())
        return self._variants[True]

    def problems(self, r: Any) -> list[tuple[str, str]]:
        """(field, what is wrong) for every problem of record ``r``; empty if it is valid."""
        if not isinstance(r, dict):
            return [("", f"{show(r)} is not a record (a JSON object)")]
        out = [(k, f"missing (the record has: {', '.join(r) or 'nothing'})") for k in self.required if k not in r]
        for k, spec in self.fields.items():
            if k in r:
                why = "is null (a missing value)" if r[k] is None else spec.check(r[k])
                if why is not None:
                    out.append((k, why))
        if not out:
            for check in self.checks:
                found = check(r)
                if found is not None:
                    out.append(found)
        return out


# --- reading --------------------------------------------------------------------------------------


def _read_json_lines(text: str) -> tuple[list[tuple[int, Any]], list[str]]:
    items: list[tuple[int, Any]] = []
    bad: list[str] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            items.append((n, json.loads(line)))
        except json.JSONDecodeError as e:
            bad.append(f"line {n}: not valid JSON ({e.msg}, column {e.colno}; a truncated line?): {show(line)}")
    return items, bad


def read_file(path: str | Path) -> tuple[list[tuple[int, Any]], str, list[str]]:
    """(position, record) pairs of a ``.jsonl``, ``.json`` (an array or JSON Lines) or ``.parquet``
    file, the unit its positions count ("line" or "row") and the problems met reading it."""
    p = Path(path)
    if p.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            rows = pq.read_table(p).to_pylist()
        except Exception as e:  # noqa: BLE001 - a damaged file of any kind is one problem
            return [], "row", [f"not a readable parquet file: {type(e).__name__}: {str(e).splitlines()[0]}"]
        return list(enumerate(rows)), "row", []
    text = p.read_text(encoding="utf-8")
    if p.suffix == ".json" and text.lstrip().startswith("["):
        try:
            whole = json.loads(text)
        except json.JSONDecodeError as e:
            return [], "row", [f"not valid JSON ({e.msg}, line {e.lineno}, column {e.colno}; truncated?)"]
        return list(enumerate(whole)), "row", []
    items, bad = _read_json_lines(text)
    return items, "line", bad


def check_records(items: Iterable[tuple[int, Any]], schema: RecordSchema, where: str, unit: str,
                  read_problems: Sequence[str] = (), what: str = "records") -> list[dict[str, Any]]:
    """The records of ``items`` if every one follows ``schema``; else ``RecordError`` listing the
    problems of reading (``read_problems``) and of every invalid record, with ``where`` (the file)
    in its header."""
    rows: list[dict[str, Any]] = []
    problems = list(read_problems)
    for pos, r in items:
        found = schema.problems(r)
        if found:
            problems += [f"{unit} {pos}: field {k!r} {why}" if k else f"{unit} {pos}: {why}" for k, why in found]
        else:
            rows.append(r)
    if problems:
        raise RecordError(f"invalid {what} in {where} ({len(problems)} problem{'s' * (len(problems) > 1)}):",
                          problems)
    return rows


def load_file(path: str | Path, schema: RecordSchema, what: str = "records") -> list[dict[str, Any]]:
    """Read one file and check every record (``RecordError`` naming the file otherwise)."""
    items, unit, bad = read_file(path)
    return check_records(items, schema, str(path), unit, bad, what)


def require_rows(rows: list[dict[str, Any]], task: str, split: str, lang: str, where: str) -> list[dict[str, Any]]:
    """``rows``, or ``RecordError`` naming the task, split and language when there are none."""
    if not rows:
        raise RecordError(f"no rows for task {task!r}, split {split!r}, language {lang!r} in {where}")
    return rows
