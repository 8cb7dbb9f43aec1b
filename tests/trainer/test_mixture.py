"""trainer.mixture and the phase-1 mixture of a trial: rates, temperature, seeded sampling, resumption."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import pytest

from xstilts.trainer.config import TrialConfig
from xstilts.trainer.mixture import Mixture, MixtureSampler, temperature_rates
from xstilts.trainer.schedule import phase1_mixture
from xstilts.trainer.synth import LANGUAGES

SIZES = {s.code: s.corpus_size for s in LANGUAGES}  # 100, 30, 10, 5, 3, 1, 10


def draw(sampler: MixtureSampler, n: int) -> list[str]:
    return [sampler() for _ in range(n)]


def frequencies(names: list[str]) -> dict[str, float]:
    c = Counter(names)
    return {k: v / len(names) for k, v in c.items()}


# --- Mixture --------------------------------------------------------------------------------


def test_mixture_normalises_rates() -> None:
    m = Mixture({"mnli": 3.0, "sst2": 1.0})
    assert m.rates == pytest.approx({"mnli": 0.75, "sst2": 0.25})
    assert m.components == ["mnli", "sst2"]
    assert math.isclose(sum(Mixture({"a": 0.2, "b": 0.2, "c": 0.1}).rates.values()), 1.0)


def test_mixture_drops_zero_rates() -> None:
    m = Mixture({"mnli": 2.0, "sst2": 0.0, "mlm": 2.0})
    assert m.components == ["mnli", "mlm"]
    assert m.rates == pytest.approx({"mnli": 0.5, "mlm": 0.5})


def test_empty_mixture_is_falsy_and_cannot_be_sampled() -> None:
    assert not Mixture()
    assert not Mixture({})
    assert Mixture({"a": 1.0})
    with pytest.raises(ValueError, match="empty mixture"):
        MixtureSampler(Mixture(), seed=0)


def test_mixture_rejects_negative_rates_naming_them() -> None:
    with pytest.raises(ValueError, match="negative") as info:
        Mixture({"mnli": 1.0, "sst2": -0.5, "mlm": -2.0})
    msg = str(info.value)
    assert "'sst2': -0.5" in msg and "'mlm': -2.0" in msg
    assert "mnli" not in msg


def test_mixture_rejects_all_zero_rates_naming_them() -> None:
    with pytest.raises(ValueError, match="all mixture rates are zero") as info:
        Mixture({"mnli": 0.0, "sst2": 0})
    assert "mnli" in str(info.value) and "sst2" in str(info.value)


def test_mixture_rejects_nan_rates() -> None:
    with pytest.raises(ValueError):
        Mixture({"a": float("nan"), "b": 1.0})


# --- temperature_rates ------------------------------------------------------------------------


def test_temperature_one_is_proportional_to_sizes() -> None:
    q = temperature_rates(SIZES, 1.0)
    total = sum(SIZES.values())
    assert q == pytest.approx({k: n / total for k, n in SIZES.items()})


def test_temperature_formula() -> None:
    q = temperature_rates({"a": 100, "b": 1}, 2.0)  # sqrt: 10 : 1
    assert q == pytest.approx({"a": 10 / 11, "b": 1 / 11})


def test_large_temperature_is_near_uniform() -> None:
    q = temperature_rates(SIZES, 1e4)
    for v in q.values():
        assert v == pytest.approx(1 / len(SIZES), abs=1e-3)


def test_small_temperature_concentrates_on_the_largest() -> None:
    q = temperature_rates(SIZES, 0.05)
    assert max(q, key=q.__getitem__) == "en"
    assert q["en"] > 0.999


def test_raising_temperature_flattens_the_distribution() -> None:
    shares = [temperature_rates(SIZES, t) for t in (0.5, 1.0, 2.0, 3.0, 10.0)]
    en = [q["en"] for q in shares]
    xe = [q["xe"] for q in shares]
    assert en == sorted(en, reverse=True) and len(set(en)) == len(en)
    assert xe == sorted(xe) and len(set(xe)) == len(xe)
    for q in shares:
        assert sum(q.values()) == pytest.approx(1.0)
        assert q["xb"] == q["xz"]  # equal sizes, equal rates


@pytest.mark.parametrize("t", [0.0, -1.0])
def test_temperature_must_be_positive(t: float) -> None:
    with pytest.raises(ValueError, match=f"temperature must be > 0, got {t}"):
        temperature_rates(SIZES, t)


def test_temperature_rejects_empty_and_zero_sizes() -> None:
    with pytest.raises(ValueError, match="no languages"):
        temperature_rates({}, 1.0)
    with pytest.raises(ValueError, match="languages with no data: xb, xz$"):
        temperature_rates({"en": 10, "xb": 0, "xa": 3, "xz": -1}, 1.0)


# --- MixtureSampler ----------------------------------------------------------------------------


def test_sampler_frequencies_match_the_rates() -> None:
    m = Mixture({"mnli": 5.0, "sst2": 3.0, "mlm": 1.5, "rare": 0.5})
    f = frequencies(draw(MixtureSampler(m, seed=11), 20_000))
    assert set(f) == set(m.rates)
    for k, r in m.rates.items():
        assert f[k] == pytest.approx(r, abs=0.015), (k, f, m.rates)


def test_sampler_never_draws_a_dropped_component() -> None:
    f = frequencies(draw(MixtureSampler(Mixture({"a": 1.0, "b": 0.0}), seed=0), 2000))
    assert f == {"a": 1.0}


def test_sampler_over_a_temperature_language_mixture() -> None:
    q = temperature_rates(SIZES, 3.0)
    f = frequencies(draw(MixtureSampler(Mixture(q), seed=5), 20_000))
    for lang, r in q.items():
        assert f.get(lang, 0.0) == pytest.approx(r, abs=0.015), (lang, f, q)
    assert f["xe"] > 0.03  # T=3 lifts the smallest language well above its 1/164 share of the data


def test_sampler_is_deterministic_given_the_seed() -> None:
    m = Mixture({"a": 1.0, "b": 1.0, "c": 2.0})
    s1, s2 = MixtureSampler(m, seed=42), MixtureSampler(m, seed=42)
    seq = draw(s1, 500)
    assert seq == draw(s2, 500)
    assert seq != draw(MixtureSampler(m, seed=43), 500)
    assert s1.drawn == 500


def test_sampler_state_resumes_the_exact_continuation() -> None:
    m = Mixture({"mnli": 0.5, "sst2": 0.3, "mlm": 0.2})
    reference = MixtureSampler(m, seed=3)
    head = draw(reference, 137)
    tail = draw(reference, 300)

    original = MixtureSampler(m, seed=3)
    assert draw(original, 137) == head
    state: dict[str, Any] = original.state_dict()
    draw(original, 50)  # moving on after the save must not change what the saved state resumes

    resumed = MixtureSampler(m, seed=999)  # a different seed: the state, not the seed, decides
    resumed.load_state_dict(state)
    assert resumed.drawn == 137
    assert draw(resumed, 300) == tail
    assert resumed.drawn == 437


# --- phase1_mixture ---------------------------------------------------------------------------------


def cfg(**kw: Any) -> TrialConfig:
    return TrialConfig(**kw)


def test_sequential_ignores_the_multilingual_share() -> None:
    # validation forbids this combination; phase1_mixture must still never add MLM under 'sequential'
    c = TrialConfig.model_construct(intermediate={"mnli": 3.0, "sst2": 1.0}, schedule="sequential",
                                    multilingual_share=0.4)
    assert phase1_mixture(c).rates == pytest.approx({"mnli": 0.75, "sst2": 0.25})
    c0 = cfg(intermediate={"mnli": 3.0, "sst2": 1.0}, schedule="sequential")
    assert phase1_mixture(c0).rates == pytest.approx({"mnli": 0.75, "sst2": 0.25})


def test_interleaved_gives_mlm_its_share_and_scales_the_tasks() -> None:
    m = phase1_mixture(cfg(intermediate={"mnli": 3.0, "sst2": 1.0}, schedule="interleaved",
                           multilingual_share=0.4))
    assert m.rates == pytest.approx({"mnli": 0.6 * 0.75, "sst2": 0.6 * 0.25, "mlm": 0.4})


def test_interleaved_without_share_is_tasks_only() -> None:
    m = phase1_mixture(cfg(intermediate={"mnli": 1.0}, schedule="interleaved", multilingual_share=0.0))
    assert m.rates == {"mnli": 1.0}


def test_zero_ratio_tasks_are_left_out() -> None:
    m = phase1_mixture(cfg(intermediate={"mnli": 0.0, "sst2": 2.0}, schedule="interleaved",
                           multilingual_share=0.5))
    assert m.rates == pytest.approx({"sst2": 0.5, "mlm": 0.5})


def test_interleaved_without_tasks_is_mlm_only() -> None:
    m = phase1_mixture(cfg(intermediate={}, schedule="interleaved", multilingual_share=0.3))
    assert m.rates == {"mlm": 1.0}


def test_no_tasks_sequential_is_empty() -> None:
    m = phase1_mixture(cfg(intermediate={}, schedule="sequential"))
    assert not m and m.rates == {}
    assert not phase1_mixture(cfg(intermediate={}, schedule="interleaved", multilingual_share=0.0))


def test_phase1_mixture_sampled_matches_its_rates() -> None:
    m = phase1_mixture(cfg(intermediate={"mnli": 1.0, "sst2": 1.0}, schedule="interleaved",
                           multilingual_share=0.2))
    f = frequencies(draw(MixtureSampler(m, seed=0), 20_000))
    assert f == pytest.approx({"mnli": 0.4, "sst2": 0.4, "mlm": 0.2}, abs=0.015)
