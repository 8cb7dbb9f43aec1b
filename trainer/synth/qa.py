"""Extractive QA in the SQuAD schema: ``squad`` (English), ``xquad``, ``mlqa`` and ``tydiqa``.

One generator for all four: a context of a few clauses, each about another topic, each with a
subject (a name) and a "with <number> <noun>" tail, so every answer has as many candidates of its
type as there are clauses; a question that picks out one clause by its topic (``World.question``:
"who" for its name, "many" for its number, both anchors; then words of the clause's topic that
the clause does not use); and the answer, that clause's name or number. Only the question's
content words pick the answer among the candidates of its type: neither its position nor a word
shared with the context does. ``xquad`` and ``tydiqa`` have 3 clauses (with two, at 8 seeds,
every language scored as English did), ``mlqa`` 4; ``tydiqa`` asks "how many" more often.
XQuAD records carry no ``title``, as in ``google/xtreme``; SQuAD, MLQA and TyDiQA records do.
"""

from __future__ import annotations

from .splits import ByLanguage, Record, SynthSizes, Tasks, parallel, task_rng
from .world import N_NOUNS, NUMBERS, Clause, World

__all__ = ["qa_item", "squad_record", "render_qa"]


def qa_item(w: World, lang: str, n_clauses: int, p_many: float) -> tuple[str, str, str]:
    """(context, question, answer): ``n_clauses`` clauses on distinct topics with distinct names and
    numbers; the answer, a name or a number, occurs once in the context."""
    r = w.rng
    topics = w.distinct_topics(n_clauses)
    names = r.sample(w.names, n_clauses)
    nums = r.sample(NUMBERS, n_clauses)
    clauses: list[Clause] = []
    for t, name, num in zip(topics, names, nums, strict=True):
        c = w.clause(topic=t, name=name)
        c.num, c.noun2 = num, r.choice([k for k in range(N_NOUNS) if k != c.noun])
        clauses.append(c)
    target = r.choice(clauses)
    kind = "many" if r.random() < p_many else "who"
    answer = w.anchor_form(lang, target.num if kind == "many" and target.num else target.name)
    return " . ".join(w.render(c, lang) for c in clauses) + " .", w.question(target, lang, kind), answer


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
