"""``synth``: an offline, XTREME-shaped benchmark generated from a latent world.

Everything — every language, every monolingual corpus, every task — is rendered from one
latent world drawn from a seed, so cross-lingual transfer is possible exactly to the
extent the languages share surface forms with English (content words, shared anchors):

* **World** (``world``): topics with skewed frequencies; each topic owns nouns, verbs and
  adjectives (adjectives carry a polarity); person names and numbers are anchors shared by every
  language, and so are the function words ``not`` and ``and``.
* **Languages** (``world.LANGUAGES``): each keeps a share of English content words identical
  (``overlap``) and invents fresh word forms for the rest; the farthest uses SOV word order.
  ``xz`` shares nothing, not even the anchors (its names, numbers, ``not`` and ``and`` have their
  own forms) and it is SOV: a negative control, left out of the objective.
* **Corpora** (``corpus``): monolingual "documents" with imbalanced sizes, so that language
  temperature matters when they are sampled.
* **Tasks**: records in the Hugging Face schemas of the real datasets, one renderer per task or
  family: ``nli`` (mnli, anli, xnli), ``single_sentence`` (sst2), ``paraphrase`` (qqp, pawsx),
  ``qa`` (squad, xquad, mlqa, tydiqa), ``multiple_choice`` (hellaswag, cosmosqa, commonsenseqa),
  ``tagging`` (ccg, udpos, panx), ``retrieval`` (bucc, tatoeba); ``splits`` holds what they share
  (sizes, record types, random streams). Their label sets are the datasets' (``trainer.tasks``).

``generator.generate`` puts them together; ``store`` writes the result once and reads it back.
Generation is deterministic from ``seed`` and takes a few seconds; the result is cached under
``$XSTILTS_HOME/data/synth-v<SYNTH_VERSION>-s<seed>/``.
"""

from __future__ import annotations

from .generator import SYNTH_VERSION, generate
from .splits import SynthSizes, clean_rows
from .store import SynthBenchmark, ensure_synth, synth_folder
from .world import LANGUAGES, LanguageSpec, World, english_content_words

__all__ = [
    "SYNTH_VERSION",
    "LanguageSpec",
    "LANGUAGES",
    "World",
    "SynthSizes",
    "SynthBenchmark",
    "generate",
    "ensure_synth",
    "synth_folder",
    "english_content_words",
    "clean_rows",
]
