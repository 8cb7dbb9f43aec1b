"""NLI pairs: ``mnli`` (glue/mnli), ``anli`` (facebook/anli) and ``xnli`` (XTREME XNLI).

The rule they share: the hypothesis speaks about the premise's subject; *entailment* if it is
about the premise's topic with the same polarity ("not"), *contradiction* if same topic and
opposite polarity, *neutral* if about another topic.

``mnli`` and ``xnli`` draw from the world's main stream (see ``splits``); ``anli`` from its own.
A share of ``xnli``'s premises (``XNLI_TWO_CLAUSE``) join a second clause about someone else,
like ``anli``'s: the hypothesis must be matched to its clause by the subject's name (with one
clause only, English reached .971, above the ceiling that lets mixtures be ranked). Those extra
draws come from a stream of their own, so the main stream, and every task after ``xnli``, is
unchanged.
"""

from __future__ import annotations

from ..tasks import NLI_LABELS
from .splits import Record, SynthSizes, Tasks, clean_rows, task_rng
from .world import N_TOPICS, Clause, World

__all__ = ["nli_pair", "mnli_rows", "anli_rows", "render_mnli", "render_xnli", "render_anli", "XNLI_TWO_CLAUSE"]

XNLI_TWO_CLAUSE = 0.15  # share of xnli premises with a second clause about another name (measured:
# 0 -> English .971, 0.3 -> .83, 0.5 -> .74 on the tiny model, 3 seeds)


def nli_pair(w: World) -> tuple[Clause, Clause, int]:
    """(premise, hypothesis, label id in ``NLI_LABELS``) by the shared rule."""
    premise = w.clause()
    label = w.rng.randrange(3)
    if label == 1:  # neutral: another topic
        other = w.rng.choice([t for t in range(N_TOPICS) if t != premise.topic])
        hyp = w.clause(topic=other, name=premise.name)
    else:
        neg = premise.neg if label == 0 else not premise.neg
        hyp = w.clause(topic=premise.topic, name=premise.name, neg=neg)
    return premise, hyp, label


def mnli_rows(w: World, n: int, start: int, lang: str = "en") -> list[Record]:
    """``n`` MNLI records in ``lang`` (idx from ``start``); the premise carries a "with NUM NOUN" tail.
    What is drawn does not depend on ``lang``: replayed from the same stream, another language
    renders the same pairs (``translated``)."""
    out = []
    for i in range(n):
        p, h, y = nli_pair(w)
        w.add_number_tail(p)
        out.append({"premise": w.render(p, lang), "hypothesis": w.render(h, lang, with_adj=False),
                    "label": y, "idx": start + i})
    return out


def render_mnli(w: World, sz: SynthSizes, langs: list[str]) -> Tasks:
    """English (its translations: ``translated``)."""
    return {"mnli": {"train": {"en": mnli_rows(w, sz.train, 0)},
                     "validation_matched": {"en": mnli_rows(w, sz.dev, sz.train)}}}


def render_xnli(w: World, sz: SynthSizes, langs: list[str]) -> Tasks:
    """One latent pair rendered in every language; ``test_clean`` has no English content word."""
    extra = task_rng(w, "xnli-two-clause")  # the second clauses' own stream

    def draw() -> tuple[Clause, Clause, int, Clause | None, bool]:
        """A pair by the shared rule and, for a share of them, a second premise clause (other
        name) and whether the pair's own clause comes first."""
        p, h, y = nli_pair(w)
        if extra.random() >= XNLI_TWO_CLAUSE:
            return p, h, y, None, True
        with w.using(extra):
            other = w.clause(name=extra.choice([x for x in w.names if x != p.name]))
        return p, h, y, other, extra.random() < 0.5

    def row(item: tuple[Clause, Clause, int, Clause | None, bool], lang: str) -> Record:
        p, h, y, other, first = item
        premise = w.render(p, lang)
        if other is not None:
            a, b = (premise, w.render(other, lang)) if first else (w.render(other, lang), premise)
            premise = f"{a} {w.anchor_form(lang, 'and')} {b}"
        return {"language": lang, "sentence1": premise, "sentence2": w.render(h, lang, with_adj=False),
                "gold_label": NLI_LABELS[y]}

    def rows(n: int, render_langs: list[str]) -> dict[str, list[Record]]:
        out: dict[str, list[Record]] = {lang: [] for lang in render_langs}
        for _ in range(n):
            item = draw()
            for lang in render_langs:
                out[lang].append(row(item, lang))
        return out

    xnli = {
        # small on purpose, like many XTREME targets' English training sets (measured on the tiny
        # model: with 4000 examples English alone reaches the ceiling and every intermediate task
        # hurts; with 500 MNLI helps +2.6 ± 2.0 points; with 333 +6.9 over 6 seeds)
        "train": rows(sz.train // 12, ["en"]),
        "validation": rows(sz.dev, langs),
        "test": rows(sz.test, langs),
        # machine-"translated" training data, for translate-train / multilingual variants
        "translate_train": {k: v for k, v in rows(sz.train, langs).items() if k != "en"},
    }
    xnli["test_clean"] = clean_rows(w, "xnli-clean", sz.test, langs[1:], lambda lang: row(draw(), lang),
                                    ("sentence1", "sentence2"))
    return {"xnli": xnli}


def anli_rows(w: World, n: int, start: int, lang: str = "en") -> list[Record]:
    """``n`` ANLI records in ``lang``: two-clause premises, the hypothesis about either clause, 10%
    label noise (draws independent of ``lang``, as ``mnli_rows``)."""
    out = []
    and_ = w.anchor_form(lang, "and")
    for i in range(n):
        p, h, y = nli_pair(w)
        other = w.clause(name=w.rng.choice([x for x in w.names if x != p.name]))
        first = w.rng.random() < 0.5
        prem = (f"{w.render(p, lang)} {and_} {w.render(other, lang)}" if first
                else f"{w.render(other, lang)} {and_} {w.render(p, lang)}")
        if w.rng.random() < 0.1:
            y = w.rng.randrange(3)
        out.append({"uid": f"s{start + i:06d}", "premise": prem, "hypothesis": w.render(h, lang, with_adj=False),
                    "label": y, "reason": ""})
    return out


def render_anli(w: World, sz: SynthSizes, langs: list[str]) -> Tasks:
    """English (its translations: ``translated``), from a stream of its own."""
    with w.using(task_rng(w, "anli")):
        return {"anli": {"train_r3": {"en": anli_rows(w, sz.train, 0)}, "dev_r3": {"en": anli_rows(w, sz.dev, sz.train)},
                         "test_r3": {"en": anli_rows(w, sz.dev, sz.train + sz.dev)}}}
