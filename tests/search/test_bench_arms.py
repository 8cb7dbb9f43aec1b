"""``bench search --only efficiency``: the arms replayed on a table of trials. The replay's rules are
checked on a table of known values written here (the real samplers, Ray's own ASHA, no training);
the table of real trials is built end to end by the smoke test in ``test_benches.py``; its figures
are measured by the full-size run, never in a test."""

from __future__ import annotations

import random
import statistics
from typing import Any

import pytest

from xstilts.search.bench_arms import ARMS, PROXY, Table, _nearest, _rows, arm_figures, replay, table_figures
from xstilts.search.bench_fidelity import mixtures_path
from xstilts.spaces import load_space, sample_random


def _table(quality: list[float], seeds: int = 4, noise: float = 0.02, outlier: float | None = None) -> tuple[Any, Table]:
    """A pool of mixtures.yaml's prior draws with known scores: configuration j scores ``quality[j]``
    + seeded noise at each seed (dev and test alike), reports at 1/3, 2/3 and the end of a 40 s run
    climbing to it, and a proxy of 9 s scoring it with more noise. ``outlier``: every configuration's
    test score at seed 0 is that (a seed no recommendation may be scored with, once read)."""
    spec = load_space(mixtures_path())
    rng = random.Random(5)
    configs = [sample_random(spec, j) for j in range(len(quality))]
    full, proxy = [], []
    for q in quality:
        fr, pr = [], []
        for s in range(seeds):
            v = q + rng.gauss(0, noise)
            fr.append({"dev": v, "test": outlier if (outlier is not None and s == 0) else v, "seconds": 40.0,
                       "reports": [[13.0, v - 0.2], [26.0, v - 0.1], [39.0, v]]})
            pr.append({"dev": v - 0.3 + rng.gauss(0, noise), "seconds": 9.0})
        full.append(fr)
        proxy.append(pr)
    table = Table(configs, list(range(seeds)), full, proxy)
    table.rows = _rows(spec, configs)
    return spec, table


def test_a_proposal_snaps_to_its_own_configuration_and_reads_its_seed() -> None:
    spec, table = _table([0.1 * j for j in range(6)])
    for j, row in enumerate(table.rows):
        assert _nearest(table.rows, row) == (j, 0.0)
    out = replay(spec, table, "random", 0, trials=4)
    assert all(0 <= t["read"] < 4 and t["dev"] in {round(r["reports"][-1][1], 4) for r in table.full[t["config"]]}
               for t in out["trials"])
    # the same search seed reads the same seed of a configuration in every arm (the same luck for all)
    other = replay(spec, table, "tpe", 0, trials=4)
    reads = {t["config"]: t["read"] for t in out["trials"]}
    assert all(reads.get(t["config"], t["read"]) == t["read"] for t in other["trials"])


def test_the_retrained_score_never_uses_the_seed_the_search_read() -> None:
    spec, table = _table([0.1, 0.5, 0.3, 0.2], outlier=10.0)
    out = replay(spec, table, "random", 1, trials=6)
    read = {t["config"]: t["read"] for t in out["trials"]}
    for _, value in out["curve"]:  # each point: a configuration it read, scored on the seeds it did not
        assert value is None or any(value == pytest.approx(table.retrained(j, i)) for j, i in read.items())
    assert all(table.retrained(j, 0) < 1.0 for j in read)  # read at seed 0: the outlier never counts
    rec = out["recommended"]
    assert out["curve"][-1][1] == pytest.approx(table.retrained(rec, read[rec]))
    assert table.retrained(rec, 0) == pytest.approx(statistics.fmean(r["test"] for r in table.full[rec][1:]))


def test_arms_spend_the_budget_and_asha_prunes_on_the_proxy() -> None:
    spec, table = _table([0.05 * j for j in range(8)])
    budget = 6 * table.full_seconds_mean
    for arm in ("random", "tpe_asha", "tpe_asha_told_complete"):
        out = replay(spec, table, arm, 0, trials=6)
        spent = [s for s, _ in out["curve"]]
        assert spent == sorted(spent) and spent[-1] >= budget and spent[-2] < budget  # stops once spent
        assert len(out["trials"]) == len(spent)
        if arm == "random":
            assert all(t["stopped_at"] == t["of"] == 3 for t in out["trials"])
            assert out["states"] == {"COMPLETE": len(out["trials"])}
        else:  # the proxy first: 1 + 3 reports; a trial stopped at the proxy cost 9 s
            assert all(t["of"] == 4 for t in out["trials"])
            stopped = [t for t in out["trials"] if t["stopped_at"] < 4]
            assert stopped and all(t["seconds"] == (9.0 if t["stopped_at"] == 1 else 9.0 + 13.0 * (t["stopped_at"] - 1))
                                   for t in stopped)
            assert len(out["trials"]) > 6  # pruned trials are cheap: more of them in the same budget
            states = out["states"]
            if arm == "tpe_asha":
                assert states["PRUNED"] == len(stopped)
            else:  # Ray's OptunaSearch: every stopped trial told as finished, with its early value
                assert "PRUNED" not in states and states["COMPLETE"] == len(out["trials"])


@pytest.mark.parametrize("arm", sorted(set(ARMS) - {"random", "tpe", "tpe_asha", "tpe_asha_told_complete"}))
def test_the_model_based_arms_replay(arm: str) -> None:
    spec, table = _table([0.05 * j for j in range(8)])
    out = replay(spec, table, arm, 0, trials=5)
    assert out["recommended"] is not None and out["curve"][-1][1] is not None


def test_figures_compare_the_arms_at_the_same_compute() -> None:
    quality = [0.1, 0.2, 0.3, 0.9, 0.15, 0.25, 0.05, 0.35]
    spec, table = _table(quality)
    budget = 4 * table.full_seconds_mean
    rand = [replay(spec, table, "random", k, trials=4) for k in range(4)]
    # an oracle arm: recommends the best configuration after its first trial, at a tenth of the budget
    best = max(range(len(quality)), key=quality.__getitem__)
    oracle = [{"trials": [{"config": best, "snap": 0.0, "stopped_at": 3, "of": 3}],
               "curve": [(0.1 * budget, table.retrained(best, 0)), (budget, table.retrained(best, 0))]}
              for _ in range(4)]
    fig = arm_figures(oracle, rand, budget)
    assert fig["compute_to_random_quality"] == pytest.approx(0.1 * budget / statistics.fmean(r["curve"][-1][0] for r in rand),
                                                             abs=1e-3)
    assert fig["bootstrap"]["p90"] is not None and fig["bootstrap"]["p90"] < 0.35
    assert fig["retrained"]["25%"]["mean"] == pytest.approx(table.retrained(best, 0), abs=1e-4)
    own = arm_figures(rand, rand, budget)
    assert own["compute_to_random_quality"] is not None and 0 < own["compute_to_random_quality"] <= 1.0 + 1e-9
    assert own["retrained"]["100%"]["n"] == 4 and own["snap_distance"]["mean"] >= 0
    tf = table_figures(table)
    assert tf["best_config"]["index"] == best and tf["pool"] == 8 and tf["proxy"] == PROXY
    assert 0 < tf["seed_sd"] < tf["config_sd"]


@pytest.mark.slow
def test_bench_search_efficiency_and_rank_agreement_at_smoke_size(tiny_home: Any) -> None:
    """``xstilts bench search --quick --only efficiency,rank_agreement --json``: the table of real trials
    (3 configurations × 2 seeds × full and proxy, in 2 worker processes), every arm replayed on it, and
    rank_agreement taking the table's seed-0 runs from the shared ledger (it trains only ``short``)."""
    from tests.conftest import run_cli

    r = run_cli(["bench", "search", "--quick", "--only", "efficiency,rank_agreement", "--json"], tiny_home,
                timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    import json

    out = json.loads(r.stdout)
    eff = out["efficiency"]
    assert eff["table"]["pool"] == 3 and eff["table"]["seeds"] == [0, 1]
    # 12 runs, trained here or taken from the session home's ledger (another bench test may have run some)
    assert eff["trials_run"] <= 12 and eff["trials_run"] + eff["trials_taken_from_ledger"] >= 12
    assert set(out["compute_to_random_quality"]) == set(ARMS) and eff["search_seeds"] == 2
    for arm, fig in eff["arms"].items():
        assert fig["retrained"]["100%"]["n"] == 2, arm  # every search seed recommends by its full budget
        assert 0 <= fig["retrained"]["100%"]["mean"] <= 1 and fig["bootstrap"]["resamples"] == 1000
    assert eff["arms"]["random"]["stopped_early_share"] == 0 and eff["arms"]["tpe_asha"]["trials_mean"] >= 3
    ra = out["fidelity"]
    assert ra["trials_run"] <= 3 and ra["trials_taken_from_ledger"] >= 12  # at most `short` was not in the table
    assert set(out["rank_agreement"]) == {"short", "shorter"}
