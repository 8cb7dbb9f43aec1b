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
* ``translate_train_xnli``: the XNLI-like task trained on English plus every language's
  "translated" train split (a reference: no longer zero-shot);
* ``intermediate_effect`` / ``intermediate_effect_se``: {intermediate task: mean change of the
  default objective (``test/zero_shot/avg`` of the default targets, non-control languages) when
  that single task is trained first (sequential schedule), paired by seed} and its standard error;
* ``seconds``: generation, pretraining, per trial, and ``default_trial``: one trial of the default
  search's first point (MNLI then XNLI, 300 + 300 steps, dev evaluation every 100) timed whole;
  ``targets``: each issue target, met or not.

The benchmark's own trials evaluate dev once, at the end (``eval_every = target_steps``): it
reads only the final scores, and evaluation draws no random numbers, so every score is the same
as with the default ``eval_every`` (checked) for about a third less time per trial.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xstilts.trainer.names import TEST_OBJECTIVE

if TYPE_CHECKING:
    from xstilts.trainer.config import TrialRuntime

__all__ = ["run", "spearman", "TransferBench", "zero_shot_tables", "overlap_spearman", "translate_train_xnli", "intermediate_effects",
           "default_trial_seconds"]


def spearman(x: list[float], y: list[float]) -> float:
    def ranks(v: list[float]) -> list[float]:
        order = sorted(range(len(v)), key=lambda i: v[i])
        r = [0.0] * len(v)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
                j += 1
            for k in range(i, j + 1):
                r[order[k]] = (i + j) / 2
            i = j + 1
        return r

    rx, ry = ranks(x), ranks(y)
    mx, my = statistics.fmean(rx), statistics.fmean(ry)
    num = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    den = math.sqrt(sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry))
    return num / den if den else float("nan")


@dataclass
class TransferBench:
    """What every part measures with: the benchmark, the trial settings they share, and a trial
    runner that times each trial (``trial_s``)."""

    bench: Any  # the synth benchmark (its languages, manifest and records)
    base: dict[str, Any]  # TrialConfig fields every trial shares (tiny model, schedule, fidelity)
    runtime: TrialRuntime  # where the trials run: the home, 2 threads
    trial_s: list[float] = field(default_factory=list)  # each trial's seconds, in the order they ran

    @property
    def langs(self) -> list[str]:
        return list(self.bench.languages)

    @property
    def obj_langs(self) -> list[str]:
        """The languages of the objective: neither English nor a control language."""
        return [lang for lang in self.langs if lang != "en" and lang not in self.bench.control_languages]

    def trial(self, seed: int, **over: Any) -> dict[str, Any]:
        """One trial of the shared settings with training seed ``seed`` and ``over``: its metrics."""
        from xstilts.trainer.config import TrialConfig
        from xstilts.trainer.trial import run_trial

        cfg = TrialConfig.model_validate({**self.base, "seed": seed, **over})
        ts = time.perf_counter()
        res = run_trial(cfg, None, runtime=self.runtime, log=lambda s: None)
        self.trial_s.append(time.perf_counter() - ts)
        return dict(res["metrics"])


def run(quick: bool = False, seeds: int = 8, effect_seeds: int = 16, home: str | None = None,
        parts: tuple[str, ...] = ("zero_shot", "effects")) -> dict[str, Any]:
    """``seeds`` fine-tuning seeds for the zero-shot tables, ``effect_seeds`` for the intermediate
    effects (paired differences of two noisy runs need more: their per-seed spread is ~8 points);
    ``parts`` picks what to measure: the zero-shot tables (with the overlap correlations and the
    translate-train reference), the intermediate effects; then the default trial, and the targets."""
    import torch

    from xstilts.trainer.config import TrialConfig
    from xstilts.trainer.tasks import INTERMEDIATE_TASKS, TARGET_TASKS, TASKS

    torch.set_num_threads(2)
    tb, seconds = _prepare(quick, home)
    n_seeds = 1 if quick else seeds
    n_effect = 1 if quick else effect_seeds
    langs, obj_langs = tb.langs, tb.obj_langs
    zero_shot, zero_shot_se, clean = zero_shot_tables(tb, n_seeds) if "zero_shot" in parts else ({}, {}, {})
    overlap = dict(tb.bench.manifest["overlap"])
    rho, rho_mean = overlap_spearman(overlap, zero_shot, obj_langs)
    translate_train = translate_train_xnli(tb, n_seeds) if "zero_shot" in parts else {}
    inter = list(INTERMEDIATE_TASKS)[: 2 if quick else None] if "effects" in parts else []
    first_effect_trial = len(tb.trial_s)
    effects, effects_se = intermediate_effects(tb, inter, n_effect)

    chance = {t: (1.0 / TASKS[t].num_labels if TASKS[t].num_labels else 0.0) for t in TARGET_TASKS}
    xnli_mean = statistics.fmean(zero_shot["xnli"][lang] for lang in obj_langs) if zero_shot else float("nan")
    seconds["per_trial_mean"] = statistics.fmean(tb.trial_s)
    seconds["per_trial_max"] = max(tb.trial_s)
    seconds["trials"] = len(tb.trial_s)
    seconds["effect_trial_max"] = max(tb.trial_s[first_effect_trial:] or [float("nan")])
    seconds["default_trial"] = default_trial_seconds(tb, quick)
    met = {
        "xnli_mean_ge_chance_plus_0.15": xnli_mean >= chance["xnli"] + 0.15,
        "xnli_spearman_ge_0.7": rho.get("xnli", float("nan")) >= 0.7,
        "mean_over_targets_spearman_ge_0.7": rho_mean >= 0.7,
        "an_effect_ge_+2pts_beyond_2se": any(e >= 0.02 and e > 2 * effects_se[k] for k, e in effects.items()),
        "an_effect_le_-2pts_beyond_2se": any(e <= -0.02 and -e > 2 * effects_se[k] for k, e in effects.items()),
        "default_trial_le_30s": seconds["default_trial"] <= 30,
        "pretraining_le_6min": (seconds["pretraining"] or 0) <= 360,
    }
    default_targets = TrialConfig.model_fields["target_tasks"].default_factory()  # type: ignore[misc]
    return {
        "seeds": n_seeds, "effect_seeds": n_effect, "parts": list(parts), "quick": quick, "languages": langs,
        "controls": tb.bench.control_languages,
        "objective": {"target_tasks": default_targets, "metric": TEST_OBJECTIVE, "languages": obj_langs},
        "chance": chance, "zero_shot": zero_shot, "zero_shot_se": zero_shot_se, "clean_zero_shot": clean,
        "clean_n": _clean_counts(tb.bench, [x for x in langs if x != "en"]),
        "xnli_objective_mean": xnli_mean, "overlap": overlap,
        "spearman_overlap_score": rho, "spearman_overlap_mean_over_targets": rho_mean,
        "translate_train_xnli": translate_train,
        "intermediate_effect": effects, "intermediate_effect_se": effects_se,
        "seconds": seconds, "targets": met,
    }


def _prepare(quick: bool, home: str | None) -> tuple[TransferBench, dict[str, Any]]:
    """The synth benchmark and the tiny model (made if missing), the trials' shared settings:
    (the bench, ``seconds`` with generation and pretraining)."""
    from xstilts.trainer.config import TinyModelSpec, TrialConfig, TrialRuntime
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
    base: dict[str, Any] = {"tiny": spec, "schedule": "sequential"}
    base["eval_every"] = TrialConfig.model_fields["target_steps"].default  # one dev evaluation, at the end
    if quick:
        base.update(intermediate_steps=40, target_steps=40, eval_every=40, eval_max_examples=100)
    return TransferBench(bench, base, TrialRuntime(home=str(root), threads=2)), seconds


def _progress(msg: str) -> None:
    print(f"[bench transfer] {msg}", file=sys.stderr, flush=True)


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
    for t in TARGET_TASKS:
        trained = TASKS[t].family != "retrieval"
        runs = [tb.trial(s, target_tasks=[t], eval_clean=True) for s in range(n_seeds if trained else 1)]
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
    tt_runs = [tb.trial(s, target_tasks=["xnli"], translate_train_languages=[x for x in langs if x != "en"])
               for s in range(n_seeds)]
    translate_train = {lang: statistics.fmean(m[f"test/zero_shot/xnli/{lang}"] for m in tt_runs)
                       for lang in langs if lang != "en"}
    _progress("translate-train xnli: " + " ".join(f"{k} {v:.3f}" for k, v in translate_train.items()))
    return translate_train


def intermediate_effects(tb: TransferBench, tasks: list[str], n_effect: int
                         ) -> tuple[dict[str, float], dict[str, float]]:
    """Each intermediate task's effect on the default objective, trained first (sequential),
    paired by seed against no intermediate task: ({task: mean change}, {task: its standard error})."""
    baseline = [tb.trial(s) for s in range(n_effect)] if tasks else []
    effects: dict[str, float] = {}
    effects_se: dict[str, float] = {}
    for task in tasks:
        diffs = [tb.trial(s, intermediate={task: 1.0})[TEST_OBJECTIVE] - baseline[s][TEST_OBJECTIVE]
                 for s in range(n_effect)]
        effects[task], effects_se[task] = statistics.fmean(diffs), _se(diffs)
        _progress(f"intermediate {task}: {effects[task]:+.4f} ± {effects_se[task]:.4f}")
    return effects, effects_se


def default_trial_seconds(tb: TransferBench, quick: bool) -> float:
    """One trial exactly as the default search runs its first point, timed whole (model load
    included; at smoke size with the bench's tiny model and fidelity). Not counted in ``trial_s``."""
    from xstilts.spaces import load_space, optuna_points, to_trial_config, with_constants
    from xstilts.trainer.trial import run_trial

    dspec = load_space(None)
    base = tb.base
    dcfg = to_trial_config(dspec, with_constants(dspec, optuna_points(dspec)[0]),
                           **({"tiny": base["tiny"], **{k: base[k] for k in ("intermediate_steps", "target_steps",
                                                                             "eval_every", "eval_max_examples")}}
                              if quick else {}))
    td = time.perf_counter()
    run_trial(dcfg, None, runtime=tb.runtime, log=lambda s: None)
    return time.perf_counter() - td


def _se(v: list[float]) -> float:
    return statistics.stdev(v) / math.sqrt(len(v)) if len(v) > 1 else float("nan")


def _clean_counts(bench: Any, langs: list[str]) -> dict[str, int]:
    """How many test_clean items each language has (they are drawn to size; see synth.clean_rows)."""
    return {lang: len(bench.records("xnli", "test_clean", lang)) for lang in langs}
