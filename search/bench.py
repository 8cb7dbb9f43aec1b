"""``xstilts bench search --json``: what the search machinery costs, and what the searcher buys.

* ``overhead``: 8 trials of the default space at its default fidelity, 2 at a time, the whole
  stack (Ray Tune, OptunaSearch + TPE, ASHA, the MLflow callback into SQLite, checkpoints).
  ``overhead_ratio = (wall − Σ trial seconds / concurrency) / wall`` with ``wall`` the search
  proper (``Tuner.fit``); ``overhead_ratio_whole_command`` uses the whole ``run_search`` (also the
  MLflow parent run, the Tuner set-up and the summary plots after the search). A trial's seconds are
  Ray's ``time_total_s`` (everything inside the trainable: model load, DeepSpeed, training,
  evaluation, checkpoints), and ``Σ / concurrency`` is the wall time a perfect scheduler with no
  overhead would need; so an idle slot counts as overhead — at the start (Ray starting the trial
  actors) and at the end (the last trial running alone). The search is run ``overhead_repeats``
  times (default 3, a fresh study each time, seed 0); the headline is the median
  ratio, each run is listed. Target ≤ 0.10.
* ``efficiency``: best-so-far ``zero_shot/avg`` against cumulative trial-seconds, for TPE+ASHA,
  TPE alone and random (no early stopping) and grid (over a discretised default space: its 3 task subsets ×
  {sequential, interleaved at m=0.3, T=3}), each over ``seeds`` seeds (default 5) of ``trials``
  trials (default 16), at a reduced fidelity so the benchmark fits 30 minutes on 2 cores. Only
  trials that ran to the end count for the best value; every trial's seconds count for compute,
  in completion order. ``compute_to_random_best`` is, per seed, the fraction of random search's
  total compute a searcher spends before its best-so-far reaches the best value random search
  found with its full budget (``null`` where it never does); reported per seed, as the median
  over all seeds (a seed that never reaches it counts as infinite; ``null`` when that is the
  median) and over the seeds that reached it. Target: TPE+ASHA ≤ 0.5. ``rungs`` says what an
  early-stopping rung sees at each report of random search's trials: the Spearman correlation of
  the value then with the final value, and the share of the trial's seconds spent by then.

Runs go to a temporary tracking store and results folder; caches (synth, the tiny model) are
the usual ``$XSTILTS_HOME`` — the first run pretrains the default tiny model there once (not
counted in any figure, but in ``bench_seconds``). ``--quick`` uses 4 trials, 2 seeds, one overhead
run, 30+30 steps and a briefly pretrained tiny model: a smoke run of the same code, not figures to report.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["run", "trial_records", "best_so_far_curve", "compute_to_reach", "report_histories",
           "rung_predictiveness"]

EFFICIENCY_FIDELITY = {"intermediate_steps": 100, "target_steps": 100, "eval_every": 25}
QUICK_FIDELITY = {"intermediate_steps": 30, "target_steps": 30, "eval_every": 15, "eval_max_examples": 100,
                  "tiny": {"pretrain_steps": 300, "pretrain_batch": 64}}  # a smoke run: a briefly pretrained model


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
                    "end": float(last.get("timestamp", 0)), "done": bool(last.get("trial_done")),
                    "value": float(last[metric]) if last.get("trial_done") and metric in last else None})
    return sorted(out, key=lambda r: (r["end"], r["trial"]))


def report_histories(results_path: str | Path, metric: str) -> list[tuple[list[float], list[float]]]:
    """Per trial that ran to its end: (``metric`` at each report, ``time_total_s`` at each report)."""
    return [([float(x[metric]) for x in lines], [float(x["time_total_s"]) for x in lines])
            for lines in _result_lines(results_path).values()
            if lines[-1].get("trial_done") and all(metric in x for x in lines)]


def rung_predictiveness(histories: list[tuple[list[float], list[float]]]) -> list[dict[str, Any]]:
    """What an early-stopping rung at report k would see: Spearman of the value at report k with the
    final value, and the mean fraction of a trial's seconds spent by then (over complete histories
    of one length)."""
    from .bench_transfer import spearman

    if not histories:
        return []
    n = max(len(v) for v, _ in histories)
    full = [(v, t) for v, t in histories if len(v) == n]
    if len(full) < 3:
        return []
    return [{"report": k + 1, "spearman_with_final": round(spearman([v[k] for v, _ in full], [v[-1] for v, _ in full]), 3),
             "time_fraction": round(statistics.fmean(t[k] / t[-1] for _, t in full if t[-1] > 0), 3)}
            for k in range(n)]


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


def compute_to_reach(curve: list[tuple[float, float | None]], target: float, mode: str = "max") -> float | None:
    """Trial-seconds spent until best-so-far reaches ``target`` (None: never)."""
    for spent, best in curve:
        if best is not None and (best >= target - 1e-12 if mode == "max" else best <= target + 1e-12):
            return spent
    return None


def _space(fidelity: dict[str, Any]) -> Any:
    from xstilts.spaces import load_space

    spec = load_space(None)
    return spec.model_copy(update={"trial": {**spec.trial, **fidelity}, "source": "bench:default"})


def _grid_space(spec: Any) -> Any:
    from xstilts.spaces.schema import SearchSpec

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


def run(quick: bool = False, seeds: int = 5, trials: int = 16, overhead_repeats: int = 3) -> dict[str, Any]:
    import ray

    t_start = time.perf_counter()
    seed_list = list(range(2 if quick else seeds))
    n_overhead = 4 if quick else 8
    n_eff = 4 if quick else trials
    repeats = 1 if quick else overhead_repeats
    work = Path(tempfile.mkdtemp(prefix="xstilts-bench-"))
    result: dict[str, Any] = {
        "benchmark": "search", "quick": quick, "cpus": os.cpu_count(), "machine": platform.machine(),
        "python": platform.python_version(),
    }
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        # ---- overhead: the default space at its default fidelity, 8 trials, 2 at a time
        spec = _space(QUICK_FIDELITY if quick else {})
        from xstilts.search.runner import prepare_assets
        from xstilts.trainer.home import home

        prepare_assets(spec, home())  # data and model caches first: not search overhead
        runs: list[dict[str, Any]] = []
        for i in range(repeats):
            out, wall = _search(spec, work, f"bench-overhead{i}", trials=n_overhead, max_concurrent=2)
            recs = trial_records(out.results_path, spec.search.metric)
            inside = sum(r["seconds"] for r in recs)
            ideal, fit = inside / 2, out.fit_seconds
            runs.append({
                "trials": len(recs), "completed": out.counts["completed"], "pruned": out.counts["pruned"],
                "fit_s": round(fit, 2), "trial_seconds_sum": round(inside, 2), "ideal_wall_s": round(ideal, 2),
                "wall_s": round(wall, 2), "setup_s": round(wall - fit - out.summary_seconds, 2),
                "summary_s": round(out.summary_seconds, 2),
                # the search proper (Tuner.fit: scheduling, Optuna, ASHA, MLflow logging, checkpoints)
                "overhead_ratio": round((fit - ideal) / fit, 4),
                # the whole command (Ray job setup, MLflow parent run, summary plots)
                "overhead_ratio_whole_command": round((wall - ideal) / wall, 4),
            })
        result["overhead"] = {
            "concurrent": 2, "repeats": repeats,
            "fidelity": {k: spec.trial[k] for k in ("intermediate_steps", "target_steps", "eval_every")},
            "runs": runs,
        }
        result["overhead_ratio"] = statistics.median(r["overhead_ratio"] for r in runs)
        result["overhead_ratio_whole_command"] = statistics.median(r["overhead_ratio_whole_command"] for r in runs)

        # ---- efficiency: TPE+ASHA vs random vs grid, several seeds, reduced fidelity
        fid = QUICK_FIDELITY if quick else EFFICIENCY_FIDELITY
        espec = _space(fid)
        arms: dict[str, dict[str, Any]] = {"tpe_asha": {"searcher": "tpe", "scheduler": "asha"},
                                           "tpe": {"searcher": "tpe", "scheduler": "none"},
                                           "random": {"searcher": "random", "scheduler": "none"}}
        histories: list[tuple[list[float], list[float]]] = []
        curves: dict[str, dict[int, list[tuple[float, float | None]]]] = {a: {} for a in [*arms, "grid"]}
        for seed in seed_list:
            for arm, kw in arms.items():
                o, _ = _search(espec, work, f"bench-{arm}", trials=n_eff, max_concurrent=2, seed=seed, **kw)
                curves[arm][seed] = best_so_far_curve(trial_records(o.results_path, espec.search.metric))
                if arm == "random":
                    histories += report_histories(o.results_path, espec.search.metric)
        gspec = _grid_space(espec)
        # the grid is deterministic: one run serves every seed (its order is fixed)
        o, _ = _search(gspec, work, "bench-grid", max_concurrent=2)
        grid_curve = best_so_far_curve(trial_records(o.results_path, gspec.search.metric))
        for seed in seed_list:
            curves["grid"][seed] = grid_curve

        eff: dict[str, Any] = {"seeds": seed_list, "trials": n_eff, "grid_trials": gspec.n_trials(),
                               "fidelity": fid, "metric": espec.search.metric, "arms": {}}
        for arm in curves:
            per_seed: list[dict[str, Any]] = []
            for seed in seed_list:
                rand = curves["random"][seed]
                target, budget = rand[-1][1], rand[-1][0]
                c = curves[arm][seed]
                reach = compute_to_reach(c, target) if target is not None else None
                per_seed.append({
                    "seed": seed, "best": c[-1][1] if c else None, "compute_s": round(c[-1][0], 1) if c else 0,
                    "random_best": target,
                    "compute_to_random_best": round(reach / budget, 4) if reach is not None and budget else None,
                    "curve": [(round(s, 1), None if b is None else round(b, 4)) for s, b in c],
                })
            reached = [p["compute_to_random_best"] for p in per_seed if p["compute_to_random_best"] is not None]
            # a seed that never reaches random's best counts as infinitely expensive (not left out)
            everyone = statistics.median([p["compute_to_random_best"] if p["compute_to_random_best"] is not None
                                          else math.inf for p in per_seed])
            eff["arms"][arm] = {
                "per_seed": per_seed,
                "compute_to_random_best_median": everyone if math.isfinite(everyone) else None,
                "compute_to_random_best_median_of_reached": statistics.median(reached) if reached else None,
                "compute_to_random_best_mean": round(statistics.fmean(reached), 4) if reached else None,
                "reached_in": f"{len(reached)}/{len(seed_list)}",
                "best_mean": round(statistics.fmean([p["best"] for p in per_seed if p["best"] is not None]), 4)
                if any(p["best"] is not None for p in per_seed) else None,
            }
        eff["rungs"] = rung_predictiveness(histories)
        result["efficiency"] = eff
        result["compute_to_random_best"] = {a: eff["arms"][a]["compute_to_random_best_median"] for a in eff["arms"]}
    finally:
        ray.shutdown()
    result["bench_seconds"] = round(time.perf_counter() - t_start, 1)
    result["work_dir"] = str(work)
    return result
