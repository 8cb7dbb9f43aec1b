"""trainer.config: typed trial configs; every mistake is an error that names the file and the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from xstilts.trainer.config import ConfigError, TinyModelSpec, TrialConfig, TrialRuntime, load_trial_config


def write(tmp_path: Path, text: str, name: str = "trial.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def config_error(path: Path, **overrides: Any) -> str:
    with pytest.raises(ConfigError) as info:
        load_trial_config(path, overrides or None)
    msg = str(info.value)
    assert str(path) in msg, msg
    return msg


# --- the model itself -----------------------------------------------------------------------


def test_defaults_are_valid() -> None:
    c = TrialConfig()
    assert c.schedule == "sequential" and c.multilingual_share == 0.0
    assert c.target_tasks == ["xnli"] and c.intermediate == {}
    assert c.tiny == TinyModelSpec()


def test_unknown_keys_are_rejected() -> None:
    with pytest.raises(ValidationError, match="learning_rat"):
        TrialConfig(learning_rat=0.1)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="layerz"):
        TrialConfig(tiny={"layerz": 3})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"intermediate": {"qnli": 1.0}}, "unknown intermediate task 'qnli'; known: anli, ccg, commonsenseqa, cosmosqa, hellaswag, mnli, qqp, squad, sst2"),
        ({"intermediate": {"xnli": 1.0}}, "unknown intermediate task 'xnli'; known: anli, ccg, commonsenseqa, cosmosqa, hellaswag, mnli, qqp, squad, sst2"),  # a target
        ({"target_tasks": ["mnli"]}, "unknown target task 'mnli'; known: bucc, mlqa, panx, pawsx, tatoeba, tydiqa, udpos, xnli, xquad"),
        ({"target_tasks": []}, "at least one target task"),
        ({"target_tasks": ["udpos"], "translate_train_languages": ["xa"]},
         "no translate-train data for udpos (tasks that have it: mlqa, pawsx, tydiqa, xnli, xquad)"),
        ({"translate_train_languages": ["en"]}, "English is always trained on"),
        ({"benchmark": "xtreme", "model": "xlm-roberta-base", "eval_clean": True}, "exist only in synth"),
        ({"intermediate": {"mnli": 1.0, "sst2": -0.5}}, "ratio of 'sst2' is negative (-0.5)"),
        ({"intermediate": {"mnli": 0.0, "sst2": 0.0}}, "all intermediate ratios are zero"),
        ({"schedule": "sequential", "multilingual_share": 0.2}, "multilingual_share must be 0"),
        ({"schedule": "sideways"}, "'sequential', 'interleaved', 'annealed' or 'stages'"),
        ({"schedule": "stages"}, "schedule 'stages' needs a non-empty 'stages' list"),
        ({"schedule": "stages", "intermediate_steps": 10, "stages": [{"steps": 4, "mixture": {"mnli": 1}}]},
         "the stages add up to 4 steps but intermediate_steps is 10"),
        ({"schedule": "interleaved", "stages": [{"steps": 300, "mixture": {"mnli": 1}}]},
         "'stages' is only read by schedule 'stages'"),
        ({"schedule": "stages", "stages": [{"steps": 300, "mixture": {"qnli": 1}}]}, "unknown stage component 'qnli'"),
        ({"schedule": "stages", "stages": [{"steps": 300, "mixture": {"mnli": -1}}]}, "rate of 'mnli' is negative"),
        ({"schedule": "stages", "stages": [{"steps": 300, "mixture": {"mnli": 0}}]}, "all stage rates are zero"),
        ({"task_rates": "sqrt"}, "'explicit', 'proportional', 'temperature', 'uniform' or 'unimax'"),
        ({"examples_cap": 0}, "greater than or equal to 1"),
        ({"grad_accum": 0}, "greater than or equal to 1"),
        ({"bf16": "yes"}, "'auto', 'on' or 'off'"),
        ({"schedule": "interleaved", "multilingual_share": 1.0}, "less than 1"),
        ({"language_temperature": 0.0}, "greater than 0"),
        ({"target_steps": 0}, "greater than or equal to 1"),
    ],
)
def test_invalid_values_are_rejected(kw: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValidationError) as info:
        TrialConfig(**kw)
    assert needle in str(info.value)


XT = {"benchmark": "xtreme", "model": "xlm-roberta-base"}


@pytest.mark.parametrize(
    ("kw", "key", "needle"),
    [
        ({"benchmark": "xtreme"}, "model", "'tiny' is made from the synth corpora"),
        ({"benchmark": "xtreme", "model": "tiny"}, "model", "name a real checkpoint"),
        ({**XT, "eval_languages": ["de", "xx"]}, "eval_languages",
         "unknown language(s) ['xx'] for xnli on benchmark 'xtreme'; allowed: ar, bg, de"),
        ({"eval_languages": ["en", "klingon"]}, "eval_languages", "unknown language(s) ['klingon']"),
        ({**XT, "target_tasks": ["xnli", "pawsx"], "eval_languages": ["sw"]}, "eval_languages",
         "pawsx has none of ['sw'] but en"),
        ({"eval_languages": ["en", "xz"]}, "eval_languages", "xnli has none of ['en', 'xz'] but en and xz"),
        ({**XT, "translate_train_languages": ["de"]}, "translate_train_languages",
         "no translate-train data for xnli on benchmark 'xtreme' (tasks that have it: pawsx)"),
        ({**XT, "target_tasks": ["pawsx"], "translate_train_languages": ["sw"]}, "translate_train_languages",
         "pawsx has no translate-train data in ['sw'] (it has: de, es, fr, ja, ko, zh)"),
    ],
)
def test_what_the_data_cannot_give_is_refused_at_load_naming_the_key(kw: dict[str, Any], key: str,
                                                                      needle: str) -> None:
    with pytest.raises(ValidationError) as info:
        TrialConfig(**kw)
    (err,) = info.value.errors()
    assert err["loc"] == (key,) and needle in err["msg"], err


def test_unset_eval_languages_means_every_language_of_each_target() -> None:
    c = TrialConfig(**XT, target_tasks=["xnli", "udpos", "tatoeba"])
    assert len(c.languages("xnli", "test")) == 15 and c.languages("xnli", "test")[0] == "en"
    assert "th" in c.languages("udpos", "test") and "th" not in c.languages("udpos", "dev")  # no Thai dev set
    assert "en" not in c.languages("tatoeba", "test") and len(c.languages("tatoeba", "test")) == 35
    synth = TrialConfig(target_tasks=["xnli", "bucc"])
    assert synth.languages("xnli", "dev") == ["en", "xa", "xb", "xc", "xd", "xe", "xz"]
    assert synth.languages("bucc", "dev") == ["xa", "xb", "xc", "xd", "xe", "xz"]
    chosen = TrialConfig(**XT, target_tasks=["xnli", "pawsx"], eval_languages=["de", "sw"])
    assert chosen.languages("xnli", "dev") == ["en", "de", "sw"] and chosen.languages("pawsx", "dev") == ["en", "de"]


def test_english_may_be_listed_for_targets_without_it() -> None:
    c = TrialConfig(target_tasks=["bucc", "tatoeba"], eval_languages=["en", "xa"])
    assert c.languages("bucc", "test") == ["xa"]  # retrieval pairs a language with English: nothing to score


def test_translate_train_on_the_hub_is_pawsx_translated_train() -> None:
    c = TrialConfig(**XT, target_tasks=["pawsx", "tatoeba"], translate_train_languages=["de", "ja"])
    assert c.translate_train_languages == ["de", "ja"]  # retrieval is never trained: nothing to translate


def test_interleaved_with_a_share_is_valid() -> None:
    c = TrialConfig(intermediate={"mnli": 2, "sst2": 1}, schedule="interleaved", multilingual_share=0.3)
    assert c.intermediate == {"mnli": 2.0, "sst2": 1.0}  # ratios are kept as given (normalised later)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_ratio_is_rejected(bad: float) -> None:
    with pytest.raises(ValidationError):
        TrialConfig(intermediate={"mnli": bad, "sst2": 1.0})


# --- load_trial_config -------------------------------------------------------------------------


def test_typo_key_names_the_file_and_the_key(tmp_path: Path) -> None:
    p = write(tmp_path, "intermediate: {mnli: 1.0}\nlearning_rat: 0.001\n")
    msg = config_error(p)
    assert "learning_rat: unknown key" in msg


def test_nested_typo_key_names_its_dotted_path(tmp_path: Path) -> None:
    p = write(tmp_path, "tiny:\n  layers: 2\n  layerz: 3\n")
    assert "tiny.layerz: unknown key" in config_error(p)


def test_every_error_of_a_file_is_listed(tmp_path: Path) -> None:
    p = write(tmp_path, "batchsize: 8\ntarget_steps: 0\nintermediate: {qnli: 1}\n")
    msg = config_error(p)
    assert "batchsize: unknown key" in msg
    assert "target_steps:" in msg
    assert "unknown intermediate task 'qnli'; known: anli, ccg, commonsenseqa, cosmosqa, hellaswag, mnli, qqp, squad, sst2" in msg


def test_unknown_tasks_in_a_file_list_the_known_ones(tmp_path: Path) -> None:
    assert "intermediate: Value error, unknown intermediate task 'qnli'; known: anli, ccg, commonsenseqa, cosmosqa, hellaswag, mnli, qqp, squad, sst2" in config_error(
        write(tmp_path, "intermediate: {qnli: 1.0}\n"))
    assert "unknown target task 'pawz'; known: bucc, mlqa, panx, pawsx, tatoeba, tydiqa, udpos, xnli, xquad" in config_error(write(tmp_path, "target_tasks: [pawz]\n"))


def test_negative_ratio_in_a_file(tmp_path: Path) -> None:
    assert "ratio of 'mnli' is negative (-1.0)" in config_error(write(tmp_path, "intermediate: {mnli: -1}\n"))


def test_sequential_with_a_multilingual_share_in_a_file(tmp_path: Path) -> None:
    msg = config_error(write(tmp_path, "schedule: sequential\nmultilingual_share: 0.2\n"))
    assert "sequential" in msg and "multilingual_share must be 0" in msg


def test_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    msg = config_error(write(tmp_path, "intermediate: {mnli: 1.0\nschedule: [interleaved\n"))
    assert "not valid YAML" in msg


@pytest.mark.parametrize(("text", "kind"), [("- mnli\n- sst2\n", "list"), ("just words\n", "str"), ("3\n", "int")])
def test_non_mapping_yaml_names_the_file(tmp_path: Path, text: str, kind: str) -> None:
    msg = config_error(write(tmp_path, text))
    assert f"expected a mapping of keys at the top level, got {kind}" in msg


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    msg = config_error(tmp_path / "nope.yaml")
    assert "no such config file" in msg


def test_empty_file_gives_the_defaults(tmp_path: Path) -> None:
    assert load_trial_config(write(tmp_path, ""))[0] == TrialConfig()
    assert load_trial_config(write(tmp_path, "# only a comment\n"))[0] == TrialConfig()


def test_overrides_apply_on_top_of_the_file_and_are_validated(tmp_path: Path) -> None:
    p = write(tmp_path, "intermediate: {mnli: 1.0}\nlearning_rate: 0.01\nseed: 3\n")
    c, _ = load_trial_config(p, {"learning_rate": 0.002, "schedule": "interleaved", "multilingual_share": 0.5})
    assert (c.learning_rate, c.seed, c.schedule, c.multilingual_share) == (0.002, 3, "interleaved", 0.5)
    assert "learning_rat: unknown key" in config_error(p, learning_rat=0.1)
    assert "multilingual_share must be 0" in config_error(p, multilingual_share=0.5)  # still sequential


def test_a_valid_file_round_trips(tmp_path: Path) -> None:
    original = TrialConfig(
        intermediate={"mnli": 0.7, "sst2": 0.3}, schedule="interleaved", multilingual_share=0.25,
        language_temperature=3.5, learning_rate=5e-4, intermediate_steps=40, target_steps=60,
        batch_size=16, eval_every=20, eval_languages=["en", "xa", "xz"], eval_max_examples=100,
        tiny=TinyModelSpec(pretrain_steps=30, pretrain_batch=16), seed=4, zero_stage=2,
    )
    p = write(tmp_path, yaml.safe_dump({**original.model_dump(), "threads": 1, "output_dir": "out"}))
    loaded, runtime = load_trial_config(p)
    assert runtime == TrialRuntime(threads=1, output_dir="out")
    assert loaded == original
    assert loaded.model_dump() == original.model_dump()
    assert isinstance(loaded.tiny, TinyModelSpec) and loaded.tiny.key() == original.tiny.key()
