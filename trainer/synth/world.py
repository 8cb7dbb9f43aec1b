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
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
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
    order: str  # "svo" or "sov": the language's word order
    corpus_size: int  # relative monolingual corpus size (imbalanced on purpose)
    control: bool = False  # negative control: never part of the objective
    # share of clauses in the other word order (a freer word order); which clauses, the clause decides
    other_order: float = 0.0


# Graded distance from English: content-word overlap, corpus size and word order fall together
# (the SOV language is also the farthest in vocabulary and the poorest in data, as for many real
# languages). Measured with an SOV language at 30% overlap: word order alone cost ~40 points of
# XNLI-like accuracy, which made overlap a poor predictor of transfer; a share of SOV clauses that
# grows with the distance (5%, 10%, 20%) keeps the two in step, and grades the targets that read
# word order (XNLI, tagging, retrieval) beyond what the small steps in overlap do.
LANGUAGES: tuple[LanguageSpec, ...] = (
    LanguageSpec("en", 1.0, "svo", 100),
    LanguageSpec("xa", 0.5, "svo", 30),
    LanguageSpec("xb", 0.3, "svo", 10, other_order=0.05),
    LanguageSpec("xc", 0.2, "svo", 5, other_order=0.1),
    LanguageSpec("xd", 0.1, "svo", 3, other_order=0.2),
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
# function words of questions ("who", "what", "many", "does") and of a place tail ("in <Place>")
_QUESTION_AND_ENTITY_WORDS = ("who", "what", "many", "in", "does")
# The question words that ask for a name or a number: anchors (the same in every language but the
# control, which has its own), so that what a question asks for transfers and only its content
# words, shared with English as far as the language's overlap, pick the clause that answers it
_SHARED_QUESTION_WORDS = ("who", "many")
# Who a clause's subject is, by the clause's topic: a person or an organisation (what the topic's
# verbs take as their subject). PAN-X reads an entity's type from it: the entity forms themselves
# are ambiguous (any of them names a person, an organisation or a place), so only the clause's
# content words, shared with English by overlap, tell PER from ORG. Each topic's last verb takes
# either, and then nothing tells.
SUBJECT_KINDS = ("person", "org", "person", "org")  # by topic
EITHER_VERB = 4  # the verb of every topic that takes a person or an organisation
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
    org: bool = False  # the subject is an organisation, not a person (tagged as one; same forms)
    place: str | None = None  # a "in <Place>" tail (one or two shared words)
    noun_topic: int | None = None  # the topic of ``noun`` when it is not the clause's (None: ``topic``)
    noun2_topic: int | None = None  # the topic of ``noun2`` when it is not the clause's
    # modifiers of the object noun, in order, in place of the adjective: ("adj" | "noun", topic, index)
    mods: tuple[tuple[str, int, int], ...] = ()


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
            if not spec.control:  # (drawn all the same: the places and organisations below stay as they were)
                self.lexicon[spec.code]["fn"].update({x: x for x in _SHARED_QUESTION_WORDS})
        self.places = [self._word(rng, 2).capitalize() for _ in range(_N_PLACES)]  # shared, like names
        self.orgs = [self._word(rng, 2).capitalize() for _ in range(_N_ORGS)]
        # PAN-X's entity forms: any of them names a person, an organisation or a place
        self.entity_forms = [*self.names, *self.places, *self.orgs]

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

    def distinct_topics(self, n: int) -> list[int]:
        """``n`` distinct topics, each drawn by its frequency among those left."""
        left = list(range(N_TOPICS))
        out = []
        for _ in range(n):
            out.append(self.rng.choices(left, weights=[_TOPIC_FREQ[t] for t in left])[0])
            left.remove(out[-1])
        return out

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

    def tagged_sentence(self, lang: str) -> list[tuple[str, str]]:
        """One or two clauses as (word, category), ending in "." (a number tail, sometimes)."""
        r = self.rng
        c = self.clause()
        if r.random() < 0.3:
            self.add_number_tail(c)
        return self._with_second_clause(c, lang)

    def entity_sentence(self, lang: str) -> list[tuple[str, str]]:
        """Like ``tagged_sentence``, but every subject is a named entity (one or two entity forms)
        whose type, person or organisation, its topic decides (``SUBJECT_KINDS``), and half the
        sentences end in a place ("in <one or two entity forms>")."""
        c = self._entity_clause()
        if self.rng.random() < 0.5:
            c.place = " ".join(self.rng.sample(self.entity_forms, 1 if self.rng.random() < 0.7 else 2))
        return self._with_second_clause(c, lang, entities=True)

    def _entity_clause(self, topic: int | None = None) -> Clause:
        r = self.rng
        c = self.clause(topic=topic)
        c.org = r.random() < 0.5 if c.verb == EITHER_VERB else SUBJECT_KINDS[c.topic] == "org"
        c.name = " ".join(r.sample(self.entity_forms, 1 if r.random() < 0.6 else 2))
        return c

    def _with_second_clause(self, c: Clause, lang: str, *, entities: bool = False) -> list[tuple[str, str]]:
        """``c`` rendered, then (30%) "and" a second clause of its topic, then "."."""
        out = self.render_tagged(c, lang)
        if self.rng.random() < 0.3:
            second = self._entity_clause(c.topic) if entities else self.clause(topic=c.topic)
            out += [(self.anchor_form(lang, "and"), "and"), *self.render_tagged(second, lang, with_adj=False)]
        return out + [(".", ".")]

    # --- rendering -------------------------------------------------------------------
    def render_tagged(self, c: Clause, lang: str, *, with_adj: bool = True) -> list[tuple[str, str]]:
        """The clause as ``(word, category)`` pairs; categories feed the tagging tasks."""
        lex, fn, a = self.lexicon[lang], self.lexicon[lang]["fn"], self.anchor_form
        order = _word_order(c, lang)
        verb = (lex["verb"][c.topic][c.verb], "verb")
        if c.mods:
            mods = [(lex[k][t][i], k) for k, t, i in c.mods]
        else:
            mods = [(lex["adj"][c.adj[0]][c.adj[1]], "adj")] if with_adj else []
        noun_topic = c.topic if c.noun_topic is None else c.noun_topic
        obj = [(fn["the"], "det"), *mods, (lex["noun"][noun_topic][c.noun], "noun")]
        neg = [(a(lang, "not"), "neg")] if c.neg else []
        name = [(a(lang, part), "org" if c.org else "name") for part in c.name.split()]
        words = [*name, *neg, verb, *obj] if order == "svo" else [*name, *obj, *neg, verb]
        if c.num is not None and c.noun2 is not None:
            noun2_topic = c.topic if c.noun2_topic is None else c.noun2_topic
            words += [(fn["with"], "with"), (a(lang, c.num), "num"), (lex["noun"][noun2_topic][c.noun2], "noun")]
        if c.place is not None:
            words += [(fn["in"], "in"), *((a(lang, p), "place") for p in c.place.split())]
        return words

    def render(self, c: Clause, lang: str, *, with_adj: bool = True) -> str:
        return " ".join(w for w, _ in self.render_tagged(c, lang, with_adj=with_adj))

    def question(self, c: Clause, lang: str, kind: str) -> str:
        """A question that picks out clause ``c`` by its topic, not by its words: "<who | many>
        [not] <verb> the <noun> with <noun2>", with a verb and nouns of ``c``'s topic that ``c``
        itself does not use (drawn from ``rng``). ``who`` asks for the subject, ``many`` for the
        number of the "with" tail; the two kinds differ in their first word alone. So it can be
        answered only by knowing which words belong together (never by finding the question's
        words in the context) and what its first word asks (never by its shape)."""
        r = self.rng
        verb = r.choice([v for v in range(_N_VERBS) if v != c.verb])
        used = {c.noun if c.noun_topic in (None, c.topic) else -1,
                c.noun2 if c.noun2 is not None and c.noun2_topic in (None, c.topic) else -1}
        noun, noun2 = r.sample([n for n in range(N_NOUNS) if n not in used], 2)
        body = self.render_tagged(Clause(c.name, c.topic, verb, noun, c.adj, c.neg), lang, with_adj=False)
        return " ".join([self.function_word(lang, kind), *(t for t, k in body if k != "name"),
                         self.function_word(lang, "with"), self.lexicon[lang]["noun"][c.topic][noun2]])


_SPECS = {s.code: s for s in LANGUAGES}


def _word_order(c: Clause, lang: str) -> str:
    """The order ``c`` is rendered in, in ``lang``: the language's own, or for a share
    ``other_order`` of clauses (picked by a hash of the clause, so by no random stream) the other."""
    spec = _SPECS[lang]
    if spec.other_order:
        key = f"{lang}|{c.name}|{c.topic}|{c.verb}|{c.noun}|{c.neg}|{c.num}|{c.noun2}"
        if zlib.crc32(key.encode()) / 2**32 < spec.other_order:
            return "sov" if spec.order == "svo" else "svo"
    return spec.order


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
