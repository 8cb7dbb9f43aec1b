"""The task registry: which tasks exist, their family, and how a record becomes model input.

A task's records keep the Hugging Face schema of the real dataset; ``TaskInfo.example``
turns one record into the family's plain example (see ``families``):

=================  ==========================================  =========================
family             example                                     metric
=================  ==========================================  =========================
pair_cls           (text_a, text_b, label)                     accuracy
single_cls         (text, None, label)                         accuracy
multiple_choice    (context, [choice, ...], label)             accuracy
qa                 (question, context, [answer texts], [starts])  (EM + F1) / 2, SQuAD
token_cls          ([tokens], [tag ids])                       seqeval F1
retrieval          (source sentence, English target sentence)  BUCC F1 / Tatoeba accuracy
=================  ==========================================  =========================

``synth`` and the real datasets share this table, which is what lets one trainer serve both.

``TaskInfo.schema`` is the real dataset's record schema (``records.RecordSchema``): its fields,
their types, the label sets below, and cheap cross-field checks. Every loader checks every
record against it as it reads, and ``example`` maps labels through the same label sets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .records import (
    Answers,
    Choices,
    ClassLabel,
    Integer,
    RecordSchema,
    StringLabel,
    Tags,
    Text,
    Texts,
    answers_in_context,
    key_among_choices,
    same_length,
)

__all__ = [
    "TaskInfo",
    "TASKS",
    "INTERMEDIATE_TASKS",
    "TARGET_TASKS",
    "TRANSLATED_TASKS",
    "FAMILIES",
    "task_info",
    "XTREME_LANGUAGES",
    "NLI_LABELS",
    "UPOS",
    "PANX_TAGS",
    "CCG_TAGS",
    "PAWSX_LABELS",
    "HELLASWAG_LABELS",
]

# The 40 XTREME languages (Hu et al. 2020); a task may cover fewer.
XTREME_LANGUAGES = (
    "af", "ar", "bg", "bn", "de", "el", "en", "es", "et", "eu", "fa", "fi", "fr", "he", "hi", "hu", "id", "it",
    "ja", "jv", "ka", "kk", "ko", "ml", "mr", "ms", "my", "nl", "pt", "ru", "sw", "ta", "te", "th", "tl", "tr",
    "ur", "vi", "yo", "zh",
)

# --- label sets of the datasets, in id order (synth renders its records with the same ids) ----------
NLI_LABELS = ("entailment", "neutral", "contradiction")  # glue/mnli label ids 0, 1, 2; XNLI's gold_label
UPOS = ("ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN", "PUNCT",
        "SCONJ", "SYM", "VERB", "X")  # the ClassLabel of XTREME udpos.pos_tags
PANX_TAGS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")  # XTREME PAN-X.ner_tags
CCG_TAGS = ("NP", "N", "N/N", "NP/N", "(S\\NP)/NP", "(S\\NP)\\NP", "(S\\NP)/(S\\NP)",
            "((S\\NP)\\(S\\NP))/NP", "conj", ".", "NP/NP", "PP/NP")  # ccg supertags, a subset of CCGbank's
PAWSX_LABELS = ("0", "1")  # XTREME PAWS-X.label is a string: "1" paraphrase, "0" not
HELLASWAG_LABELS = ("0", "1", "2", "3")  # Rowan/hellaswag label: the right ending's index, a string

FAMILIES = ("pair_cls", "single_cls", "multiple_choice", "qa", "token_cls", "retrieval")
Example = Any  # the family's tuple (see the table above)


@dataclass(frozen=True)
class TaskInfo:
    name: str
    family: str  # one of FAMILIES
    num_labels: int  # classes, choices (multiple_choice), tags (token_cls); 0 for qa/retrieval
    role: str  # "intermediate" | "target"
    splits: dict[str, str]  # our split name (train/dev/test) -> the dataset's split name
    example: Callable[[dict[str, Any]], Example]
    schema: RecordSchema  # the real dataset's record: fields, types, label sets, cross-field checks
    metric: str = "accuracy"  # accuracy | squad | seqeval | bucc_f1
    label_names: tuple[str, ...] = field(default=())  # token_cls: tag names, in id order
    english_train: str | None = None  # zero-shot target trained on another dataset's English train split


# --- record schemas of the real datasets (Hugging Face features) -----------------------------------
_GLUE_TEST = ("test", "test_matched", "test_mismatched")  # GLUE's unlabelled splits (label -1)
_TEXT = Text()


def _texts(*names: str) -> dict[str, Text]:
    return dict.fromkeys(names, _TEXT)


def _glue(a: str, b: str | None, labels: tuple[str, ...]) -> RecordSchema:
    texts = (a,) if b is None else (a, b)
    return RecordSchema({**_texts(*texts), "label": ClassLabel(labels, unlabelled=-1), "idx": Integer()},
                        (*texts, "label"), unlabelled_splits=_GLUE_TEST)


def _qa_schema(*, title: bool) -> RecordSchema:
    """SQuAD's record (MLQA, TyDiQA-GoldP); XTREME's XQuAD records have no ``title``."""
    names = ("id", "title", "context", "question") if title else ("id", "context", "question")
    return RecordSchema({**_texts(*names), "answers": Answers()}, ("context", "question", "answers"),
                        (answers_in_context,))


def _tagging(tags: str, names: tuple[str, ...], *more: str) -> RecordSchema:
    return RecordSchema({"tokens": Texts(nonempty=True), tags: Tags(names), **{m: Texts() for m in more}},
                        ("tokens", tags), (same_length("tokens", tags, *more),))


_NLI = ClassLabel(NLI_LABELS)
_MNLI = _glue("premise", "hypothesis", NLI_LABELS)
_XNLI = RecordSchema({**_texts("language", "sentence1", "sentence2"), "gold_label": StringLabel(NLI_LABELS)},
                     ("language", "sentence1", "sentence2", "gold_label"))
_PAWSX = RecordSchema({**_texts("sentence1", "sentence2"), "label": StringLabel(PAWSX_LABELS)},
                      ("sentence1", "sentence2", "label"))
_RETRIEVAL = RecordSchema(_texts("source_sentence", "target_sentence", "source_lang", "target_lang"),
                          ("source_sentence", "target_sentence"))
_HELLASWAG = RecordSchema(
    {"ind": Integer(), **_texts("activity_label", "ctx_a", "ctx_b", "ctx"), "endings": Texts(size=4),
     **_texts("source_id", "split", "split_type"), "label": StringLabel(HELLASWAG_LABELS, unlabelled="")},
    ("ctx", "endings", "label"), unlabelled_splits=("test",))
_COSMOSQA = RecordSchema(
    {**_texts("id", "context", "question", "answer0", "answer1", "answer2", "answer3"),
     "label": ClassLabel(("answer0", "answer1", "answer2", "answer3"), unlabelled=-1)},
    ("context", "question", "answer0", "answer1", "answer2", "answer3", "label"), unlabelled_splits=("test",))
_CSQA = RecordSchema(
    {**_texts("id", "question", "question_concept"), "choices": Choices(),
     "answerKey": StringLabel(("A", "B", "C", "D", "E"), unlabelled="")},
    ("question", "choices", "answerKey"), (key_among_choices("answerKey", "choices"),), unlabelled_splits=("test",))


# --- records -> the family's examples, labels through the label sets above ------------------------


def _nli_str(r: dict[str, Any]) -> Example:
    if "gold_label" not in r:  # English XNLI training data is MNLI's (glue schema)
        return r["premise"], r["hypothesis"], int(r["label"])
    return r["sentence1"], r["sentence2"], NLI_LABELS.index(r["gold_label"])


def _label(labels: tuple[str, ...], v: str) -> int:
    """A string label's id in its label set; an unlabelled test row ("") becomes -1."""
    return labels.index(v) if v in labels else -1


def _qa(r: dict[str, Any]) -> Example:
    a = r["answers"]
    return r["question"], r["context"], list(a["text"]), [int(s) for s in a["answer_start"]]


def _csqa(r: dict[str, Any]) -> Example:
    labels = list(r["choices"]["label"])
    key = r["answerKey"]
    return r["question"], list(r["choices"]["text"]), labels.index(key) if key in labels else -1


_CLS = {"train": "train", "dev": "validation"}
# an intermediate task's machine-translated train split (every task but ccg: tags do not survive translation)
_TT = {"translate_train": "translate_train"}
_TGT = {"train": "train", "dev": "validation", "test": "test"}

TASKS: dict[str, TaskInfo] = {
    t.name: t
    for t in (
        # --- English intermediate tasks (the nine of the X-STILTs study) ----------------------
        TaskInfo("mnli", "pair_cls", 3, "intermediate", {"train": "train", "dev": "validation_matched", **_TT},
                 lambda r: (r["premise"], r["hypothesis"], int(r["label"])), schema=_MNLI),
        TaskInfo("anli", "pair_cls", 3, "intermediate",
                 {"train": "train_r3", "dev": "dev_r3", "test": "test_r3", **_TT},
                 lambda r: (r["premise"], r["hypothesis"], int(r["label"])),
                 schema=RecordSchema({**_texts("uid", "premise", "hypothesis"), "label": _NLI, "reason": _TEXT},
                                     ("premise", "hypothesis", "label"))),
        TaskInfo("qqp", "pair_cls", 2, "intermediate", {**_CLS, **_TT},
                 lambda r: (r["question1"], r["question2"], int(r["label"])),
                 schema=_glue("question1", "question2", ("not_duplicate", "duplicate"))),
        TaskInfo("sst2", "single_cls", 2, "intermediate", {**_CLS, **_TT},
                 lambda r: (r["sentence"], None, int(r["label"])),
                 schema=_glue("sentence", None, ("negative", "positive"))),
        TaskInfo("squad", "qa", 0, "intermediate", {**_CLS, **_TT}, _qa, schema=_qa_schema(title=True), metric="squad"),
        TaskInfo("hellaswag", "multiple_choice", 4, "intermediate", {**_CLS, **_TT},
                 lambda r: (r["ctx"], list(r["endings"]), _label(HELLASWAG_LABELS, r["label"])), schema=_HELLASWAG),
        TaskInfo("cosmosqa", "multiple_choice", 4, "intermediate", {**_CLS, **_TT},
                 lambda r: (f"{r['context']} {r['question']}", [r[f"answer{k}"] for k in range(4)], int(r["label"])),
                 schema=_COSMOSQA),
        TaskInfo("commonsenseqa", "multiple_choice", 5, "intermediate", {**_CLS, **_TT}, _csqa, schema=_CSQA),
        TaskInfo("ccg", "token_cls", len(CCG_TAGS), "intermediate", _CLS,
                 lambda r: (list(r["tokens"]), [int(t) for t in r["ccg_tags"]]),
                 schema=_tagging("ccg_tags", CCG_TAGS), metric="seqeval", label_names=CCG_TAGS),
        # --- XTREME targets (English train, zero-shot evaluation in every language) ------------
        TaskInfo("xnli", "pair_cls", 3, "target",
                 {"train": "train", "dev": "validation", "test": "test", "translate_train": "translate_train",
                  "test_clean": "test_clean"},
                 _nli_str, schema=_XNLI),
        TaskInfo("pawsx", "pair_cls", 2, "target", {**_TGT, "translate_train": "translate_train",
                                                     "test_clean": "test_clean"},
                 lambda r: (r["sentence1"], r["sentence2"], _label(PAWSX_LABELS, r["label"])), schema=_PAWSX),
        TaskInfo("udpos", "token_cls", len(UPOS), "target", _TGT,
                 lambda r: (list(r["tokens"]), [int(t) for t in r["pos_tags"]]),
                 schema=_tagging("pos_tags", UPOS), metric="seqeval", label_names=UPOS),
        TaskInfo("panx", "token_cls", len(PANX_TAGS), "target", _TGT,
                 lambda r: (list(r["tokens"]), [int(t) for t in r["ner_tags"]]),
                 schema=_tagging("ner_tags", PANX_TAGS, "langs"), metric="seqeval", label_names=PANX_TAGS),
        # XQuAD and TyDiQA-GoldP have one evaluation split: dev and test are the same records
        TaskInfo("xquad", "qa", 0, "target", {"train": "train", "dev": "validation", "test": "validation",
                                              "translate_train": "translate_train"}, _qa,
                 schema=_qa_schema(title=False), metric="squad", english_train="squad"),
        TaskInfo("mlqa", "qa", 0, "target", {**_TGT, "translate_train": "translate_train"}, _qa,
                 schema=_qa_schema(title=True), metric="squad", english_train="squad"),
        TaskInfo("tydiqa", "qa", 0, "target", {"train": "train", "dev": "validation", "test": "validation",
                                               "translate_train": "translate_train"}, _qa,
                 schema=_qa_schema(title=True), metric="squad"),
        TaskInfo("bucc", "retrieval", 0, "target", {"dev": "validation", "test": "test"},
                 lambda r: (r["source_sentence"], r["target_sentence"]), schema=_RETRIEVAL, metric="bucc_f1"),
        TaskInfo("tatoeba", "retrieval", 0, "target", {"dev": "validation", "test": "validation"},
                 lambda r: (r["source_sentence"], r["target_sentence"]), schema=_RETRIEVAL),
    )
}
INTERMEDIATE_TASKS = tuple(n for n, t in TASKS.items() if t.role == "intermediate")
TARGET_TASKS = tuple(n for n, t in TASKS.items() if t.role == "target")
# the intermediate tasks that have machine-translated train data (``translate_train``)
TRANSLATED_TASKS = tuple(n for n in INTERMEDIATE_TASKS if "translate_train" in TASKS[n].splits)


def task_info(name: str) -> TaskInfo:
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}") from None
