"""One rule, three users: for every shipped space, the trainer's phase-1 schedule, the mixture plot
(drawn from the params MLflow stores, as strings) and the PBT lineage export agree on the mixture
of every seed point and of a sample of the space, all through the one codec and ``phase1_schedule``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from xstilts.dashboards.plots import mixture_phases
from xstilts.search.schedulers import lineage_stages
from xstilts.spaces import (
    load_space,
    optuna_points,
    sample_random,
    to_trial_config,
    trial_params,
    with_constants,
)
from xstilts.trainer.codec import decode_mixture
from xstilts.trainer.schedule import phase1_mixture, phase1_schedule

SPACES = sorted((Path(__file__).resolve().parents[2] / "spaces").glob("*.yaml"))


def _configs(space: Path) -> list[dict[str, Any]]:
    spec = load_space(space)
    points = [with_constants(spec, p, number=i) for i, p in enumerate(optuna_points(spec))]
    return points + [sample_random(spec, seed, number=100 + seed) for seed in range(12)]


@pytest.mark.parametrize("space", SPACES, ids=lambda p: p.stem)
def test_trainer_plot_and_pbt_export_agree_on_every_point(space: Path) -> None:
    spec = load_space(space)
    for config in _configs(space):
        tc = to_trial_config(spec, config)
        assert decode_mixture(config) == pytest.approx(decode_mixture(tc.model_dump()))
        schedule = phase1_schedule(tc)
        as_logged = {k: str(v) for k, v in trial_params(spec, config).items()}  # what MLflow gives back
        phases = mixture_phases(as_logged)
        if schedule is None:
            assert [p.name for p in phases] == ["target, English"], config
            continue
        n = schedule.total_steps
        for step in sorted({0, 1, n // 3, n // 2, n - 2, n - 1}):
            phase = next(p for p in phases if p.start <= step < p.start + p.steps)
            drawn = {("mlm" if k.startswith("mlm") else k): v for k, v in phase.at(step).items() if v > 0}
            assert drawn == pytest.approx({k: v for k, v in schedule.rates(step).items() if v > 0}), (config, step)
        exported = lineage_stages(spec, config, [], steps_per_iteration=n, total_steps=n)
        assert len(exported) == 1 and exported[0]["steps"] == n
        assert exported[0]["mixture"] == pytest.approx(phase1_mixture(tc).rates, abs=1e-6), config
