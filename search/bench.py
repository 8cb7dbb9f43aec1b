"""``xstilts bench search --json``: what the search machinery costs, and what the searcher buys.

* ``overhead``: 8 trials of the default space at its default fidelity, 2 at a time, the whole
  stack (Ray Tune, OptunaSearch + TPE, ASHA, the MLflow callback into SQLite, checkpoints).
  ``overhead_ratio = (wall − ideal) / wall`` with ``wall`` the search proper (``Tuner.fit``) and
  ``ideal`` the wall time of the same trials with no overhead at all (``zero_overhead_makespan``:
  each trial, in the order the search created it, starts the moment a slot frees and runs for its
  own seconds). A trial's seconds are Ray's ``time_total_s`` (everything inside the trainable:
  imports on an actor's first trial, model load, DeepSpeed, training, evaluation, checkpoints).
  So Ray starting the trial actors, the gaps between trials and between a trial's reports,
  the searcher, ASHA and the MLflow callback all count; a slot left idle because no trial is
  left to start does not. ``overhead_ratio_perfect_packing`` is stricter: its ideal is
  ``Σ seconds / 2``, so that idle slot counts too (a scheduler would need to know the trials'
  lengths beforehand to avoid it). ``overhead_ratio_whole_command`` is against the whole
  ``run_search`` (also the MLflow parent run, the Tuner set-up and the summary plots after the
  search). The search is run ``overhead_repeats`` times (default 3, a fresh study each time,
  seed 0); the headlines are medians, each run is listed. Target ≤ 0.10.
* ``efficiency``: what each arm's (random, TPE, TPE+ASHA with the proxy rung, GP, mixlaw) recommendation
  retrains to, per unit of compute, replayed on a table of real trials of ``spaces/mixtures.yaml``
  (``bench_arms``, whose docstring says how): ``compute_to_random_quality`` per arm, with its bootstrap.
* ``rank_agreement``: each cheap fidelity of ``spaces/mixtures.yaml`` against the full trial
  (``bench_fidelity``).
* ``live_efficiency`` (only when asked: ``--only live_efficiency``; about an hour): real Ray searches
  of the default space. Best-so-far ``zero_shot/avg`` against cumulative trial-seconds, for TPE+ASHA,
  random (no early stopping), grid (over a discretised default space: its 3 task subsets ×
  {sequential, interleaved at m=0.3, T=3}) and, with ``tpe_alone``, TPE without early stopping
  (``--tpe-alone``: about 1.2 min a seed more), each over ``seeds`` seeds (default 8) of
  ``trials`` trials (default: the space's own budget, 12), at the default space's own fidelity
  (300 + 300 steps, an evaluation every 100). Not lower: at 100 + 100 steps one configuration's
  score varies with the training seed by 0.05–0.09 (standard deviation over 5 seeds), as much as
  the configurations differ, so a search there mostly ranks luck; at 300 + 300 the seed spread
  is 0.02–0.07 against 0.22 between configurations (``seed_spread`` and ``config_sd`` report it
  each run). The arms run without the space's seed points (``points_to_evaluate``): they would
  be every arm's first trial alike, and where random search finds nothing better than that
  X-STILTs baseline (2 of 5 seeds, measured with it in), every arm "reaches random's best" as
  soon as that shared trial ends. The arms' sampler seeds differ: TPE's are ``seed + 1000``,
  since TPE's start-up trials are random draws and with random search's own seed they would be
  its first trials. Only trials that ran to the end count for the best value; every trial's
  seconds count for compute, in completion order.

  ``compute_to_random_best`` (the headline, per arm) reads the seeds together: the arm's
  best-so-far averaged over its seeds (``mean_curve``; a seed's best holds after its last trial)
  against the mean over seeds of the best value random search found with its full budget; the
  compute where the mean curve first reaches it, as a fraction of random search's mean total
  compute (``null``: never). Random search's own figure is its curve reaching its own end value:
  near 1 (above it when a seed with more than the mean compute finds its best last).
  ``per_seed`` pairs each seed with random search's run of that seed (random search with the
  next seed's run): the fraction of that run's compute spent before reaching its best, and
  ``per_seed_median`` (a seed that never reaches it counts as infinite).
  That per-seed figure is listed but is not the headline: with one configuration's score varying
  by 0.04–0.06 with the training seed, it mostly says which run drew a lucky trial — random search
  against another seed's random search scored 0.26–0.57 on it (on the mean curve: 0.90–0.98). Target:
  TPE+ASHA ≤ 0.5. ``rungs`` says what an early-stopping rung sees at each report of random
  search's trials: the Spearman correlation of the value then with the final value, and the
  share of the trial's seconds spent by then.

Runs go to a temporary tracking store and results folder (``work_dir``; the trial checkpoints
in it are removed at the end, ``checkpoints_removed_mb``); caches (synth, the tiny model) are
the usual ``$XSTILTS_HOME`` — the first run pretrains the default tiny model there once (not
counted in any figure, but in ``bench_seconds``). ``--quick`` uses one overhead run of 2 trials,
2 seeds of 3 trials per arm, the grid's first 2 points, 30+30 steps and a briefly pretrained tiny
model: a smoke run of the same code, not figures to report.
"""

from __future__ import annotations

import bisect
import json
import math
import os
import platform
import random as _random
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from xstilts.trainer.names import TRIAL_DONE

__all__ = ["PARTS", "run", "overhead", "efficiency", "seed_spread", "drop_checkpoints", "trial_records", "best_so_far_curve",
           "compute_to_reach", "mean_curve", "random_reference", "headline_fraction", "bootstrap_fraction",
           "report_histories", "rung_predictiveness", "zero_overhead_makespan"]

SEARCHER_SEED_OFFSET = 1000  # the model-based arms' sampler seeds: seed + this, apart from random's
QUICK_FIDELITY = {"intermediate_steps": 30, "target_steps": 30, "eval_every": 15, "eval_max_examples": 100,
                  "tiny": {"pretrain_steps": 300, "pretrain_batch": 64}}  # a smoke run: a briefly pretrained model
Curve = list[tuple[float, float | None]]  # (cumulative trial-seconds, best-so-far) after each trial


def _result_lines(results_path: str | Path) -> dict[str, list[dict[str, Any]]]:
    """Ray's ``result.json`` of every trial folder of a search: folder name -> its reported results."""
    out = {}
    for f in sorted(Path(results_path).glob("*/result.json")):
        lines = [json.loads(x) for x in f.read_text().splitlines() if x.strip()]
        if lines:
            out[f.parent.name] = lines
    return out


def trial_records(results_path: str | Path, metric: str) -> list[dict[str, Any]]:
    """One record per trial of a finished search: seconds, completion time, final value (if completed)."""
    out = []
    for name, lines in _result_lines(results_path).items():
        last = lines[-1]
        out.append({"trial": name, "seconds": float(last.get("time_total_s", 0.0)),
                    "end": float(last.get("timestamp", 0)), "done": bool(last.get(TRIAL_DONE)),
                    "value": float(last[metric]) if last.get(TRIAL_DONE) and metric in last else None})
    return sorted(out, key=lambda r: (r["end"], r["trial"]))


def report_histories(results_path: str | Path, metric: str) -> list[tuple[list[float], list[float]]]:
    """Per trial that ran to its end: (``metric`` at each report, ``time_total_s`` at each report)."""
    return [([float(x[metric]) for x in lines], [float(x["time_total_s"]) for x in lines])
            for lines in _result_lines(results_path).values()
            if lines[-1].get(TRIAL_DONE) and all(metric in x for x in lines)]


def rung_predictiveness(histories: list[tuple[list[float], list[float]]]) -> list[dict[str, Any]]:
    """What an early-stopping rung at report k would see: Spearman of the value at report k with the
    final value, and the mean fraction of a trial's seconds spent by then (over complete histories
    of one length)."""
    from .transfer_validity import spearman

    if not histories:
        return []
    n = max(len(v) for v, _ in histories)
    full = [(v, t) for v, t in histories if len(v) == n]
    if len(full) < 3:
        return []
    return [{"report": k + 1, "spearman_with_final": round(spearman([v[k] for v, _ in full], [v[-1] for v, _ in full]), 3),
             "time_fraction": round(statistics.fmean(t[k] / t[-1] for _, t in full if t[-1] > 0), 3)}
            for k in range(n)]


def zero_overhead_makespan(records: list[dict[str, Any]], slots: int) -> float:
    """The wall time the same trials would take with no search overhead at all: each trial, in the
    order the search created them (its number, ``t0007-...``), starts the moment a slot frees and
    runs for its own seconds. What a real search takes beyond this is the machinery's cost (starting
    actors, scheduling, searcher and scheduler decisions, logging); an idle slot while the last trial
    runs alone is not — a search with no overhead would have it too."""
    free = [0.0] * slots
    for r in sorted(records, key=lambda r: r["trial"]):
        i = free.index(min(free))
        free[i] += r["seconds"]
    return max(free) if records else 0.0


def best_so_far_curve(records: list[dict[str, Any]], mode: str = "max") -> list[tuple[float, float | None]]:
    """(cumulative trial-seconds, best completed value so far) after each trial, in completion order."""
    curve: list[tuple[float, float | None]] = []
    spent, best = 0.0, None
    for r in records:
        spent += r["seconds"]
        v = r["value"]
        if v is not None and (best is None or (v > best if mode == "max" else v < best)):
            best = v
        curve.append((spent, best))
    return curve


def mean_curve(curves: list[list[tuple[float, float | None]]]) -> list[tuple[float, float]]:
    """Best-so-far averaged over seeds, at every compute point of any seed. A seed's best holds
    after its own last trial (more compute would not lower it); points before every seed has a
    completed trial are left out."""
    spent = [[x for x, _ in c] for c in curves]
    out = []
    for x in sorted({x for xs in spent for x in xs}):
        # each seed's best after its last trial that ended by x (None: no trial yet)
        idx = [bisect.bisect_right(xs, x + 1e-9) - 1 for xs in spent]
        vals = [c[i][1] if i >= 0 else None for c, i in zip(curves, idx, strict=True)]
        if vals and all(v is not None for v in vals):
            out.append((x, statistics.fmean(v for v in vals if v is not None)))
    return out


def random_reference(random: list[list[tuple[float, float | None]]]) -> tuple[float | None, float]:
    """Random search's (mean best, mean total compute) over its seeds' curves; the mean best is
    None unless every seed completed a trial."""
    finals = [c[-1] for c in random if c]
    bests = [b for _, b in finals if b is not None]
    target = statistics.fmean(bests) if bests and len(bests) == len(random) else None
    return target, statistics.fmean(x for x, _ in finals) if finals else 0.0


def headline_fraction(arm: list[list[tuple[float, float | None]]],
                      random: list[list[tuple[float, float | None]]]) -> float | None:
    """``compute_to_random_best`` of ``arm``'s seeds against ``random``'s: the compute where the
    arm's mean curve first reaches random search's mean best, over random search's mean total
    compute (None: never, or random search found nothing)."""
    target, budget = random_reference(random)
    reach = compute_to_reach(mean_curve(arm), target) if target is not None else None
    return reach / budget if reach is not None and budget else None


def bootstrap_fraction(arm: list[list[tuple[float, float | None]]], random: list[list[tuple[float, float | None]]],
                       resamples: int = 1000, seed: int = 0, target: float = 0.5) -> dict[str, Any]:
    """How much the headline depends on which seeds ran: resample the seeds with replacement (the
    same draw for the arm and random search: seed i of each) and recompute ``headline_fraction``.
    Percentiles 10/50/90 (``null``: that share of resamples never reached random's best) and the
    share of resamples at or below ``target``."""
    rng = _random.Random(seed)
    n = len(arm)
    vals = []
    for _ in range(resamples):
        pick = [rng.randrange(n) for _ in range(n)]
        f = headline_fraction([arm[i] for i in pick], [random[i] for i in pick])
        vals.append(math.inf if f is None else f)
    vals.sort()

    def pct(q: float) -> float | None:
        v = vals[min(len(vals) - 1, int(q * len(vals)))]
        return round(v, 3) if math.isfinite(v) else None

    return {"resamples": resamples, "p10": pct(0.1), "p50": pct(0.5), "p90": pct(0.9),
            f"share_le_{target}": round(sum(v <= target for v in vals) / len(vals), 3)}


def compute_to_reach(curve: Sequence[tuple[float, float | None]], target: float, mode: str = "max") -> float | None:
    """Trial-seconds spent until best-so-far reaches ``target`` (None: never)."""
    for spent, best in curve:
        if best is not None and (best >= target - 1e-12 if mode == "max" else best <= target + 1e-12):
            return spent
    return None


def _trial_score(spec_json: str, config: dict[str, Any], seed: int, root: str) -> float:
    """One trial of ``config`` with training seed ``seed``, in this process: its final dev objective."""
    from xstilts.spaces import SearchSpec, to_trial_config
    from xstilts.trainer.config import TrialRuntime
    from xstilts.trainer.trial import run_trial

    spec = SearchSpec.model_validate_json(spec_json)
    res = run_trial(to_trial_config(spec, config, seed=seed), runtime=TrialRuntime(home=root, threads=1),
                    log=lambda s: None)
    return float(res["metrics"][spec.search.metric])


def seed_spread(spec: Any, seeds: int, root: str) -> dict[str, Any]:
    """The objective's noise floor: the space's seed point and its first random point, each trained
    with ``seeds`` training seeds (Ray tasks, one CPU each): mean and standard deviation per point."""
    import ray

    from xstilts.spaces import optuna_points, sample_random, with_constants

    points = {"seed_point": with_constants(spec, optuna_points(spec)[0], number=0)} if spec.points_to_evaluate else {}
    points["first_random_point"] = sample_random(spec, 0)
    task = ray.remote(num_cpus=1)(_trial_score)
    spec_json = spec.model_dump_json()
    refs = {name: [task.remote(spec_json, c, s, root) for s in range(seeds)] for name, c in points.items()}
    out: dict[str, Any] = {}
    for name, rs in refs.items():
        vals = ray.get(rs)
        out[name] = {"mean": round(statistics.fmean(vals), 4), "sd": round(statistics.stdev(vals), 4) if len(vals) > 1
                     else None, "values": [round(v, 4) for v in vals]}
    return out


def _space(fidelity: dict[str, Any]) -> Any:
    from xstilts.spaces import load_space

    spec = load_space(None)
    # the arms are compared on what their searches find: no confirm phase (its trials are not the search's)
    return spec.model_copy(update={"trial": {**spec.trial, **fidelity}, "source": "bench:default",
                                   "search": spec.search.model_copy(update={"confirm": None})})


def _grid_space(spec: Any) -> Any:
    from xstilts.spaces import SearchSpec

    raw = spec.model_dump(exclude={"source"})
    params = raw["parameters"]
    params.pop("ratios")  # equal ratios over the chosen tasks
    params["multilingual_share"]["grid"] = [0.3]
    params["language_temperature"]["grid"] = [3.0]
    params["learning_rate"]["grid"] = [1e-3]
    raw["search"].update(searcher="grid", scheduler="none", trials=None)
    raw["points_to_evaluate"] = []
    return SearchSpec.model_validate(raw)


def _search(spec: Any, work: Path, name: str, **search: Any) -> tuple[Any, float]:
    from xstilts.search.runner import SearchOptions, run_search

    t0 = time.perf_counter()
    out = run_search(spec, SearchOptions(
        name=name, tracking_uri=f"sqlite:///{work / 'bench.db'}", storage=str(work / "ray"), verbose=0,
        run_name=f"{name}-{int(time.time() * 1000)}", **search))
    return out, time.perf_counter() - t0


PARTS = ("overhead", "efficiency", "rank_agreement", "live_efficiency")  # what ``run`` can measure, in this order
DEFAULT_PARTS = PARTS[:3]  # live_efficiency (real Ray searches of the default space, ~1 h) only when asked


def run(quick: bool = False, seeds: int = 8, trials: int | None = None, overhead_repeats: int = 3,
        tpe_alone: bool = False, parts: tuple[str, ...] = DEFAULT_PARTS, configs: int | None = None,
        pool: int | None = None) -> dict[str, Any]:
    """The whole benchmark as one JSON-ready dict: ``overhead`` (the machinery's cost, on a local Ray
    of 2 CPUs in a temporary work folder); ``efficiency`` (``bench_arms``: the arms replayed on a
    table of real trials of ``spaces/mixtures.yaml``, ``pool`` configurations; ``seeds`` search seeds,
    a budget of ``trials`` full trials; the retrained recommendation and ``compute_to_random_quality``);
    ``rank_agreement`` (``bench_fidelity``: each cheap fidelity against the full one over ``configs``
    configurations, in 2 worker processes); and, only when asked, ``live_efficiency`` (real Ray
    searches of the default space, best-so-far curves, ``compute_to_random_best``) with its
    ``seed_spread``. ``parts``: which."""
    from xstilts.trainer.home import home

    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise ValueError(f"unknown part(s) {unknown} of bench search; its parts: {', '.join(PARTS)}")
    t_start = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="xstilts-bench-"))
    result: dict[str, Any] = {
        "benchmark": "search", "quick": quick, "parts": list(parts), "cpus": os.cpu_count(),
        "machine": platform.machine(), "python": platform.python_version(),
    }
    freed = 0
    if "overhead" in parts or "live_efficiency" in parts:
        import ray

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            if "overhead" in parts:
                result.update(overhead(_space(QUICK_FIDELITY if quick else {}), work, trials=2 if quick else 8,
                                       repeats=1 if quick else overhead_repeats))
            if "live_efficiency" in parts:
                fspec = _space(QUICK_FIDELITY if quick else {})  # the default space at the efficiency fidelity
                eff = efficiency(fspec, work, list(range(2 if quick else seeds)), 3 if quick else trials, tpe_alone,
                                 grid_trials=2 if quick else None)
                eff["seed_spread"] = seed_spread(fspec, 2 if quick else 3, str(home()))
                result["live_efficiency"] = eff
                result["compute_to_random_best"] = {a: eff["arms"][a]["compute_to_random_best"] for a in eff["arms"]}
        finally:
            ray.shutdown()
            freed = drop_checkpoints(work)
    if "efficiency" in parts:
        from .bench_arms import efficiency_arms

        arms = efficiency_arms(quick=quick, pool=pool, search_seeds=None if quick else seeds, trials=trials)
        result["efficiency"] = arms
        result["compute_to_random_quality"] = arms["compute_to_random_quality"]
    if "rank_agreement" in parts:
        from .bench_fidelity import rank_agreement

        ra = rank_agreement(quick=quick, n_configs=configs)
        # the headline, per fidelity: Spearman with the full score, share of a full trial's seconds, N
        result["rank_agreement"] = {k: {"spearman": v["spearman"], "compute_share": v["compute_share"], "n": v["n"]}
                                    for k, v in ra["fidelities"].items()}
        result["fidelity"] = ra
    result["bench_seconds"] = round(time.perf_counter() - t_start, 1)
    result["work_dir"] = str(work)
    result["checkpoints_removed_mb"] = round(freed / 2**20, 1)
    return result


def overhead(spec: Any, work: Path, trials: int, repeats: int) -> dict[str, Any]:
    """``overhead`` (each of ``repeats`` searches of ``trials`` trials, 2 at a time) and the
    medians of its three ratios, the headlines (``overhead_ratio``, ``..._perfect_packing``,
    ``..._whole_command``)."""
    from xstilts.search.runner import prepare_assets
    from xstilts.trainer.home import home

    prepare_assets(spec, home())  # data and model caches first: not search overhead
    runs = [_overhead_run(spec, work, f"bench-overhead{i}", trials) for i in range(repeats)]
    return {
        "overhead": {"concurrent": 2, "repeats": repeats, "fidelity": _fidelity(spec), "runs": runs},
        **{k: statistics.median(r[k] for r in runs)
           for k in ("overhead_ratio", "overhead_ratio_perfect_packing", "overhead_ratio_whole_command")},
    }


def _overhead_run(spec: Any, work: Path, name: str, trials: int) -> dict[str, Any]:
    """One overhead search: its trials' seconds against its wall times, and the ratios."""
    out, wall = _search(spec, work, name, trials=trials, max_concurrent=2)
    recs = trial_records(out.results_path, spec.search.metric)
    inside = sum(r["seconds"] for r in recs)
    ideal, packed, fit = zero_overhead_makespan(recs, 2), inside / 2, out.fit_seconds
    return {
        "trials": len(recs), "completed": out.counts["completed"], "pruned": out.counts["pruned"],
        "fit_s": round(fit, 2), "trial_seconds_sum": round(inside, 2), "ideal_wall_s": round(ideal, 2),
        "packed_wall_s": round(packed, 2),
        "wall_s": round(wall, 2), "setup_s": round(wall - fit - out.summary_seconds, 2),
        "summary_s": round(out.summary_seconds, 2),
        # the search proper (Tuner.fit: scheduling, Optuna, ASHA, MLflow logging, checkpoints)
        "overhead_ratio": round((fit - ideal) / fit, 4),
        # stricter: against Σ seconds / 2, as if trials packed the slots perfectly (idle slots count)
        "overhead_ratio_perfect_packing": round((fit - packed) / fit, 4),
        # the whole command (Ray job setup, MLflow parent run, summary plots)
        "overhead_ratio_whole_command": round((wall - ideal) / wall, 4),
    }


def _fidelity(spec: Any) -> dict[str, Any]:
    return {k: spec.trial[k] for k in ("intermediate_steps", "target_steps", "eval_every")}


def efficiency(fspec: Any, work: Path, seed_list: list[int], trials: int | None, tpe_alone: bool,
               grid_trials: int | None = None) -> dict[str, Any]:
    """``efficiency`` (without its ``seed_spread``): TPE+ASHA, random, grid (and TPE alone) over
    the seeds of ``seed_list``, ``trials`` trials each (None: the space's own budget); each arm's
    headline and per-seed figures, random search's reference, the rungs and ``config_sd``."""
    # the searchers on their own: no seed points (they would be every arm's first trial alike)
    espec = fspec.model_copy(update={"points_to_evaluate": []})
    n_eff = trials or espec.n_trials()
    arms: dict[str, dict[str, Any]] = {"tpe_asha": {"searcher": "tpe", "scheduler": "asha"},
                                       "random": {"searcher": "random", "scheduler": "none"}}
    if tpe_alone:  # what the searcher buys without early stopping (about 1.2 min a seed more)
        arms["tpe"] = {"searcher": "tpe", "scheduler": "none"}
    curves, histories = _run_arms(espec, work, seed_list, n_eff, arms)
    gspec = _grid_space(espec)
    # the grid is deterministic: one run serves every seed (its order is fixed)
    o, _ = _search(gspec, work, "bench-grid", max_concurrent=2,
                   **({"trials": grid_trials} if grid_trials else {}))  # (--quick: its first points only)
    grid_curve = best_so_far_curve(trial_records(o.results_path, gspec.search.metric))
    curves["grid"] = dict.fromkeys(seed_list, grid_curve)

    eff: dict[str, Any] = {"seeds": seed_list, "trials": n_eff, "grid_trials": grid_trials or gspec.n_trials(),
                           "fidelity": _fidelity(espec), "metric": espec.search.metric, "arms": {}}
    rand_curves = [curves["random"][s] for s in seed_list]
    rand_target, rand_budget = random_reference(rand_curves)
    eff["random_best_mean"] = None if rand_target is None else round(rand_target, 4)
    eff["random_compute_mean_s"] = round(rand_budget, 1)
    for arm in curves:
        eff["arms"][arm] = _arm_figures(arm, curves, seed_list)
    eff["rungs"] = rung_predictiveness(histories)
    # what separates configurations here, against what one configuration's training seed does
    finals = [v[-1] for v, _ in histories]
    eff["config_sd"] = round(statistics.stdev(finals), 4) if len(finals) > 1 else None
    return eff


def _run_arms(espec: Any, work: Path, seed_list: list[int], trials: int, arms: dict[str, dict[str, Any]]
              ) -> tuple[dict[str, dict[int, Curve]], list[tuple[list[float], list[float]]]]:
    """Each arm's search for each seed: {arm: {seed: best-so-far curve}}, and random search's
    trials' report histories (for the rungs)."""
    histories: list[tuple[list[float], list[float]]] = []
    curves: dict[str, dict[int, Curve]] = {a: {} for a in arms}
    for seed in seed_list:
        for arm, kw in arms.items():
            # TPE's start-up trials are random draws: with random search's own seed they would be
            # random search's first trials, and "reaching random's best" would often be a tie
            arm_seed = seed if arm == "random" else seed + SEARCHER_SEED_OFFSET
            o, _ = _search(espec, work, f"bench-{arm}", trials=trials, max_concurrent=2, seed=arm_seed, **kw)
            curves[arm][seed] = best_so_far_curve(trial_records(o.results_path, espec.search.metric))
            if arm == "random":
                histories += report_histories(o.results_path, espec.search.metric)
    return curves, histories


def _arm_figures(arm: str, curves: dict[str, dict[int, Curve]], seed_list: list[int]) -> dict[str, Any]:
    """One arm's figures: the headline (its seeds' mean curve against random's mean best and
    compute), the per-seed figures and their medians, its mean best; for TPE arms the bootstrap."""
    per_seed = _per_seed(arm, curves, seed_list)
    reached = [p["compute_to_random_best"] for p in per_seed if p["compute_to_random_best"] is not None]
    # a seed that never reaches random's best counts as infinitely expensive (not left out)
    everyone = statistics.median([p["compute_to_random_best"] if p["compute_to_random_best"] is not None
                                  else math.inf for p in per_seed])
    arm_curves = [curves[arm][s] for s in seed_list]
    rand_curves = [curves["random"][s] for s in seed_list]
    headline = headline_fraction(arm_curves, rand_curves)
    out: dict[str, Any] = {
        # the headline: the seeds' mean best-so-far curve against random's mean best and compute
        "compute_to_random_best": None if headline is None else round(headline, 4),
        "mean_curve": [(round(x, 1), round(b, 4)) for x, b in mean_curve(arm_curves)],
        "per_seed": per_seed,
        "per_seed_median": everyone if math.isfinite(everyone) else None,
        "per_seed_median_of_reached": statistics.median(reached) if reached else None,
        "reached_in": f"{len(reached)}/{len(seed_list)}",
        "best_mean": round(statistics.fmean([p["best"] for p in per_seed if p["best"] is not None]), 4)
        if any(p["best"] is not None for p in per_seed) else None,
    }
    if arm.startswith("tpe"):  # how much the headline owes to which seeds ran
        out["bootstrap"] = bootstrap_fraction(arm_curves, rand_curves)
    return out


def _per_seed(arm: str, curves: dict[str, dict[int, Curve]], seed_list: list[int]) -> list[dict[str, Any]]:
    """Each seed of ``arm`` against random search's run of that seed (random search: of the next
    seed): its best, its compute, the share of random's compute spent before reaching random's best."""
    per_seed: list[dict[str, Any]] = []
    for i, seed in enumerate(seed_list):
        # random search itself is measured against the next seed's random search: what a
        # searcher no better than random gets here
        ref = seed_list[(i + 1) % len(seed_list)] if arm == "random" else seed
        rand = curves["random"][ref]
        target, budget = rand[-1][1], rand[-1][0]
        c = curves[arm][seed]
        reach = compute_to_reach(c, target) if target is not None else None
        per_seed.append({
            "seed": seed, "best": c[-1][1] if c else None, "compute_s": round(c[-1][0], 1) if c else 0,
            "random_best": target, "random_seed": ref,
            "compute_to_random_best": round(reach / budget, 4) if reach is not None and budget else None,
            "curve": [(round(s, 1), None if b is None else round(b, 4)) for s, b in c],
        })
    return per_seed


def drop_checkpoints(root: Path) -> int:
    """Remove the trial checkpoints (``checkpoint_*`` folders) under ``root``; bytes freed. The
    benchmark reads only the results, so its work folder keeps Ray's ``result.json`` and
    experiment state, and the tracking DB — the checkpoints were about 0.8 GiB a full run."""
    import shutil

    freed = 0
    for d in sorted(root.glob("ray/*/*/checkpoint_*")):
        if d.is_dir() and not d.is_symlink():
            freed += sum(f.stat().st_size for f in d.rglob("*") if f.is_file())
            shutil.rmtree(d, ignore_errors=True)
    return freed
