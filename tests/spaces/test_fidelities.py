"""Cheap fidelities of a space (``search.fidelities``, ``asha.proxy``): validated at load, errors naming
the file and the key; a fidelity compresses the trial's schedule to fewer steps."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from xstilts.spaces import FidelitySettings, SpaceError, load_space, sample_random, to_trial_config

MIXTURES = Path(__file__).resolve().parents[2] / "spaces" / "mixtures.yaml"


def _mixtures_raw() -> dict:
    return yaml.safe_load(MIXTURES.read_text())


def _load(tmp_path: Path, raw: dict) -> object:
    p = tmp_path / "space.yaml"
    p.write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_space(p)


def test_mixtures_offers_two_cheap_fidelities_and_does_not_use_them_yet() -> None:
    spec = load_space(MIXTURES)
    assert list(spec.search.fidelities) == ["short", "shorter"]
    assert spec.search.asha.proxy is None and spec.search.proxy_fidelity() is None  # opt-in until measured
    tc = to_trial_config(spec, sample_random(spec, 0))
    short = spec.search.fidelities["short"].config(tc)
    assert (short.intermediate_steps, short.target_steps, short.eval_every, short.eval_max_examples) == (60, 60, 60, 100)
    # the same configuration: its mixture, schedule, rates and learning rate; only the budget differs
    assert short.model_dump(exclude={"intermediate_steps", "target_steps", "eval_every", "eval_max_examples"}) \
        == tc.model_dump(exclude={"intermediate_steps", "target_steps", "eval_every", "eval_max_examples"})


def test_a_fidelity_never_trains_more_than_the_trial_it_shortens() -> None:
    """Under ``--steps 40`` a fidelity of 60 steps is cut to the trial's 40; the cap only lowers."""
    spec = load_space(MIXTURES)
    tc = to_trial_config(spec, sample_random(spec, 1), intermediate_steps=40, target_steps=40, eval_every=20,
                         eval_max_examples=50)
    cheap = FidelitySettings(intermediate_steps=60, target_steps=10, eval_max_examples=100).config(tc)
    assert (cheap.intermediate_steps, cheap.target_steps, cheap.eval_every, cheap.eval_max_examples) == (40, 10, 10, 50)


def test_asha_proxy_turns_the_fidelity_on_for_asha_only(tmp_path: Path) -> None:
    raw = _mixtures_raw()
    raw["search"]["asha"] = {"proxy": "short"}
    spec = load_space(MIXTURES).model_validate({**_mixtures_raw(), "search": raw["search"]})
    assert spec.search.proxy_fidelity() == spec.search.fidelities["short"]
    assert spec.with_overrides(scheduler="none").search.proxy_fidelity() is None
    assert _load(tmp_path, raw).search.asha.proxy == "short"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "mutate, key, hint",
    [
        (lambda s: s["fidelities"]["short"].update(targt_steps=10), "search.fidelities.short.targt_steps",
         "unknown key"),
        (lambda s: s["fidelities"]["short"].pop("target_steps"), "search.fidelities.short.target_steps", "required"),
        (lambda s: s["fidelities"]["short"].update(intermediate_steps=0), "search.fidelities.short.intermediate_steps",
         "greater than or equal to 1"),
        (lambda s: s["fidelities"]["short"].update(target_steps=400), "search.fidelities.short.target_steps",
         "more than the trial's 300"),
        (lambda s: s["fidelities"]["short"].update(intermediate_steps=300, target_steps=300),
         "search.fidelities.short", "a cheap fidelity trains less"),
        (lambda s: s.update(asha={"proxy": "tiny"}), "asha.proxy", "not a fidelity of search.fidelities (offered: "
                                                                    "short, shorter)"),
        (lambda s: s.update(asha={"proxy": "short", "grace": 1}), "search.asha.grace", "unknown key"),
    ],
)
def test_bad_fidelities_name_the_file_and_the_key(tmp_path: Path, mutate, key: str, hint: str) -> None:
    raw = _mixtures_raw()
    mutate(raw["search"])
    with pytest.raises(SpaceError) as e:
        _load(tmp_path, raw)
    msg = str(e.value)
    assert str(tmp_path / "space.yaml") in msg and key in msg and hint in msg, msg


def test_check_cli_validates_the_fidelities(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``xstilts check`` loads the space first: a bad fidelity is refused with the file and the key."""
    from xstilts.search.cli import main

    raw = _mixtures_raw()
    raw["search"]["fidelities"]["short"]["evel_max_examples"] = 10
    p = tmp_path / "space.yaml"
    p.write_text(yaml.safe_dump(raw, sort_keys=False))
    monkeypatch.setenv("XSTILTS_HOME", str(tmp_path / "home"))  # restored after the test (main sets it)
    assert main(["--home", str(tmp_path / "home"), "check", str(p)]) == 2
