"""``xstilts bench transfer``: does ``synth`` show cross-lingual transfer, and do intermediate tasks matter?

Measured with the cached tiny model (made first if missing) over several fine-tuning seeds,
by running real trials (``run_trial``, DeepSpeed engine) in this process:

* ``chance``: {target task: chance score};
* ``zero_shot``: {target task: {language: mean test score}} after English-only target
  fine-tuning with no intermediate task (the baseline);
* ``clean_n``: {language: number of xnli test items none of whose content words is shared
  with English} (scoring those items alone needs per-item predictions from the trainer: not yet);
* ``overlap``: {language: share of content words identical to English};
* ``spearman_overlap_score``: Spearman correlation of overlap and baseline score over the
  non-control languages (per target task);
* ``intermediate_effect`` / ``intermediate_effect_se``: {intermediate task: mean change of the
  objective (``test/zero_shot/avg``, non-control languages) when that single task is trained
  first (sequential schedule), paired by seed} and its standard error over seeds;
* ``seconds``: generation, pretraining, per trial; ``targets``: each issue target, met or not.
"""

from __future__ import annotations

import math
import statistics
import time
from pathlib import Path
from typing import Any

__all__ = ["run", "spearman", "clean_items"]


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


def clean_items(records: list[dict[str, Any]], english_vocab: set[str], fields: tuple[str, ...]) -> list[int]:
    """Indices of records whose content words (lower-case, non-numeric, non-anchor) are all
    absent from English."""
    anchors = {"not", "and", "."}
    out = []
    for i, r in enumerate(records):
        words = [w for f in fields for w in str(r[f]).split()]
        content = [w for w in words if w.islower() and not w.isdigit() and w not in anchors]
        if content and not any(w in english_vocab for w in content):
            out.append(i)
    return out


def run(quick: bool = False, seeds: int = 3, home: str | None = None) -> dict[str, Any]:
    import torch

    from xstilts.trainer.config import TrialConfig
    from xstilts.trainer.data import synth_benchmark
    from xstilts.trainer.home import home as home_dir
    from xstilts.trainer.model import TinyModelSpec, ensure_tiny_model
    from xstilts.trainer.tasks import INTERMEDIATE_TASKS, TARGET_TASKS, TASKS
    from xstilts.trainer.trial import run_trial

    torch.set_num_threads(2)
    root = home_dir(home)
    seconds: dict[str, Any] = {}
    t0 = time.perf_counter()
    bench = synth_benchmark(str(root), 0, lambda s: None)
    seconds["generation"] = bench.manifest.get("seconds")
    spec = TinyModelSpec(pretrain_steps=300, pretrain_batch=64) if quick else TinyModelSpec()
    t0 = time.perf_counter()
    model_dir = ensure_tiny_model(root, spec)
    made = Path(model_dir, "xstilts_pretrain.json")
    seconds["pretraining"] = __import__("json").loads(made.read_text()).get("seconds")
    seconds["pretraining_cached"] = time.perf_counter() - t0 < 5
    n_seeds = 1 if quick else seeds
    targets = [t for t in TARGET_TASKS if "train" in TASKS[t].splits]
    inter = list(INTERMEDIATE_TASKS)[: 2 if quick else None]
    langs, controls = bench.languages, bench.control_languages
    base: dict[str, Any] = {"tiny": spec, "target_tasks": targets, "home": str(root), "threads": 2,
                            "schedule": "sequential"}
    if quick:
        base.update(intermediate_steps=40, target_steps=40, eval_every=40, eval_max_examples=100)

    trial_s: list[float] = []

    def trial(seed: int, intermediate: dict[str, float]) -> dict[str, Any]:
        cfg = TrialConfig.model_validate({**base, "seed": seed, "intermediate": intermediate})
        ts = time.perf_counter()
        res = run_trial(cfg, None, log=lambda s: None)
        trial_s.append(time.perf_counter() - ts)
        return dict(res["metrics"])

    baseline = [trial(s, {}) for s in range(n_seeds)]
    zero_shot = {t: {lang: statistics.fmean(m[f"test/zero_shot/{t}/{lang}"] for m in baseline)
                     for lang in langs if lang != "en"} for t in targets}
    for t in targets:
        zero_shot[t]["en"] = statistics.fmean(m[f"test/en/{t}"] for m in baseline)
    overlap = {k: v for k, v in bench.manifest["overlap"].items()}
    obj_langs = [lang for lang in langs if lang != "en" and lang not in controls]
    rho = {t: spearman([overlap[lang] for lang in obj_langs], [zero_shot[t][lang] for lang in obj_langs])
           for t in targets}

    effects: dict[str, float] = {}
    effects_se: dict[str, float] = {}
    for task in inter:
        diffs = [trial(s, {task: 1.0})["test/zero_shot/avg"] - baseline[s]["test/zero_shot/avg"]
                 for s in range(n_seeds)]
        effects[task] = statistics.fmean(diffs)
        effects_se[task] = statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else float("nan")

    chance = {t: (1.0 / TASKS[t].num_labels if TASKS[t].num_labels else 0.0) for t in targets}
    xnli_mean = statistics.fmean(zero_shot["xnli"][lang] for lang in obj_langs) if "xnli" in zero_shot else None
    seconds["per_trial_mean"] = statistics.fmean(trial_s)
    seconds["per_trial_max"] = max(trial_s)
    met = {
        "xnli_above_chance_by_0.15": xnli_mean is not None and xnli_mean >= chance["xnli"] + 0.15,
        "spearman_ge_0.7": all(r >= 0.7 for r in rho.values()),
        "an_effect_ge_+2pts_beyond_2se": any(e >= 0.02 and e > 2 * effects_se[k] for k, e in effects.items()),
        "an_effect_le_-2pts_beyond_2se": any(e <= -0.02 and -e > 2 * effects_se[k] for k, e in effects.items()),
        "trial_le_30s": seconds["per_trial_max"] <= 30,
        "pretraining_le_6min": (seconds["pretraining"] or 0) <= 360,
    }
    return {
        "seeds": n_seeds, "quick": quick, "targets_tasks": targets, "languages": langs, "controls": controls,
        "chance": chance, "zero_shot": zero_shot, "xnli_objective_mean": xnli_mean,
        "clean_n": _clean_counts(bench, obj_langs + controls),
        "overlap": overlap, "spearman_overlap_score": rho,
        "intermediate_effect": effects, "intermediate_effect_se": effects_se,
        "seconds": seconds, "targets": met,
    }


def _clean_counts(bench: Any, langs: list[str]) -> dict[str, int]:
    english_vocab = {w for d in bench.corpus("en") for w in d.split()}
    return {lang: len(clean_items(bench.records("xnli", "test", lang), english_vocab, ("sentence1", "sentence2")))
            for lang in langs}
