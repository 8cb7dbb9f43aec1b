"""Multiple choice (English only): ``hellaswag``, ``cosmosqa`` and ``commonsenseqa``.

How they relate to the targets: ``hellaswag`` conflicts with NLI by design (the right ending
*changes* topic, the opposite of what NLI rewards); ``cosmosqa`` asks who did it (related to QA);
``commonsenseqa`` asks which noun goes with a verb (lexical topic knowledge: unrelated).
"""

from __future__ import annotations

from .splits import Record, SynthSizes, Tasks, task_rng
from .world import N_NOUNS, N_TOPICS, World

__all__ = ["render_hellaswag", "render_cosmosqa", "render_commonsenseqa"]


def render_hellaswag(w: World, sz: SynthSizes, langs: list[str]) -> Tasks:
    """A clause, then four endings about its subject: the right one moves to another topic."""

    def rows(n: int, split: str) -> list[Record]:
        out = []
        for i in range(n):
            c = w.clause()
            others = [t for t in range(N_TOPICS) if t != c.topic]
            label = w.rng.randrange(4)
            ends = []
            for k in range(4):
                t = w.rng.choice(others) if k == label else c.topic
                e = w.render(w.clause(topic=t, name=c.name), "en", with_adj=False)
                ends.append(e.split(" ", 1)[1])
            ctx_a = w.render(c, "en") + " ."
            out.append({"ind": i, "activity_label": f"topic {c.topic}", "ctx_a": ctx_a, "ctx_b": c.name,
                        "ctx": f"{ctx_a} {c.name}", "endings": ends, "source_id": f"synth~{split}-{i}",
                        "split": split, "split_type": "indomain", "label": str(label)})
        return out

    with w.using(task_rng(w, "hellaswag")):
        return {"hellaswag": {"train": {"en": rows(sz.train, "train")}, "validation": {"en": rows(sz.dev, "val")}}}


def render_cosmosqa(w: World, sz: SynthSizes, langs: list[str]) -> Tasks:
    """Two clauses with distinct subjects and topics; "who <did it>", answered by one of four names."""

    def rows(n: int, start: int) -> list[Record]:
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
            out.append({"id": f"synth-{start + i}", "context": " . ".join(w.render(c, "en") for c in cl) + " .",
                        "question": w.question(cl[target], "en", "who"),
                        **{f"answer{k}": answers[k] for k in range(4)}, "label": label})
        return out

    with w.using(task_rng(w, "cosmosqa")):
        return {"cosmosqa": {"train": {"en": rows(sz.train, 0)}, "validation": {"en": rows(sz.dev, sz.train)}}}


def render_commonsenseqa(w: World, sz: SynthSizes, langs: list[str]) -> Tasks:
    """"<Name> <verb> what": the verb's own noun among four nouns of other topics."""
    en = w.lexicon["en"]

    def rows(n: int, start: int) -> list[Record]:
        out = []
        for i in range(n):
            c = w.clause()
            key = w.rng.randrange(5)
            other_topics = [t for t in range(N_TOPICS) if t != c.topic]
            choices = [en["noun"][w.rng.choice(other_topics)][w.rng.randrange(N_NOUNS)] for _ in range(4)]
            choices.insert(key, en["noun"][c.topic][c.noun])
            verb = en["verb"][c.topic][c.verb]
            out.append({"id": f"synth-{start + i}", "question": f"{c.name} {verb} {w.function_word('en', 'what')}",
                        "question_concept": verb,
                        "choices": {"label": list("ABCDE"), "text": choices}, "answerKey": "ABCDE"[key]})
        return out

    with w.using(task_rng(w, "commonsenseqa")):
        return {"commonsenseqa": {"train": {"en": rows(sz.train, 0)},
                                  "validation": {"en": rows(sz.dev, sz.train)}}}
