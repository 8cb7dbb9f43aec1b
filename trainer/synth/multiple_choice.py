"""Multiple choice (English only): ``hellaswag``, ``cosmosqa`` and ``commonsenseqa``.

How they relate to the targets: ``hellaswag`` conflicts with NLI by design (the right ending
*changes* topic, the opposite of what NLI rewards); ``cosmosqa`` asks who did it (related to QA);
``commonsenseqa`` asks which noun goes with a verb (lexical topic knowledge: unrelated).
"""

from __future__ import annotations

from .splits import Record, SynthSizes, Tasks, task_rng
from .world import N_NOUNS, N_TOPICS, World

__all__ = ["hellaswag_rows", "cosmosqa_rows", "commonsenseqa_rows", "render_hellaswag", "render_cosmosqa",
           "render_commonsenseqa"]

# Every ``*_rows`` function renders ``n`` records in ``lang``; what it draws does not depend on ``lang``,
# so replayed from the same stream another language renders the same items (``translated``).


def hellaswag_rows(w: World, n: int, split: str, lang: str = "en") -> list[Record]:
    """A clause, then four endings about its subject: the right one moves to another topic."""
    out = []
    for i in range(n):
        c = w.clause()
        others = [t for t in range(N_TOPICS) if t != c.topic]
        label = w.rng.randrange(4)
        ends = []
        for k in range(4):
            t = w.rng.choice(others) if k == label else c.topic
            e = w.render(w.clause(topic=t, name=c.name), lang, with_adj=False)
            ends.append(e.split(" ", 1)[1])
        ctx_a, name = w.render(c, lang) + " .", w.anchor_form(lang, c.name)
        out.append({"ind": i, "activity_label": f"topic {c.topic}", "ctx_a": ctx_a, "ctx_b": name,
                    "ctx": f"{ctx_a} {name}", "endings": ends, "source_id": f"synth~{split}-{i}",
                    "split": split, "split_type": "indomain", "label": str(label)})
    return out


def render_hellaswag(w: World, sz: SynthSizes, langs: list[str]) -> Tasks:
    """English (its translations: ``translated``), from a stream of its own."""
    with w.using(task_rng(w, "hellaswag")):
        return {"hellaswag": {"train": {"en": hellaswag_rows(w, sz.train, "train")},
                              "validation": {"en": hellaswag_rows(w, sz.dev, "val")}}}


def cosmosqa_rows(w: World, n: int, start: int, lang: str = "en") -> list[Record]:
    """Two clauses with distinct subjects and topics; "who <did it>", answered by one of four names."""
    out = []
    for i in range(n):
        names = w.rng.sample(w.names, 4)
        # two topics: the question picks its clause by topic (World.question)
        cl = [w.clause(topic=t, name=n) for t, n in zip(w.distinct_topics(2), names, strict=False)]
        target = w.rng.randrange(2)
        label = w.rng.randrange(4)
        answers = [x for x in names if x != cl[target].name]
        w.rng.shuffle(answers)
        answers.insert(label, cl[target].name)
        out.append({"id": f"synth-{start + i}", "context": " . ".join(w.render(c, lang) for c in cl) + " .",
                    "question": w.question(cl[target], lang, "who"),
                    **{f"answer{k}": w.anchor_form(lang, answers[k]) for k in range(4)}, "label": label})
    return out


def render_cosmosqa(w: World, sz: SynthSizes, langs: list[str]) -> Tasks:
    """English (its translations: ``translated``), from a stream of its own."""
    with w.using(task_rng(w, "cosmosqa")):
        return {"cosmosqa": {"train": {"en": cosmosqa_rows(w, sz.train, 0)},
                             "validation": {"en": cosmosqa_rows(w, sz.dev, sz.train)}}}


def commonsenseqa_rows(w: World, n: int, start: int, lang: str = "en") -> list[Record]:
    """"<Name> <verb> what": the verb's own noun among four nouns of other topics (the question keeps
    this order in every language: a template, not a rendered clause)."""
    lex = w.lexicon[lang]
    out = []
    for i in range(n):
        c = w.clause()
        key = w.rng.randrange(5)
        other_topics = [t for t in range(N_TOPICS) if t != c.topic]
        choices = [lex["noun"][w.rng.choice(other_topics)][w.rng.randrange(N_NOUNS)] for _ in range(4)]
        choices.insert(key, lex["noun"][c.topic][c.noun])
        verb = lex["verb"][c.topic][c.verb]
        out.append({"id": f"synth-{start + i}",
                    "question": f"{w.anchor_form(lang, c.name)} {verb} {w.function_word(lang, 'what')}",
                    "question_concept": verb,
                    "choices": {"label": list("ABCDE"), "text": choices}, "answerKey": "ABCDE"[key]})
    return out


def render_commonsenseqa(w: World, sz: SynthSizes, langs: list[str]) -> Tasks:
    """English (its translations: ``translated``), from a stream of its own."""
    with w.using(task_rng(w, "commonsenseqa")):
        return {"commonsenseqa": {"train": {"en": commonsenseqa_rows(w, sz.train, 0)},
                                  "validation": {"en": commonsenseqa_rows(w, sz.dev, sz.train)}}}
