"""Space files: validation (errors name the file and the key) and the define-by-run function."""

from __future__ import annotations

import pickle
from pathlib import Path

import optuna
import pytest
import yaml

from xstilts.spaces import (
    SpaceError,
    default_space_path,
    define_by_run,
    load_space,
    sample_random,
    to_trial_config,
    trial_params,
)

SHIPPED = sorted(Path(__file__).resolve().parents[2].joinpath("spaces").glob("*.yaml"))


def _write(tmp_path: Path, raw: dict) -> Path:
    p = tmp_path / "space.yaml"
    p.write_text(yaml.safe_dump(raw, sort_keys=False))
    return p


def _assert_bad_space(tmp_path: Path, mutate, key: str, hint: str) -> None:
    """The mutated default space fails to load, naming the file, the key and a hint."""
    raw = _default_raw()
    mutate(raw)
    p = _write(tmp_path, raw)
    with pytest.raises(SpaceError) as e:
        load_space(p)
    msg = str(e.value)
    assert str(p) in msg and key in msg and hint in msg, msg


def _default_raw() -> dict:
    return yaml.safe_load(default_space_path().read_text())


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_space_loads_and_says_how_to_launch(path: Path) -> None:
    spec = load_space(path)
    assert spec.source == str(path)
    head = "".join(path.read_text().splitlines(keepends=True)[:5])
    assert "xstilts search" in head


def test_default_space_is_packaged_and_is_the_default() -> None:
    assert load_space(None).name == "default"
    assert default_space_path().exists()


@pytest.mark.parametrize(
    "mutate, key, hint",
    [
        (lambda r: r.update(serch={}), "serch", "unknown key"),
        (lambda r: r["search"].update(trails=3), "search.trails", "unknown key"),
        (lambda r: r["trial"].update(learning_rat=1e-3), "learning_rat", "unknown key"),
        (lambda r: r["parameters"]["learning_rate"].update(low=1.0, high=0.1), "learning_rate", "must be < high"),
        (lambda r: r["parameters"]["learning_rate"].update(low=0.0), "learning_rate", "log scale needs low > 0"),
        (lambda r: r["parameters"]["intermediate_tasks"].update(members=["mnli", "squadd"]), "intermediate_tasks",
         "unknown intermediate task"),
        (lambda r: r["parameters"]["intermediate_tasks"].update(members=["mnli"], min_size=2), "intermediate_tasks",
         "impossible sizes"),
        (lambda r: r["parameters"]["ratios"].update(over="nothing"), "ratios.over", "simplex over nothing"),
        (lambda r: r["parameters"]["multilingual_share"].update(when={"schedul": "interleaved"}),
         "multilingual_share.when", "categorical parameter"),
        (lambda r: r["parameters"]["multilingual_share"].update(when={"schedule": "annealed"}),
         "multilingual_share.when", "not a choice"),
        (lambda r: r["parameters"].update(dropoutt={"type": "float", "low": 0.0, "high": 0.5}), "dropoutt",
         "not a trial setting"),
        (lambda r: r["parameters"].update(lr={"type": "uniform", "low": 0.0, "high": 0.5}), "lr", "type"),
        (lambda r: r["search"].update(searcher="bayes"), "search.searcher", "tpe"),
    ],
)
def test_bad_spaces_name_the_file_and_the_key(tmp_path: Path, mutate, key: str, hint: str) -> None:
    _assert_bad_space(tmp_path, mutate, key, hint)


def test_unconditional_multilingual_share_with_sequential_is_caught_before_ray(tmp_path: Path) -> None:
    raw = _default_raw()
    del raw["parameters"]["multilingual_share"]["when"]
    with pytest.raises(SpaceError, match="sequential"):
        load_space(_write(tmp_path, raw))


def test_missing_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(SpaceError, match="no such space file"):
        load_space(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(SpaceError, match="not valid YAML"):
        load_space(bad)


def test_define_by_run_with_optuna_respects_conditions_and_the_simplex() -> None:
    spec = load_space(None)
    space = define_by_run(spec)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=1))
    seen_schedules = set()
    for _ in range(40):
        trial = study.ask()
        constants = space(trial)
        config = {**trial.params, **constants}
        chosen = config["intermediate_tasks"].split("+")
        assert {t for t in ("mnli", "sst2") if config[f"tasks.{t}"]} == set(chosen)
        assert sum(config[f"ratio.{t}"] for t in chosen) == pytest.approx(1.0, abs=1e-5)
        assert all(config[f"ratio.{t}"] == 0 for t in ("mnli", "sst2") if t not in chosen)
        interleaved = config["schedule"] == "interleaved"
        assert ("multilingual_share" in trial.params) == interleaved
        assert ("language_temperature" in trial.params) == interleaved
        if len(chosen) == 1:
            assert not any(k.startswith("_u.") for k in trial.params)
        tc = to_trial_config(spec, config)
        assert set(tc.intermediate) == set(chosen)
        assert tc.multilingual_share == (config["multilingual_share"] if interleaved else 0.0)
        params = trial_params(spec, config)
        assert not any(k.startswith("_u.") for k in params) and "multilingual_share" in params
        seen_schedules.add(config["schedule"])
        study.tell(trial, 0.5)
    assert seen_schedules == {"sequential", "interleaved"}


def test_the_simplex_is_uniform_under_random_sampling() -> None:
    """Dirichlet(1,1) via -log(u): the first ratio over two tasks is uniform on [0, 1]."""
    raw = _default_raw()
    raw["parameters"]["intermediate_tasks"]["min_size"] = 2
    raw.pop("points_to_evaluate")
    from xstilts.spaces import SearchSpec

    spec = SearchSpec.model_validate(raw)
    xs = [sample_random(spec, s)["ratio.mnli"] for s in range(2000)]
    quartiles = [sum(q / 4 <= x < (q + 1) / 4 for x in xs) / len(xs) for q in range(4)]
    assert all(abs(q - 0.25) < 0.04 for q in quartiles), quartiles


def test_define_by_run_pickles_for_ray_checkpoints() -> None:
    space = define_by_run(load_space(None))
    again = pickle.loads(pickle.dumps(space))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    assert again(study.ask())


# ---- the schema's later parts: sizes, seeds, grids, objectives, PBT, languages ------------------

@pytest.mark.parametrize(
    "mutate, key, hint",
    [
        (lambda r: r["parameters"]["intermediate_tasks"].update(sizes=[1, 5]), "intermediate_tasks",
         "impossible sizes"),
        (lambda r: r["parameters"]["intermediate_tasks"].update(always=["qqp"]), "intermediate_tasks",
         "not members"),
        (lambda r: r.update(points_to_evaluate=[{"schedul": "sequential"}]), "points_to_evaluate.0",
         "not parameters"),
        (lambda r: r.update(points_to_evaluate=[{"intermediate_tasks": "mnli", "schedule": "sequential",
                                                 "multilingual_share": 0.3}]), "points_to_evaluate.0",
         "inactive"),
        (lambda r: r.update(points_to_evaluate=[{"intermediate_tasks": "mnli+sst2", "ratios": {"mnli": 1.0}}]),
         "points_to_evaluate.0", "a rate for each chosen member"),
        (lambda r: r.update(points_to_evaluate=[{"learning_rate": 1.0}]), "points_to_evaluate.0",
         "not a number in"),
        (lambda r: r.update(points_to_evaluate=[{"intermediate_tasks": "qqp"}]), "points_to_evaluate.0",
         "not members"),
        (lambda r: r["search"].update(searcher="grid"), "ratios", "cannot enumerate a simplex"),
        (lambda r: r["search"].update(searcher="nsga2"), "search", "needs `objectives`"),
        (lambda r: r["search"].update(objectives={"zero_shot/avg": "max"}), "objectives", "at least two"),
        (lambda r: r["search"].update(scheduler="pbt"), "search", "set searcher: random"),
        (lambda r: r["search"].update(scheduler="pbt", searcher="random", pbt={"mutate": ["dropoutt"]}),
         "search.pbt.mutate", "not a float/int parameter"),
        (lambda r: r["search"].update(time_budget_s=0), "search.time_budget_s", "greater than 0"),
        (lambda r: r["trial"].update(eval_languages=["en", "klingon"]), "eval_languages", "unknown language"),
        (lambda r: r["trial"].update(target_tasks=["xnlii"]), "target_tasks", "unknown target task"),
        (lambda r: r["parameters"]["schedule"].update(when={"schedule": "sequential"}), "schedule", "circular"),
        (lambda r: r["parameters"]["learning_rate"].update(grid=[1.0]), "learning_rate", "outside"),
        (lambda r: r["trial"].update(eval_dev=False), "eval_dev", "a search selects on dev scores"),
        (lambda r: r["parameters"].update(eval_dev={"type": "categorical", "choices": [True, False]}), "eval_dev",
         "a search selects on dev scores"),
    ],
)
def test_more_bad_spaces_name_the_file_and_the_key(tmp_path: Path, mutate, key: str, hint: str) -> None:
    _assert_bad_space(tmp_path, mutate, key, hint)


def test_subset_sizes_and_always() -> None:
    from xstilts.spaces import SubsetParam

    p = SubsetParam(type="subset", members=["mnli", "qqp", "sst2"], sizes=[1, 3])
    assert p.choices() == ["mnli", "qqp", "sst2", "mnli+qqp+sst2"]
    p = SubsetParam(type="subset", members=["mnli", "qqp", "sst2"], min_size=2, always=["sst2"])
    assert p.choices() == ["mnli+sst2", "qqp+sst2", "mnli+qqp+sst2"]
    assert p.canonical(["sst2", "mnli"]) == "mnli+sst2"
    with pytest.raises(ValueError, match="not an allowed subset"):
        p.canonical("mnli+qqp")
    assert SubsetParam(type="subset", members=["mnli"], min_size=0).choices() == ["none", "mnli"]


def test_seed_points_decode_to_exactly_the_given_rates() -> None:
    from xstilts.spaces import optuna_points, with_constants

    spec = load_space(Path(__file__).resolve().parents[2] / "spaces" / "interleave.yaml")
    pts = optuna_points(spec)
    assert len(pts) == 3 and "intermediate_tasks" not in pts[0]  # the subset "mnli+squad" as one flag per task
    assert {k: v for k, v in pts[0].items() if k.startswith("tasks.")} == {
        "tasks.mnli": 1, "tasks.qqp": 0, "tasks.squad": 1, "tasks.sst2": 0}
    cfg = with_constants(spec, pts[1])
    assert cfg["ratio.mnli"] == pytest.approx(0.5) and cfg["ratio.squad"] == pytest.approx(0.5)
    assert cfg["ratio.qqp"] == 0 and cfg["multilingual_share"] == 0.3
    tc = to_trial_config(spec, cfg)
    assert tc.schedule == "interleaved" and tc.intermediate == pytest.approx({"mnli": 0.5, "squad": 0.5})


def test_when_accepts_a_list_of_values(tmp_path: Path) -> None:
    raw = _default_raw()
    raw["parameters"]["schedule"]["choices"] = ["sequential", "interleaved"]
    raw["parameters"]["multilingual_share"]["when"] = {"schedule": ["interleaved"]}
    spec = load_space(_write(tmp_path, raw))
    for seed in range(20):
        c = sample_random(spec, seed)
        assert ("multilingual_share" in c) == (c["schedule"] == "interleaved")


def test_paper_grid_enumerates_each_task_and_all_together() -> None:
    from xstilts.spaces import grid_points

    spec = load_space(Path(__file__).resolve().parents[2] / "spaces" / "paper_grid.yaml")
    pts = grid_points(spec)
    subsets = [p["intermediate_tasks"] for p in pts]
    members = spec.parameters["intermediate_tasks"].members  # type: ignore[union-attr]
    assert subsets == [*members, "+".join(members)]
    assert spec.n_trials() == len(members) + 1
    assert spec.trial["schedule"] == "sequential" and "multilingual_share" not in spec.parameters


def test_grid_respects_conditions(tmp_path: Path) -> None:
    from xstilts.spaces import grid_points

    raw = _default_raw()
    raw["search"]["searcher"] = "grid"
    del raw["parameters"]["ratios"]
    raw["parameters"]["multilingual_share"]["grid"] = [0.2, 0.4]
    raw["parameters"]["language_temperature"]["grid"] = [1.0, 5.0]
    raw["parameters"]["learning_rate"]["grid"] = [1e-3]
    spec = load_space(_write(tmp_path, raw))
    pts = grid_points(spec)
    # 3 subsets x (1 sequential + 2 x 2 interleaved) x 1 learning rate
    assert len(pts) == 3 * 5 and len({tuple(sorted(p.items())) for p in pts}) == 15
    assert all(("multilingual_share" in p) == (p["schedule"] == "interleaved") for p in pts)


def test_objectives_set_the_primary_metric(tmp_path: Path) -> None:
    raw = _default_raw()
    raw["search"].update(searcher="nsga2", objectives={"zero_shot/worst": "max", "zero_shot/avg": "max"})
    spec = load_space(_write(tmp_path, raw))
    assert spec.search.metric == "zero_shot/worst"
    assert spec.search.objective_list() == (["zero_shot/worst", "zero_shot/avg"], ["max", "max"])
