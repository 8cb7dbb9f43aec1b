"""Retrieval (no training): ``bucc`` and ``tatoeba``, the same latent sentence in a language and in English."""

from __future__ import annotations

import random

from .splits import ByLanguage, SynthSizes, Tasks
from .world import World

__all__ = ["render_retrieval"]


def _sentence(w: World, lang: str, stream: str) -> str:
    """The sentence drawn from ``stream``, rendered in ``lang`` without its final "."."""
    with w.using(random.Random(stream)):
        return " ".join(x for x, _ in w.tagged_sentence(lang)[:-1])


def _pairs(w: World, name: str, n: int, langs: list[str], two: bool) -> ByLanguage:
    """``n`` (source in a non-English language, English target) pairs per language; ``two``: two sentences."""
    non_en = [lang for lang in langs if lang != "en"]
    out: ByLanguage = {lang: [] for lang in non_en}
    for i in range(n):
        stream = f"{w.seed}-{name}-{i}"
        for lang in non_en:
            src, tgt = _sentence(w, lang, stream), _sentence(w, "en", stream)
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
