"""The monolingual corpora: "documents" per language, for the tokenizer and MLM pretraining.

Two kinds, both in ``{"text": "<sentence> . <sentence> ..."}`` records:

* topic documents, sentences mostly about one topic, with sizes imbalanced across languages
  (``LanguageSpec.corpus_size``) so that language temperature matters when they are sampled;
  drawn from the world's main stream, before any task;
* question and entity documents, about 15% more per language, that use the words of the
  questions and the entity sentences of the tasks, so the tokenizer knows them and pretraining
  has seen them; each language drawn from a stream of its own.
"""

from __future__ import annotations

import random

from .world import LANGUAGES, World

__all__ = ["topic_corpora", "question_and_entity_corpora"]

Documents = list[dict[str, str]]


def _topic_documents(w: World, lang: str, n_docs: int) -> Documents:
    docs = []
    for _ in range(n_docs):
        t = w.topic()
        sents = []
        for _ in range(w.rng.randint(3, 6)):
            c = w.clause(topic=t if w.rng.random() < 0.8 else None)
            if w.rng.random() < 0.3:
                w.add_number_tail(c)
            sent = w.render(c, lang)
            if w.rng.random() < 0.2:  # coordination: "and" is an anchor shared by every language
                second = w.render(w.clause(topic=c.topic, name=c.name), lang, with_adj=False)
                sent += f" {w.anchor_form(lang, 'and')} {second}"
            sents.append(sent)
        docs.append({"text": " . ".join(sents)})
    return docs


def topic_corpora(w: World, corpus_docs_en: int) -> dict[str, Documents]:
    """Every language's topic documents: ``corpus_docs_en`` in English, the others in proportion
    to their ``corpus_size`` (at least 20)."""
    top = max(s.corpus_size for s in LANGUAGES)
    return {s.code: _topic_documents(w, s.code, max(20, corpus_docs_en * s.corpus_size // top)) for s in LANGUAGES}


def _question_and_entity_sentence(w: World, lang: str) -> str:
    """An entity sentence, a question followed by its answer's kind of word (a name after "who", a
    number after "many": what tells the two question words apart), or a "does <clause>" question."""
    u = w.rng.random()
    if u < 0.5:
        return " ".join(x for x, _ in w.entity_sentence(lang)[:-1])
    c = w.clause()
    w.add_number_tail(c)
    kind = "who" if u < 0.75 else "many"
    assert c.num is not None
    sent = f"{w.question(c, lang, kind)} {w.anchor_form(lang, c.name if kind == 'who' else c.num)}"
    if w.rng.random() < 0.5:
        sent = f"{w.function_word(lang, 'does')} {w.render(c, lang)}"
    return sent


def question_and_entity_corpora(w: World, langs: list[str], sizes: dict[str, int]) -> dict[str, Documents]:
    """``sizes[lang] * 15 // 100`` documents per language (at least 10), ``sizes`` being the topic
    documents' counts."""
    out: dict[str, Documents] = {}
    for lang in langs:
        # the stream's name is part of the data: renaming it would redraw every document
        with w.using(random.Random(f"{w.seed}-corpus2-{lang}")):
            out[lang] = [
                {"text": " . ".join(_question_and_entity_sentence(w, lang) for _ in range(w.rng.randint(3, 6)))}
                for _ in range(max(10, sizes[lang] * 15 // 100))
            ]
    return out
