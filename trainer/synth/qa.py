"""Extractive QA in the SQuAD schema: ``squad`` (English), ``xquad``, ``mlqa`` and ``tydiqa``.

One generator for all four (synth v8): a context of a few clauses, each with a subject (an entity
form: any of them may name a person or an organisation, as in PAN-X) and a "with <number> <noun>"
tail, so every answer has as many candidates of its type as there are clauses. Exactly one
subject is a person; the others are organisations, and only their verbs tell which: a topic's
verbs take persons or organisations (``SUBJECT_KINDS``), but a share ``EITHER_SHARE`` of clauses
have the verb that takes either, and then nothing tells (this keeps English off the ceiling). The
question asks "who" (that person, an anchor) or "many" (the number of that person's clause, an
anchor), then words of the person clause's topic none of which occurs in the context
(``World.question``); "not" when that clause says "not". The answer is that person, or that
number. So neither the answer's position, nor its form, nor a word it shares with the question
finds it: the context's verbs, content words shared with English as far as a language's overlap,
do. ``xquad`` and ``tydiqa`` have 3 clauses, ``mlqa`` 4; ``tydiqa`` asks "how many" more often.

Why the verbs, and not the question's words (v7): at the default fidelity (300 target steps) the
tiny model matched no content word of a question to its clause, neither by topic (v7's design) nor
by the same noun (measured: English MLQA .366 either way, a question with no "not" cue at chance);
it answered by the anchors ("who"/"many", "not"), which every language shares, so MLQA was not
graded (xa–xd within .027). A verb next to a candidate is read at 300 steps, as PAN-X's tags are.
XQuAD records carry no ``title``, as in ``google/xtreme``; SQuAD, MLQA and TyDiQA records do.
"""

from __future__ import annotations

from .splits import ByLanguage, Record, SynthSizes, Tasks, parallel, task_rng
from .world import (
    EITHER_VERB,
    N_NOUNS,
    N_TOPICS,
    NUMBERS,
    SUBJECT_KINDS,
    Clause,
    World,
    english_content_words,
)

__all__ = ["qa_item", "squad_record", "render_qa"]


def qa_item(w: World, lang: str, n_clauses: int, p_many: float) -> tuple[str, str, str]:
    """(context, question, answer): ``n_clauses`` clauses with distinct subjects and numbers, one
    subject a person (the answer's clause); the answer, a subject or a number, occurs once in the
    context."""
    r = w.rng
    forms = r.sample([f for f in w.entity_forms if " " not in f], n_clauses)
    nums = r.sample(NUMBERS, n_clauses)
    person_at = r.randrange(n_clauses)
    clauses: list[Clause] = []
    for i, (form, num) in enumerate(zip(forms, nums, strict=True)):
        either = r.random() < EITHER_SHARE
        kind_ok = [t for t in range(N_TOPICS) if (SUBJECT_KINDS[t] == "org") == (i != person_at)]
        c = w.clause(topic=r.randrange(N_TOPICS) if either else r.choice(kind_ok), name=form)
        c.verb = EITHER_VERB if either else r.randrange(EITHER_VERB)
        c.org = i != person_at
        c.num, c.noun2 = num, r.choice([k for k in range(N_NOUNS) if k != c.noun])
        clauses.append(c)
    target = clauses[person_at]
    kind = "many" if r.random() < p_many else "who"
    answer = w.anchor_form(lang, target.num if kind == "many" and target.num else target.name)
    # a question none of whose content words is in the context (judged in English)
    context_content = english_content_words(w) & {x for c in clauses for x in w.render(c, "en").split()}
    for _ in range(100):
        state = r.getstate()
        if not set(w.question(target, "en", kind).split()) & context_content:
            break
    r.setstate(state)
    return " . ".join(w.render(c, lang) for c in clauses) + " .", w.question(target, lang, kind), answer


EITHER_SHARE = 0.3  # clauses whose verb takes a person or an organisation: nothing tells which


def squad_record(ctx: str, q: str, a: str, rid: str, title: str | None) -> Record:
    """A SQuAD record whose answer is the first whole-word occurrence of ``a`` in ``ctx``; without
    ``title`` (``None``), the XQuAD schema."""
    start = ctx.split(" ").index(a)
    char = len(" ".join(ctx.split(" ")[:start])) + (1 if start else 0)
    assert ctx[char : char + len(a)] == a
    return {"id": rid, **({"title": title} if title is not None else {}), "context": ctx, "question": q,
            "answers": {"answer_start": [char], "text": [a]}}


def _qa_rows(w: World, name: str, n: int, langs: list[str], n_clauses: int, p_many: float,
             lang_prefix: bool = False, titled: bool = True) -> ByLanguage:
    """``n`` parallel items; ids ``<name>-<i>`` (``<lang>-<name>-<i>`` with ``lang_prefix``, as TyDiQA);
    ``titled``: the records carry a ``title`` (the task's name)."""

    def make(lang: str) -> Record:
        ctx, q, a = qa_item(w, lang, n_clauses, p_many)
        return squad_record(ctx, q, a, "", name if titled else None)

    out = parallel(w, name, n, langs, make)
    for lang, rows in out.items():
        for i, row in enumerate(rows):
            row["id"] = f"{lang}-{name}-{i}" if lang_prefix else f"{name}-{i}"
    return out


def _untitled(r: Record) -> Record:
    return {k: v for k, v in r.items() if k != "title"}


def render_qa(w: World, sz: SynthSizes, langs: list[str]) -> Tasks:
    """``squad`` trains the English side of ``xquad`` and ``mlqa``; their translate-train is SQuAD's
    train "translated" (as in XTREME), one split shared by both, and SQuAD's own translations."""
    non_en = [lang for lang in langs if lang != "en"]
    with w.using(task_rng(w, "qa")):
        squad_tt = _qa_rows(w, "squad-train", sz.train // 2, non_en, 3, 0.3)
        return {
            "squad": {"train": _qa_rows(w, "squad-train", sz.train, ["en"], 3, 0.3),
                      "validation": _qa_rows(w, "squad-dev", sz.dev, ["en"], 3, 0.3), "translate_train": squad_tt},
            "xquad": {"validation": _qa_rows(w, "xquad", sz.test, langs, 3, 0.3, titled=False),
                      "translate_train": {lang: [_untitled(r) for r in rows] for lang, rows in squad_tt.items()}},
            "mlqa": {"validation": _qa_rows(w, "mlqa-dev", sz.dev, langs, 4, 0.3),
                     "test": _qa_rows(w, "mlqa-test", sz.test, langs, 4, 0.3), "translate_train": squad_tt},
            "tydiqa": {"train": _qa_rows(w, "tydiqa-train", sz.train // 4, ["en"], 3, 0.6, True),
                       "validation": _qa_rows(w, "tydiqa", sz.test, langs, 3, 0.6, True),
                       "translate_train": _qa_rows(w, "tydiqa-train", sz.train // 4, non_en, 3, 0.6, True)},
        }
