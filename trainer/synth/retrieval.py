"""Retrieval (no training): ``bucc`` and ``tatoeba``, the same latent sentence in a language and in English.

``bucc`` pairs two sentences of the tagging stream; ``tatoeba`` single sentences of the entity
stream (people and organisations by name, half of them in a place), as real Tatoeba's short
sentences are often about named people. With single tagging-stream sentences the best language
retrieved .198 of 500 (synth v5), under the learnability rule's .20; the entity stream: .400.
"""

from __future__ import annotations

import random

from .splits import ByLanguage, SynthSizes, Tasks
from .world import World

__all__ = ["render_retrieval"]


def _sentence(w: World, lang: str, stream: str, entities: bool = False) -> str:
    """The sentence drawn from ``stream`` (``entities``: an entity sentence), rendered in ``lang``
    without its final "."."""
    with w.using(random.Random(stream)):
        words = w.entity_sentence(lang) if entities else w.tagged_sentence(lang)
        return " ".join(x for x, _ in words[:-1])


def _pairs(w: World, name: str, n: int, langs: list[str], two: bool) -> ByLanguage:
    """``n`` (source in a non-English language, English target) pairs per language; ``two``: two sentences."""
    non_en = [lang for lang in langs if lang != "en"]
    out: ByLanguage = {lang: [] for lang in non_en}
    for i in range(n):
        stream = f"{w.seed}-{name}-{i}"
        for lang in non_en:
            src, tgt = _sentence(w, lang, stream, not two), _sentence(w, "en", stream, not two)
            if two:
                src += " . " + _sentence(w, lang, stream + "b")
                tgt += " . " + _sentence(w, "en", stream + "b")
            out[lang].append({"source_sentence": src, "target_sentence": tgt, "source_lang": lang,
                              "target_lang": "en"})
    return out


def render_retrieval(w: World, sz: SynthSizes, langs: list[str]) -> Tasks:
    """``bucc``: pairs of two sentences (dev, test); ``tatoeba``: single sentences (one split)."""
    return {
        "bucc": {"validation": _pairs(w, "bucc-dev", sz.dev, langs, True),
                 "test": _pairs(w, "bucc-test", sz.test, langs, True)},
        "tatoeba": {"validation": _pairs(w, "tatoeba", sz.test, langs, False)},
    }
