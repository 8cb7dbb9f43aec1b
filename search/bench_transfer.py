"""``xstilts bench transfer``: does ``synth`` show cross-lingual transfer, and do intermediate tasks matter?

Measured with the cached tiny model (made first if missing) over several fine-tuning seeds,
by running real trials (``run_trial``, DeepSpeed engine) in this process:

* ``chance``: {target task: chance score};
* ``zero_shot``: {target task: {language: mean test score}} after English-only fine-tuning on
  that target alone, no intermediate task (retrieval targets: the pretrained encoder, one run);
* ``clean_zero_shot``: the same on ``test_clean`` — items none of whose content words (the
  deciding words of the clause tasks) is English — for the tasks that have it (xnli, pawsx);
* ``overlap``: {language: share of content words identical to English};
* ``spearman_overlap_score``: Spearman correlation of overlap and zero-shot score over the
  non-control languages, per target (and for the mean over targets);
* ``validity``: per target, does it measure transfer (``transfer_validity``: chance, English,
  every language, the control, Spearman, the control gap, the four rules and ``valid``);
  ``all_targets_valid``;
* ``translate_train_xnli``: the XNLI-like task trained on English plus every language's
  "translated" train split (a reference: no longer zero-shot);
* ``intermediate_effect_by_target``: {target: each intermediate task's effect on the target's
  test score (mean over the objective languages) when that single task is trained first
  (sequential schedule), paired by seed against the zero-shot tables' runs, its SE, and the mean
  over tasks}; ``paper_comparison``: that set beside X-STILTs (largest gains on retrieval and QA,
  none on XNLI); ``intermediate_effect`` / ``intermediate_effect_se``: the column of the default
  objective (``test/zero_shot/avg`` of the default targets);
* ``seconds``: generation, pretraining, per trial, and ``default_trial``: one trial of the default
  search's first point (MNLI then XNLI, 300 + 300 steps, dev evaluation every 100) timed whole;
  ``targets``: each issue target, met or not.

The benchmark reads test scores only, so its own trials evaluate no dev set (``eval_dev: false``;
evaluation draws no random number, so the test scores are those of a trial evaluated on dev). A
trial asked for twice (an effect's baseline is a zero-shot table's run) runs once. The effect trials
train each (intermediate task, seed)'s phase 1 once, not once per target group: the trainer keeps
it in the phase-1 cache (``<home>/bench/phase1-cache``, kept like the ledger and keyed by the code)
and every other target's trial starts phase 2 from it, with the metrics it would have had trained
(``trainer/phase1_cache.py``). The trial that trains a phase 1 is put before those that take it, so
with ``workers`` trials at once they seldom start before it has finished (one that does trains it
too). ``seconds`` says how many phase 1s were trained and how many were taken from the cache.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xstilts.trainer.names import TEST_OBJECTIVE

from .transfer_validity import effects_by_target, paper_comparison, spearman, validity_table

if TYPE_CHECKING:
    from xstilts.trainer.config import TrialRuntime

__all__ = ["run", "TransferBench", "zero_shot_tables", "overlap_spearman", "translate_train_xnli",
           "intermediate_effects", "default_trial_seconds"]


@dataclass
class TransferBench:
    """What every part measures with: the benchmark, the trial settings they share, and a trial
    runner that times each trial (``trial_s``). A part asks for its trials together (``run_all``):
    they run ``workers`` at a time in worker processes of one torch thread each (on 2 cores, two
    one-thread trials side by side did more than one two-thread trial at a time; the scores are the
    same with any thread count)."""

    bench: Any  # the synth benchmark (its languages, manifest and records)
    base: dict[str, Any]  # TrialConfig fields every trial shares (tiny model, schedule, fidelity)
    runtime: TrialRuntime  # where the trials run: the home, 2 threads
    workers: int = 1  # trials run at once (1: in this process)
    ledger: Path | None = None  # finished trials appended here, read back by a later run (see ``open_ledger``)
    phase1_sources: dict[str, int] = field(default_factory=dict)  # trials run by where their phase 1 came from
    trial_s: list[float] = field(default_factory=list)  # each trial's seconds, in the order they ran
    done: dict[str, dict[str, Any]] = field(default_factory=dict)  # the metrics of every trial run, by config
    seconds: dict[str, float] = field(default_factory=dict)  # each trial's seconds by config (ledger's too)
    _pool: Any = None  # the worker processes, made on first use (``close`` ends them)
    label: str = "bench transfer"  # what its progress lines start with

    @property
    def langs(self) -> list[str]:
        return list(self.bench.languages)

    @property
    def obj_langs(self) -> list[str]:
        """The languages of the objective: neither English nor a control language."""
        return [lang for lang in self.langs if lang != "en" and lang not in self.bench.control_languages]

    def _config(self, seed: int, over: dict[str, Any]) -> Any:
        from xstilts.trainer.config import TrialConfig

        return TrialConfig.model_validate({**self.base, "seed": seed, **over})

    def open_ledger(self, path: Path) -> int:
        """Keep every finished trial in ``path`` (JSON Lines, flushed and fsynced per trial) and take
        the trials already there: a run that crashed or was killed loses none of its trials. A line
        is keyed by the trial config and a hash of the trainer's and synth's source, so trials of
        other code are not taken. Returns how many were taken."""
        from xstilts.trainer.phase1_cache import trainer_source_hash

        self.ledger = path
        taken = 0
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a kill
                if rec.get("code") == trainer_source_hash() and rec["key"] not in self.done:
                    self.done[rec["key"]] = rec["metrics"]
                    self.seconds[rec["key"]] = float(rec.get("seconds", math.nan))
                    taken += 1
        return taken

    def _keep(self, key: str, metrics: dict[str, Any], seconds: float, phase1: str | None) -> None:
        from xstilts.trainer.phase1_cache import trainer_source_hash

        self.done[key] = metrics
        self.seconds[key] = seconds
        self.trial_s.append(seconds)
        if phase1 is not None:
            self.phase1_sources[phase1] = self.phase1_sources.get(phase1, 0) + 1
        if self.ledger is not None:
            self.ledger.parent.mkdir(parents=True, exist_ok=True)
            with self.ledger.open("a") as f:
                f.write(json.dumps({"key": key, "code": trainer_source_hash(), "metrics": metrics,
                                    "seconds": seconds}) + "\n")
                f.flush()
                os.fsync(f.fileno())

    def run_all(self, requests: list[tuple[int, dict[str, Any]]]) -> None:
        """Run every (seed, overrides) not run yet (a config asked for again is not run again: the
        same config trains the same model), ``workers`` at a time, each phase 1's first trial first."""
        todo: dict[str, Any] = {}
        for seed, over in requests:
            cfg = self._config(seed, over)
            todo.setdefault(cfg.model_dump_json(), cfg)
        todo = _phase1_makers_first({k: c for k, c in todo.items() if k not in self.done})
        if self.workers <= 1 or len(todo) <= 1:
            for key, cfg in todo.items():
                self._keep(key, *_run_one(cfg, self.runtime))
            return
        if self._pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_one_thread)
        one_thread = dataclasses.replace(self.runtime, threads=1)
        t0, n = time.perf_counter(), len(todo)
        for i, (key, done) in enumerate(zip(todo, self._pool.map(_run_one, todo.values(), [one_thread] * n),
                                            strict=True)):
            self._keep(key, *done)
            elapsed = time.perf_counter() - t0
            if i + 1 == n or (i + 1) % max(1, n // 20) == 0:
                _progress(f"{i + 1}/{n} trials, {elapsed / 60:.1f} min, ~{elapsed / (i + 1) * (n - i - 1) / 60:.1f} min left",
                          self.label)

    def key(self, seed: int, over: dict[str, Any]) -> str:
        """The key of a trial in ``done``, ``seconds`` and the ledger: its whole config."""
        return str(self._config(seed, over).model_dump_json())

    def trial(self, seed: int, **over: Any) -> dict[str, Any]:
        """One trial of the shared settings with training seed ``seed`` and ``over``: its metrics."""
        self.run_all([(seed, over)])
        return self.done[self._config(seed, over).model_dump_json()]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


def _phase1_makers_first(todo: dict[str, Any]) -> dict[str, Any]:
    """``todo`` reordered: first the trials without a phase 1 and the first trial of each phase 1
    (by its cache key), then the others in their order, so that those start after the trial that
    trains their phase 1 (with ``workers`` at a time, unless there are fewer phase 1s than workers)."""
    from xstilts.trainer.phase1_cache import phase1_key

    first: dict[str, Any] = {}
    after: dict[str, Any] = {}
    seen: set[str] = set()
    for key, cfg in todo.items():
        p1 = phase1_key(cfg) if cfg.intermediate_steps and (cfg.intermediate or cfg.stages) else None
        (after if p1 in seen else first)[key] = cfg
        if p1 is not None:
            seen.add(p1)
    return {**first, **after}


def _one_thread() -> None:
    """A worker process's start: one torch thread (OMP_WAIT_POLICY is inherited), and what it
    prints goes to stderr (the bench's stdout is its one JSON object)."""
    import torch

    os.dup2(2, 1)
    sys.stdout = sys.stderr

    torch.set_num_threads(1)


def _run_one(cfg: Any, runtime: Any) -> tuple[dict[str, Any], float, str | None]:
    """One trial, silent: (its metrics, its seconds, where its phase 1 came from: ``phase1_source``).
    A trial that evaluates dev keeps, in its metrics' ``reports``, [seconds since its start, the
    objective] at each report (the final one included): what a scheduler's rungs would read."""
    from xstilts.trainer.names import OBJECTIVE
    from xstilts.trainer.trial import run_trial

    ts = time.perf_counter()
    reports: list[list[float]] = []

    def report(metrics: dict[str, Any], checkpoint_dir: str | None = None) -> None:
        if OBJECTIVE in metrics:
            reports.append([round(time.perf_counter() - ts, 3), float(metrics[OBJECTIVE])])

    res = run_trial(cfg, report, runtime=runtime, log=lambda s: None)
    metrics = dict(res["metrics"])
    if reports:
        metrics["reports"] = reports
    return metrics, time.perf_counter() - ts, res.get("phase1_source")


def run(quick: bool = False, seeds: int = 8, effect_seeds: int = 2, home: str | None = None,
        parts: tuple[str, ...] = ("zero_shot", "effects"), workers: int | None = None) -> dict[str, Any]:
    """``seeds`` fine-tuning seeds for the zero-shot tables, ``effect_seeds`` for the intermediate
    effects (every intermediate task on every target: 81 pairs, so few seeds each; their mean over
    tasks per target has ~9x the seeds); ``parts`` picks what to measure: the zero-shot tables
    (with the overlap correlations, the validity table and the translate-train reference), the
    intermediate effects; then the default trial, and the targets. ``workers``: trials at once
    (default: one per CPU core, at most 8)."""
    # OpenMP threads spin while they wait: on a machine shared with other work, torch's 2 threads
    # ran ~30x slower so (a tiny-model step: 3.9 s spinning, 0.12-0.25 s passive, load ~15 on 2
    # cores). Passive waiting, unless asked otherwise; it takes effect only before torch's import.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    torch.set_num_threads(2)
    t_start = time.perf_counter()
    tb, seconds = _prepare(quick, home)
    tb.workers = workers or min(8, os.cpu_count() or 1)
    seconds["trials_taken_from_ledger"] = tb.open_ledger(Path(tb.runtime.home or ".") / "bench" / "transfer-trials.jsonl")
    if seconds["trials_taken_from_ledger"]:
        _progress(f"{seconds['trials_taken_from_ledger']} finished trials taken from {tb.ledger} (same configs, same code)")
    try:
        return _measure(tb, seconds, quick, seeds, effect_seeds, parts, t_start)
    finally:
        tb.close()


def _measure(tb: TransferBench, seconds: dict[str, Any], quick: bool, seeds: int, effect_seeds: int,
             parts: tuple[str, ...], t_start: float) -> dict[str, Any]:
    """``run``'s parts on a prepared bench."""
    from xstilts.trainer.config import TrialConfig
    from xstilts.trainer.tasks import INTERMEDIATE_TASKS, TARGET_TASKS, TASKS

    n_seeds = 1 if quick else seeds
    n_effect = 2 if quick else effect_seeds  # 2 at smoke size too: the pairing by seed is exercised
    langs, obj_langs = tb.langs, tb.obj_langs
    default_targets = TrialConfig.model_fields["target_tasks"].default_factory()  # type: ignore[misc]
    zero_shot, zero_shot_se, clean = zero_shot_tables(tb, n_seeds) if "zero_shot" in parts else ({}, {}, {})
    overlap = dict(tb.bench.manifest["overlap"])
    rho, rho_mean = overlap_spearman(overlap, zero_shot, obj_langs)
    chance = {t: (1.0 / TASKS[t].num_labels if TASKS[t].num_labels else 0.0) for t in TARGET_TASKS}
    validity = validity_table(zero_shot, chance, overlap, obj_langs, tb.bench.control_languages)
    translate_train = translate_train_xnli(tb, n_seeds) if "zero_shot" in parts else {}
    inter = list(INTERMEDIATE_TASKS)[: 2 if quick else None] if "effects" in parts else []
    # at smoke size: the default target and a retrieval target, enough to run every kind of effect
    effect_targets = [*default_targets, "tatoeba"] if quick else list(TARGET_TASKS)
    first_effect_trial = len(tb.trial_s)
    by_target = intermediate_effects(tb, inter, effect_targets if inter else [], n_effect)
    effects = {task: statistics.fmean(by_target[t]["effect"][task] for t in default_targets) for task in inter}
    effects_se = {task: math.sqrt(sum(by_target[t]["se"][task] ** 2 for t in default_targets)) / len(default_targets)
                  for task in inter}

    xnli_mean = statistics.fmean(zero_shot["xnli"][lang] for lang in obj_langs) if zero_shot else float("nan")
    seconds["per_trial_mean"] = statistics.fmean(tb.trial_s) if tb.trial_s else float("nan")  # trials run now
    seconds["per_trial_max"] = max(tb.trial_s, default=float("nan"))
    seconds["trials"] = len(tb.trial_s)
    seconds["effect_trial_max"] = max(tb.trial_s[first_effect_trial:] or [float("nan")])
    seconds["phase1_trained"] = tb.phase1_sources.get("trained", 0)  # by the trials run now
    seconds["phase1_from_cache"] = tb.phase1_sources.get("cache", 0)
    seconds["default_trial"] = default_trial_seconds(tb, quick)
    seconds["total"] = time.perf_counter() - t_start
    seconds["workers"] = tb.workers
    met = {
        "xnli_mean_ge_chance_plus_0.15": xnli_mean >= chance["xnli"] + 0.15,
        "xnli_spearman_ge_0.7": rho.get("xnli", float("nan")) >= 0.7,
        "mean_over_targets_spearman_ge_0.7": rho_mean >= 0.7,
        "every_target_valid": bool(validity) and all(v["valid"] for v in validity.values()),
        "an_effect_ge_+2pts_beyond_2se": any(e >= 0.02 and e > 2 * effects_se[k] for k, e in effects.items()),
        "an_effect_le_-2pts_beyond_2se": any(e <= -0.02 and -e > 2 * effects_se[k] for k, e in effects.items()),
        "default_trial_le_30s": seconds["default_trial"] <= 30,
        "pretraining_le_6min": (seconds["pretraining"] or 0) <= 360,
    }
    return {
        "seeds": n_seeds, "effect_seeds": n_effect, "parts": list(parts), "quick": quick, "languages": langs,
        "synth_version": tb.bench.manifest.get("version"),
        "controls": tb.bench.control_languages,
        "objective": {"target_tasks": default_targets, "metric": TEST_OBJECTIVE, "languages": obj_langs},
        "chance": chance, "zero_shot": zero_shot, "zero_shot_se": zero_shot_se, "clean_zero_shot": clean,
        "clean_n": _clean_counts(tb.bench, [x for x in langs if x != "en"]),
        "xnli_objective_mean": xnli_mean, "overlap": overlap,
        "spearman_overlap_score": rho, "spearman_overlap_mean_over_targets": rho_mean,
        "validity": validity, "all_targets_valid": met["every_target_valid"],
        "translate_train_xnli": translate_train,
        "intermediate_effect": effects, "intermediate_effect_se": effects_se,
        "intermediate_effect_by_target": by_target, "paper_comparison": paper_comparison(by_target),
        "seconds": seconds, "targets": met,
    }


def _prepare(quick: bool, home: str | None) -> tuple[TransferBench, dict[str, Any]]:
    """The synth benchmark and the tiny model (made if missing), the trials' shared settings:
    (the bench, ``seconds`` with generation and pretraining)."""
    from xstilts.trainer.config import TinyModelSpec, TrialRuntime
    from xstilts.trainer.data import synth_benchmark
    from xstilts.trainer.home import home as home_dir
    from xstilts.trainer.model import ensure_tiny_model

    root = home_dir(home)
    seconds: dict[str, Any] = {}
    bench = synth_benchmark(str(root), 0, lambda s: None)
    seconds["generation"] = bench.manifest.get("seconds")
    spec = TinyModelSpec(pretrain_steps=300, pretrain_batch=64) if quick else TinyModelSpec()
    t0 = time.perf_counter()
    model_dir = ensure_tiny_model(root, spec)
    seconds["pretraining"] = json.loads(Path(model_dir, "xstilts_pretrain.json").read_text()).get("seconds")
    seconds["pretraining_cached"] = time.perf_counter() - t0 < 5
    base: dict[str, Any] = {"tiny": spec, "schedule": "sequential", "eval_dev": False}  # test scores are read
    if quick:
        base.update(intermediate_steps=40, target_steps=40, eval_max_examples=100)
    runtime = TrialRuntime(home=str(root), threads=2, phase1_cache=str(root / "bench" / "phase1-cache"))
    return TransferBench(bench, base, runtime), seconds


def _progress(msg: str, label: str = "bench transfer") -> None:
    print(f"[{label}] {msg}", file=sys.stderr, flush=True)


def zero_shot_tables(tb: TransferBench, n_seeds: int) -> tuple[dict[str, dict[str, float]],
                                                                  dict[str, dict[str, float]],
                                                                  dict[str, dict[str, float]]]:
    """Each target fine-tuned alone on English (XTREME's zero-shot setting), ``n_seeds`` seeds
    (retrieval targets: one run of the pretrained encoder): (``zero_shot``, ``zero_shot_se``,
    ``clean_zero_shot``), each {target: {language: score}}."""
    from xstilts.trainer.tasks import TARGET_TASKS, TASKS

    zero_shot: dict[str, dict[str, float]] = {}
    zero_shot_se: dict[str, dict[str, float]] = {}
    clean: dict[str, dict[str, float]] = {}
    langs = tb.langs
    trained_targets = [t for t in TARGET_TASKS if TASKS[t].family != "retrieval"]
    retrieval = [t for t in TARGET_TASKS if t not in trained_targets]
    # every retrieval target in one trial: nothing is trained for them, so each scores the same as alone
    tb.run_all([(s, {"target_tasks": [t], "eval_clean": True}) for t in trained_targets for s in range(n_seeds)]
               + [(0, {"target_tasks": retrieval})])
    for t in TARGET_TASKS:
        trained = t in trained_targets
        runs = ([tb.trial(s, target_tasks=[t], eval_clean=True) for s in range(n_seeds)] if trained
                else [tb.trial(0, target_tasks=retrieval)])
        by_lang = {lang: [m[f"test/zero_shot/{t}/{lang}"] for m in runs] for lang in langs if lang != "en"}
        if trained:
            by_lang["en"] = [m[f"test/en/{t}"] for m in runs]
        zero_shot[t] = {k: statistics.fmean(v) for k, v in by_lang.items()}
        zero_shot_se[t] = {k: _se(v) for k, v in by_lang.items()}
        if f"test_clean/zero_shot/{t}" in runs[0]:
            clean[t] = {lang: statistics.fmean(m[f"test_clean/zero_shot/{t}/{lang}"] for m in runs)
                        for lang in langs if lang != "en"}
        _progress(f"zero-shot {t}: " + " ".join(f"{k} {v:.3f}" for k, v in zero_shot[t].items()))
    return zero_shot, zero_shot_se, clean


def overlap_spearman(overlap: dict[str, float], zero_shot: dict[str, dict[str, float]],
                     obj_langs: list[str]) -> tuple[dict[str, float], float]:
    """Spearman of the languages' overlap with English and their zero-shot score: per target, and
    for the mean over targets (nan without zero-shot tables)."""
    rho = {t: spearman([overlap[lang] for lang in obj_langs], [zero_shot[t][lang] for lang in obj_langs])
           for t in zero_shot}
    if not zero_shot:
        return rho, float("nan")
    mean_over_targets = {lang: statistics.fmean(zero_shot[t][lang] for t in zero_shot) for lang in obj_langs}
    return rho, spearman([overlap[lang] for lang in obj_langs], [mean_over_targets[lang] for lang in obj_langs])


def translate_train_xnli(tb: TransferBench, n_seeds: int) -> dict[str, float]:
    """The translate-train reference for the XNLI-like task (English plus every language's
    "translated" train split, no longer zero-shot): {language: mean test score}."""
    langs = tb.langs
    over = {"target_tasks": ["xnli"], "translate_train_languages": [x for x in langs if x != "en"]}
    tb.run_all([(s, over) for s in range(n_seeds)])
    tt_runs = [tb.trial(s, **over) for s in range(n_seeds)]
    translate_train = {lang: statistics.fmean(m[f"test/zero_shot/xnli/{lang}"] for m in tt_runs)
                       for lang in langs if lang != "en"}
    _progress("translate-train xnli: " + " ".join(f"{k} {v:.3f}" for k, v in translate_train.items()))
    return translate_train


def intermediate_effects(tb: TransferBench, tasks: list[str], targets: list[str], n_effect: int
                         ) -> dict[str, dict[str, Any]]:
    """Each intermediate task's effect on each target: the target alone, trained after the task
    (sequential), against the target alone, paired by seed (the baseline runs are the zero-shot
    tables' own, reused; a retrieval target's baseline, the pretrained encoder, is one run). Each
    score is the target's test score, the mean over the objective languages.
    ``effects_by_target``'s {target: {"effect", "se", "mean", "mean_se"}}."""
    from xstilts.trainer.tasks import TASKS

    retrieval = [t for t in targets if TASKS[t].family == "retrieval"]

    def over(t: str, **more: Any) -> dict[str, Any]:
        """A target's trial: alone, but the retrieval targets all in one (nothing is trained for them)."""
        return {"target_tasks": retrieval if t in retrieval else [t], **more}

    def score(t: str, seed: int, **more: Any) -> float:
        return float(tb.trial(seed, **over(t, **more))[f"test/zero_shot/{t}"])

    def seeds(t: str) -> range:
        return range(1) if t in retrieval else range(n_effect)  # the pretrained encoder: one baseline

    tb.run_all([(s, over(t, eval_clean=t not in retrieval)) for t in targets for s in seeds(t)]
               + [(s, over(t, intermediate={task: 1.0})) for t in targets for task in tasks for s in range(n_effect)])
    baseline: dict[str, list[float]] = {}
    treated: dict[str, dict[str, list[float]]] = {}
    for t in targets:
        # paired by seed; a retrieval target's baseline is one run, the same for every seed
        baseline[t] = [score(t, s if t not in retrieval else 0, eval_clean=t not in retrieval) for s in range(n_effect)]
        treated[t] = {task: [score(t, s, intermediate={task: 1.0}) for s in range(n_effect)] for task in tasks}
        by = effects_by_target({t: baseline[t]}, {t: treated[t]})[t]
        _progress(f"intermediate effects on {t}: mean {by['mean']:+.4f} ± {by['mean_se']:.4f}; "
                  + " ".join(f"{k} {v:+.3f}" for k, v in by["effect"].items()))
    return effects_by_target(baseline, treated)


def default_trial_seconds(tb: TransferBench, quick: bool) -> float:
    """One trial exactly as the default search runs its first point, timed whole (model load
    included; at smoke size with the bench's tiny model and fidelity, dev evaluated at the end), its
    phase 1 trained (no cache). Not counted in ``trial_s``."""
    from xstilts.spaces import load_space, optuna_points, to_trial_config, with_constants
    from xstilts.trainer.trial import run_trial

    dspec = load_space(None)
    base = tb.base
    dcfg = to_trial_config(dspec, with_constants(dspec, optuna_points(dspec)[0]),
                           **({"tiny": base["tiny"], "eval_every": base["target_steps"],
                               **{k: base[k] for k in ("intermediate_steps", "target_steps", "eval_max_examples")}}
                              if quick else {}))
    td = time.perf_counter()
    run_trial(dcfg, None, runtime=dataclasses.replace(tb.runtime, phase1_cache=None), log=lambda s: None)
    return time.perf_counter() - td


def _se(v: list[float]) -> float:
    return statistics.stdev(v) / math.sqrt(len(v)) if len(v) > 1 else float("nan")


def _clean_counts(bench: Any, langs: list[str]) -> dict[str, int]:
    """How many test_clean items each language has (they are drawn to size; see synth.clean_rows)."""
    return {lang: len(bench.records("xnli", "test_clean", lang)) for lang in langs}
