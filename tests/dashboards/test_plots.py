"""Pure plot helpers, checked without drawing (and the figures render)."""

from __future__ import annotations

import math

import pytest

from xstilts.dashboards.plots import (
    best_so_far,
    mixture_phases,
    plot_best_so_far,
    plot_mixture_schedule,
    plot_task_language_heatmap,
    plot_zero_shot,
    png_bytes,
    task_language_matrix,
    zero_shot_scores,
)

CASES = [
    {"schedule": "sequential", "tasks.mnli": 1, "tasks.sst2": 1, "ratio.mnli": 0.7, "ratio.sst2": 0.3},
    {"schedule": "sequential", "tasks.mnli": 1, "tasks.sst2": 0, "ratio.mnli": 1.0, "ratio.sst2": 0.0},
    {"schedule": "interleaved", "tasks.mnli": 1, "tasks.sst2": 1, "ratio.mnli": 0.25, "ratio.sst2": 0.75,
     "multilingual_share": 0.4, "language_temperature": 3.0},
    {"schedule": "interleaved", "tasks.mnli": 0, "tasks.sst2": 1, "ratio.mnli": 0.0, "ratio.sst2": 1.0,
     "multilingual_share": 0.1, "language_temperature": 1.0},
    {"schedule": "annealed", "tasks.mnli": 1, "tasks.sst2": 1, "ratio.mnli": 0.6, "ratio.sst2": 0.4,
     "multilingual_share": 0.5, "multilingual_share_start": 0.0, "anneal_curve": "cosine"},
    {"schedule": "annealed", "tasks.mnli": 1, "tasks.sst2": 0, "ratio.mnli": 1.0, "ratio.sst2": 0.0,
     "multilingual_share": 0.2, "multilingual_share_start": 0.4, "anneal_curve": "linear"},
    {"schedule": "interleaved", "tasks.mnli": 1, "tasks.sst2": 1, "ratio.mnli": 0.9, "ratio.sst2": 0.1,
     "multilingual_share": 0.3, "task_rates": "uniform"},
    {"schedule": "stages", "tasks.mnli": 1, "tasks.sst2": 1, "ratio.mnli": 0.5, "ratio.sst2": 0.5,
     "stages": [{"steps": 100, "mixture": {"mnli": 1.0}}, {"steps": 200, "mixture": {"sst2": 1.0, "mlm": 1.0}}]},
]


def _trial_config(params: dict, fixed: dict):
    from xstilts.dashboards.mlflow_logging import resolved_trial_config
    from xstilts.trainer.config import TrialConfig

    return TrialConfig.model_validate(resolved_trial_config({**params, **fixed}))


@pytest.mark.parametrize("params", CASES, ids=lambda p: f"{p['schedule']}-{p.get('task_rates', 'explicit')}")
def test_mixture_phases_follow_the_trainers_phase1_schedule(params: dict) -> None:
    from xstilts.trainer.schedule import phase1_schedule

    fixed = {"intermediate_steps": 300, "target_steps": 200, "target_tasks": ["xnli"]}
    phases = mixture_phases({**params, **fixed})
    schedule = phase1_schedule(_trial_config(params, fixed))
    assert schedule is not None and schedule.total_steps == 300
    for step in (0, 1, 99, 100, 150, 298, 299):
        phase = next(p for p in phases if p.start <= step < p.start + p.steps)
        got = {("mlm" if k.startswith("mlm") else k): v for k, v in phase.at(step).items() if v > 0}
        want = {k: v for k, v in schedule.rates(step).items() if v > 0}
        assert got == pytest.approx(want), step
    target = phases[-1]
    assert target.rates == {"target: xnli": 1.0} and (target.start, target.steps) == (300, 200)


def test_mixture_phases_read_mlflow_strings_and_skip_an_empty_phase_one() -> None:
    phases = mixture_phases({"schedule": "interleaved", "ratio.mnli": "0.5", "ratio.sst2": "0.5", "tasks.mnli": "1",
                             "tasks.sst2": "1", "multilingual_share": "0.2", "language_temperature": "2.0",
                             "intermediate_steps": "40", "target_steps": "40", "target_tasks": "xnli"})
    assert phases[0].rates == pytest.approx({"mnli": 0.4, "sst2": 0.4, "mlm (multilingual, T=2)": 0.2})
    assert [p.steps for p in phases] == [40, 40]
    only_target = mixture_phases({"schedule": "sequential", "intermediate_steps": 0, "target_steps": 10})
    assert [p.name for p in only_target] == ["target, English"]


def test_zero_shot_scores_split_dev_and_test() -> None:
    m = {"zero_shot/xnli/xb": 0.5, "zero_shot/xnli/xa": 0.6, "en/xnli": 0.8, "zero_shot/xnli": 0.55,
         "zero_shot/avg": 0.55, "test/zero_shot/xnli/xa": 0.58, "test/en/xnli": 0.79, "train/loss": 1.0,
         "zero_shot/pawsx/xa": float("nan")}
    assert zero_shot_scores(m) == {"xnli": {"en": 0.8, "xa": 0.6, "xb": 0.5}}
    assert list(zero_shot_scores(m)["xnli"]) == ["en", "xa", "xb"]
    assert zero_shot_scores(m, "test") == {"xnli": {"en": 0.79, "xa": 0.58}}
    tasks, langs, vals = task_language_matrix({"xnli": {"en": 0.8, "xa": 0.6}, "pawsx": {"xb": 0.7}})
    assert tasks == ["pawsx", "xnli"] and langs == ["en", "xa", "xb"]
    assert vals[1][:2] == [0.8, 0.6] and math.isnan(vals[1][2])


def test_best_so_far_accumulates_trial_seconds() -> None:
    pts = [(10.0, 0.4), (5.0, None), (20.0, 0.3), (10.0, 0.6)]
    assert best_so_far(pts, "max") == [(10.0, 0.4), (15.0, 0.4), (35.0, 0.4), (45.0, 0.6)]
    assert best_so_far(pts, "min") == [(10.0, 0.4), (15.0, 0.4), (35.0, 0.3), (45.0, 0.3)]
    assert best_so_far([(3.0, None)]) == []


def test_figures_render_to_png() -> None:
    m = {"zero_shot/xnli/xa": 0.6, "en/xnli": 0.8, "zero_shot/xnli": 0.6, "test/zero_shot/xnli/xa": 0.5}
    figs = [plot_mixture_schedule(CASES[2]), plot_zero_shot(m),
            plot_best_so_far([("a", 10.0, 0.4, "completed"), ("b", 5.0, None, "failed")], "zero_shot/avg"),
            plot_task_language_heatmap({"xnli": {"en": 0.8, "xa": 0.6}}, "best", {"xnli": {"en": 0.7, "xa": 0.5}},
                                       "baseline")]
    for f in figs:
        assert png_bytes(f).startswith(b"\x89PNG")


def test_best_so_far_starts_when_the_first_scored_trial_ended() -> None:
    fig = plot_best_so_far([("a", 5.0, None, "failed"), ("b", 10.0, 0.4, "pruned"), ("c", 20.0, 0.6, "completed")],
                           "zero_shot/avg")
    (line,) = fig.axes[0].lines
    assert list(line.get_xdata()) == [15.0, 35.0] and list(line.get_ydata()) == [0.4, 0.6]  # nothing before 15 s
