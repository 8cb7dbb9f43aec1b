"""Searchers and schedulers without running trials: each searcher proposes valid points of the
space through the real ``OptunaSearch``; grid and seeds come first and in order; NSGA-II keeps a
Pareto front; GP copes with the conditional, categorical default space; PBT stays inside the
space and its lineage becomes a ``stages`` schedule the trainer accepts."""

from __future__ import annotations

import json
import os
from pathlib import Path

import optuna
import pytest
import yaml

from xstilts.search.mixlaw import MixlawSampler
from xstilts.search.runner import SearchError, TrialNamer, resolve_run_dir, trial_name
from xstilts.search.schedulers import (
    lineage_stages,
    make_scheduler,
    n_reports,
    pbt_lineage,
    renormalise_ratios,
    stages_yaml,
)
from xstilts.search.searchers import (
    make_sampler,
    make_search_alg,
    optuna_state,
    pbt_population,
    top_quarter,
)
from xstilts.spaces import SearchSpec, load_space, to_trial_config

SPACES = Path(__file__).resolve().parents[2] / "spaces"


def _spec(**search) -> SearchSpec:
    raw = yaml.safe_load((SPACES / "default.yaml").read_text())
    raw["search"].update(search)
    return SearchSpec.model_validate(raw)


def _drive(alg, spec: SearchSpec, n: int, score) -> list[dict]:
    """Ask ``n`` points from a real ``OptunaSearch`` and tell it ``score(config)`` for each."""
    configs = []
    for i in range(n):
        cfg = alg.suggest(f"t{i}")
        assert cfg is not None
        to_trial_config(spec, cfg)  # every proposal is a valid trial
        configs.append(cfg)
        alg.on_trial_complete(f"t{i}", result={**score(cfg), "trial_done": 1})  # a final report
    return configs


@pytest.mark.parametrize("searcher, cls", [("tpe", optuna.samplers.TPESampler), ("gp", optuna.samplers.GPSampler),
                                           ("random", optuna.samplers.RandomSampler), ("mixlaw", MixlawSampler)])
def test_each_searcher_proposes_valid_points_seed_first(tmp_path: Path, searcher: str, cls: type) -> None:
    spec = _spec(searcher=searcher, trials=12)
    assert isinstance(make_sampler(spec), cls)
    alg = make_search_alg(spec, "s", tmp_path / "s.journal")

    def score(c: dict) -> dict:  # a smooth objective that prefers interleaved, mnli-heavy mixtures
        return {"zero_shot/avg": 0.3 + 0.2 * c.get("ratio.mnli", 0) + 0.1 * (c["schedule"] == "interleaved")}

    configs = _drive(alg, spec, 12, score)
    assert configs[0]["intermediate_tasks"] == "mnli" and configs[0]["schedule"] == "sequential"  # the seed
    assert configs[0]["learning_rate"] == pytest.approx(1e-3) and configs[0]["trial_number"] == 0
    assert [c["trial_number"] for c in configs] == list(range(12))
    study = optuna.load_study(study_name="s", storage=alg._storage)  # the journal holds the history
    assert len([t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]) == 12
    assert study.best_value == pytest.approx(max(score(c)["zero_shot/avg"] for c in configs))


def _report(alg, trial_id: str, values: list[float]) -> None:
    for i, v in enumerate(values, start=1):
        alg.on_trial_result(trial_id, {"zero_shot/avg": v, "training_iteration": i})


def test_a_trial_stopped_early_is_pruned_in_optuna_with_its_intermediate_values(tmp_path: Path) -> None:
    """ASHA stops a trial after its first rung: the journal holds it PRUNED (valued at its last
    intermediate value, so TPE ranks it by step), not COMPLETE with an early score as if final;
    a trial that raised is FAIL, one that reported its end COMPLETE."""
    spec = _spec(trials=6)
    alg = make_search_alg(spec, "p", tmp_path / "p.journal")
    for tid in ("done", "stopped", "crashed", "silent"):
        assert alg.suggest(tid) is not None
    _report(alg, "done", [0.40, 0.55, 0.60])
    alg.on_trial_complete("done", result={"zero_shot/avg": 0.60, "trial_done": 1, "training_iteration": 3})
    # as Tune does: the result ASHA stops the trial on goes to on_trial_complete only, not on_trial_result
    _report(alg, "stopped", [0.45])
    alg.on_trial_complete("stopped", result={"zero_shot/avg": 0.38, "training_iteration": 2})
    _report(alg, "crashed", [0.30])
    alg.on_trial_complete("crashed", result={"zero_shot/avg": 0.30, "training_iteration": 1}, error=True)
    alg.on_trial_complete("silent", result=None)
    alg.on_trial_complete("stopped", result={"zero_shot/avg": 0.45})  # a second completion changes nothing

    S = optuna.trial.TrialState
    study = optuna.load_study(study_name="p", storage=alg._storage)
    by = {t.number: t for t in study.trials}
    assert [by[i].state for i in range(4)] == [S.COMPLETE, S.PRUNED, S.FAIL, S.FAIL]
    assert by[0].value == pytest.approx(0.60) and by[0].intermediate_values == {1: 0.40, 2: 0.55, 3: 0.60}
    assert by[1].value == pytest.approx(0.38) and by[1].intermediate_values == {1: 0.45, 2: 0.38}
    assert by[2].value is None and by[3].value is None
    assert study.best_trial.number == 0  # the pruned trial's early score is not a result


def test_optuna_state_of_a_last_report() -> None:
    assert optuna_state({"zero_shot/avg": 0.5, "trial_done": 1}, False) == "complete"
    assert optuna_state({"zero_shot/avg": 0.5}, False) == "pruned"
    assert optuna_state({"zero_shot/avg": 0.5, "trial_done": 1}, True) == "fail"
    assert optuna_state(None, False) == "fail" and optuna_state({}, False) == "fail"


def test_the_searcher_pickles_by_reference(tmp_path: Path) -> None:
    import pickle  # Tune saves the searcher; a class pickle cannot find by name would fail there

    alg = make_search_alg(_spec(trials=4), "k", tmp_path / "k.journal")
    assert type(pickle.loads(pickle.dumps(type(alg)))) is type(type(alg))
    assert pickle.loads(pickle.dumps(type(alg))) is type(alg)


def test_tpe_models_the_top_quarter_and_pickles() -> None:
    # Optuna's default split (ceil(0.1 n)) is one "good" trial until 11 have finished
    assert [top_quarter(n) for n in (1, 4, 5, 11, 12, 20, 100, 1000)] == [1, 1, 2, 3, 3, 5, 25, 25]
    sampler = make_sampler(_spec(trials=12))
    assert sampler._gamma is top_quarter and sampler._n_startup_trials == 4
    import pickle  # Ray checkpoints the searcher (and so the sampler) by pickling it

    assert pickle.loads(pickle.dumps(sampler))._gamma is top_quarter


def test_grid_runs_every_point_once_in_order(tmp_path: Path) -> None:
    spec = load_space(SPACES / "paper_grid.yaml")
    alg = make_search_alg(spec, "g", tmp_path / "g.journal")
    configs = _drive(alg, spec, spec.n_trials(), lambda c: {"zero_shot/avg": 0.5})
    members = spec.parameters["intermediate_tasks"].members  # type: ignore[union-attr]
    assert [c["intermediate_tasks"] for c in configs] == [*members, "+".join(members)]
    assert all(to_trial_config(spec, c).schedule == "sequential" for c in configs)
    last = to_trial_config(spec, configs[-1])
    assert last.intermediate == pytest.approx({m: 1 / len(members) for m in members}, abs=1e-5)


def test_nsga2_keeps_a_pareto_front_of_two_objectives(tmp_path: Path) -> None:
    spec = _spec(searcher="nsga2", objectives={"zero_shot/avg": "max", "zero_shot/worst": "max"}, trials=10)
    alg = make_search_alg(spec, "n", tmp_path / "n.journal")
    assert alg.metric == ["zero_shot/avg", "zero_shot/worst"]
    _drive(alg, spec, 10, lambda c: {"zero_shot/avg": c["learning_rate"] * 100,
                                     "zero_shot/worst": 1 - c["learning_rate"] * 100})
    study = optuna.load_study(study_name="n", storage=alg._storage)
    assert len(study.directions) == 2 and len(study.best_trials) >= 2  # a real trade-off: several optima


def test_asha_and_fifo() -> None:
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    asha = make_scheduler(_spec(asha={"grace_period": 2, "reduction_factor": 3}), reports=6)
    assert isinstance(asha, ASHAScheduler) and asha._max_t == 6 and asha._reduction_factor == 3
    assert isinstance(make_scheduler(_spec(scheduler="none"), 6), FIFOScheduler)
    assert isinstance(make_scheduler(_spec(), 1), FIFOScheduler)  # one evaluation: nothing to stop on


def test_pbt_population_and_explore_stay_inside_the_space() -> None:
    from ray.tune.schedulers import PopulationBasedTraining

    spec = _spec(searcher="random", scheduler="pbt", trials=6)
    pop = pbt_population(spec)
    assert len(pop) == 6 and pop[0]["intermediate_tasks"] == "mnli" and [p["trial_number"] for p in pop] == list(range(6))
    pbt = make_scheduler(spec, reports=3)
    assert isinstance(pbt, PopulationBasedTraining)
    assert set(pbt._hyperparam_mutations) == {"ratio.mnli", "ratio.sst2", "multilingual_share"}
    cfg = {"tasks.mnli": 1, "tasks.sst2": 1, "ratio.mnli": 1.7, "ratio.sst2": 0.0, "schedule": "sequential",
           "multilingual_share": 0.3}
    out = pbt._custom_explore_fn(cfg)
    assert out["ratio.mnli"] + out["ratio.sst2"] == pytest.approx(1.0) and out["ratio.sst2"] > 0
    assert to_trial_config(spec, {**out, "intermediate_tasks": "mnli+sst2", "learning_rate": 1e-3}
                           ).multilingual_share == 0.0  # inactive under sequential: ignored
    assert renormalise_ratios({"tasks.mnli": 1, "tasks.sst2": 0, "ratio.mnli": 0.3, "ratio.sst2": 0.9}) == {
        "tasks.mnli": 1, "tasks.sst2": 0, "ratio.mnli": 1.0, "ratio.sst2": 0.0}


def test_pbt_lineage_becomes_a_stages_schedule_the_trainer_accepts(tmp_path: Path) -> None:
    from xstilts.trainer.config import TrialConfig

    spec = _spec(searcher="random", scheduler="pbt")
    base = {"intermediate_tasks": "mnli+sst2", "tasks.mnli": 1, "tasks.sst2": 1, "schedule": "interleaved",
            "language_temperature": 2.0, "learning_rate": 1e-3}
    a = {**base, "ratio.mnli": 0.5, "ratio.sst2": 0.5, "multilingual_share": 0.2}
    b = {**base, "ratio.mnli": 0.8, "ratio.sst2": 0.2, "multilingual_share": 0.2}
    c = {**base, "ratio.mnli": 0.8, "ratio.sst2": 0.2, "multilingual_share": 0.5}
    policy = tmp_path / "pbt_policy_w.txt"  # Ray's format: [target tag, clone tag, target it, clone it, old, new]
    policy.write_text("\n".join(json.dumps(x) for x in [
        ["3_x", "0_y", 1, 1, {"other": 1}, {"other": 2}],  # an earlier chain, overwritten later
        ["2_v", "5_u", 1, 1, a, b],  # v cloned u at iteration 1 (its file is copied into w's) ...
        ["1_w", "2_v", 2, 2, b, c],  # ... then w cloned v at iteration 2
    ]))
    initial, changes = pbt_lineage(policy)
    assert initial == a and changes == [(1, b), (2, c)]
    stages = lineage_stages(spec, initial, changes, steps_per_iteration=100, total_steps=300)
    assert [s["steps"] for s in stages] == [100, 100, 100]
    assert stages[0]["mixture"] == pytest.approx({"mnli": 0.4, "sst2": 0.4, "mlm": 0.2})
    assert stages[2]["mixture"] == pytest.approx({"mnli": 0.4, "sst2": 0.1, "mlm": 0.5})
    text = stages_yaml({"benchmark": "synth", "target_tasks": ["xnli"]}, stages, "replay")
    assert text.startswith("# replay\n")
    tc = TrialConfig.model_validate(yaml.safe_load(text))
    assert tc.schedule == "stages" and tc.intermediate_steps == 300 and len(tc.stages or []) == 3


def test_trial_names_carry_the_optuna_number_and_what_they_try() -> None:
    cfg = {"trial_number": 7, "schedule": "interleaved", "multilingual_share": 0.3, "language_temperature": 3.21,
           "tasks.mnli": 1, "tasks.sst2": 0, "tasks.squad": 1}
    assert trial_name(cfg, 7) == "t0007-interleaved-m0.30-T3.2-mnli+squad"

    class T:
        trial_id, config = "abc", cfg

    assert TrialNamer()(T()) == "t0007-interleaved-m0.30-T3.2-mnli+squad"


def test_resolve_run_dir(tmp_path: Path) -> None:
    runs = [("default", "default-20260101-000000", 100), ("default", "default-20260102-000000", 200),
            ("default-big", "default-big-20260103-000000", 300), ("default", "my-rerun", 150)]
    for experiment, run, started in runs:
        (tmp_path / run).mkdir()
        state = tmp_path / run / "xstilts_search.json"
        state.write_text(json.dumps({"experiment": experiment, "run_name": run}))
        os.utime(state, (started, started))
    os.utime(tmp_path / "default-20260101-000000", (999, 999))  # an older run resumed since: its folder is newest
    assert resolve_run_dir("default-20260101-000000", tmp_path).name == "default-20260101-000000"
    assert resolve_run_dir("my-rerun", tmp_path).name == "my-rerun"
    # the latest started run of search `default`: not `default-big`'s run, nor the older run resumed lately
    assert resolve_run_dir("default", tmp_path).name == "default-20260102-000000"
    assert resolve_run_dir("default-big", tmp_path).name == "default-big-20260103-000000"
    with pytest.raises(SearchError, match="no search run 'nope'"):
        resolve_run_dir("nope", tmp_path)


@pytest.mark.parametrize("args, msg", [
    (["search", "--searcher", "nsga2"], "needs `objectives`"),
    (["search", "--scheduler", "pbt"], "set searcher: random"),
    (["search", "--retry-failed"], "goes with --resume"),
    (["search", "--resume", "x", "--trials", "3"], "drop the space and the overrides"),
    (["search", "--resume", "never-ran"], "no search run 'never-ran'"),
    (["search", "--set", "target_step=3"], "target_step"),
])
def test_cli_errors_before_ray_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str], args: list[str], msg: str) -> None:
    import ray

    from xstilts.search.cli import main

    monkeypatch.setenv("XSTILTS_HOME", str(tmp_path))
    assert main(args) == 2
    err = capsys.readouterr().err
    assert msg in err, err
    assert not ray.is_initialized()


def test_report_count_includes_phase_one_probes() -> None:
    assert n_reports(300, 100) == 3
    assert n_reports(300, 100, intermediate_steps=300, probe_every=100) == 5  # probes at 100 and 200
    assert n_reports(300, 100, intermediate_steps=0, probe_every=100) == 3
    assert n_reports(250, 100, intermediate_steps=301, probe_every=100) == 6


def test_a_change_after_phase_one_leaves_the_exported_mixture_alone() -> None:
    spec = load_space(SPACES / "interleave.yaml")
    sub = spec.subset()
    assert sub is not None
    a = {"schedule": "interleaved", "multilingual_share": 0.0,
         **{f"tasks.{m}": int(m in ("mnli", "sst2")) for m in sub[1].members},
         **{f"ratio.{m}": 0.5 if m in ("mnli", "sst2") else 0.0 for m in sub[1].members}}
    b = {**a, "ratio.mnli": 0.9, "ratio.sst2": 0.1}
    stages = lineage_stages(spec, a, [(1, b), (5, {**b, "ratio.mnli": 0.1})], steps_per_iteration=100,
                            total_steps=300)
    assert [s["steps"] for s in stages] == [100, 200]  # iteration 5 is a target-phase report
    assert stages[1]["mixture"] == pytest.approx({"mnli": 0.9, "sst2": 0.1})
