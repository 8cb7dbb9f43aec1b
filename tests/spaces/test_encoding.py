"""The per-task encoding of a task subset: one flag ``tasks.<t>`` per task for the searcher, the subset
``"a+b"`` everywhere else, and every shipped space round-tripping through it."""

from __future__ import annotations

import random
from collections import Counter
from math import comb
from pathlib import Path
from typing import Any

import optuna
import pytest

from xstilts.spaces import (
    SearchSpec,
    SimplexParam,
    SubsetParam,
    define_by_run,
    grid_points,
    load_space,
    point_to_optuna,
    sample_random,
    to_trial_config,
    trial_params,
    with_constants,
)
from xstilts.trainer import codec

SHIPPED = sorted(Path(__file__).resolve().parents[2].joinpath("spaces").glob("*.yaml"))
optuna.logging.set_verbosity(optuna.logging.WARNING)


def _subset(**kw: Any) -> SubsetParam:
    return SubsetParam(type="subset", **kw)


def _file_terms(spec: SearchSpec, config: dict[str, Any]) -> dict[str, Any]:
    """A configuration written back as a seed point of the space file (the subset as ``"a+b"``)."""
    point: dict[str, Any] = {}
    for name, p in spec.parameters.items():
        if not p.is_active(point):
            continue
        if isinstance(p, SimplexParam):
            rates = codec.decode_mixture(config)
            if len(rates) > 1:
                point[name] = rates
        elif name in config:
            point[name] = config[name]
    return point


def _same_trial(a: Any, b: Any) -> None:
    da, db = a.model_dump(), b.model_dump()
    assert da.pop("intermediate") == pytest.approx(db.pop("intermediate"), abs=2e-6)
    assert da == db


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_space_round_trips_through_the_flags(path: Path) -> None:
    """Draws by a real Optuna study (coin flips per flag, so repairs happen too): the Optuna params alone
    give back the configuration; the configuration written as a seed point (``"a+b"``) gives back the
    same trial; what MLflow logs (strings) decodes to the same mixture."""
    spec = load_space(path)
    name, sub = spec.subset()  # type: ignore[misc]
    space = define_by_run(spec)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    for _ in range(25):
        trial = study.ask()
        constants = space(trial)
        config = {**trial.params, **constants}
        assert not any(k == name for k in trial.params)  # the searcher never sees the subset as one value
        assert set(k for k in trial.params if k.startswith("tasks.")) == {f"tasks.{m}" for m in sub.free()}
        chosen = codec.subset_members(config[name])
        assert config[name] in sub.choices() and codec.chosen_tasks(config) == chosen
        tc = to_trial_config(spec, config)
        assert list(tc.intermediate) == chosen
        assert with_constants(spec, trial.params, number=trial.number) == config  # flat keys -> the same config
        back = with_constants(spec, point_to_optuna(spec, _file_terms(spec, config)))
        _same_trial(to_trial_config(spec, back), tc)  # "a+b" and its rates -> the same trial
        logged = {k: str(v) for k, v in trial_params(spec, config).items()}
        assert logged[name] == config[name]
        assert codec.decode_mixture(logged) == pytest.approx(tc.intermediate, abs=2e-6)
        study.tell(trial, 0.0)
    for g in grid_points(spec) if spec.search.searcher == "grid" else []:
        cfg = with_constants(spec, point_to_optuna(spec, g))
        assert cfg[name] == g[name] and codec.chosen_tasks(cfg) == codec.subset_members(g[name])


def test_always_members_are_in_and_not_suggested() -> None:
    spec = SearchSpec.model_validate({"name": "a", "parameters": {
        "intermediate_tasks": {"type": "subset", "members": ["mnli", "qqp", "sst2"], "always": ["qqp"],
                               "max_size": 2},
        "ratios": {"type": "simplex", "over": "intermediate_tasks"}}})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(20):
        trial = study.ask()
        constants = define_by_run(spec)(trial)
        config = {**trial.params, **constants}
        assert "tasks.qqp" not in trial.params and config["tasks.qqp"] == 1
        assert config["intermediate_tasks"] in ("qqp", "mnli+qqp", "qqp+sst2")
        seen.add(config["intermediate_tasks"])
        study.tell(trial, 0.0)
    assert len(seen) == 3
    assert point_to_optuna(spec, {"intermediate_tasks": "qqp+sst2"}) == {"tasks.mnli": 0, "tasks.sst2": 1}


def test_random_draws_are_uniform_over_the_allowed_subsets() -> None:
    """Not one coin per task: over 8 tasks of sizes 1..3 a size-1 subset is 8 of 92, not 8 of 256."""
    p = _subset(members=["anli", "commonsenseqa", "cosmosqa", "hellaswag", "mnli", "qqp", "squad", "sst2"],
                max_size=3)
    assert p.allowed_sizes() == [1, 2, 3] and len(p.choices()) == 92
    rng = random.Random(0)
    n = 4600
    sizes = Counter(len(p.draw(rng)) for _ in range(n))
    for k in (1, 2, 3):  # within ~4 standard errors of C(8, k) / 92
        expect = n * comb(8, k) / 92
        assert abs(sizes[k] - expect) < 4 * (expect * (1 - expect / n)) ** 0.5, sizes
    grid = _subset(members=["anli", "ccg", "mnli", "qqp"], sizes=[1, 4])
    assert Counter(len(grid.draw(rng)) for _ in range(500))[4] in range(60, 150)  # 1 of 5 subsets: ~100


def test_sample_random_keeps_the_uniform_prior() -> None:
    spec = load_space(Path(__file__).resolve().parents[2] / "spaces" / "paper_grid.yaml")  # sizes [1, 9]
    sizes = Counter(len(codec.subset_members(sample_random(spec, s)["intermediate_tasks"])) for s in range(300))
    assert set(sizes) == {1, 9} and 10 <= sizes[9] <= 55  # all nine together: 1 of 10 subsets


@pytest.mark.parametrize("kw, proposed, allowed", [
    ({"max_size": 2}, ["a", "b", "c", "d"], {2}),
    ({"min_size": 2}, [], {2}),
    ({"min_size": 0}, [], {0}),
    ({"sizes": [1, 4]}, ["a", "b"], {1}),
    ({"sizes": [1, 4]}, ["a", "b", "c"], {4}),
    ({"always": ["qqp"], "max_size": 2}, ["a", "b", "c"], {2}),
])
def test_a_proposal_outside_the_sizes_is_repaired_to_the_nearest_allowed_subset(
        kw: dict[str, Any], proposed: list[str], allowed: set[int]) -> None:
    p = _subset(members=["anli", "ccg", "mnli", "qqp"], **kw)
    names = dict(zip("abcd", p.members, strict=True))
    chosen = [names[x] for x in proposed]
    out = p.repaired(chosen, random.Random(1))
    assert len(out) in allowed and codec.subset_value(out) in p.choices()
    assert set(p.always) <= set(out)
    kept = set(chosen) | set(p.always)
    assert kept <= set(out) or set(out) <= kept  # only added, or only dropped: the fewest changes
    assert out == p.repaired(chosen, random.Random(1))  # the same seed, the same repair
    ok = p.choices()[-1]
    assert p.repaired(codec.subset_members(ok), random.Random(2)) == codec.subset_members(ok)  # allowed: kept


def test_seed_points_written_as_subsets_become_flags() -> None:
    spec = load_space(Path(__file__).resolve().parents[2] / "spaces" / "mixtures.yaml")
    opt = point_to_optuna(spec, {"intermediate_tasks": "hellaswag+mnli", "ratios": {"mnli": 3, "hellaswag": 1},
                                 "schedule": "sequential"})
    assert {k for k, v in opt.items() if k.startswith("tasks.") and v} == {"tasks.hellaswag", "tasks.mnli"}
    assert sum(k.startswith("tasks.") for k in opt) == 8
    cfg = with_constants(spec, opt)
    assert cfg["intermediate_tasks"] == "hellaswag+mnli" and cfg["ratio.mnli"] == pytest.approx(0.75)
    with pytest.raises(ValueError, match="not an allowed subset"):
        point_to_optuna(spec, {"intermediate_tasks": "anli+mnli+qqp+squad"})  # max_size 3
