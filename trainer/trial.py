"""One trial, start to end: ``run_trial(config, report)``.

    setup   : encoder checkpoint -> multi-task model; data -> token ids
    phase 1 : intermediate training on a mixture (tasks by ratio, multilingual MLM share
              whose languages are sampled with temperature T), per the schedule
    phase 2 : English fine-tuning on the target task(s); every ``eval_every`` steps a
              zero-shot evaluation in every language, reported through ``report``
    end     : test-set evaluation in every language; results returned (and written)

It knows nothing of Ray, Optuna or MLflow: it reports through the callable it is handed,
``report(metrics, checkpoint_dir=None)``, so the same trial runs under Ray Tune, from
``xstilts train`` and inside a plain pytest.
"""

from __future__ import annotations

import json
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .config import TrialConfig
from .data import benchmark_languages, load_records, synth_benchmark
from .engine import build_engine
from .home import home
from .mixture import Mixture, MixtureSampler, temperature_rates
from .model import MultiTaskModel, ensure_tiny_model, load_pretrained, mask_tokens, pad
from .tasks import task_info

__all__ = ["run_trial", "Report", "phase1_mixture", "objective_languages"]

Report = Callable[..., None]


@dataclass
class _Encoded:
    ids: list[list[int]]
    labels: list[int]


@dataclass
class _Stream:
    """Endless shuffled batches over one dataset, deterministic from its seed."""

    data: _Encoded
    batch_size: int
    seed: str
    rng: random.Random = field(init=False)
    order: list[int] = field(default_factory=list)
    pos: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def next(self) -> tuple[list[list[int]], list[int]]:
        ids: list[list[int]] = []
        labels: list[int] = []
        while len(ids) < self.batch_size:
            if self.pos >= len(self.order):
                self.order = list(range(len(self.data.ids)))
                self.rng.shuffle(self.order)
                self.pos = 0
            i = self.order[self.pos]
            self.pos += 1
            ids.append(self.data.ids[i])
            labels.append(self.data.labels[i])
        return ids, labels


def phase1_mixture(cfg: TrialConfig) -> Mixture:
    """The phase-1 mixture: intermediate tasks share ``1 - m``, multilingual MLM ``m``."""
    m = cfg.multilingual_share if cfg.schedule == "interleaved" else 0.0
    rates = {t: r for t, r in cfg.intermediate.items() if r > 0}
    z = sum(rates.values())
    out = {t: (1.0 - m) * r / z for t, r in rates.items()} if z > 0 else {}
    if m > 0:
        out["mlm"] = m if out else 1.0
    return Mixture(out)


def objective_languages(langs: list[str], controls: list[str]) -> list[str]:
    return [lang for lang in langs if lang != "en" and lang not in controls]


def run_trial(cfg: TrialConfig, report: Report | None = None, *, log: Callable[[str], None] = print) -> dict[str, Any]:
    t_start = time.perf_counter()
    report = report or (lambda metrics, checkpoint_dir=None: None)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    root = home(cfg.home)
    times: dict[str, float] = {}

    # ---- setup: model and data -------------------------------------------------------
    if cfg.model == "tiny":
        if cfg.benchmark != "synth":
            raise ValueError("model 'tiny' is made from the synth corpora; name a real checkpoint for xtreme")
        model_path: str | Path = ensure_tiny_model(root, cfg.tiny, log=log)
    else:
        model_path = cfg.model
    tok, mlm = load_pretrained(model_path)
    if cfg.benchmark == "synth":
        langs, controls = benchmark_languages("synth", str(root), cfg.data_seed)
    else:
        langs, controls = list(cfg.eval_languages or ["en"]), []
    eval_langs = list(cfg.eval_languages or langs)
    if "en" not in eval_langs:
        eval_langs.insert(0, "en")
    obj_langs = objective_languages(eval_langs, controls)

    def records(task: str, split: str, lang: str) -> list[dict[str, Any]]:
        return load_records(cfg.benchmark, task, split, lang, home=str(root), seed=cfg.data_seed,
                            data_dir=cfg.data_dir)

    def encode(task: str, split: str, lang: str = "en", cap: int | None = None) -> _Encoded:
        info = task_info(task)
        rows = records(task, split, lang)[:cap]
        ex = [info.example(r) for r in rows]
        a = [e[0] for e in ex]
        b = [e[1] for e in ex]
        enc = tok(a, b if info.family == "pair_cls" else None, truncation=True, max_length=cfg.max_seq_len)
        return _Encoded(enc["input_ids"], [e[2] for e in ex])

    mix = phase1_mixture(cfg)
    heads = {t: task_info(t).num_labels for t in [*cfg.intermediate, *cfg.target_tasks]}
    model = MultiTaskModel(mlm, heads)
    streams: dict[str, _Stream] = {}
    for t in mix.components:
        if t != "mlm":
            streams[t] = _Stream(encode(t, "train"), cfg.batch_size, f"{cfg.seed}-{t}")
    lang_sampler: MixtureSampler | None = None
    if "mlm" in mix.components:
        if cfg.benchmark != "synth":
            raise ValueError("multilingual MLM needs monolingual corpora; only synth ships them so far")
        bench = synth_benchmark(str(root), cfg.data_seed)
        corpus = {lang: bench.corpus(lang) for lang in bench.languages}
        for lang, docs in corpus.items():
            enc = tok(docs, truncation=True, max_length=cfg.max_seq_len)["input_ids"]
            streams[f"mlm.{lang}"] = _Stream(_Encoded(enc, [0] * len(enc)), cfg.batch_size, f"{cfg.seed}-mlm-{lang}")
        q = temperature_rates({lang: len(d) for lang, d in corpus.items()}, cfg.language_temperature)
        lang_sampler = MixtureSampler(Mixture(q), cfg.seed + 1)
    mask_gen = torch.Generator().manual_seed(cfg.seed)
    times["setup_s"] = time.perf_counter() - t_start

    def step_batch(engine: Any, comp: str) -> float:
        if comp == "mlm":
            assert lang_sampler is not None
            ids_l, _ = streams[f"mlm.{lang_sampler()}"].next()
            ids, attn = pad(ids_l, tok.pad_token_id)
            inp, labels = mask_tokens(ids, ids <= 2, tok.mask_token_id, len(tok), mask_gen)
            loss, _ = engine("mlm", inp, attn, labels)
        else:
            ids_l, y = streams[comp].next()
            ids, attn = pad(ids_l, tok.pad_token_id)
            loss, _ = engine(comp, ids, attn, torch.tensor(y))
        engine.backward(loss)
        engine.step()
        return float(loss.item())  # note: sync point; cheap on CPU

    # ---- phase 1: intermediate mixture -------------------------------------------------
    inter_loss = float("nan")
    engine_name = ""
    if mix and cfg.intermediate_steps > 0:
        t0 = time.perf_counter()
        engine = build_engine(model, lr=cfg.learning_rate, total_steps=cfg.intermediate_steps, warmup=cfg.warmup,
                              batch_size=cfg.batch_size, zero_stage=cfg.zero_stage, clipping=cfg.gradient_clipping)
        engine_name = type(engine).__name__
        sampler = MixtureSampler(mix, cfg.seed)
        losses = [step_batch(engine, sampler()) for _ in range(cfg.intermediate_steps)]
        inter_loss = statistics.fmean(losses[-50:])
        times["phase1_s"] = time.perf_counter() - t0
        log(f"[trial] phase 1 ({cfg.schedule}, {mix.rates}) {cfg.intermediate_steps} steps, "
            f"loss {statistics.fmean(losses[:20]):.3f} -> {inter_loss:.3f}")

    # ---- phase 2: English target fine-tuning, zero-shot evaluation ------------------------
    for t in cfg.target_tasks:
        streams[t] = _Stream(encode(t, "train"), cfg.batch_size, f"{cfg.seed}-{t}")
    t0 = time.perf_counter()
    engine = build_engine(model, lr=cfg.learning_rate, total_steps=cfg.target_steps, warmup=cfg.warmup,
                          batch_size=cfg.batch_size, zero_stage=cfg.zero_stage, clipping=cfg.gradient_clipping)
    engine_name = engine_name or type(engine).__name__
    target_sampler = MixtureSampler(Mixture({t: 1.0 for t in cfg.target_tasks}), cfg.seed + 2)
    eval_cache: dict[tuple[str, str, str], _Encoded] = {}
    eval_s = 0.0

    def evaluate(split: str) -> dict[str, float]:
        nonlocal eval_s
        te = time.perf_counter()
        model.eval()
        out: dict[str, float] = {}
        prefix = "test/" if split == "test" else ""
        per_task = []
        worst = 1.0
        with torch.no_grad():
            for t in cfg.target_tasks:
                for lang in eval_langs:
                    key = (t, split, lang)
                    if key not in eval_cache:
                        eval_cache[key] = encode(t, split, lang, cfg.eval_max_examples)
                    acc = accuracy(model, t, eval_cache[key], tok.pad_token_id)
                    name = f"{prefix}en/{t}" if lang == "en" else f"{prefix}zero_shot/{t}/{lang}"
                    out[name] = acc
                    if lang in obj_langs:
                        worst = min(worst, acc)
                scores = [out[f"{prefix}zero_shot/{t}/{lang}"] for lang in obj_langs]
                out[f"{prefix}zero_shot/{t}"] = statistics.fmean(scores) if scores else float("nan")
                per_task.append(out[f"{prefix}zero_shot/{t}"])
        out[f"{prefix}zero_shot/avg"] = statistics.fmean(per_task)
        out[f"{prefix}zero_shot/worst"] = worst
        model.train()
        eval_s += time.perf_counter() - te
        return out

    model.train()
    chunk: list[float] = []
    first_loss = float("nan")
    metrics: dict[str, Any] = {}
    for step in range(1, cfg.target_steps + 1):
        chunk.append(step_batch(engine, target_sampler()))
        if step == min(20, cfg.target_steps):
            first_loss = statistics.fmean(chunk)
        if step % cfg.eval_every == 0 or step == cfg.target_steps:
            metrics = {
                **evaluate("dev"),
                "train/loss": statistics.fmean(chunk),
                "train/step": step,
                "intermediate/loss": inter_loss,
            }
            chunk = []
            if step == cfg.target_steps:
                break  # the final report follows, with test scores
            report(metrics)
    times["phase2_s"] = time.perf_counter() - t0 - eval_s
    final = {**metrics, **evaluate("test")}
    times["eval_s"] = eval_s
    times["trial_s"] = time.perf_counter() - t_start
    final.update({f"time/{k}": round(v, 3) for k, v in times.items()})
    final["train/first_loss"] = first_loss
    final["trial_done"] = 1
    report(final)
    result = {"metrics": final, "engine": engine_name, "model_path": str(model_path),
              "config": cfg.model_dump(), "phase1_mixture": mix.rates}
    if cfg.output_dir:
        out_dir = Path(cfg.output_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "results.json").write_text(json.dumps(result, indent=2, default=str))
    log(f"[trial] done in {times['trial_s']:.1f}s: zero_shot/avg {final['zero_shot/avg']:.3f} (dev), "
        f"{final['test/zero_shot/avg']:.3f} (test); engine {engine_name}")
    return result


def accuracy(model: MultiTaskModel, task: str, data: _Encoded, pad_id: int, batch: int = 256) -> float:
    correct = 0
    for i in range(0, len(data.ids), batch):
        ids, attn = pad(data.ids[i : i + batch], pad_id)
        _, logits = model(task, ids, attn)
        correct += int((logits.argmax(-1) == torch.tensor(data.labels[i : i + batch])).sum())
    return correct / max(1, len(data.ids))
