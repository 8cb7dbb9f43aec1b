"""Paraphrase pairs: ``qqp`` (glue/qqp, English) and ``pawsx`` (XTREME PAWS-X, every language)."""

from __future__ import annotations

from dataclasses import replace

from .splits import Record, SynthSizes, Tasks, clean_rows, parallel, task_rng
from .world import N_NOUNS, NUMBERS, Clause, World

__all__ = ["qqp_rows", "render_qqp", "render_pawsx"]


def _qqp_pair(w: World, lang: str) -> tuple[str, str, int]:
    """Conflicting by design: a "duplicate" asks about the same person and number whatever the
    content words and "not" say, so it trains the encoder to ignore exactly what NLI reads."""
    r = w.rng
    c = w.clause()
    w.add_number_tail(c)
    y = int(r.random() < 0.5)
    d = w.clause(name=c.name) if y else w.clause(topic=c.topic, neg=c.neg)
    d.num, d.noun2 = (c.num, r.randrange(N_NOUNS)) if y else (r.choice(NUMBERS), c.noun2)
    if not y and r.random() < 0.5:
        d.name, d.num = c.name, r.choice([x for x in NUMBERS if x != c.num])
    if not y:
        d.verb, d.noun, d.adj = c.verb, c.noun, c.adj
    return w.render(c, lang), w.render(d, lang, with_adj=r.random() < 0.5), y


def qqp_rows(w: World, n: int, start: int, lang: str = "en") -> list[Record]:
    """``n`` pairs of "does ..." questions in ``lang``, label 1 for a duplicate (draws independent of ``lang``)."""
    does = w.function_word(lang, "does")
    out = []
    for i in range(n):
        a, b, y = _qqp_pair(w, lang)
        out.append({"question1": f"{does} {a}", "question2": f"{does} {b}", "label": y, "idx": start + i})
    return out


def render_qqp(w: World, sz: SynthSizes, langs: list[str]) -> Tasks:
    """English (its translations: ``translated``), from a stream of its own."""
    with w.using(task_rng(w, "qqp")):
        return {"qqp": {"train": {"en": qqp_rows(w, sz.train, 0)}, "validation": {"en": qqp_rows(w, sz.dev, sz.train)}}}


# PAWS-X's nouns: an object is a noun of an object topic, a companion ("with <number> <noun>") a
# noun of a companion topic; what a topic's nouns are is a fact of the world (by topic, like
# SUBJECT_KINDS), known in a language as far as its topics are (shared words, pretraining)
_OBJECT_TOPICS, _COMPANION_TOPICS = (0, 2), (1, 3)
# share of pairs whose companion is a noun of an object topic too: swapping two object nouns leaves
# an object noun in the object's place, so only the word order tells a paraphrase from a swap (not
# learned at the default fidelity: what keeps English below the ceiling, near 1 - 0.2 / 2)
_SAME_KIND = 0.2


def _pawsx_clause(w: World) -> tuple[Clause, Clause]:
    """A clause "<name> <verb> the <noun> with <number> <noun2>" (its verb of any topic, its object
    of an object topic, its companion of a companion topic, or in a share ``_SAME_KIND`` of another
    object noun), and the same clause with the two nouns swapped."""
    r = w.rng
    c = w.clause()
    t1 = r.choice(_OBJECT_TOPICS)
    t2 = r.choice(_OBJECT_TOPICS if r.random() < _SAME_KIND else _COMPANION_TOPICS)
    noun2 = r.choice([k for k in range(N_NOUNS) if (t2, k) != (t1, c.noun)])  # a swap changes the sentence
    c.noun_topic, c.num, c.noun2_topic, c.noun2 = t1, r.choice(NUMBERS), t2, noun2
    return c, replace(c, noun=c.noun2, noun_topic=t2, noun2=c.noun, noun2_topic=t1)


def _pawsx_row(w: World, lang: str) -> Record:
    """PAWS: the two sentences share their words (the adjective may be dropped, for either label,
    so length tells nothing). Label 1: the same clause; label 0: its object and companion swapped,
    which changes who does what with what: the verb then takes a companion-kind noun as its
    object, which only knowing what the nouns are tells (their order, not their set, differs)."""
    c, swapped = _pawsx_clause(w)
    y = int(w.rng.random() < 0.5)
    return {"sentence1": w.render(c, lang), "sentence2": w.render(c if y else swapped, lang,
                                                                  with_adj=w.rng.random() < 0.5),
            "label": str(y)}


def render_pawsx(w: World, sz: SynthSizes, langs: list[str]) -> Tasks:
    """Parallel in every language; translate-train is the English train rendered in each language."""
    non_en = [lang for lang in langs if lang != "en"]

    def row(lang: str) -> Record:
        return _pawsx_row(w, lang)

    return {"pawsx": {
        "train": parallel(w, "pawsx-train", sz.train, ["en"], row),
        "validation": parallel(w, "pawsx-dev", sz.dev, langs, row),
        "test": parallel(w, "pawsx-test", sz.test, langs, row),
        "translate_train": parallel(w, "pawsx-train", sz.train, non_en, row),
        "test_clean": clean_rows(w, "pawsx-clean", sz.test, non_en, row, ("sentence1", "sentence2")),
    }}
