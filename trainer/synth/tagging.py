"""Token classification: ``ccg`` (English supertags), ``udpos`` and ``panx`` (every language).

Each tag follows from a word's category in the rendered clause (``World.render_tagged``); the tag
sets themselves are the datasets' (``tasks.CCG_TAGS``, ``tasks.UPOS``, ``tasks.PANX_TAGS``). What
makes the two targets depend on the language is where the position of a word does not tell its tag:

* ``udpos``: the object noun has one or two modifiers, each an adjective or another noun (a
  compound, "the stone wall"), so a word after "the" is ADJ or NOUN by what it is, not by where;
  a noun used as a modifier is tagged NOUN or ADJ, half and half (nothing tells: what keeps
  English below the ceiling);
* ``panx``: the entity forms are ambiguous (any of them names a person, an organisation or a
  place); a subject's type is its verb's (``World.entity_sentence``), a place follows "in".
"""

from __future__ import annotations

from collections.abc import Callable

from ..tasks import CCG_TAGS, PANX_TAGS, UPOS
from .splits import Record, SynthSizes, Tasks, parallel, task_rng
from .world import N_NOUNS, N_TOPICS, World

__all__ = ["render_ccg", "render_udpos", "render_panx"]

# a word category of ``World.render_tagged`` -> its tag
_UPOS_OF = {"name": "PROPN", "org": "PROPN", "place": "PROPN", "neg": "PART", "verb": "VERB", "det": "DET",
            "adj": "ADJ", "noun": "NOUN", "with": "ADP", "in": "ADP", "num": "NUM", "and": "CCONJ", ".": "PUNCT"}
_CCG_OF = {"name": "NP", "org": "NP", "place": "NP", "neg": "(S\\NP)/(S\\NP)", "det": "NP/N", "adj": "N/N",
           "noun": "N", "with": "((S\\NP)\\(S\\NP))/NP", "in": "PP/NP", "num": "N/N", "and": "conj", ".": "."}
_PANX_ENTITY_OF = {"name": "PER", "org": "ORG", "place": "LOC"}


def _ccg_tag(category: str, order: str) -> int:
    if category == "verb":  # a transitive verb takes its object on the right (SVO) or on the left (SOV)
        return CCG_TAGS.index("(S\\NP)/NP" if order == "svo" else "(S\\NP)\\NP")
    return CCG_TAGS.index(_CCG_OF[category])


def render_ccg(w: World, sz: SynthSizes, langs: list[str]) -> Tasks:
    """English only: ``{"tokens", "ccg_tags"}``."""

    def rows(n: int) -> list[Record]:
        out = []
        for _ in range(n):
            t = w.tagged_sentence("en")
            out.append({"tokens": [x for x, _ in t], "ccg_tags": [_ccg_tag(k, "svo") for _, k in t]})
        return out

    with w.using(task_rng(w, "ccg")):
        return {"ccg": {"train": {"en": rows(sz.train)}, "validation": {"en": rows(sz.dev)}}}


_NOUN_MODIFIER_AS_ADJ = 0.5  # share of nouns used as modifiers that the treebank tags ADJ


def _modifiers(w: World, topic: int) -> tuple[tuple[str, int, int], ...]:
    """One or two modifiers of an object noun of ``topic``: adjectives (40%; of its topic, mostly) or nouns."""
    r = w.rng
    out = []
    for _ in range(r.choice((1, 2))):
        t = topic if r.random() < 0.7 else r.randrange(N_TOPICS)
        out.append(("adj", t, r.randrange(len(w.lexicon["en"]["adj"][t]))) if r.random() < 0.4
                   else ("noun", t, r.randrange(N_NOUNS)))
    return tuple(out)


def _pos_sentence(w: World, lang: str) -> list[tuple[str, str]]:
    """One or two clauses whose object nouns carry modifiers, as (word, category), ending in "."."""
    r = w.rng
    c = w.clause()
    c.mods = _modifiers(w, c.topic)
    if r.random() < 0.3:
        w.add_number_tail(c)
    out = w.render_tagged(c, lang, with_adj=False)
    if r.random() < 0.3:
        second = w.clause(topic=c.topic)
        second.mods = _modifiers(w, c.topic)
        out += [(w.anchor_form(lang, "and"), "and"), *w.render_tagged(second, lang, with_adj=False)]
    # a noun before another noun or an adjective ("the stone wall") reads as a compound or as an
    # adjective: nothing in the sentence tells which, and the treebank has both, half and half
    for i in range(len(out) - 1):
        if out[i][1] == "noun" and out[i + 1][1] in ("noun", "adj") and r.random() < _NOUN_MODIFIER_AS_ADJ:
            out[i] = (out[i][0], "adj")
    return out + [(".", ".")]


def _udpos_row(w: World, lang: str) -> Record:
    t = _pos_sentence(w, lang)
    return {"tokens": [x for x, _ in t], "pos_tags": [UPOS.index(_UPOS_OF[k]) for _, k in t]}


def _panx_row(w: World, lang: str) -> Record:
    """Sentences whose subjects and places are named entities, tagged in BIO."""
    t = w.entity_sentence(lang)
    tags, prev = [], "O"
    for _, k in t:
        ent = _PANX_ENTITY_OF.get(k)
        tags.append("O" if ent is None else (f"I-{ent}" if prev.endswith(ent) else f"B-{ent}"))
        prev = tags[-1]
    return {"tokens": [x for x, _ in t], "ner_tags": [PANX_TAGS.index(g) for g in tags], "langs": [lang] * len(t)}


def _parallel_tagging(w: World, name: str, sz: SynthSizes, langs: list[str],
                      row: Callable[[World, str], Record]) -> Tasks:
    """English train; dev and test parallel in every language."""

    def make(lang: str) -> Record:
        return row(w, lang)

    with w.using(task_rng(w, name)):
        return {name: {
            "train": parallel(w, f"{name}-train", sz.train, ["en"], make),
            "validation": parallel(w, f"{name}-dev", sz.dev, langs, make),
            "test": parallel(w, f"{name}-test", sz.test, langs, make),
        }}


def render_udpos(w: World, sz: SynthSizes, langs: list[str]) -> Tasks:
    """``{"tokens", "pos_tags"}``, parallel across languages."""
    return _parallel_tagging(w, "udpos", sz, langs, _udpos_row)


def render_panx(w: World, sz: SynthSizes, langs: list[str]) -> Tasks:
    """``{"tokens", "ner_tags", "langs"}``, parallel across languages."""
    return _parallel_tagging(w, "panx", sz, langs, _panx_row)
