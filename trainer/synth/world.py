"""The latent world of ``synth``: its languages, its words, and clauses rendered into every language.

A ``World`` is drawn from a seed::

    seed ──► English lexicon (topics × nouns, verbs, adjectives with a polarity; person names)
         ──► every other language: keeps a share of English content words, invents the rest
         ──► question and entity words, places, organisations (a stream of their own)
         ──► the control language's own forms of every anchor

and then samples latent ``Clause`` s (a subject, a topic's verb and noun, an adjective, "not")
from its main stream ``World.rng`` and renders them into any language, word by word with a word
category (``render_tagged``) for the tagging tasks, or as plain text (``render``).
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

__all__ = [
    "LanguageSpec",
    "LANGUAGES",
    "N_TOPICS",
    "N_NOUNS",
    "NUMBERS",
    "Clause",
    "World",
    "english_content_words",
    "measured_overlap",
]


@dataclass(frozen=True)
class LanguageSpec:
    code: str
    overlap: float  # share of English content words kept identical
    order: str  # "svo" or "sov"
    corpus_size: int  # relative monolingual corpus size (imbalanced on purpose)
    control: bool = False  # negative control: never part of the objective


# Graded distance from English: content-word overlap, corpus size and word order fall together
# (the SOV language is also the farthest in vocabulary and the poorest in data, as for many real
# languages). Measured with an SOV language at 30% overlap: word order alone cost ~40 points of
# XNLI-like accuracy, which made overlap a poor predictor of transfer.
LANGUAGES: tuple[LanguageSpec, ...] = (
    LanguageSpec("en", 1.0, "svo", 100),
    LanguageSpec("xa", 0.5, "svo", 30),
    LanguageSpec("xb", 0.3, "svo", 10),
    LanguageSpec("xc", 0.2, "svo", 5),
    LanguageSpec("xd", 0.1, "svo", 3),
    LanguageSpec("xe", 0.1, "sov", 1),
    # the negative control shares *nothing* with English: no content word, no anchor (its names,
    # numbers, "not" and "and" have their own forms, like a language in another script) and not
    # the word order. Measured with an SVO control: 0.82 XNLI-like accuracy from structure alone.
    LanguageSpec("xz", 0.0, "sov", 10, control=True),
)

N_TOPICS = 4
_TOPIC_FREQ = (0.45, 0.3, 0.15, 0.1)
N_NOUNS = 10  # per topic
_N_VERBS, _N_ADJS = 5, 6  # per topic
_N_NAMES = 24
_N_PLACES, _N_ORGS = 12, 8
NUMBERS = tuple(str(n) for n in range(2, 20))  # anchors: the same in every language but the control
_ANCHORS = ("not", "and")  # shared by every language, like names and numbers
_FUNCTION = ("the", "with", "of")
# function words of questions ("who", "what", "many", "does"), of a place tail ("in <Place>") and of an
# organisation ("<Name> org")
_QUESTION_AND_ENTITY_WORDS = ("who", "what", "many", "in", "does", "org")
_CONS = "bcdfghjklmnprstvz"
_VOWELS = "aeiou"


@dataclass
class Clause:
    """One latent clause: "<name> [not] <verb> the [<adj>] <noun> [with <num> <noun2>] [in <place>]"."""

    name: str
    topic: int
    verb: int  # index into the topic's verbs
    noun: int
    adj: tuple[int, int]  # (topic, index) — adjectives may come from another topic
    neg: bool
    num: str | None = None
    noun2: int | None = None
    org: bool = False  # the subject is an organisation ("<Name> <org-word>"), not a person
    place: str | None = None  # a "in <Place>" tail (one or two shared words)


class World:
    """The latent world and its rendering into every language.

    ``lexicon[lang]`` holds ``noun``/``verb``/``adj`` (lists per topic) and ``fn`` (function words);
    ``names``, ``places`` and ``orgs`` are anchors shared by every language but the control.
    """

    def __init__(self, seed: int) -> None:
        rng = random.Random(seed)
        self.rng = rng  # the main stream (see ``using``)
        self.seed = seed
        self._used: set[str] = set(_ANCHORS) | set(NUMBERS)
        self.names = [self._word(rng, 2).capitalize() for _ in range(_N_NAMES)]
        en = {
            "noun": [[self._word(rng, 2) for _ in range(N_NOUNS)] for _ in range(N_TOPICS)],
            "verb": [[self._word(rng, 2) + "s" for _ in range(_N_VERBS)] for _ in range(N_TOPICS)],
            "adj": [[self._word(rng, 2) + "y" for _ in range(_N_ADJS)] for _ in range(N_TOPICS)],
            "fn": {w: w for w in _FUNCTION},
        }
        # adjective polarity: half of each topic's adjectives are positive
        self.polarity = [[i % 2 == 0 for i in range(_N_ADJS)] for _ in range(N_TOPICS)]
        self.lexicon: dict[str, dict[str, Any]] = {"en": en}
        for spec in LANGUAGES[1:]:
            self.lexicon[spec.code] = self._translate(en, spec, random.Random(f"{seed}-{spec.code}"))
        self._draw_question_and_entity_words(random.Random(f"extra-{seed}"))
        self._own_anchor_forms = {s.code: self._draw_own_anchor_forms(s.code) for s in LANGUAGES if s.control}

    def _draw_question_and_entity_words(self, rng: random.Random) -> None:
        # drawn from a stream of their own, after the lexicon: the core lexicon, and every corpus
        # document and NLI/SST-2 record rendered from it, do not depend on these words
        self.lexicon["en"]["fn"].update({x: x for x in _QUESTION_AND_ENTITY_WORDS})
        for spec in LANGUAGES[1:]:
            self.lexicon[spec.code]["fn"].update({x: self._word(rng, 2) + "n" for x in _QUESTION_AND_ENTITY_WORDS})
        self.places = [self._word(rng, 2).capitalize() for _ in range(_N_PLACES)]  # shared, like names
        self.orgs = [self._word(rng, 2).capitalize() for _ in range(_N_ORGS)]

    def _draw_own_anchor_forms(self, lang: str) -> dict[str, str]:
        """A control language's own forms of every anchor (names, numbers, places, "not", "and")."""
        rng = random.Random(f"anchors-{self.seed}-{lang}")
        shared = [*self.names, *self.places, *self.orgs]
        forms = {x: self._word(rng, 3).capitalize() for x in shared}
        forms.update({x: self._word(rng, 2) for x in (*NUMBERS, *_ANCHORS)})
        return forms

    def anchor_form(self, lang: str, token: str) -> str:
        """The form of a shared anchor (name, number, place, "not", "and") in ``lang``."""
        forms = self._own_anchor_forms.get(lang)
        return forms.get(token, token) if forms else token

    def function_word(self, lang: str, word: str) -> str:
        """The form of an English function word ("the", "who", "in", ...) in ``lang``."""
        return str(self.lexicon[lang]["fn"][word])

    @contextlib.contextmanager
    def using(self, rng: random.Random) -> Iterator[None]:
        """Sample from ``rng`` inside the block: what is drawn there never moves the main stream."""
        saved, self.rng = self.rng, rng
        try:
            yield
        finally:
            self.rng = saved

    def _word(self, rng: random.Random, syllables: int) -> str:
        while True:
            w = "".join(rng.choice(_CONS) + rng.choice(_VOWELS) for _ in range(syllables))
            if w not in self._used:
                self._used.add(w)
                return w

    def _translate(self, en: dict[str, Any], spec: LanguageSpec, rng: random.Random) -> dict[str, Any]:
        # Shared words are nested and stratified: one order of the words of each (class, topic) is
        # drawn for the whole world, and a language keeps the first overlap × n of every stratum.
        # So a farther language shares a subset of what a nearer one shares, in every topic alike
        # (shares by type and by token agree despite the skewed topic frequencies).
        order = random.Random(f"share-{self.seed}")
        keep: set[tuple[str, int, int]] = set()
        for k in ("noun", "verb", "adj"):
            for t in range(N_TOPICS):
                idx = list(range(len(en[k][t])))
                order.shuffle(idx)
                keep |= {(k, t, i) for i in idx[: round(spec.overlap * len(idx))]}
        out: dict[str, Any] = {k: [list(ws) for ws in en[k]] for k in ("noun", "verb", "adj")}
        for k in ("noun", "verb", "adj"):
            for t in range(N_TOPICS):
                for i in range(len(en[k][t])):
                    if (k, t, i) not in keep:
                        out[k][t][i] = self._word(rng, 3)
        out["fn"] = {w: self._word(rng, 1) + self._word(rng, 1)[:1] for w in _FUNCTION}
        return out

    # --- sampling latent clauses -------------------------------------------------------
    def topic(self) -> int:
        return self.rng.choices(range(N_TOPICS), weights=_TOPIC_FREQ)[0]

    def clause(self, topic: int | None = None, name: str | None = None, neg: bool | None = None) -> Clause:
        r = self.rng
        t = self.topic() if topic is None else topic
        adj_topic = t if r.random() < 0.7 else r.randrange(N_TOPICS)
        return Clause(
            name=name or r.choice(self.names),
            topic=t,
            verb=r.randrange(_N_VERBS),
            noun=r.randrange(N_NOUNS),
            adj=(adj_topic, r.randrange(_N_ADJS)),
            neg=(r.random() < 0.3) if neg is None else neg,
        )

    def add_number_tail(self, c: Clause) -> None:
        """Give ``c`` a "with <number> <noun>" tail (a number anchor and another noun of its topic)."""
        c.num, c.noun2 = self.rng.choice(NUMBERS), self.rng.randrange(N_NOUNS)

    def tagged_sentence(self, lang: str, *, entities: bool = False) -> list[tuple[str, str]]:
        """One or two clauses as (word, category), ending in "."; ``entities`` adds organisations,
        places and full names (else a number tail, sometimes)."""
        r = self.rng
        c = self.clause()
        if entities:
            u = r.random()
            if u < 0.25:
                c.org, c.name = True, r.choice(self.orgs)
            elif u < 0.5:
                c.name = f"{c.name} {r.choice(self.names)}"
            if r.random() < 0.5:
                c.place = r.choice(self.places) + (f" {r.choice(self.places)}" if r.random() < 0.3 else "")
        elif r.random() < 0.3:
            self.add_number_tail(c)
        out = self.render_tagged(c, lang)
        if r.random() < 0.3:
            second = self.render_tagged(self.clause(topic=c.topic), lang, with_adj=False)
            out += [(self.anchor_form(lang, "and"), "and"), *second]
        return out + [(".", ".")]

    # --- rendering -------------------------------------------------------------------
    def render_tagged(self, c: Clause, lang: str, *, with_adj: bool = True) -> list[tuple[str, str]]:
        """The clause as ``(word, category)`` pairs; categories feed the tagging tasks."""
        lex, fn, a = self.lexicon[lang], self.lexicon[lang]["fn"], self.anchor_form
        order = next(s.order for s in LANGUAGES if s.code == lang)
        verb = (lex["verb"][c.topic][c.verb], "verb")
        obj = [(fn["the"], "det")] + ([(lex["adj"][c.adj[0]][c.adj[1]], "adj")] if with_adj else []) + [
            (lex["noun"][c.topic][c.noun], "noun")]
        neg = [(a(lang, "not"), "neg")] if c.neg else []
        name = ([(a(lang, c.name), "org"), (fn["org"], "org")] if c.org
                else [(a(lang, part), "name") for part in c.name.split()])
        words = [*name, *neg, verb, *obj] if order == "svo" else [*name, *obj, *neg, verb]
        if c.num is not None and c.noun2 is not None:
            words += [(fn["with"], "with"), (a(lang, c.num), "num"), (lex["noun"][c.topic][c.noun2], "noun")]
        if c.place is not None:
            words += [(fn["in"], "in"), *((a(lang, p), "place") for p in c.place.split())]
        return words

    def render(self, c: Clause, lang: str, *, with_adj: bool = True) -> str:
        return " ".join(w for w, _ in self.render_tagged(c, lang, with_adj=with_adj))

    def question(self, c: Clause, lang: str, kind: str) -> str:
        """``who`` asks for the subject, ``many`` for the number of the clause's "with" tail."""
        fn = self.lexicon[lang]["fn"]
        body = self.render_tagged(replace(c, num=None, noun2=None), lang, with_adj=False)
        if kind == "who":
            return " ".join([fn["who"], *(t for t, k in body if k != "name")])
        assert c.noun2 is not None
        noun2 = self.lexicon[lang]["noun"][c.topic][c.noun2]
        return " ".join([fn["what"], fn["many"], noun2, *(t for t, _ in body)])


def english_content_words(w: World) -> set[str]:
    en = w.lexicon["en"]
    return {x for k in ("noun", "verb", "adj") for ws in en[k] for x in ws}


def measured_overlap(w: World) -> dict[str, float]:
    """Share of content words identical to English, per language (measured, not the spec)."""
    en = w.lexicon["en"]
    words_en = [x for k in ("noun", "verb", "adj") for ws in en[k] for x in ws]
    out = {}
    for lang, lex in w.lexicon.items():
        words = [x for k in ("noun", "verb", "adj") for ws in lex[k] for x in ws]
        out[lang] = sum(a == b for a, b in zip(words, words_en, strict=True)) / len(words_en)
    return out
