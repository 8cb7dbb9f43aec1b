"""``synth``: an offline, XTREME-shaped benchmark generated from a latent world.

Everything — every language, every monolingual corpus, every task — is rendered from one
latent world drawn from a seed, so cross-lingual transfer is possible exactly to the
extent the languages share surface forms with English (content words, shared anchors):

* **World**: topics with skewed frequencies; each topic owns nouns, verbs and adjectives
  (adjectives carry a polarity); person names and numbers are anchors shared by every
  language, and so are the function words ``not`` and ``and``.
* **Languages**: each keeps a share of English content words identical (``overlap``)
  and invents fresh word forms for the rest; some use SOV word order. ``xz`` shares
  nothing but the anchors and is a negative control, left out of the objective.
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

import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "SYNTH_VERSION",
    "LanguageSpec",
    "LANGUAGES",
    "NLI_LABELS",
    "SynthBenchmark",
    "generate",
    "ensure_synth",
]

SYNTH_VERSION = 2
NLI_LABELS = ("entailment", "neutral", "contradiction")  # glue/mnli label ids 0, 1, 2


@dataclass(frozen=True)
class LanguageSpec:
    code: str
    overlap: float  # share of English content words kept identical
    order: str  # "svo" or "sov"
    corpus_size: int  # relative monolingual corpus size (imbalanced on purpose)
    control: bool = False  # negative control: never part of the objective


LANGUAGES: tuple[LanguageSpec, ...] = (
    LanguageSpec("en", 1.0, "svo", 100),
    LanguageSpec("xa", 0.5, "svo", 30),
    LanguageSpec("xb", 0.3, "svo", 10),
    LanguageSpec("xc", 0.3, "sov", 10),
    LanguageSpec("xd", 0.2, "svo", 3),
    LanguageSpec("xe", 0.1, "sov", 1),
    LanguageSpec("xz", 0.0, "svo", 10, control=True),
)

_N_TOPICS = 4
_TOPIC_FREQ = (0.45, 0.3, 0.15, 0.1)
_NOUNS, _VERBS, _ADJS = 10, 5, 6
_N_NAMES = 24
_NUMBERS = tuple(str(n) for n in range(2, 20))
_ANCHORS = ("not", "and")  # shared by every language, like names and numbers
_FUNCTION = ("the", "with", "of")
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


class _World:
    """The latent world and its rendering into every language."""

    def __init__(self, seed: int) -> None:
        rng = random.Random(seed)
        self.rng = rng
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

    def _word(self, rng: random.Random, syllables: int) -> str:
        while True:
            w = "".join(rng.choice(_CONS) + rng.choice(_VOWELS) for _ in range(syllables))
            if w not in self._used:
                self._used.add(w)
                return w

    def _translate(self, en: dict[str, Any], spec: LanguageSpec, rng: random.Random) -> dict[str, Any]:
        content = [(k, t, i) for k in ("noun", "verb", "adj") for t in range(_N_TOPICS) for i in range(len(en[k][t]))]
        rng.shuffle(content)
        keep = set(content[: round(spec.overlap * len(content))])  # exact share, not a coin per word
        out: dict[str, Any] = {k: [list(ws) for ws in en[k]] for k in ("noun", "verb", "adj")}
        for k, t, i in content:
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
    def render(self, c: _Clause, lang: str, *, with_adj: bool = True) -> str:
        lex = self.lexicon[lang]
        order = next(s.order for s in LANGUAGES if s.code == lang)
        the = lex["fn"]["the"]
        verb = lex["verb"][c.topic][c.verb]
        obj = [the] + ([lex["adj"][c.adj[0]][c.adj[1]]] if with_adj else []) + [lex["noun"][c.topic][c.noun]]
        neg = ["not"] if c.neg else []
        if order == "svo":
            words = [c.name, *neg, verb, *obj]
        else:
            words = [c.name, *obj, *neg, verb]
        if c.num is not None and c.noun2 is not None:
            words += [lex["fn"]["with"], c.num, lex["noun"][c.topic][c.noun2]]
        return " ".join(words)


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
                sent += " and " + w.render(w.clause(topic=c.topic, name=c.name), lang, with_adj=False)
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
        "train": xnli(sz.train, ["en"]),
        "validation": xnli(sz.dev, langs),
        "test": xnli(sz.test, langs),
        # machine-"translated" training data, for translate-train / multilingual variants
        "translate_train": {k: v for k, v in xnli(sz.train, langs).items() if k != "en"},
    }
    return {"corpus": corpus, "tasks": tasks, "overlap": overlap(w)}


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
