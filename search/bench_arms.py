"""``xstilts bench search --only efficiency``: what each searcher's recommendation is worth once
retrained, per unit of compute, replayed on a table of real trials (the arms benchmark)::

    spaces/mixtures.yaml ──sample_random(0..P−1)──► a pool of P configurations (rank_agreement's first N)
        × S training seeds, each trained at the full fidelity (its dev report history with the seconds
        at each report, its test score) and at the proxy fidelity (``shorter``: dev score, seconds)
        ──TransferBench (2 worker processes, the fsynced ledger bench/search-trials.jsonl)──► the table
        (built once per trainer code: a later run takes it from the ledger; a killed run loses nothing)
    each arm × each search seed k, in-process (no Ray cluster; the search's own parts):
        an Optuna study with the search's sampler (``make_sampler`` + ``with_subset_prior``) and the
        space's define-by-run function; each proposal is snapped to the nearest pool configuration j
        the search has not read yet (RMS distance over mixlaw's feature columns: task flags and rates,
        one-hot categoricals, scaled floats; a proposal is a new configuration, so it is not mapped
        onto one already trained — with plain nearest-neighbour snapping a few central
        configurations drew most proposals: 4 distinct of 11 trials), whose table seed s(k, j) it
        reads: one of the S, drawn per (k, j) and shared by every arm (the same luck for all);
        Ray's own ``ASHAScheduler`` (``make_scheduler``, driven in-process) over its reports — with the
        proxy, report 1 is the proxy's dev score at the proxy's seconds, then the full trial's
        reports; a stopped trial costs the seconds up to its last report and reaches the study as
        PRUNED with its reports as intermediate values (``tpe_asha_told_complete``: as COMPLETE with
        its last value, what Ray's ``OptunaSearch`` does: item 1's effect);
        trials start one at a time until the arm has spent the budget (``trials`` × the pool's mean
        full-trial seconds)
    the recommendation after each trial: the finished configuration whose dev score read was best;
    its *retrained* score: the mean test objective of that configuration over the S − 1 seeds the
    search did not read (fresh training seeds: 3 with S = 4) — never the search's own score

Figures per arm: the retrained score of its recommendation at 25, 50 and 100 % of the budget (mean ±
SE over the search seeds); ``compute_to_random_quality``: the compute at which the arm's mean
retrained curve first reaches random search's mean retrained score at its full budget, as a fraction
of random search's mean compute (``bench.headline_fraction``), and its bootstrap over search seeds
(p10/p50/p90, ``bench.bootstrap_fraction``); trials, pruned share, distinct configurations read and
the snapping distance. The table's own figures say what can be bought: the seed SD of one
configuration against the SD between configurations, the pool's best and mean retrained score.

What it leaves out: searches choose among P configurations, not the whole space (the snapping
distance says how far the proposals land); trials run one at a time (a real search runs
``max_concurrent`` at once, so ASHA and the samplers decide with fewer results in hand); the
overhead of Ray and MLflow is ``overhead``'s part, measured on a real search.
"""

from __future__ import annotations

import math
import random
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .bench import SEARCHER_SEED_OFFSET, bootstrap_fraction, headline_fraction

__all__ = ["ARMS", "PROXY", "Table", "build_table", "replay", "arm_figures", "efficiency_arms", "table_figures",
           "DEFAULT_POOL", "DEFAULT_TABLE_SEEDS", "DEFAULT_TRIALS", "DEFAULT_SEARCH_SEEDS"]

DEFAULT_POOL = 20  # configurations in the table (the first 14 are rank_agreement's)
DEFAULT_TABLE_SEEDS = 4  # training seeds per configuration: one read by a search, 3 fresh
DEFAULT_TRIALS = 5  # the budget in full trials (the pool's mean seconds): a quarter of the pool; at 10 every arm
# read half the pool and found one of its best two configurations with every seed (2026-12-02 run)
DEFAULT_SEARCH_SEEDS = 8
PROXY = "shorter"  # the cheap fidelity the arms with ASHA run first (rank_agreement: ρ 0.82 at 22 %)
BUDGET_POINTS = (0.25, 0.5, 1.0)

# arm → how it searches: searcher, scheduler, whether ASHA's first rung is the proxy, and whether a
# stopped trial reaches the study as COMPLETE with its last value (Ray's OptunaSearch) or PRUNED
ARMS: dict[str, dict[str, Any]] = {
    "random": {"searcher": "random", "scheduler": "none"},
    "tpe": {"searcher": "tpe", "scheduler": "none"},
    "tpe_asha": {"searcher": "tpe", "scheduler": "asha", "proxy": True},
    "tpe_asha_told_complete": {"searcher": "tpe", "scheduler": "asha", "proxy": True, "told_complete": True},
    "gp": {"searcher": "gp", "scheduler": "none"},
    "mixlaw": {"searcher": "mixlaw", "scheduler": "asha", "proxy": True},
}


@dataclass
class Table:
    """Real trials of a pool of configurations: ``full[j][i]`` is configuration j at training seed
    ``seeds[i]``: {"dev", "test", "seconds", "reports": [[seconds, dev value], ...]}; ``proxy[j][i]``
    the same run at the proxy fidelity: {"dev", "seconds"}."""

    configs: list[dict[str, Any]]
    seeds: list[int]
    full: list[list[dict[str, Any]]]
    proxy: list[list[dict[str, Any]]]
    rows: list[list[float]] = field(default_factory=list)  # each configuration's feature row (no fidelity)
    labels: list[str] = field(default_factory=list)  # each configuration, shortly (``bench_fidelity._label``)

    def retrained(self, j: int, read: int) -> float:
        """Configuration j's mean test score over the seeds other than the one at index ``read``."""
        return statistics.fmean(r["test"] for i, r in enumerate(self.full[j]) if i != read)

    @property
    def full_seconds_mean(self) -> float:
        return statistics.fmean(r["seconds"] for runs in self.full for r in runs)


def _table_requests(spec: Any, pool: int, seeds: list[int], quick: bool) -> list[dict[str, Any]]:
    """Each pool configuration: {"config", "label", "full": {seed: its TrialConfig as a dict}, PROXY: the same}."""
    from .bench_fidelity import _label, fidelity_requests

    if PROXY not in spec.search.fidelities:
        raise ValueError(f"{spec.source}: the arms benchmark's proxy fidelity {PROXY!r} is not in search.fidelities")
    return [{"config": r["config"], "label": _label(r["full"]),
             **{k: {s: {**r[k].model_dump(), "seed": s} for s in seeds} for k in ("full", PROXY)}}
            for r in fidelity_requests(spec, pool, quick)]


def build_table(spec: Any, pool: int, n_seeds: int, quick: bool, tb: Any) -> Table:
    """Train (or take from ``tb``'s ledger) every run of the table, seed by seed (a run cut short has
    whole seed columns first); ``tb`` is a ``TransferBench`` with its ledger open."""
    from xstilts.trainer.names import OBJECTIVE, TEST_OBJECTIVE

    from .bench_transfer import _progress

    seeds = list(range(n_seeds))
    reqs = _table_requests(spec, pool, seeds, quick)
    key = {(j, k, s): tb.key(s, r[k][s]) for j, r in enumerate(reqs) for k in (PROXY, "full") for s in seeds}
    for (_, k, _), kk in key.items():  # a full run kept without its report history (older code) trains again
        if k == "full" and "reports" not in tb.done.get(kk, {"reports": None}):
            del tb.done[kk]
    asks = [(s, reqs[j][k][s]) for s in seeds for j in range(len(reqs)) for k in (PROXY, "full")]
    _progress(f"efficiency: a table of {pool} configurations × {n_seeds} seeds × (full, {PROXY}): "
              f"{len(asks)} runs, {sum(kk not in tb.done for kk in key.values())} to train", tb.label)
    tb.run_all(asks)

    def full_run(j: int, s: int) -> dict[str, Any]:
        m, kk = tb.done[key[j, "full", s]], key[j, "full", s]
        return {"dev": float(m[OBJECTIVE]), "test": float(m[TEST_OBJECTIVE]), "seconds": tb.seconds[kk],
                "reports": m["reports"]}

    def proxy_run(j: int, s: int) -> dict[str, Any]:
        kk = key[j, PROXY, s]
        return {"dev": float(tb.done[kk][OBJECTIVE]), "seconds": tb.seconds[kk]}

    table = Table([r["config"] for r in reqs], seeds, [[full_run(j, s) for s in seeds] for j in range(len(reqs))],
                  [[proxy_run(j, s) for s in seeds] for j in range(len(reqs))], labels=[r["label"] for r in reqs])
    table.rows = _rows(spec, table.configs)
    return table


def _rows(spec: Any, configs: list[dict[str, Any]]) -> list[list[float]]:
    from .mixlaw import Features

    f = Features(spec)
    return [f.row(c)[:-1] for c in configs]  # the fidelity column left out


def _nearest(rows: list[list[float]], x: list[float], read: set[int] | frozenset[int] = frozenset()
             ) -> tuple[int, float]:
    """(index, RMS distance) of the row nearest ``x`` among those not in ``read`` — a proposal is a new
    configuration, which a real search would train, not a rerun of one it read — unless ``x`` is a
    read row itself (a proposal repeated exactly) or every row has been read."""
    def dist(r: list[float]) -> float:
        return math.sqrt(sum((a - b) ** 2 for a, b in zip(r, x, strict=True)) / max(1, len(x)))

    ds = [dist(r) for r in rows]
    exact = [j for j in read if ds[j] < 1e-9]
    pool = exact or [j for j in range(len(rows)) if j not in read] or list(range(len(rows)))
    best = min(pool, key=ds.__getitem__)
    return best, ds[best]


def _arm_spec(spec: Any, arm: dict[str, Any], trials: int) -> Any:
    asha = spec.search.asha.model_copy(update={"proxy": PROXY if arm.get("proxy") else None})
    search = spec.search.model_copy(update={"searcher": arm["searcher"], "scheduler": arm["scheduler"],
                                            "asha": asha, "trials": trials, "max_concurrent": 1})
    return spec.model_copy(update={"search": search, "points_to_evaluate": []})


def _reads(table: Table, k: int) -> list[int]:
    """Search seed k's world: which table seed each configuration's trial reads (shared by the arms)."""
    rng = random.Random(10_007 * k + 17)
    return [rng.randrange(len(table.seeds)) for _ in table.configs]


def _reports(table: Table, j: int, i: int, proxy: bool) -> list[tuple[float, float]]:
    """A trial's reports as (cumulative seconds, dev value): the proxy's first when ``proxy``."""
    run = table.full[j][i]
    start = table.proxy[j][i]["seconds"] if proxy else 0.0
    out = [(table.proxy[j][i]["seconds"], table.proxy[j][i]["dev"])] if proxy else []
    reps = run["reports"]
    for n, (sec, val) in enumerate(reps):
        # the last report's seconds are the whole run's (its test evaluation and wrap-up included)
        out.append((start + (run["seconds"] if n == len(reps) - 1 else float(sec)), float(val)))
    return out


def replay(spec: Any, table: Table, arm_name: str, k: int, trials: int) -> dict[str, Any]:
    """One search of arm ``arm_name`` with search seed k on ``table``: its trials and its curve
    [(compute spent, retrained score of the recommendation then)]."""
    import optuna
    from optuna.trial import TrialState

    from xstilts.spaces import define_by_run

    from .mixlaw import Features
    from .schedulers import make_scheduler
    from .searchers import make_sampler
    from .subset_prior import with_subset_prior

    arm = ARMS[arm_name]
    aspec = _arm_spec(spec, arm, trials)
    seed = k if arm["searcher"] == "random" else k + SEARCHER_SEED_OFFSET
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize" if spec.search.mode == "max" else "minimize",
                                sampler=with_subset_prior(aspec, make_sampler(aspec, seed), seed))
    fn, features = define_by_run(aspec), Features(aspec)
    n_full = len(table.full[0][0]["reports"])
    sched = make_scheduler(aspec, n_full + (1 if arm.get("proxy") else 0)) if arm["scheduler"] == "asha" else None
    reads = _reads(table, k)
    budget = trials * table.full_seconds_mean
    spent, best, rec = 0.0, None, None
    out: dict[str, Any] = {"trials": [], "curve": []}
    while spent < budget:
        t = study.ask()
        config = {**t.params, **(fn(t) or {})}
        j, dist = _nearest(table.rows, features.row(config)[:-1], {t["config"] for t in out["trials"]})
        i = reads[j]
        reps = _reports(table, j, i, bool(arm.get("proxy")))
        stopped_at = _run_reports(sched, t, reps, spec.search.metric, str(t.number))
        last_s, last_v = reps[stopped_at - 1]
        done = stopped_at == len(reps)
        if done:
            study.tell(t, last_v)
            if best is None or last_v > best:
                best, rec = last_v, j
        elif arm.get("told_complete"):
            study.tell(t, last_v)  # what Ray's OptunaSearch does with a trial ASHA stopped
        else:
            study.tell(t, None, state=TrialState.PRUNED)
        spent += last_s
        out["trials"].append({"config": j, "read": i, "snap": round(dist, 4), "stopped_at": stopped_at,
                              "of": len(reps), "seconds": round(last_s, 2), "dev": round(last_v, 4)})
        out["curve"].append((spent, None if rec is None else table.retrained(rec, reads[rec])))
    out["recommended"] = rec
    out["states"] = dict(sorted(Counter(t.state.name for t in study.trials).items()))
    return out


def _run_reports(sched: Any, t: Any, reps: list[tuple[float, float]], metric: str, trial_id: str) -> int:
    """Feed a trial's reports to the study (intermediate values) and to ASHA; the report it stopped at."""
    from types import SimpleNamespace

    from ray.tune.schedulers import TrialScheduler

    trial = SimpleNamespace(trial_id=trial_id)
    if sched is not None:
        sched.on_trial_add(None, trial)
    for n, (_, v) in enumerate(reps, start=1):
        t.report(v, n)  # Ray's OptunaSearch reports each result at its training_iteration
        if sched is None:
            continue
        result = {"training_iteration": n, metric: v}
        action = sched.on_trial_result(None, trial, result)
        if n == len(reps) or action == TrialScheduler.STOP:
            sched.on_trial_complete(None, trial, result)
            return n
    return len(reps)


def _at(curve: list[tuple[float, float | None]], x: float) -> float | None:
    """The curve's value after the last trial that ended by compute x."""
    v = None
    for spent, val in curve:
        if spent > x + 1e-9:
            break
        v = val
    return v


def _mean_se(vals: list[float]) -> dict[str, Any]:
    if not vals:
        return {"mean": None, "se": None, "n": 0}
    se = statistics.stdev(vals) / math.sqrt(len(vals)) if len(vals) > 1 else None
    return {"mean": round(statistics.fmean(vals), 4), "se": None if se is None else round(se, 4), "n": len(vals)}


def arm_figures(runs: list[dict[str, Any]], random_runs: list[dict[str, Any]], budget: float,
                target: float = 0.35) -> dict[str, Any]:
    """One arm's figures over its search seeds (``runs``), against random search's (``random_runs``)."""
    curves = [r["curve"] for r in runs]
    rand = [r["curve"] for r in random_runs]
    at = {f"{int(p * 100)}%": _mean_se([v for c in curves if (v := _at(c, p * budget)) is not None])
          for p in BUDGET_POINTS}
    for p in BUDGET_POINTS:  # search seeds with no finished trial by then have no recommendation
        at[f"{int(p * 100)}%"]["no_recommendation"] = sum(_at(c, p * budget) is None for c in curves)
    head = headline_fraction(curves, rand)
    trials = [t for r in runs for t in r["trials"]]
    snaps = sorted(t["snap"] for t in trials)
    return {
        "retrained": at,
        "compute_to_random_quality": None if head is None else round(head, 3),
        "bootstrap": bootstrap_fraction(curves, rand, target=target),
        "trials_mean": round(len(trials) / len(runs), 2),
        "stopped_early_share": round(sum(t["stopped_at"] < t["of"] for t in trials) / len(trials), 3),
        "configs_read_mean": round(statistics.fmean(len({t["config"] for t in r["trials"]}) for r in runs), 2),
        "compute_mean_s": round(statistics.fmean(r["curve"][-1][0] for r in runs), 1),
        "snap_distance": {"mean": round(statistics.fmean(snaps), 4), "p90": snaps[int(0.9 * (len(snaps) - 1))]},
    }


def table_figures(table: Table) -> dict[str, Any]:
    """What the table says can be bought: the seed noise of one configuration against the spread
    between configurations, and the best and mean configuration's retrained score."""
    means = [statistics.fmean(r["test"] for r in runs) for runs in table.full]
    seed_sd = statistics.fmean(statistics.stdev(r["test"] for r in runs) for runs in table.full) \
        if len(table.seeds) > 1 else None
    dev_sd = statistics.fmean(statistics.stdev(r["dev"] for r in runs) for runs in table.full) \
        if len(table.seeds) > 1 else None
    best = max(range(len(means)), key=means.__getitem__)
    return {
        "pool": len(table.configs), "seeds": table.seeds, "proxy": PROXY,
        "test_mean_by_config": [round(m, 4) for m in means],
        "config_sd": round(statistics.stdev(means), 4) if len(means) > 1 else None,
        "seed_sd": None if seed_sd is None else round(seed_sd, 4),
        "dev_seed_sd": None if dev_sd is None else round(dev_sd, 4),
        "best_config": {"index": best, "label": table.labels[best] if table.labels else None,
                        "test_mean": round(means[best], 4)},
        "pool_mean": round(statistics.fmean(means), 4),
        "full_seconds_mean": round(table.full_seconds_mean, 2),
        "proxy_seconds_mean": round(statistics.fmean(r["seconds"] for runs in table.proxy for r in runs), 2),
    }


def efficiency_arms(quick: bool = False, pool: int | None = None, n_seeds: int | None = None,
                    search_seeds: int | None = None, trials: int | None = None, arms: list[str] | None = None,
                    home: str | None = None, workers: int | None = None, space: str | Path | None = None
                    ) -> dict[str, Any]:
    """The ``efficiency`` part (see the module docstring): the table, then every arm's replays."""
    from xstilts.spaces import load_space

    from .bench_fidelity import fidelity_requests, ledger_bench, mixtures_path
    from .bench_transfer import _progress

    t0 = time.perf_counter()
    spec = load_space(space or mixtures_path())
    pool = pool or (3 if quick else DEFAULT_POOL)
    n_seeds = n_seeds or (2 if quick else DEFAULT_TABLE_SEEDS)
    search_seeds = search_seeds or (2 if quick else DEFAULT_SEARCH_SEEDS)
    trials = trials or (3 if quick else DEFAULT_TRIALS)
    arm_names = arms or list(ARMS)
    if "random" not in arm_names:
        arm_names = ["random", *arm_names]
    tb, taken = ledger_bench(fidelity_requests(spec, 1, quick)[0]["full"], home, workers)
    try:
        table = build_table(spec, pool, n_seeds, quick, tb)
    finally:
        tb.close()
    t_table = time.perf_counter() - t0
    runs: dict[str, list[dict[str, Any]]] = {}
    t1 = time.perf_counter()
    for name in arm_names:
        runs[name] = [replay(spec, table, name, k, trials) for k in range(search_seeds)]
        _progress(f"efficiency: {name} replayed over {search_seeds} search seeds", "bench search")
    budget = trials * table.full_seconds_mean
    figures = {name: arm_figures(runs[name], runs["random"], budget) for name in arm_names}
    return {
        "space": spec.name, "metric": spec.search.metric, "retrained_metric": "test/" + spec.search.metric,
        "budget_trials": trials, "budget_s": round(budget, 1), "search_seeds": search_seeds,
        "table": table_figures(table),
        "random_retrained_mean": figures["random"]["retrained"]["100%"]["mean"],
        "compute_to_random_quality": {n: f["compute_to_random_quality"] for n, f in figures.items()},
        "arms": figures,
        "recommended": {n: [r["recommended"] for r in rs] for n, rs in runs.items()},
        "trials_run": len(tb.trial_s), "trials_taken_from_ledger": taken, "ledger": str(tb.ledger),
        "seconds": {"table": round(t_table, 1), "replay": round(time.perf_counter() - t1, 1),
                    "total": round(time.perf_counter() - t0, 1)},
    }
