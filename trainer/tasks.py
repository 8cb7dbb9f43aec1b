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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "TaskInfo",
    "TASKS",
    "INTERMEDIATE_TASKS",
    "TARGET_TASKS",
    "FAMILIES",
    "task_info",
    "XTREME_LANGUAGES",
    "NLI_LABELS",
    "UPOS",
    "PANX_TAGS",
    "CCG_TAGS",
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
    metric: str = "accuracy"  # accuracy | squad | seqeval | bucc_f1
    label_names: tuple[str, ...] = field(default=())  # token_cls: tag names, in id order
    english_train: str | None = None  # zero-shot target trained on another dataset's English train split


def _nli_str(r: dict[str, Any]) -> Example:
    if "gold_label" not in r:  # English XNLI training data is MNLI's (glue schema)
        return r["premise"], r["hypothesis"], int(r["label"])
    return r["sentence1"], r["sentence2"], NLI_LABELS.index(r["gold_label"])


def _label(v: Any) -> int:
    """HellaSwag labels are strings; unlabelled test rows ("" or -1) become -1."""
    return int(v) if str(v).strip() not in ("", "None") else -1


def _qa(r: dict[str, Any]) -> Example:
    a = r["answers"]
    return r["question"], r["context"], list(a["text"]), [int(s) for s in a["answer_start"]]


def _csqa(r: dict[str, Any]) -> Example:
    labels = list(r["choices"]["label"])
    key = r["answerKey"]
    return r["question"], list(r["choices"]["text"]), labels.index(key) if key in labels else -1


_CLS = {"train": "train", "dev": "validation"}
_TGT = {"train": "train", "dev": "validation", "test": "test"}

TASKS: dict[str, TaskInfo] = {
    t.name: t
    for t in (
        # --- English intermediate tasks (the nine of the X-STILTs study) ----------------------
        TaskInfo("mnli", "pair_cls", 3, "intermediate", {"train": "train", "dev": "validation_matched"},
                 lambda r: (r["premise"], r["hypothesis"], int(r["label"]))),
        TaskInfo("anli", "pair_cls", 3, "intermediate", {"train": "train_r3", "dev": "dev_r3", "test": "test_r3"},
                 lambda r: (r["premise"], r["hypothesis"], int(r["label"]))),
        TaskInfo("qqp", "pair_cls", 2, "intermediate", _CLS,
                 lambda r: (r["question1"], r["question2"], int(r["label"]))),
        TaskInfo("sst2", "single_cls", 2, "intermediate", _CLS,
                 lambda r: (r["sentence"], None, int(r["label"]))),
        TaskInfo("squad", "qa", 0, "intermediate", _CLS, _qa, metric="squad"),
        TaskInfo("hellaswag", "multiple_choice", 4, "intermediate", _CLS,
                 lambda r: (r["ctx"], list(r["endings"]), _label(r["label"]))),
        TaskInfo("cosmosqa", "multiple_choice", 4, "intermediate", _CLS,
                 lambda r: (f"{r['context']} {r['question']}", [r[f"answer{k}"] for k in range(4)],
                            _label(r["label"]))),
        TaskInfo("commonsenseqa", "multiple_choice", 5, "intermediate", _CLS, _csqa),
        TaskInfo("ccg", "token_cls", len(CCG_TAGS), "intermediate", _CLS,
                 lambda r: (list(r["tokens"]), [int(t) for t in r["ccg_tags"]]), metric="seqeval",
                 label_names=CCG_TAGS),
        # --- XTREME targets (English train, zero-shot evaluation in every language) ------------
        TaskInfo("xnli", "pair_cls", 3, "target",
                 {"train": "train", "dev": "validation", "test": "test", "translate_train": "translate_train",
                  "test_clean": "test_clean"},
                 _nli_str),
        TaskInfo("pawsx", "pair_cls", 2, "target", {**_TGT, "translate_train": "translate_train",
                                                     "test_clean": "test_clean"},
                 lambda r: (r["sentence1"], r["sentence2"], int(r["label"]))),
        TaskInfo("udpos", "token_cls", len(UPOS), "target", _TGT,
                 lambda r: (list(r["tokens"]), [int(t) for t in r["pos_tags"]]), metric="seqeval",
                 label_names=UPOS),
        TaskInfo("panx", "token_cls", len(PANX_TAGS), "target", _TGT,
                 lambda r: (list(r["tokens"]), [int(t) for t in r["ner_tags"]]), metric="seqeval",
                 label_names=PANX_TAGS),
        # XQuAD and TyDiQA-GoldP have one evaluation split: dev and test are the same records
        TaskInfo("xquad", "qa", 0, "target", {"train": "train", "dev": "validation", "test": "validation",
                                              "translate_train": "translate_train"}, _qa,
                 metric="squad", english_train="squad"),
        TaskInfo("mlqa", "qa", 0, "target", {**_TGT, "translate_train": "translate_train"}, _qa, metric="squad",
                 english_train="squad"),
        TaskInfo("tydiqa", "qa", 0, "target", {"train": "train", "dev": "validation", "test": "validation",
                                               "translate_train": "translate_train"}, _qa,
                 metric="squad"),
        TaskInfo("bucc", "retrieval", 0, "target", {"dev": "validation", "test": "test"},
                 lambda r: (r["source_sentence"], r["target_sentence"]), metric="bucc_f1"),
        TaskInfo("tatoeba", "retrieval", 0, "target", {"dev": "validation", "test": "validation"},
                 lambda r: (r["source_sentence"], r["target_sentence"])),
    )
}
INTERMEDIATE_TASKS = tuple(n for n, t in TASKS.items() if t.role == "intermediate")
TARGET_TASKS = tuple(n for n, t in TASKS.items() if t.role == "target")


def task_info(name: str) -> TaskInfo:
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}") from None
