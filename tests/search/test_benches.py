"""The benchmark helpers compute what their docstrings say, and ``bench transfer`` runs end to end
(at smoke size: its figures are measured by ``xstilts bench transfer --json``, never in a test)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from xstilts.search.bench import (
    best_so_far_curve,
    bootstrap_fraction,
    compute_to_reach,
    headline_fraction,
    mean_curve,
    rung_predictiveness,
    trial_records,
    zero_overhead_makespan,
)
from xstilts.trainer.synth import SYNTH_VERSION


def _write_trial(root: Path, name: str, lines: list[dict[str, object]]) -> None:
    (root / name).mkdir()
    (root / name / "result.json").write_text("".join(json.dumps(x) + "\n" for x in lines))


def test_trial_records_curve_and_compute_to_reach(tmp_path: Path) -> None:
    """Ray's result.json lines -> per-trial seconds and final value (pruned trials have none)."""
    _write_trial(tmp_path, "a", [{"time_total_s": 5, "timestamp": 1, "zero_shot/avg": 0.4},
                                 {"time_total_s": 10, "timestamp": 3, "zero_shot/avg": 0.5, "trial_done": 1}])
    _write_trial(tmp_path, "b", [{"time_total_s": 4, "timestamp": 2, "zero_shot/avg": 0.9}])  # pruned
    _write_trial(tmp_path, "c", [{"time_total_s": 6, "timestamp": 4, "zero_shot/avg": 0.7, "trial_done": 1}])
    (tmp_path / "not-a-trial.txt").write_text("x")
    recs = trial_records(tmp_path, "zero_shot/avg")
    assert [(r["trial"], r["seconds"], r["value"]) for r in recs] == [("b", 4.0, None), ("a", 10.0, 0.5),
                                                                       ("c", 6.0, 0.7)]
    curve = best_so_far_curve(recs)
    assert curve == [(4.0, None), (14.0, 0.5), (20.0, 0.7)]
    assert compute_to_reach(curve, 0.5) == 14.0
    assert compute_to_reach(curve, 0.7) == 20.0
    assert compute_to_reach(curve, 0.71) is None
    assert best_so_far_curve(recs, mode="min")[-1] == (20.0, 0.5)


def test_mean_curve_averages_seeds_and_holds_each_seeds_last_best() -> None:
    a = [(2.0, None), (4.0, 0.5), (6.0, 0.7)]
    b = [(3.0, 0.4), (5.0, 0.6)]
    # 2, 3: a has no completed trial yet; from 5 on b holds its last best (0.6)
    assert mean_curve([a, b]) == [(4.0, pytest.approx(0.45)), (5.0, pytest.approx(0.55)), (6.0, pytest.approx(0.65))]
    assert compute_to_reach(mean_curve([a, b]), 0.6) == 6.0
    assert mean_curve([]) == []


def test_headline_fraction_and_its_bootstrap_over_seeds() -> None:
    """The headline reads the seeds together; the bootstrap redraws which seeds ran (seed i of the arm
    with seed i of random search) and says how far the headline moves."""
    rand = [[(10.0, 0.5), (25.0, 0.6)], [(10.0, 0.7), (25.0, 0.8)]]  # mean best 0.7, mean compute 25
    good = [[(5.0, 0.9)], [(5.0, 0.9)]]
    assert headline_fraction(good, rand) == pytest.approx(5 / 25)
    # random search against itself: its mean curve is 0.6 at 10 and reaches 0.7 at 25
    assert headline_fraction(rand, rand) == pytest.approx(1.0)
    assert headline_fraction(rand[:1], [[(10.0, 0.5), (30.0, 0.55)]]) == pytest.approx(25 / 30)
    assert headline_fraction([[(5.0, 0.1)], [(5.0, 0.2)]], rand) is None  # never reaches random's best
    assert headline_fraction(good, [[(10.0, None)], [(10.0, 0.5)]]) is None  # random found nothing on a seed

    b = bootstrap_fraction(good, rand, resamples=200)
    assert b["p10"] == b["p50"] == b["p90"] == pytest.approx(0.2) and b["share_le_0.5"] == 1.0
    # an arm that matches random's best on seed 1 only: resamples of seed 0 alone never reach it
    mixed = [[(5.0, 0.1)], [(5.0, 0.8)]]
    b = bootstrap_fraction(mixed, rand, resamples=400, seed=1)
    assert b["p10"] is not None and b["p90"] is None and 0.1 < b["share_le_0.5"] < 0.9
    assert bootstrap_fraction(mixed, rand, resamples=400, seed=1) == b  # seeded: the same draw twice


def test_zero_overhead_makespan_replays_the_trials_in_creation_order() -> None:
    """Each trial, in its number's order, takes the first slot to free: the idle tail stays in."""
    recs = [{"trial": f"t{n:04d}-x", "seconds": s} for n, s in [(2, 1.0), (0, 4.0), (1, 2.0), (3, 5.0)]]
    # slot A: t0 0-4; slot B: t1 0-2, t2 2-3, t3 3-8  -> 8 (Σ/2 would say 6)
    assert zero_overhead_makespan(recs, 2) == 8.0
    assert zero_overhead_makespan(recs, 1) == 12.0
    assert zero_overhead_makespan(recs, 4) == 5.0
    assert zero_overhead_makespan([], 2) == 0.0


def test_rung_predictiveness_ranks_early_values_against_final_ones() -> None:
    hist = [([0.1, 0.5, 0.9], [2.0, 3.0, 4.0]), ([0.2, 0.4, 0.8], [1.0, 3.0, 4.0]), ([0.3, 0.3, 0.7], [2.0, 2.0, 4.0]),
            ([0.9, 0.1], [1.0, 2.0])]  # a pruned trial's shorter history is left out
    rungs = rung_predictiveness(hist)
    assert [r["report"] for r in rungs] == [1, 2, 3]
    assert rungs[0]["spearman_with_final"] == pytest.approx(-1.0) and rungs[1]["spearman_with_final"] == pytest.approx(1.0)
    assert rungs[0]["time_fraction"] == pytest.approx((0.5 + 0.25 + 0.5) / 3, abs=1e-3) and rungs[2]["time_fraction"] == 1.0
    assert rung_predictiveness(hist[:2]) == []  # too few trials to rank


@pytest.mark.slow
def test_bench_transfer_cli_prints_one_json_object_at_smoke_size(tiny_home: Path) -> None:
    """``xstilts bench transfer --quick --json`` end to end, as a user runs it."""
    from tests.conftest import run_cli
    from xstilts.trainer.tasks import INTERMEDIATE_TASKS, TARGET_TASKS

    r = run_cli(["bench", "transfer", "--quick", "--json"], tiny_home, timeout=1200)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout)  # stdout is the JSON object alone; progress went to stderr
    assert set(out["zero_shot"]) == set(TARGET_TASKS)
    langs = [x for x in out["languages"] if x != "en"]
    for t, by_lang in out["zero_shot"].items():
        assert set(langs) <= set(by_lang), t
        assert all(0.0 <= v <= 1.0 for v in by_lang.values()), t
    assert set(out["clean_zero_shot"]) == {"xnli", "pawsx"}
    assert out["clean_n"] == dict.fromkeys(langs, 500)
    assert set(out["intermediate_effect"]) == set(INTERMEDIATE_TASKS[:2])
    assert set(out["translate_train_xnli"]) == set(langs)
    assert out["chance"]["xnli"] == pytest.approx(1 / 3)
    assert out["overlap"]["xz"] == 0.0 and out["overlap"]["en"] == 1.0
    # the validity table: a row per target, its figures the zero-shot table's, its flag the four rules
    assert set(out["validity"]) == set(TARGET_TASKS)
    for t, row in out["validity"].items():
        assert set(row["checks"]) == {"learnable", "graded", "control_gap", "below_ceiling"}
        assert row["valid"] == all(row["checks"].values())
        assert row["control"] == out["zero_shot"][t]["xz"]
        assert row["languages"] == {x: out["zero_shot"][t][x] for x in out["objective"]["languages"]}
        assert (row["en"] is None) == (t in ("bucc", "tatoeba"))
    assert out["all_targets_valid"] == all(r["valid"] for r in out["validity"].values())
    # effects per target: the default target and a retrieval one at smoke size, each intermediate task
    by_target = out["intermediate_effect_by_target"]
    assert set(by_target) == {"xnli", "tatoeba"}
    assert all(set(v["effect"]) == set(INTERMEDIATE_TASKS[:2]) for v in by_target.values())
    assert out["intermediate_effect"] == by_target["xnli"]["effect"]  # the default objective is XNLI's
    assert out["paper_comparison"]["ranked_by_mean_effect"] in (["xnli", "tatoeba"], ["tatoeba", "xnli"])
    assert set(out["targets"]) == {"xnli_mean_ge_chance_plus_0.15", "xnli_spearman_ge_0.7",
                                   "mean_over_targets_spearman_ge_0.7", "every_target_valid",
                                   "an_effect_ge_+2pts_beyond_2se", "an_effect_le_-2pts_beyond_2se",
                                   "default_trial_le_30s", "pretraining_le_6min"}
    # 7 trained targets, the 2 retrieval ones in one trial, translate-train, 2 effects × 2 seeds on
    # each of 2 targets, and their baselines: XNLI's seed 0 is its zero-shot run, seed 1 one more;
    # Tatoeba's, alone, one more (at full size the effects have both retrieval targets, as the
    # zero-shot run), on one worker per core
    assert out["seconds"]["trials"] == 7 * 1 + 1 + 1 + 1 + 1 + 2 * 2 * 2
    assert out["effect_seeds"] == 2 and all(math.isfinite(v) for v in by_target["tatoeba"]["se"].values())
    # each (intermediate task, seed)'s phase 1 is trained once, by its first trial, and the other target's
    # trial takes it from the cache (one that starts before its maker has finished trains it too)
    p1 = out["seconds"]
    assert p1["phase1_trained"] + p1["phase1_from_cache"] == 2 * 2 * 2
    assert p1["phase1_trained"] >= 2 * 2 and p1["phase1_from_cache"] >= 1
    assert len(list((tiny_home / "bench" / "phase1-cache").glob("*.pt"))) == 2 * 2
    assert out["seconds"]["workers"] == min(8, os.cpu_count() or 1)
    assert out["synth_version"] == SYNTH_VERSION
    assert 0 < out["seconds"]["effect_trial_max"] <= out["seconds"]["per_trial_max"]
    assert out["seconds"]["default_trial"] > 0  # the default search's first point, timed on its own
    # every finished trial was kept: a second run (as after a crash) takes them all and runs none
    again = run_cli(["bench", "transfer", "--quick", "--json", "--only", "zero_shot"], tiny_home, timeout=1200)
    assert again.returncode == 0, again.stderr[-3000:]
    second = json.loads(again.stdout)
    assert second["seconds"]["trials"] == 0 and second["seconds"]["trials_taken_from_ledger"] == 19
    assert second["zero_shot"] == out["zero_shot"]


@pytest.mark.slow
def test_bench_search_cli_prints_one_json_object_at_smoke_size(tiny_home: Path) -> None:
    """``xstilts bench search --quick --json --only overhead`` end to end: a real search, its
    overhead figures (measured by the full-size run, never in a test). The efficiency and
    rank_agreement parts' smoke run is tests/search/test_bench_arms.py's; live_efficiency's is heavy
    (below, ~150 s)."""
    from tests.conftest import run_cli

    r = run_cli(["bench", "search", "--quick", "--json", "--only", "overhead"], tiny_home, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout)  # stdout is the JSON object alone; progress went to stderr
    assert out["parts"] == ["overhead"] and "rank_agreement" not in out and "efficiency" not in out
    assert out["quick"] is True and out["overhead"]["repeats"] == 1
    (run,) = out["overhead"]["runs"]
    assert run["trials"] == 2 and run["completed"] + run["pruned"] == 2
    assert run["fit_s"] > 0 and run["trial_seconds_sum"] > 0
    assert out["overhead_ratio"] == run["overhead_ratio"] < 1
    # no search can beat the zero-overhead replay, and the replay never beats perfect packing
    assert run["packed_wall_s"] <= run["ideal_wall_s"] <= run["fit_s"]
    assert out["overhead_ratio"] <= out["overhead_ratio_perfect_packing"]
    # the work folder keeps the results and the tracking DB, not the trial checkpoints
    work = Path(out["work_dir"])
    assert out["checkpoints_removed_mb"] > 0 and not list(work.rglob("checkpoint_*"))
    assert list(work.glob("ray/bench-overhead*/t0000-*/result.json")) and (work / "bench.db").is_file()

    bad = run_cli(["bench", "trainer", "--trials", "3"], tiny_home)
    assert bad.returncode != 0 and "--trials is an option of 'bench search'" in bad.stderr


@pytest.mark.heavy
def test_bench_search_live_efficiency_at_smoke_size(tiny_home: Path) -> None:
    """``xstilts bench search --quick --json --only live_efficiency``: the arms' real searches, end to end."""
    from tests.conftest import run_cli

    r = run_cli(["bench", "search", "--quick", "--json", "--only", "live_efficiency"], tiny_home, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout)
    eff = out["live_efficiency"]
    assert eff["seeds"] == [0, 1] and set(eff["arms"]) == {"tpe_asha", "random", "grid"}
    for arm in ("tpe_asha", "random"):
        for p in eff["arms"][arm]["per_seed"]:
            spent = [s for s, _ in p["curve"]]
            assert len(spent) == 3 and spent == sorted(spent)  # cumulative trial-seconds, one point per trial
    # random search is measured against another seed's random search, the others against their own seed's
    assert [p["random_seed"] for p in eff["arms"]["random"]["per_seed"]] == [1, 0]
    assert [p["random_seed"] for p in eff["arms"]["tpe_asha"]["per_seed"]] == [0, 1]
    assert set(out["compute_to_random_best"]) == {"tpe_asha", "random", "grid"}
    for arm in ("tpe_asha",):  # the headline's spread over which seeds ran
        assert eff["arms"][arm]["bootstrap"]["resamples"] == 1000
        assert 0 <= eff["arms"][arm]["bootstrap"]["share_le_0.5"] <= 1
    rnd = eff["arms"]["random"]
    assert rnd["compute_to_random_best"] is not None and rnd["compute_to_random_best"] > 0  # its own end value
    assert rnd["mean_curve"][-1][1] == pytest.approx(eff["random_best_mean"], abs=1e-4)
    assert [r["report"] for r in eff["rungs"]] == [1, 2] and eff["rungs"][-1]["spearman_with_final"] == 1.0
    assert eff["config_sd"] >= 0
    # the noise floor: two points of the space, each trained with 2 seeds (real trials, as Ray tasks)
    assert set(eff["seed_spread"]) == {"seed_point", "first_random_point"}
    for point in eff["seed_spread"].values():
        assert len(point["values"]) == 2 and all(0 <= v <= 1 for v in point["values"]) and point["sd"] >= 0

    work = Path(out["work_dir"])
    assert list(work.glob("ray/bench-random-*/t0000-*/result.json"))
