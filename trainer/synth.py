"""``synth``: an offline, XTREME-shaped benchmark generated from a latent world.

Everything — every language, every monolingual corpus, every task — is rendered from one
latent world drawn from a seed, so cross-lingual transfer is possible exactly to the
extent the languages share surface forms with English (content words, shared anchors):

* **World**: topics with skewed frequencies; each topic owns nouns, verbs and adjectives
  (adjectives carry a polarity); person names and numbers are anchors shared by every
  language, and so are the function words ``not`` and ``and``.
* **Languages**: each keeps a share of English content words identical (``overlap``)
  and invents fresh word forms for the rest; the farthest uses SOV word order. ``xz``
  shares nothing, not even the anchors (its names, numbers, ``not`` and ``and`` have their
  own forms) and it is SOV: a negative control, left out of the objective.
* **Corpora**: monolingual "documents" (sentences about one topic) with imbalanced sizes,
  so that language temperature matters when they are sampled.
* **Tasks** (records in the Hugging Face schemas of the real datasets):
  ``xnli`` (XTREME ``XNLI``: language, sentence1, sentence2, gold_label; English train,
  dev/test in every language, translate-train in every language), ``mnli`` (``glue/mnli``:
  premise, hypothesis, label, idx) and ``sst2`` (``glue/sst2``: sentence, label, idx).

NLI rule shared by ``mnli`` and ``xnli``: the hypothesis speaks about the premise's subject;
*entailment* if it is about the premise's topic with the same polarity (``not``),
*contradiction* if same topic and opposite polarity, *neutral* if about another topic.
``sst2`` labels a sentence by its adjective's polarity, flipped by ``not``.

Generation is deterministic from ``seed`` and takes about a second; the result is cached
under ``$XSTILTS_HOME/data/synth-v<VERSION>-s<seed>/``.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .tasks import CCG_TAGS, NLI_LABELS, PANX_TAGS, UPOS

__all__ = [
    "SYNTH_VERSION",
    "LanguageSpec",
    "LANGUAGES",
    "SynthBenchmark",
    "generate",
    "ensure_synth",
]

SYNTH_VERSION = 4


@dataclass(frozen=True)
class LanguageSpec:
    code: str
    overlap: float  # share of English content words kept identical
    order: str  # "svo" or "sov"
    corpus_size: int  # relative monolingual corpus size (imbalanced on purpose)
    control: bool = False  # negative control: never part of the objective


# Graded distance from English: content-word overlap, corpus size and word order fall together
# (the SOV language is also the farthest in vocabulary and the poorest in data, as for many real
# languages). Measured on v3, where an SOV language sat at 30% overlap: word order alone cost
# ~40 points of XNLI-like accuracy, which made overlap a poor predictor of transfer.
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

_N_TOPICS = 4
_TOPIC_FREQ = (0.45, 0.3, 0.15, 0.1)
_NOUNS, _VERBS, _ADJS = 10, 5, 6
_N_NAMES = 24
_NUMBERS = tuple(str(n) for n in range(2, 20))
_ANCHORS = ("not", "and")  # shared by every language, like names and numbers
_FUNCTION = ("the", "with", "of")
_EXTRA_FN = ("who", "what", "many", "in", "does", "org")  # function words of the later tasks
_CONS = "bcdfghjklmnprstvz"
_VOWELS = "aeiou"


@dataclass
class _Clause:
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


class _World:
    """The latent world and its rendering into every language."""

    def __init__(self, seed: int) -> None:
        rng = random.Random(seed)
        self.rng = rng
        self.seed = seed
        self._used: set[str] = set(_ANCHORS) | set(_NUMBERS)
        self.names = [self._word(rng, 2).capitalize() for _ in range(_N_NAMES)]
        en = {
            "noun": [[self._word(rng, 2) for _ in range(_NOUNS)] for _ in range(_N_TOPICS)],
            "verb": [[self._word(rng, 2) + "s" for _ in range(_VERBS)] for _ in range(_N_TOPICS)],
            "adj": [[self._word(rng, 2) + "y" for _ in range(_ADJS)] for _ in range(_N_TOPICS)],
            "fn": {w: w for w in _FUNCTION},
        }
        # adjective polarity: half of each topic's adjectives are positive
        self.polarity = [[i % 2 == 0 for i in range(_ADJS)] for _ in range(_N_TOPICS)]
        self.lexicon: dict[str, dict[str, Any]] = {"en": en}
        for spec in LANGUAGES[1:]:
            self.lexicon[spec.code] = self._translate(en, spec, random.Random(f"{seed}-{spec.code}"))
        # words added after the first release (question words, "in", place and organisation names):
        # drawn from their own RNG after the world is built, so the original lexicon, corpora and
        # the xnli/mnli/sst2 records stay exactly what they were.
        xrng = random.Random(f"extra-{seed}")
        self.extra: dict[str, dict[str, str]] = {"en": {x: x for x in _EXTRA_FN}}
        for spec in LANGUAGES[1:]:
            self.extra[spec.code] = {x: self._word(xrng, 2) + "n" for x in _EXTRA_FN}
        self.places = [self._word(xrng, 2).capitalize() for _ in range(12)]  # shared, like names
        self.orgs = [self._word(xrng, 2).capitalize() for _ in range(8)]
        # a control language's own forms of every anchor (names, numbers, places, "not", "and")
        self.anchors: dict[str, dict[str, str]] = {}
        for spec in LANGUAGES:
            if spec.control:
                arng = random.Random(f"anchors-{seed}-{spec.code}")
                shared = [*self.names, *self.places, *self.orgs]
                forms = {x: self._word(arng, 3).capitalize() for x in shared}
                forms.update({x: self._word(arng, 2) for x in (*_NUMBERS, *_ANCHORS)})
                self.anchors[spec.code] = forms

    def a(self, lang: str, token: str) -> str:
        """The form of a shared anchor (name, number, place, "not", "and") in ``lang``."""
        forms = self.anchors.get(lang)
        return forms.get(token, token) if forms else token

    @contextlib.contextmanager
    def using(self, rng: random.Random) -> Iterator[None]:
        """Sample from ``rng`` inside the block (new tasks never disturb the original stream)."""
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
            for t in range(_N_TOPICS):
                idx = list(range(len(en[k][t])))
                order.shuffle(idx)
                keep |= {(k, t, i) for i in idx[: round(spec.overlap * len(idx))]}
        out: dict[str, Any] = {k: [list(ws) for ws in en[k]] for k in ("noun", "verb", "adj")}
        for k in ("noun", "verb", "adj"):
            for t in range(_N_TOPICS):
                for i in range(len(en[k][t])):
                    if (k, t, i) not in keep:
                        out[k][t][i] = self._word(rng, 3)
        out["fn"] = {w: self._word(rng, 1) + self._word(rng, 1)[:1] for w in _FUNCTION}
        return out

    # --- sampling latent clauses -------------------------------------------------------
    def topic(self) -> int:
        return self.rng.choices(range(_N_TOPICS), weights=_TOPIC_FREQ)[0]

    def clause(self, topic: int | None = None, name: str | None = None, neg: bool | None = None) -> _Clause:
        r = self.rng
        t = self.topic() if topic is None else topic
        adj_topic = t if r.random() < 0.7 else r.randrange(_N_TOPICS)
        return _Clause(
            name=name or r.choice(self.names),
            topic=t,
            verb=r.randrange(_VERBS),
            noun=r.randrange(_NOUNS),
            adj=(adj_topic, r.randrange(_ADJS)),
            neg=(r.random() < 0.3) if neg is None else neg,
        )

    # --- rendering -------------------------------------------------------------------
    def render_tagged(self, c: _Clause, lang: str, *, with_adj: bool = True) -> list[tuple[str, str]]:
        """The clause as ``(word, category)`` pairs; categories feed the tagging tasks."""
        lex = self.lexicon[lang]
        order = next(s.order for s in LANGUAGES if s.code == lang)
        the = lex["fn"]["the"]
        verb = (lex["verb"][c.topic][c.verb], "verb")
        obj = [(the, "det")] + ([(lex["adj"][c.adj[0]][c.adj[1]], "adj")] if with_adj else []) + [
            (lex["noun"][c.topic][c.noun], "noun")]
        a = self.a
        neg = [(a(lang, "not"), "neg")] if c.neg else []
        name = ([(a(lang, c.name), "org"), (self.extra[lang]["org"], "org")] if c.org
                else [(a(lang, part), "name") for part in c.name.split()])
        words = [*name, *neg, verb, *obj] if order == "svo" else [*name, *obj, *neg, verb]
        if c.num is not None and c.noun2 is not None:
            words += [(lex["fn"]["with"], "with"), (a(lang, c.num), "num"), (lex["noun"][c.topic][c.noun2], "noun")]
        if c.place is not None:
            words += [(self.extra[lang]["in"], "in"), *((a(lang, p), "place") for p in c.place.split())]
        return words

    def render(self, c: _Clause, lang: str, *, with_adj: bool = True) -> str:
        return " ".join(w for w, _ in self.render_tagged(c, lang, with_adj=with_adj))


def _nli_pair(w: _World) -> tuple[_Clause, _Clause, int]:
    premise = w.clause()
    label = w.rng.randrange(3)
    if label == 1:  # neutral: another topic
        other = w.rng.choice([t for t in range(_N_TOPICS) if t != premise.topic])
        hyp = w.clause(topic=other, name=premise.name)
    else:
        neg = premise.neg if label == 0 else not premise.neg
        hyp = w.clause(topic=premise.topic, name=premise.name, neg=neg)
    return premise, hyp, label


def english_content_words(w: _World) -> set[str]:
    en = w.lexicon["en"]
    return {x for k in ("noun", "verb", "adj") for ws in en[k] for x in ws}


def clean_rows(w: _World, name: str, n: int, langs: list[str], make: Callable[[str], dict[str, Any]],
               fields: tuple[str, ...]) -> dict[str, list[dict[str, Any]]]:
    """``n`` test items per language none of whose content words is an English word.

    The deciding words of the clause tasks (topic nouns, verbs and adjectives) are content words,
    so on these items a model can only be right through what pretraining aligned, not through a
    word it saw in English training. Drawn by rejection, each language on its own RNG stream.
    """
    shared = english_content_words(w)
    out: dict[str, list[dict[str, Any]]] = {}
    for lang in langs:
        rows: list[dict[str, Any]] = []
        with w.using(random.Random(f"{w.seed}-{name}-{lang}")):
            while len(rows) < n:
                row = make(lang)
                if not any(x in shared for f in fields for x in str(row[f]).split()):
                    rows.append(row)
        out[lang] = rows
    return out


def _corpus(w: _World, lang: str, n_docs: int) -> list[dict[str, str]]:
    docs = []
    for _ in range(n_docs):
        t = w.topic()
        sents = []
        for _ in range(w.rng.randint(3, 6)):
            c = w.clause(topic=t if w.rng.random() < 0.8 else None)
            if w.rng.random() < 0.3:
                c.num, c.noun2 = w.rng.choice(_NUMBERS), w.rng.randrange(_NOUNS)
            sent = w.render(c, lang)
            if w.rng.random() < 0.2:  # coordination: "and" is an anchor shared by every language
                sent += f" {w.a(lang, 'and')} " + w.render(w.clause(topic=c.topic, name=c.name), lang, with_adj=False)
            sents.append(sent)
        docs.append({"text": " . ".join(sents)})
    return docs


@dataclass(frozen=True)
class SynthSizes:
    corpus_docs_en: int = 6000
    train: int = 4000
    dev: int = 300
    test: int = 500


def generate(seed: int = 0, sizes: SynthSizes | None = None) -> dict[str, Any]:
    """Generate the whole benchmark in memory: ``{"corpus": {lang: [...]}, "tasks": {...}}``.

    ``tasks[task][split][lang]`` is a list of records in the task's Hugging Face schema.
    """
    sz = sizes or SynthSizes()
    w = _World(seed)
    langs = [s.code for s in LANGUAGES]
    top = max(s.corpus_size for s in LANGUAGES)
    corpus = {s.code: _corpus(w, s.code, max(20, sz.corpus_docs_en * s.corpus_size // top)) for s in LANGUAGES}

    tasks: dict[str, dict[str, dict[str, list[dict[str, Any]]]]] = {}

    # glue/mnli analogue (English only): premise carries a "with NUM NOUN" tail
    def mnli(n: int, start: int) -> list[dict[str, Any]]:
        out = []
        for i in range(n):
            p, h, y = _nli_pair(w)
            p.num, p.noun2 = w.rng.choice(_NUMBERS), w.rng.randrange(_NOUNS)
            out.append({"premise": w.render(p, "en"), "hypothesis": w.render(h, "en", with_adj=False),
                        "label": y, "idx": start + i})
        return out

    tasks["mnli"] = {"train": {"en": mnli(sz.train, 0)}, "validation_matched": {"en": mnli(sz.dev, sz.train)}}

    # glue/sst2 analogue: adjective polarity flipped by "not"
    def sst2(n: int) -> list[dict[str, Any]]:
        out = []
        for i in range(n):
            c = w.clause()
            y = int(w.polarity[c.adj[0]][c.adj[1]] != c.neg)
            out.append({"sentence": w.render(c, "en"), "label": y, "idx": i})
        return out

    tasks["sst2"] = {"train": {"en": sst2(sz.train)}, "validation": {"en": sst2(sz.dev)}}

    # XTREME XNLI analogue: one latent pair rendered in every language
    def xnli(n: int, render_langs: list[str]) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {lang: [] for lang in render_langs}
        for _ in range(n):
            p, h, y = _nli_pair(w)
            for lang in render_langs:
                out[lang].append({"language": lang, "sentence1": w.render(p, lang),
                                  "sentence2": w.render(h, lang, with_adj=False), "gold_label": NLI_LABELS[y]})
        return out

    tasks["xnli"] = {
        # small on purpose, like many XTREME targets' English training sets (measured on the tiny
        # model: with 4000 examples English alone reaches the ceiling and every intermediate task
        # hurts; with 500 MNLI helps +2.6 ± 2.0 points; with 333 +6.9 over 6 seeds)
        "train": xnli(sz.train // 12, ["en"]),
        "validation": xnli(sz.dev, langs),
        "test": xnli(sz.test, langs),
        # machine-"translated" training data, for translate-train / multilingual variants
        "translate_train": {k: v for k, v in xnli(sz.train, langs).items() if k != "en"},
    }

    def xnli_row(lang: str) -> dict[str, Any]:
        p, h, y = _nli_pair(w)
        return {"language": lang, "sentence1": w.render(p, lang), "sentence2": w.render(h, lang, with_adj=False),
                "gold_label": NLI_LABELS[y]}

    tasks["xnli"]["test_clean"] = clean_rows(w, "xnli-clean", sz.test, langs[1:], xnli_row, ("sentence1", "sentence2"))
    for task, splits in _later_tasks(w, sz, langs).items():
        tasks[task] = splits
    for lang, docs in _later_corpus(w, langs, {k: len(v) for k, v in corpus.items()}).items():
        corpus[lang] += docs
    return {"corpus": corpus, "tasks": tasks, "overlap": overlap(w)}


# --- the tasks added in version 3 ------------------------------------------------------------------
# Each draws from its own RNG (``_World.using``), so adding or changing one never moves another.
#
# How they relate to the targets (by construction):
#   related     anli -> xnli (same rule, two-clause premises, 10% label noise: harder);
#               squad -> xquad/mlqa/tydiqa (same generator); ccg -> udpos (word classes);
#               cosmosqa -> QA (who did it)
#   unrelated   commonsenseqa (which noun goes with a verb: lexical topic knowledge)
#   conflicting qqp: a "duplicate" is about the same person and number whatever its content words
#               and "not" say — it trains the encoder to ignore what NLI reads (measured: the one
#               intermediate task that lowers the XNLI-like objective);
#               hellaswag: the right ending *changes* topic, the opposite of what NLI rewards;
#               sst2 (reads the adjective, with the polarity labels NLI reads from "not")

_UPOS_OF = {"name": "PROPN", "org": "PROPN", "place": "PROPN", "neg": "PART", "verb": "VERB", "det": "DET",
            "adj": "ADJ", "noun": "NOUN", "with": "ADP", "in": "ADP", "num": "NUM", "and": "CCONJ", ".": "PUNCT"}
_CCG_OF = {"name": "NP", "org": "NP", "place": "NP", "neg": "(S\\NP)/(S\\NP)", "det": "NP/N", "adj": "N/N",
           "noun": "N", "with": "((S\\NP)\\(S\\NP))/NP", "in": "PP/NP", "num": "N/N", "and": "conj", ".": "."}


def _rng(w: _World, name: str) -> random.Random:
    return random.Random(f"{w.seed}-task-{name}")


def _tagged_sentence(w: _World, lang: str, *, entities: bool = False) -> list[tuple[str, str]]:
    """One or two clauses as (word, category); ``entities`` adds organisations, places, full names."""
    r = w.rng
    c = w.clause()
    if entities:
        u = r.random()
        if u < 0.25:
            c.org, c.name = True, r.choice(w.orgs)
        elif u < 0.5:
            c.name = f"{c.name} {r.choice(w.names)}"
        if r.random() < 0.5:
            c.place = r.choice(w.places) + (f" {r.choice(w.places)}" if r.random() < 0.3 else "")
    elif r.random() < 0.3:
        c.num, c.noun2 = r.choice(_NUMBERS), r.randrange(_NOUNS)
    out = w.render_tagged(c, lang)
    if r.random() < 0.3:
        out += [(w.a(lang, "and"), "and"), *w.render_tagged(w.clause(topic=c.topic), lang, with_adj=False)]
    return out + [(".", ".")]


def _question(w: _World, c: _Clause, lang: str, kind: str) -> str:
    """``who`` asks for the subject, ``many`` for the number of the clause's "with" tail."""
    lex, x = w.lexicon[lang], w.extra[lang]
    body = [t for t in w.render_tagged(_Clause(**{**c.__dict__, "num": None, "noun2": None}), lang, with_adj=False)]
    if kind == "who":
        return " ".join([x["who"], *(t for t, k in body if k != "name")])
    assert c.noun2 is not None
    return " ".join([x["what"], x["many"], lex["noun"][c.topic][c.noun2], *(t for t, _ in body)])


def _qa_item(w: _World, lang: str, n_clauses: int, p_many: float) -> tuple[str, str, str]:
    """(context, question, answer) with the answer a name or a number that occurs once in the context."""
    r = w.rng
    names = r.sample(w.names, n_clauses)
    nums = r.sample(_NUMBERS, n_clauses)
    clauses: list[_Clause] = []
    seen: set[tuple[int, int]] = set()
    while len(clauses) < n_clauses:
        c = w.clause(name=names[len(clauses)])
        if (c.topic, c.verb) in seen:  # the question must pick out one clause
            continue
        seen.add((c.topic, c.verb))
        if r.random() < 0.6:
            c.num, c.noun2 = nums[len(clauses)], r.randrange(_NOUNS)
        clauses.append(c)
    with_num = [c for c in clauses if c.num is not None]
    if with_num and r.random() < p_many:
        target, kind = r.choice(with_num), "many"
    else:
        target, kind = r.choice(clauses), "who"
    answer = target.num if kind == "many" else target.name
    assert answer is not None
    answer = w.a(lang, answer)
    return " . ".join(w.render(c, lang) for c in clauses) + " .", _question(w, target, lang, kind), answer


def _squad_record(ctx: str, q: str, a: str, rid: str, title: str) -> dict[str, Any]:
    start = ctx.split(" ").index(a)
    char = len(" ".join(ctx.split(" ")[:start])) + (1 if start else 0)
    assert ctx[char : char + len(a)] == a
    return {"id": rid, "title": title, "context": ctx, "question": q,
            "answers": {"answer_start": [char], "text": [a]}}


def _later_tasks(w: _World, sz: SynthSizes, langs: list[str]) -> dict[str, dict[str, dict[str, list[dict[str, Any]]]]]:
    tasks: dict[str, dict[str, dict[str, list[dict[str, Any]]]]] = {}
    non_en = [lang for lang in langs if lang != "en"]

    def parallel(name: str, n: int, render_langs: list[str],
                 make: Callable[[str], dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        """``n`` latent items, each rendered in every language from the same RNG state (parallel data)."""
        out: dict[str, list[dict[str, Any]]] = {lang: [] for lang in render_langs}
        for i in range(n):
            for lang in render_langs:
                with w.using(random.Random(f"{w.seed}-{name}-{i}")):
                    out[lang].append(make(lang))
        return out

    # --- anli (facebook/anli): two-clause premises, the hypothesis about either clause, 10% noise
    def anli(n: int, start: int) -> list[dict[str, Any]]:
        out = []
        for i in range(n):
            p, h, y = _nli_pair(w)
            other = w.clause(name=w.rng.choice([x for x in w.names if x != p.name]))
            first = w.rng.random() < 0.5
            prem = (f"{w.render(p, 'en')} and {w.render(other, 'en')}" if first
                    else f"{w.render(other, 'en')} and {w.render(p, 'en')}")
            if w.rng.random() < 0.1:
                y = w.rng.randrange(3)
            out.append({"uid": f"s{start + i:06d}", "premise": prem, "hypothesis": w.render(h, "en", with_adj=False),
                        "label": y, "reason": ""})
        return out

    with w.using(_rng(w, "anli")):
        tasks["anli"] = {"train_r3": {"en": anli(sz.train, 0)}, "dev_r3": {"en": anli(sz.dev, sz.train)},
                         "test_r3": {"en": anli(sz.dev, sz.train + sz.dev)}}

    # --- paraphrase (pawsx): the same clause (adjective maybe dropped) vs two nouns swapped
    def para_pair(lang: str) -> tuple[str, str, int]:
        r = w.rng
        c = w.clause()
        c.num, c.noun2 = r.choice(_NUMBERS), r.choice([k for k in range(_NOUNS) if k != c.noun])
        y = int(r.random() < 0.5)
        if y:
            d = _Clause(**{**c.__dict__})
            s2 = w.render(d, lang, with_adj=r.random() < 0.5)
        else:  # PAWS: the same words, two of them swapped (the adjective dropped as often: no length cue)
            d = _Clause(**{**c.__dict__, "noun": c.noun2, "noun2": c.noun})
            s2 = w.render(d, lang, with_adj=r.random() < 0.5)
        return w.render(c, lang), s2, y

    # conflicting by design: a QQP "duplicate" asks about the same person and number whatever the
    # content words and "not" say, so it trains the encoder to ignore exactly what NLI reads
    def qqp_pair() -> tuple[str, str, int]:
        r = w.rng
        c = w.clause()
        c.num, c.noun2 = r.choice(_NUMBERS), r.randrange(_NOUNS)
        y = int(r.random() < 0.5)
        d = w.clause(name=c.name) if y else w.clause(topic=c.topic, neg=c.neg)
        d.num, d.noun2 = (c.num, r.randrange(_NOUNS)) if y else (r.choice(_NUMBERS), c.noun2)
        if not y and r.random() < 0.5:
            d.name, d.num = c.name, r.choice([x for x in _NUMBERS if x != c.num])
        if not y:
            d.verb, d.noun, d.adj = c.verb, c.noun, c.adj
        return w.render(c, "en"), w.render(d, "en", with_adj=r.random() < 0.5), y

    with w.using(_rng(w, "qqp")):
        def qqp(n: int, start: int) -> list[dict[str, Any]]:
            rows = []
            for i in range(n):
                a, b, y = qqp_pair()
                rows.append({"question1": f"{w.extra['en']['does']} {a}", "question2": f"{w.extra['en']['does']} {b}",
                             "label": y, "idx": start + i})
            return rows

        tasks["qqp"] = {"train": {"en": qqp(sz.train, 0)}, "validation": {"en": qqp(sz.dev, sz.train)}}

    def pawsx_row(lang: str) -> dict[str, Any]:
        a, b, y = para_pair(lang)
        return {"sentence1": a, "sentence2": b, "label": str(y)}

    tasks["pawsx"] = {
        "train": parallel("pawsx-train", sz.train, ["en"], pawsx_row),
        "validation": parallel("pawsx-dev", sz.dev, langs, pawsx_row),
        "test": parallel("pawsx-test", sz.test, langs, pawsx_row),
        "translate_train": parallel("pawsx-train", sz.train, non_en, pawsx_row),  # the English train, "translated"
        "test_clean": clean_rows(w, "pawsx-clean", sz.test, non_en, pawsx_row, ("sentence1", "sentence2")),
    }

    # --- extractive QA: squad (English), xquad (3 clauses), mlqa (4 clauses), tydiqa (more "how many")
    def qa_rows(name: str, n: int, render_langs: list[str], n_clauses: int, p_many: float,
                lang_prefix: bool = False) -> dict[str, list[dict[str, Any]]]:
        def make(lang: str) -> dict[str, Any]:
            ctx, q, a = _qa_item(w, lang, n_clauses, p_many)
            return _squad_record(ctx, q, a, "", f"{name}")

        out = parallel(name, n, render_langs, make)
        for lang, rows in out.items():
            for i, row in enumerate(rows):
                row["id"] = f"{lang}-{name}-{i}" if lang_prefix else f"{name}-{i}"
        return out

    with w.using(_rng(w, "qa")):
        tasks["squad"] = {"train": qa_rows("squad-train", sz.train, ["en"], 3, 0.3),
                          "validation": qa_rows("squad-dev", sz.dev, ["en"], 3, 0.3)}
        tasks["xquad"] = {"validation": qa_rows("xquad", sz.test, langs, 3, 0.3),
                          # SQuAD's train "translated" (XTREME's translate-train for XQuAD and MLQA)
                          "translate_train": qa_rows("squad-train", sz.train // 2, non_en, 3, 0.3)}
        tasks["mlqa"] = {"validation": qa_rows("mlqa-dev", sz.dev, langs, 4, 0.3),
                         "test": qa_rows("mlqa-test", sz.test, langs, 4, 0.3)}
        tasks["tydiqa"] = {"train": qa_rows("tydiqa-train", sz.train // 4, ["en"], 2, 0.6, True),
                           "validation": qa_rows("tydiqa", sz.test, langs, 2, 0.6, True),
                           "translate_train": qa_rows("tydiqa-train", sz.train // 4, non_en, 2, 0.6, True)}
        tasks["mlqa"]["translate_train"] = tasks["xquad"]["translate_train"]

    # --- multiple choice (English only) ---------------------------------------------------------
    def hellaswag(n: int, split: str) -> list[dict[str, Any]]:
        rows = []
        for i in range(n):
            c = w.clause()
            others = [t for t in range(_N_TOPICS) if t != c.topic]
            label = w.rng.randrange(4)
            ends = []
            for k in range(4):
                # conflicting by design: the right ending moves to another topic
                t = w.rng.choice(others) if k == label else c.topic
                e = w.render(w.clause(topic=t, name=c.name), "en", with_adj=False)
                ends.append(e.split(" ", 1)[1])
            ctx_a = w.render(c, "en") + " ."
            rows.append({"ind": i, "activity_label": f"topic {c.topic}", "ctx_a": ctx_a, "ctx_b": c.name,
                         "ctx": f"{ctx_a} {c.name}", "endings": ends, "source_id": f"synth~{split}-{i}",
                         "split": split, "split_type": "indomain", "label": str(label)})
        return rows

    with w.using(_rng(w, "hellaswag")):
        tasks["hellaswag"] = {"train": {"en": hellaswag(sz.train, "train")},
                              "validation": {"en": hellaswag(sz.dev, "val")}}

    def cosmosqa(n: int, start: int) -> list[dict[str, Any]]:
        rows = []
        for i in range(n):
            names = w.rng.sample(w.names, 4)
            cl: list[_Clause] = []
            seen: set[tuple[int, int]] = set()
            while len(cl) < 2:
                c = w.clause(name=names[len(cl)])
                if (c.topic, c.verb) not in seen:
                    seen.add((c.topic, c.verb))
                    cl.append(c)
            target = w.rng.randrange(2)
            label = w.rng.randrange(4)
            answers = [x for x in names if x != cl[target].name]
            w.rng.shuffle(answers)
            answers.insert(label, cl[target].name)
            rows.append({"id": f"synth-{start + i}", "context": " . ".join(w.render(c, "en") for c in cl) + " .",
                         "question": _question(w, cl[target], "en", "who"),
                         **{f"answer{k}": answers[k] for k in range(4)}, "label": label})
        return rows

    with w.using(_rng(w, "cosmosqa")):
        tasks["cosmosqa"] = {"train": {"en": cosmosqa(sz.train, 0)}, "validation": {"en": cosmosqa(sz.dev, sz.train)}}

    def commonsenseqa(n: int, start: int) -> list[dict[str, Any]]:
        en = w.lexicon["en"]
        rows = []
        for i in range(n):
            c = w.clause()
            key = w.rng.randrange(5)
            choices = [en["noun"][w.rng.choice([t for t in range(_N_TOPICS) if t != c.topic])][w.rng.randrange(_NOUNS)]
                       for _ in range(4)]
            choices.insert(key, en["noun"][c.topic][c.noun])
            verb = en["verb"][c.topic][c.verb]
            rows.append({"id": f"synth-{start + i}", "question": f"{c.name} {verb} {w.extra['en']['what']}",
                         "question_concept": verb,
                         "choices": {"label": list("ABCDE"), "text": choices}, "answerKey": "ABCDE"[key]})
        return rows

    with w.using(_rng(w, "commonsenseqa")):
        tasks["commonsenseqa"] = {"train": {"en": commonsenseqa(sz.train, 0)},
                                  "validation": {"en": commonsenseqa(sz.dev, sz.train)}}

    # --- token classification: ccg (English), udpos and panx (every language) --------------------
    def ccg_tag(word: str, cat: str, order: str) -> int:
        if cat == "verb":
            return CCG_TAGS.index("(S\\NP)/NP" if order == "svo" else "(S\\NP)\\NP")
        return CCG_TAGS.index(_CCG_OF[cat])

    with w.using(_rng(w, "ccg")):
        def ccg(n: int) -> list[dict[str, Any]]:
            rows = []
            for _ in range(n):
                t = _tagged_sentence(w, "en")
                rows.append({"tokens": [x for x, _ in t], "ccg_tags": [ccg_tag(x, k, "svo") for x, k in t]})
            return rows

        tasks["ccg"] = {"train": {"en": ccg(sz.train)}, "validation": {"en": ccg(sz.dev)}}

    def udpos_row(lang: str) -> dict[str, Any]:
        t = _tagged_sentence(w, lang)
        return {"tokens": [x for x, _ in t], "pos_tags": [UPOS.index(_UPOS_OF[k]) for _, k in t]}

    def panx_row(lang: str) -> dict[str, Any]:
        t = _tagged_sentence(w, lang, entities=True)
        tags, prev = [], "O"
        for _, k in t:
            ent = {"name": "PER", "org": "ORG", "place": "LOC"}.get(k)
            tags.append("O" if ent is None else (f"I-{ent}" if prev.endswith(ent) else f"B-{ent}"))
            prev = tags[-1]
        return {"tokens": [x for x, _ in t], "ner_tags": [PANX_TAGS.index(g) for g in tags],
                "langs": [lang] * len(t)}

    for name, row in (("udpos", udpos_row), ("panx", panx_row)):
        with w.using(_rng(w, name)):
            tasks[name] = {
                "train": parallel(f"{name}-train", sz.train, ["en"], row),
                "validation": parallel(f"{name}-dev", sz.dev, langs, row),
                "test": parallel(f"{name}-test", sz.test, langs, row),
            }

    # --- retrieval (no training): the same latent sentence in a language and in English ----------
    def pairs(name: str, n: int, two: bool) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {lang: [] for lang in non_en}
        for i in range(n):
            seed = f"{w.seed}-{name}-{i}"
            for lang in non_en:
                with w.using(random.Random(seed)):
                    src = " ".join(x for x, _ in _tagged_sentence(w, lang)[:-1])
                with w.using(random.Random(seed)):
                    tgt = " ".join(x for x, _ in _tagged_sentence(w, "en")[:-1])
                if two:
                    with w.using(random.Random(seed + "b")):
                        src += " . " + " ".join(x for x, _ in _tagged_sentence(w, lang)[:-1])
                    with w.using(random.Random(seed + "b")):
                        tgt += " . " + " ".join(x for x, _ in _tagged_sentence(w, "en")[:-1])
                out[lang].append({"source_sentence": src, "target_sentence": tgt, "source_lang": lang,
                                  "target_lang": "en"})
        return out

    tasks["bucc"] = {"validation": pairs("bucc-dev", sz.dev, True), "test": pairs("bucc-test", sz.test, True)}
    tasks["tatoeba"] = {"validation": pairs("tatoeba", sz.test, False)}
    return tasks


def _later_corpus(w: _World, langs: list[str], sizes: dict[str, int]) -> dict[str, list[dict[str, str]]]:
    """Documents that use the words of the later tasks (questions, places, organisations), so the
    tokenizer knows them and pretraining has seen them: about 15% more text per language."""
    out: dict[str, list[dict[str, str]]] = {}
    for lang in langs:
        docs = []
        with w.using(random.Random(f"{w.seed}-corpus2-{lang}")):
            for _ in range(max(10, sizes[lang] * 15 // 100)):
                sents = []
                for _ in range(w.rng.randint(3, 6)):
                    u = w.rng.random()
                    if u < 0.5:
                        sents.append(" ".join(x for x, _ in _tagged_sentence(w, lang, entities=True)[:-1]))
                    else:
                        c = w.clause()
                        c.num, c.noun2 = w.rng.choice(_NUMBERS), w.rng.randrange(_NOUNS)
                        sents.append(_question(w, c, lang, "who" if u < 0.75 else "many"))
                        if w.rng.random() < 0.5:
                            sents[-1] = f"{w.extra[lang]['does']} {w.render(c, lang)}"
                docs.append({"text": " . ".join(sents)})
        out[lang] = docs
    return out


def overlap(w: _World) -> dict[str, float]:
    """Share of content words identical to English, per language (measured, not the spec)."""
    en = w.lexicon["en"]
    words_en = [x for k in ("noun", "verb", "adj") for ws in en[k] for x in ws]
    out = {}
    for lang, lex in w.lexicon.items():
        words = [x for k in ("noun", "verb", "adj") for ws in lex[k] for x in ws]
        out[lang] = sum(a == b for a, b in zip(words, words_en, strict=True)) / len(words_en)
    return out


class SynthBenchmark:
    """A generated ``synth`` benchmark on disk (JSON Lines in the HF schemas)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.manifest: dict[str, Any] = json.loads((root / "manifest.json").read_text())

    @property
    def languages(self) -> list[str]:
        return [s["code"] for s in self.manifest["languages"]]

    @property
    def control_languages(self) -> list[str]:
        return [s["code"] for s in self.manifest["languages"] if s["control"]]

    def path(self, task: str, split: str, lang: str) -> Path:
        return self.root / task / f"{split}.{lang}.jsonl"

    def records(self, task: str, split: str, lang: str = "en") -> list[dict[str, Any]]:
        from .hub import DataNotFoundError

        p = self.path(task, split, lang)
        if not p.exists():
            have = sorted(f"{d.name}/{f.name}" for d in self.root.iterdir() if d.is_dir() for f in d.glob("*.jsonl"))
            raise DataNotFoundError(
                f"synth has no {task!r} split {split!r} in language {lang!r}: looked for {p}. "
                f"Available: {', '.join(h for h in have if not h.startswith('corpus/'))}"
            )
        with p.open() as f:
            return [json.loads(line) for line in f]

    def corpus(self, lang: str) -> list[str]:
        return [r["text"] for r in self.records("corpus", "train", lang)]


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def ensure_synth(home: Path, seed: int = 0, *, log: Callable[[str], None] = print) -> SynthBenchmark:
    """Generate ``synth`` under ``home/data`` unless it is cached; return it."""
    root = home / "data" / f"synth-v{SYNTH_VERSION}-s{seed}"
    if (root / "manifest.json").exists():
        return SynthBenchmark(root)
    t0 = time.perf_counter()
    log(f"[xstilts] generating synth benchmark (seed {seed}) into {root} ...")
    data = generate(seed)
    tmp = root.with_name(root.name + f".tmp{os.getpid()}")
    for lang, docs in data["corpus"].items():
        _write_jsonl(tmp / "corpus" / f"train.{lang}.jsonl", docs)
    for task, splits in data["tasks"].items():
        for split, by_lang in splits.items():
            for lang, rows in by_lang.items():
                _write_jsonl(tmp / task / f"{split}.{lang}.jsonl", rows)
    manifest = {
        "version": SYNTH_VERSION,
        "seed": seed,
        "languages": [asdict(s) for s in LANGUAGES],
        "overlap": data["overlap"],
        "seconds": round(time.perf_counter() - t0, 2),
    }
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
    try:
        tmp.rename(root)  # atomic: concurrent generators race benignly
    except OSError:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    log(f"[xstilts] synth ready in {time.perf_counter() - t0:.1f}s")
    return SynthBenchmark(root)
