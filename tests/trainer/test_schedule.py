"""Mixture rate functions (proportional, temperature + cap, uniform, UniMax, annealed), checked mixtures,
and schedules: rates over steps, seeded per-step sampling that resumes exactly."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from xstilts.trainer.config import TrialConfig
from xstilts.trainer.mixture import (
    Mixture,
    check_mixture,
    proportional_rates,
    scaled_rates,
    stickland_murray_rates,
    uniform_rates,
    unimax_rates,
)
from xstilts.trainer.schedule import (
    Schedule,
    ScheduleSampler,
    Stage,
    format_rates,
    phase1_schedule,
    plot_schedule,
    rates_over_steps,
    task_mixture,
)

SIZES = {"mnli": 4000, "qqp": 1000, "ccg": 100}


# --- rate functions ---------------------------------------------------------------------------


def test_proportional_and_capped() -> None:
    assert proportional_rates(SIZES) == pytest.approx({"mnli": 0.8, "qqp": 0.2, "ccg": 0.02} | {
        k: v / 5100 for k, v in SIZES.items()})
    assert proportional_rates(SIZES, cap=1000) == pytest.approx({"mnli": 1000 / 2100, "qqp": 1000 / 2100,
                                                                 "ccg": 100 / 2100})


def test_temperature_with_cap() -> None:
    r = scaled_rates(SIZES, temperature=2.0, cap=1600)  # sqrt(min(n, K)): 40, 31.6, 10
    z = 40 + 1000**0.5 + 10
    assert r == pytest.approx({"mnli": 40 / z, "qqp": 1000**0.5 / z, "ccg": 10 / z})
    with pytest.raises(ValueError, match="cap K must be > 0"):
        scaled_rates(SIZES, 1.0, cap=0)


def test_uniform() -> None:
    assert uniform_rates(["a", "b", "c", "d"]) == {k: 0.25 for k in "abcd"}
    with pytest.raises(ValueError, match="no components"):
        uniform_rates([])


def test_unimax_caps_small_components_at_n_epochs_and_spreads_the_rest() -> None:
    # budget 3000: uniform would be 1000 each; ccg can take only 2 epochs = 200, the rest share 2800
    r = unimax_rates(SIZES, budget=3000, max_epochs=2)
    assert r == pytest.approx({"ccg": 200 / 3000, "qqp": 1400 / 3000, "mnli": 1400 / 3000})
    # a budget so large that every component is capped: shares follow size
    big = unimax_rates(SIZES, budget=10**9, max_epochs=1)
    assert big == pytest.approx(proportional_rates(SIZES))
    # a small budget: exactly uniform
    assert unimax_rates(SIZES, budget=30, max_epochs=1) == pytest.approx({k: 1 / 3 for k in SIZES})
    with pytest.raises(ValueError, match="no data: ccg"):
        unimax_rates({**SIZES, "ccg": 0}, budget=100)


def test_stickland_murray_anneals_from_proportional_toward_uniform() -> None:
    assert stickland_murray_rates(SIZES, 0.0) == pytest.approx(proportional_rates(SIZES))
    end = stickland_murray_rates(SIZES, 1.0, alpha_end=0.2)
    z = sum(n**0.2 for n in SIZES.values())
    assert end == pytest.approx({k: n**0.2 / z for k, n in SIZES.items()})
    mid = stickland_murray_rates(SIZES, 0.5)
    assert end["ccg"] > mid["ccg"] > proportional_rates(SIZES)["ccg"]


def test_check_mixture_names_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="unknown mixture components: qnli; known: mnli, qqp"):
        check_mixture({"mnli": 1, "qnli": 1}, known=["mnli", "qqp"])
    with pytest.raises(ValueError, match="negative mixture rates: {'qqp': -1.0}"):
        check_mixture({"mnli": 1.0, "qqp": -1.0})
    with pytest.raises(ValueError, match="all mixture rates are zero"):
        check_mixture({"mnli": 0.0})
    with pytest.raises(ValueError, match="mixture components with no data: ccg"):
        check_mixture({"mnli": 1, "ccg": 1}, sizes={"mnli": 10, "ccg": 0})
    assert check_mixture({"mnli": 3, "qqp": 1}, known=["mnli", "qqp"], sizes=SIZES).rates == {"mnli": 0.75, "qqp": 0.25}


# --- schedules ----------------------------------------------------------------------------------


def test_annealed_rates_move_between_the_end_points() -> None:
    a, b = Mixture({"mnli": 1.0}), Mixture({"mnli": 0.5, "mlm": 0.5})
    s = Schedule.annealed(a, b, steps=101)
    assert s.rates(0) == pytest.approx({"mnli": 1.0, "mlm": 0.0})
    assert s.rates(50) == pytest.approx({"mnli": 0.75, "mlm": 0.25})
    assert s.rates(100) == pytest.approx({"mnli": 0.5, "mlm": 0.5})
    c = Schedule.annealed(a, b, steps=101, curve="cosine")
    assert c.rates(50) == pytest.approx(s.rates(50)) and c.rates(10)["mlm"] < s.rates(10)["mlm"]
    with pytest.raises(ValueError, match="unknown anneal curve 'cubic'"):
        Schedule.annealed(a, b, 10, curve="cubic")


def test_stages_switch_at_their_boundaries_and_print_as_a_table(tmp_path: Path) -> None:
    s = Schedule("stages", (Stage(30, Mixture({"mnli": 1.0})), Stage(70, Mixture({"qqp": 1, "mlm": 1}))))
    assert s.total_steps == 100 and s.components == ["mnli", "qqp", "mlm"]
    assert s.rates(29) == {"mnli": 1.0} and s.rates(30) == {"qqp": 0.5, "mlm": 0.5}
    table = rates_over_steps(s, points=5)
    steps = [r["step"] for r in table]
    assert steps == sorted(steps) and {29.0, 30.0} <= set(steps)
    assert all(sum(v for k, v in r.items() if k != "step") == pytest.approx(1.0) for r in table)
    text = format_rates(s)
    assert text.splitlines()[0] == "stages: 30 steps [mnli 1.00] -> 70 steps [qqp 0.50, mlm 0.50]"
    assert "mnli" in text.splitlines()[1]
    png = plot_schedule(s, tmp_path / "s.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="at least one step"):
        Stage(0, Mixture({"a": 1.0}))


def test_schedule_sampler_follows_the_rates_per_step_and_resumes_exactly() -> None:
    s = Schedule("stages", (Stage(2000, Mixture({"a": 1.0})), Stage(4000, Mixture({"b": 3, "c": 1}))))
    sampler = ScheduleSampler(s, seed=7)
    draws = [sampler() for _ in range(6000)]
    assert set(draws[:2000]) == {"a"}
    tail = Counter(draws[2000:])
    assert tail["a"] == 0 and tail["b"] / 4000 == pytest.approx(0.75, abs=0.02)
    again = ScheduleSampler(s, seed=7)
    assert [again() for _ in range(6000)] == draws  # deterministic given the seed
    other = ScheduleSampler(s, seed=8)
    assert [other() for _ in range(6000)] != draws
    half = ScheduleSampler(s, seed=7)
    [half() for _ in range(2500)]
    state = half.state_dict()
    resumed = ScheduleSampler(s, seed=0)
    resumed.load_state_dict(state)
    assert [resumed() for _ in range(3500)] == draws[2500:]


def test_constant_schedule_draws_like_the_plain_mixture_sampler() -> None:
    from xstilts.trainer.mixture import MixtureSampler

    m = Mixture({"mnli": 0.49, "sst2": 0.21, "mlm": 0.3})
    a, b = MixtureSampler(m, 3), ScheduleSampler(Schedule.constant("interleaved", m, 500), 3)
    assert [a() for _ in range(500)] == [b() for _ in range(500)]  # old trials keep their draws


# --- schedules from a trial config ------------------------------------------------------------------


def cfg(**kw: Any) -> TrialConfig:
    return TrialConfig(**{"intermediate": {"mnli": 3.0, "qqp": 1.0, "ccg": 0.0}, **kw})


@pytest.mark.parametrize(("kind", "want"), [
    ("explicit", {"mnli": 0.75, "qqp": 0.25}),
    ("uniform", {"mnli": 0.5, "qqp": 0.5}),
    ("proportional", {"mnli": 0.8, "qqp": 0.2}),
    ("temperature", {"mnli": 2 / 3, "qqp": 1 / 3}),  # T=2: sqrt(4000) : sqrt(1000) = 2 : 1
])  # fmt: skip
def test_task_rates_kinds(kind: str, want: dict[str, float]) -> None:
    assert task_mixture(cfg(task_rates=kind), SIZES) == pytest.approx(want)


def test_every_schedule_kind_from_a_config() -> None:
    sizes = {**SIZES, "mlm": 500}
    seq = phase1_schedule(cfg(), sizes)
    assert seq is not None and seq.kind == "sequential" and seq.rates(0) == pytest.approx({"mnli": 0.75, "qqp": 0.25})
    inter = phase1_schedule(cfg(schedule="interleaved", multilingual_share=0.2), sizes)
    assert inter is not None and inter.rates(299) == pytest.approx({"mnli": 0.6, "qqp": 0.2, "mlm": 0.2})
    ann = phase1_schedule(cfg(schedule="annealed", multilingual_share=0.4), sizes)
    assert ann is not None and ann.rates(0)["mlm"] == 0.0 and ann.rates(299)["mlm"] == pytest.approx(0.4)
    st = phase1_schedule(cfg(schedule="stages", stages=[{"steps": 100, "mixture": {"qqp": 1}},
                                                        {"steps": 200, "mixture": {"mnli": 1, "mlm": 1}}]), sizes)
    assert st is not None and st.total_steps == 300 and st.rates(150) == {"mnli": 0.5, "mlm": 0.5}
    assert phase1_schedule(cfg(intermediate_steps=0), sizes) is None
    assert phase1_schedule(TrialConfig(), {}) is None  # no intermediate tasks: no phase 1


def test_a_task_with_no_data_is_an_error_naming_it() -> None:
    with pytest.raises(ValueError, match="stage 2: mixture components with no data: ccg"):
        phase1_schedule(cfg(schedule="stages", stages=[{"steps": 100, "mixture": {"qqp": 1}},
                                                       {"steps": 200, "mixture": {"ccg": 1}}]), {**SIZES, "ccg": 0})
    with pytest.raises(ValueError, match="no data: qqp"):
        phase1_schedule(cfg(), {**SIZES, "qqp": 0})
