"""``xstilts bench search --only rank_agreement``: how well a space's cheap fidelities rank trials.

    spaces/mixtures.yaml ──sample_random(seed 0..N-1)──► N configurations from the space's prior
        each at the full fidelity (the space's trial: 300 + 300 steps, dev every 100)
        and at every fidelity of ``search.fidelities`` (``FidelitySettings.config``: fewer steps, one
        capped evaluation), training seed 0 for all (as a search's trials)
        ──TransferBench (2 worker processes, one torch thread each; a fsynced ledger)──► scores, seconds
    per fidelity: Spearman(proxy score, full score) over the N configurations (``rank_agreement``),
    its bootstrap over configurations, and the proxy's share of a full trial's seconds

The score is the search's objective (``zero_shot/avg`` on dev) at each run's end. A trial's seconds
are ``run_trial``'s whole (set-up, both phases, every evaluation); ``compute_share`` is the median over
configurations of proxy seconds / full seconds (a worker's first trial also pays its imports and
DeepSpeed's first engine: the median is not moved by that one trial; ``compute_share_of_means`` is the
plain ratio of mean seconds). For each configuration the proxies run before the full trial, so that
first-trial cost falls on a proxy, never in the proxy's favour.

Every finished trial is appended to ``$XSTILTS_HOME/bench/search-trials.jsonl`` (``TransferBench``'s
ledger: keyed by the trial config and the trainer's source hash) and taken from it by a later run:
a run that was killed loses none, and another part (a tabular benchmark of the arms) can reuse the
full-fidelity trials. ``quick``: 3 configurations, the briefly pretrained tiny model, the full trial at
40 + 40 steps and each fidelity's steps scaled by the same factor: a smoke run, not figures.
"""

from __future__ import annotations

import os
import random
import statistics
import time
from importlib import resources
from pathlib import Path
from typing import Any

from .transfer_validity import spearman

__all__ = ["DEFAULT_CONFIGS", "LEDGER", "mixtures_path", "rank_agreement", "agreement_figures", "bootstrap_spearman",
           "fidelity_requests", "ledger_bench"]

DEFAULT_CONFIGS = 14  # configurations drawn from the space's prior (about 7.5 min on 2 cores)
LEDGER = "bench/search-trials.jsonl"  # under $XSTILTS_HOME: finished trials, taken by a later run
QUICK_FULL = {"intermediate_steps": 40, "target_steps": 40, "eval_every": 20, "eval_max_examples": 100}
QUICK_TINY = {"pretrain_steps": 300, "pretrain_batch": 64}


def mixtures_path() -> Path:
    return Path(str(resources.files("xstilts.spaces") / "mixtures.yaml"))


def fidelity_requests(spec: Any, n_configs: int, quick: bool = False) -> list[dict[str, Any]]:
    """The N configurations (``sample_random`` seeds 0..N-1), each as {"config", "full": TrialConfig,
    fidelity name: TrialConfig}. ``quick``: the smoke-sized full trial, the fidelities scaled alike."""
    from xstilts.spaces import FidelitySettings, sample_random, to_trial_config

    extra: dict[str, Any] = {**QUICK_FULL, "tiny": QUICK_TINY} if quick else {}
    fids = dict(spec.search.fidelities)
    if quick:  # each fidelity keeps its share of the full trial's steps
        base = to_trial_config(spec, sample_random(spec, 0))
        fids = {n: FidelitySettings(
            intermediate_steps=max(1, round(f.intermediate_steps * QUICK_FULL["intermediate_steps"]
                                            / max(1, base.intermediate_steps))),
            target_steps=max(1, round(f.target_steps * QUICK_FULL["target_steps"] / base.target_steps)),
            eval_max_examples=f.eval_max_examples) for n, f in fids.items()}
    out = []
    for seed in range(n_configs):
        config = sample_random(spec, seed)
        full = to_trial_config(spec, config, **extra)
        out.append({"config": config, "full": full, **{n: f.config(full) for n, f in fids.items()}})
    return out


def ledger_bench(first: Any, home: str | None, workers: int | None) -> tuple[Any, int]:
    """The trial runner of the search benches' parts: synth and the tiny model of ``first`` (a
    ``TrialConfig``) made first, not in a trial's seconds (as ``runner.prepare_assets``, without Ray's
    imports); a ``TransferBench`` of ``workers`` one-thread processes with the shared ledger ``LEDGER``
    open. Returns (it, how many trials it took from the ledger); ``close`` it when done."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch's import (see bench_transfer.run)
    from xstilts.trainer.config import TrialRuntime
    from xstilts.trainer.data import synth_benchmark
    from xstilts.trainer.home import home as home_dir
    from xstilts.trainer.model import ensure_tiny_model

    from .bench_transfer import TransferBench

    root = home_dir(home)
    synth_benchmark(str(root), first.data_seed)
    ensure_tiny_model(root, first.tiny)
    tb = TransferBench(None, {}, TrialRuntime(home=str(root), threads=1),
                       workers=workers or min(8, os.cpu_count() or 1), label="bench search")
    return tb, tb.open_ledger(root / LEDGER)


def bootstrap_spearman(x: list[float], y: list[float], resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Spearman's 10th/50th/90th percentiles over resamples of the configurations (with replacement;
    a resample with no spread in either is left out): how much it owes to which configurations ran."""
    rng = random.Random(seed)
    vals = []
    for _ in range(resamples):
        pick = [rng.randrange(len(x)) for _ in x]
        r = spearman([x[i] for i in pick], [y[i] for i in pick])
        if r == r:  # not nan
            vals.append(r)
    if not vals:
        return {"resamples": resamples, "p10": None, "p50": None, "p90": None}
    vals.sort()
    pct = {q: round(vals[min(len(vals) - 1, int(q * len(vals)))], 3) for q in (0.1, 0.5, 0.9)}
    return {"resamples": resamples, "p10": pct[0.1], "p50": pct[0.5], "p90": pct[0.9]}


def agreement_figures(rows: list[dict[str, Any]], fidelities: list[str]) -> dict[str, dict[str, Any]]:
    """Per fidelity, from rows {"full": (score, seconds), name: (score, seconds), ...}: ``spearman``
    with the full scores, its ``bootstrap``, ``compute_share`` (median of per-configuration second
    ratios), ``compute_share_of_means``, the mean seconds and ``n`` (configurations)."""
    full = [r["full"][0] for r in rows]
    full_s = [r["full"][1] for r in rows]
    out: dict[str, dict[str, Any]] = {}
    for name in fidelities:
        proxy = [r[name][0] for r in rows]
        secs = [r[name][1] for r in rows]
        rho = spearman(proxy, full) if len(rows) > 2 else float("nan")
        out[name] = {
            "spearman": None if rho != rho else round(rho, 3), "n": len(rows),
            "bootstrap": bootstrap_spearman(proxy, full),
            "compute_share": round(statistics.median(p / f for p, f in zip(secs, full_s, strict=True)), 3),
            "compute_share_of_means": round(statistics.fmean(secs) / statistics.fmean(full_s), 3),
            "seconds_mean": round(statistics.fmean(secs), 2),
        }
    return out


def rank_agreement(quick: bool = False, n_configs: int | None = None, home: str | None = None,
                   workers: int | None = None, space: str | Path | None = None) -> dict[str, Any]:
    """The ``rank_agreement`` part: N configurations of ``space`` (default ``spaces/mixtures.yaml``)
    at the full fidelity and at each of the space's fidelities (see the module docstring)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch's import (see bench_transfer.run)
    from xstilts.spaces import load_space

    from .bench_transfer import _progress

    t0 = time.perf_counter()
    spec = load_space(space or mixtures_path())
    fids = list(spec.search.fidelities)
    if not fids:
        raise ValueError(f"{spec.source}: the space offers no cheap fidelity (search.fidelities)")
    n = n_configs or (3 if quick else DEFAULT_CONFIGS)
    reqs = fidelity_requests(spec, n, quick)
    tb, taken = ledger_bench(reqs[0]["full"], home, workers)
    _progress(f"rank agreement: {n} configurations of {spec.name} × (full, {', '.join(fids)}): "
              f"{len(reqs) * (len(fids) + 1)} trials, {taken} in {tb.ledger} already", "bench search")
    order = [*fids, "full"]  # a configuration's proxies first (see the module docstring)
    try:
        tb.run_all([(r[k].seed, r[k].model_dump()) for r in reqs for k in order])
    finally:
        tb.close()
    rows = []
    for r in reqs:
        keys = {k: tb.key(r[k].seed, r[k].model_dump()) for k in order}
        rows.append({k: (float(tb.done[key][spec.search.metric]), tb.seconds[key]) for k, key in keys.items()})
    figures = agreement_figures(rows, fids)
    _progress("rank agreement: " + ", ".join(f"{k} ρ={v['spearman']} at {v['compute_share']:.0%}"
                                             for k, v in figures.items()), "bench search")
    full = reqs[0]["full"]
    return {
        "space": spec.name, "metric": spec.search.metric, "configs": n, "config_seeds": list(range(n)),
        "training_seed": full.seed, "workers": tb.workers,
        "full": {**{k: getattr(full, k) for k in ("intermediate_steps", "target_steps", "eval_every",
                                                   "eval_max_examples")},
                 "seconds_mean": round(statistics.fmean(r["full"][1] for r in rows), 2)},
        "fidelities": {k: {**{f: getattr(reqs[0][k], f) for f in ("intermediate_steps", "target_steps",
                                                                    "eval_max_examples")}, **figures[k]} for k in fids},
        "scores": [{"trial": _label(r["full"]), **{k: round(row[k][0], 4) for k in order},
                    "seconds": {k: round(row[k][1], 2) for k in order}} for r, row in zip(reqs, rows, strict=True)],
        "config_sd": round(statistics.stdev(r["full"][0] for r in rows), 4) if len(rows) > 1 else None,
        "trials_run": len(tb.trial_s), "trials_taken_from_ledger": taken, "ledger": str(tb.ledger),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def _label(tc: Any) -> str:
    """A configuration, shortly: schedule, tasks and rates, languages, learning rate."""
    mix = "+".join(f"{t}{r:.2f}" for t, r in tc.intermediate.items())
    langs = tc.intermediate_languages if isinstance(tc.intermediate_languages, list) else ["by task"]
    return f"{tc.schedule}-{mix}-{'+'.join(langs)}-lr{tc.learning_rate:.1e}"
