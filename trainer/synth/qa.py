"""Extractive QA in the SQuAD schema: ``squad`` (English), ``xquad``, ``mlqa`` and ``tydiqa``.

One generator for all four: a context of a few clauses with distinct subjects, a question that
picks out one clause (``who`` did it, or ``what many <noun>``), and the answer, a name or a
number that occurs once in the context. ``xquad`` has 3 clauses, ``mlqa`` 4, ``tydiqa`` 2 and
asks "how many" more often.
"""

from __future__ import annotations

from .splits import ByLanguage, Record, SynthSizes, Tasks, parallel, task_rng
from .world import N_NOUNS, NUMBERS, Clause, World

__all__ = ["qa_item", "squad_record", "render_qa"]


def qa_item(w: World, lang: str, n_clauses: int, p_many: float) -> tuple[str, str, str]:
    """(context, question, answer) with the answer a name or a number that occurs once in the context."""
    r = w.rng
    names = r.sample(w.names, n_clauses)
    nums = r.sample(NUMBERS, n_clauses)
    clauses: list[Clause] = []
    seen: set[tuple[int, int]] = set()
    while len(clauses) < n_clauses:
        c = w.clause(name=names[len(clauses)])
        if (c.topic, c.verb) in seen:  # the question must pick out one clause
            continue
        seen.add((c.topic, c.verb))
        if r.random() < 0.6:
            c.num, c.noun2 = nums[len(clauses)], r.randrange(N_NOUNS)
        clauses.append(c)
    with_num = [c for c in clauses if c.num is not None]
    if with_num and r.random() < p_many:
        target, kind = r.choice(with_num), "many"
    else:
        target, kind = r.choice(clauses), "who"
    answer = target.num if kind == "many" else target.name
    assert answer is not None
    answer = w.anchor_form(lang, answer)
    return " . ".join(w.render(c, lang) for c in clauses) + " .", w.question(target, lang, kind), answer


def squad_record(ctx: str, q: str, a: str, rid: str, title: str) -> Record:
    """A SQuAD record whose answer is the first whole-word occurrence of ``a`` in ``ctx``."""
    start = ctx.split(" ").index(a)
    char = len(" ".join(ctx.split(" ")[:start])) + (1 if start else 0)
    assert ctx[char : char + len(a)] == a
    return {"id": rid, "title": title, "context": ctx, "question": q,
            "answers": {"answer_start": [char], "text": [a]}}


def _qa_rows(w: World, name: str, n: int, langs: list[str], n_clauses: int, p_many: float,
             lang_prefix: bool = False) -> ByLanguage:
    """``n`` parallel items; ids ``<name>-<i>`` (``<lang>-<name>-<i>`` with ``lang_prefix``, as TyDiQA)."""

    def make(lang: str) -> Record:
        ctx, q, a = qa_item(w, lang, n_clauses, p_many)
        return squad_record(ctx, q, a, "", name)

    out = parallel(w, name, n, langs, make)
    for lang, rows in out.items():
        for i, row in enumerate(rows):
            row["id"] = f"{lang}-{name}-{i}" if lang_prefix else f"{name}-{i}"
    return out


def render_qa(w: World, sz: SynthSizes, langs: list[str]) -> Tasks:
    """``squad`` trains the English side of ``xquad`` and ``mlqa``; their translate-train is SQuAD's
    train "translated" (as in XTREME), one split shared by both."""
    non_en = [lang for lang in langs if lang != "en"]
    with w.using(task_rng(w, "qa")):
        squad_tt = _qa_rows(w, "squad-train", sz.train // 2, non_en, 3, 0.3)
        return {
            "squad": {"train": _qa_rows(w, "squad-train", sz.train, ["en"], 3, 0.3),
                      "validation": _qa_rows(w, "squad-dev", sz.dev, ["en"], 3, 0.3)},
            "xquad": {"validation": _qa_rows(w, "xquad", sz.test, langs, 3, 0.3), "translate_train": squad_tt},
            "mlqa": {"validation": _qa_rows(w, "mlqa-dev", sz.dev, langs, 4, 0.3),
                     "test": _qa_rows(w, "mlqa-test", sz.test, langs, 4, 0.3), "translate_train": squad_tt},
            "tydiqa": {"train": _qa_rows(w, "tydiqa-train", sz.train // 4, ["en"], 2, 0.6, True),
                       "validation": _qa_rows(w, "tydiqa", sz.test, langs, 2, 0.6, True),
                       "translate_train": _qa_rows(w, "tydiqa-train", sz.train // 4, non_en, 2, 0.6, True)},
        }
