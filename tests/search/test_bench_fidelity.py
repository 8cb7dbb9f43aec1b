"""``bench search --only rank_agreement``: the figures it computes, the trials it asks for, and that it
takes finished trials from its ledger (at smoke size end to end in a heavy test: its figures are
measured by the full-size run, never in a test)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xstilts.search.bench_fidelity import (
    LEDGER,
    agreement_figures,
    bootstrap_spearman,
    fidelity_requests,
    mixtures_path,
    rank_agreement,
)
from xstilts.spaces import load_space


def test_agreement_figures_rank_proxies_against_the_full_scores() -> None:
    rows = [{"full": (0.1 * i, 40.0 + i), "good": (0.05 * i, 10.0), "reversed": (1 - 0.1 * i, 4.0 + i)}
            for i in range(6)]
    rows[0]["full"] = (0.0, 100.0)  # a worker's first trial, slow: the median share does not move
    fig = agreement_figures(rows, ["good", "reversed"])
    assert fig["good"]["spearman"] == 1.0 and fig["reversed"]["spearman"] == -1.0
    assert fig["good"]["n"] == 6
    # the median of 10/100, 10/45, 10/44, 10/43, 10/42, 10/41
    assert fig["good"]["compute_share"] == pytest.approx((10 / 44 + 10 / 43) / 2, abs=1e-3)
    assert fig["good"]["compute_share_of_means"] == pytest.approx(10 / ((100 + 41 + 42 + 43 + 44 + 45) / 6), abs=1e-3)
    assert fig["good"]["bootstrap"]["p10"] == fig["good"]["bootstrap"]["p90"] == 1.0
    assert agreement_figures(rows[:2], ["good"])["good"]["spearman"] is None  # two configurations rank nothing


def test_bootstrap_spearman_spreads_with_the_configurations() -> None:
    x = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
    y = [0.2, 0.1, 0.4, 0.3, 0.6, 0.5, 0.8, 0.7]  # agreeing in the large, not pair by pair
    b = bootstrap_spearman(x, y, resamples=300)
    assert b["p10"] is not None and b["p90"] is not None and b["p10"] < b["p50"] <= b["p90"] <= 1.0
    assert bootstrap_spearman(x, y, resamples=300) == b  # seeded
    assert bootstrap_spearman([1.0, 1.0], [0.0, 1.0], resamples=20)["p50"] is None  # no spread in any resample


def test_requests_are_the_spaces_prior_draws_at_every_fidelity() -> None:
    spec = load_space(mixtures_path())
    reqs = fidelity_requests(spec, 4)
    assert len({json.dumps(r["config"], sort_keys=True, default=str) for r in reqs}) == 4
    for r in reqs:
        assert (r["full"].intermediate_steps, r["full"].target_steps, r["full"].eval_every) == (300, 300, 100)
        assert (r["short"].intermediate_steps, r["short"].target_steps) == (60, 60)
        assert (r["shorter"].intermediate_steps, r["shorter"].target_steps) == (30, 30)
        assert r["short"].intermediate == r["full"].intermediate and r["short"].seed == r["full"].seed == 0
    assert fidelity_requests(spec, 4)[2]["config"] == reqs[2]["config"]  # fixed seeds: the same draws
    quick = fidelity_requests(spec, 1, quick=True)[0]
    assert (quick["full"].target_steps, quick["short"].target_steps, quick["shorter"].target_steps) == (40, 8, 4)


def test_a_run_whose_trials_are_in_the_ledger_trains_nothing(tiny_home: Path) -> None:
    """Every trial the part asks for is read from ``$XSTILTS_HOME/bench/search-trials.jsonl`` when a run
    of the same code finished it (as after a kill, or a part that ran the full trials before)."""
    from xstilts.search.bench_transfer import TransferBench
    from xstilts.trainer.phase1_cache import trainer_source_hash

    spec = load_space(mixtures_path())
    reqs = fidelity_requests(spec, 3, quick=True)
    tb = TransferBench(None, {}, None)  # type: ignore[arg-type]  (keys only)
    lines = []
    for i, r in enumerate(reqs):
        for name, score, secs in (("full", 0.3 + 0.1 * i, 20.0), ("short", 0.2 + 0.05 * i, 4.0),
                                  ("shorter", 0.5 - 0.1 * i, 3.0)):
            key = tb.key(r[name].seed, r[name].model_dump())
            lines.append(json.dumps({"key": key, "code": trainer_source_hash(), "metrics": {"zero_shot/avg": score}, "seconds": secs}))
    (tiny_home / LEDGER).parent.mkdir(parents=True, exist_ok=True)
    (tiny_home / LEDGER).write_text("\n".join(lines) + "\n")
    try:
        out = rank_agreement(quick=True, home=str(tiny_home))
    finally:
        (tiny_home / LEDGER).unlink()
    assert out["trials_run"] == 0 and out["trials_taken_from_ledger"] == 9
    assert out["fidelities"]["short"]["spearman"] == 1.0 and out["fidelities"]["shorter"]["spearman"] == -1.0
    assert out["fidelities"]["short"]["compute_share"] == 0.2 and out["fidelities"]["shorter"]["n"] == 3
    assert [s["full"] for s in out["scores"]] == [0.3, 0.4, 0.5]
    assert out["full"]["target_steps"] == 40 and out["fidelities"]["short"]["target_steps"] == 8


def test_bench_cli_takes_the_search_parts_by_name() -> None:
    from xstilts.search.cli import main

    with pytest.raises(SystemExit, match="the parts of 'bench search' are overhead, efficiency, rank_agreement"):
        main(["bench", "search", "--only", "overhead,ranks"])
    with pytest.raises(SystemExit, match="--configs is an option of 'bench search'"):
        main(["bench", "transfer", "--configs", "3"])


@pytest.mark.heavy
def test_bench_search_rank_agreement_at_smoke_size(tiny_home: Path) -> None:
    """``xstilts bench search --quick --only rank_agreement --json`` end to end (real trials in 2
    worker processes), then again: the second run takes every trial from the ledger."""
    from tests.conftest import run_cli

    r = run_cli(["bench", "search", "--quick", "--only", "rank_agreement", "--json"], tiny_home, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout)
    assert out["parts"] == ["rank_agreement"] and "overhead_ratio" not in out and "efficiency" not in out
    assert set(out["rank_agreement"]) == {"short", "shorter"}
    detail = out["fidelity"]
    assert detail["configs"] == 3 and detail["trials_run"] == 9 and len(detail["scores"]) == 3
    for name, fig in out["rank_agreement"].items():
        assert fig["n"] == 3 and (fig["spearman"] is None or -1 <= fig["spearman"] <= 1)
        assert 0 < fig["compute_share"] < 1, name  # fewer steps, one capped evaluation: cheaper
    for s in detail["scores"]:
        assert all(0 <= s[k] <= 1 for k in ("full", "short", "shorter"))
        assert s["seconds"]["shorter"] > 0  # not < full per configuration: a worker's first trial
        # (a proxy: they run first) pays its imports and engine, more than 36 steps at this size
    again = run_cli(["bench", "search", "--quick", "--only", "rank_agreement", "--json"], tiny_home, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    second = json.loads(again.stdout)
    assert second["fidelity"]["trials_run"] == 0 and second["fidelity"]["trials_taken_from_ledger"] >= 9
    assert second["fidelity"]["scores"] == detail["scores"] and second["rank_agreement"] == out["rank_agreement"]
