"""The flat-parameter codec: what a searcher, Ray and MLflow see of a mixture, and back."""

from __future__ import annotations

import pytest

from xstilts.trainer import codec
from xstilts.trainer.config import TrialConfig


def test_a_mixture_round_trips_through_flat_keys() -> None:
    flat = codec.encode_mixture(["mnli", "sst2", "qqp"], {"mnli": 3.0, "qqp": 1.0})
    assert flat == {"tasks.mnli": 1, "ratio.mnli": 0.75, "tasks.sst2": 0, "ratio.sst2": 0.0,
                    "tasks.qqp": 1, "ratio.qqp": 0.25}
    assert codec.decode_mixture(flat) == pytest.approx({"mnli": 0.75, "qqp": 0.25})
    assert codec.chosen_tasks(flat) == ["mnli", "qqp"] and codec.candidate_tasks(flat) == ["mnli", "sst2", "qqp"]
    with pytest.raises(ValueError, match="not candidate tasks"):
        codec.encode_mixture(["mnli"], {"sst2": 1.0})


def test_decoding_reads_mlflow_strings_and_a_resolved_config() -> None:
    strings = {"tasks.mnli": "1", "tasks.sst2": "0", "ratio.mnli": "1.0", "ratio.sst2": "0.0"}
    assert codec.decode_mixture(strings) == {"mnli": 1.0}
    assert codec.decode_mixture({"intermediate": {"mnli": 2.0, "sst2": 2.0}}) == {"mnli": 0.5, "sst2": 0.5}
    assert codec.decode_mixture({"schedule": "sequential"}) == {}


def test_the_simplex_construction_encodes_rates_exactly() -> None:
    rates = {"a": 0.2, "b": 0.5, "c": 0.3}
    assert codec.rates_from_uniforms(codec.uniforms_from_rates(rates)) == pytest.approx(rates)
    assert codec.rates_from_uniforms({"a": 0.4}) == {"a": 1.0}  # one task: all of it
    with pytest.raises(ValueError, match="positive sum"):
        codec.uniforms_from_rates({"a": 0.0})


def test_subsets_and_bookkeeping_keys() -> None:
    assert codec.subset_value(["mnli", "sst2"]) == "mnli+sst2" and codec.subset_value([]) == "none"
    assert codec.subset_members("mnli+sst2") == ["mnli", "sst2"] and codec.subset_members("none") == []
    assert all(codec.is_bookkeeping(k) for k in ("tasks.mnli", "_u.ratios.mnli", "trial_number"))
    assert not codec.is_bookkeeping("ratio.mnli") and not codec.is_bookkeeping("schedule")
    assert codec.without_raw({"_u.r.a": 0.3, "ratio.a": 1.0}) == {"ratio.a": 1.0}
    assert codec.mixture_text({"mnli": 4, "sst2": 1}) == "mnli 0.80 / sst2 0.20" and codec.mixture_text({}) == "none"


def test_renormalised_clips_and_keeps_unchosen_tasks_at_zero() -> None:
    out = codec.renormalised({"tasks.a": 1, "tasks.b": 1, "tasks.c": 0, "ratio.a": 1.7, "ratio.b": 0.0,
                              "ratio.c": 0.4, "schedule": "sequential"}, min_rate=0.02)
    assert out["ratio.a"] + out["ratio.b"] == pytest.approx(1.0) and out["ratio.b"] > 0
    assert out["ratio.c"] == 0.0 and out["schedule"] == "sequential"


def test_trial_fields_give_a_valid_trial_config() -> None:
    flat = {**codec.encode_mixture(["mnli", "sst2"], {"mnli": 1.0}), "schedule": "interleaved",
            "multilingual_share": 0.3, "trial_number": 4, "_u.ratios.mnli": 0.2}
    cfg = TrialConfig.model_validate(codec.trial_fields(flat, TrialConfig.model_fields))
    assert cfg.intermediate == {"mnli": 1.0} and cfg.multilingual_share == 0.3
