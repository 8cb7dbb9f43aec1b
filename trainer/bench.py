"""``xstilts bench trainer --json``: DeepSpeed vs a plain PyTorch loop, side by side, in one run.

Both loops train the same model (two copies of one initial state) on the same batches (the
default trial's target data, ``xnli``, at the default batch size and sequence length) with the
same optimizer (AdamW), LR schedule (warmup + linear decay) and gradient clipping. They run in
alternating rounds, so that load from other processes falls on both alike; throughput is
examples per second over all rounds. ``ratio`` = DeepSpeed / PyTorch (target >= 0.90 on 2 cores).

It also times one default trial end to end (``run_trial``) and reports its seconds per phase,
and the peak resident memory of the process. Torch runs on one thread (a trial's CPU share in
the default search); ``XSTILTS_BENCH_THREADS`` changes that. Where CUDA is present, the same comparison runs
for an XLM-R-base-sized model (random init) and reports tokens per second.
"""

from __future__ import annotations

import copy
import os
import resource
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from .config import TrialConfig, TrialRuntime
from .data import load_records
from .engine import build_engine, engine_step
from .families import collate, encode
from .home import home
from .model import MultiTaskModel, ensure_tiny_model, load_pretrained, lr_lambda
from .tasks import task_info

__all__ = ["run", "compare_loops"]


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB


def compare_loops(model: torch.nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], *,
                  task: str, rounds: int, steps: int, lr: float = 1e-3, clipping: float = 1.0,
                  warmup_steps: int = 5) -> dict[str, Any]:
    """Examples/s of DeepSpeed and of a plain PyTorch loop over the same batches, in alternating rounds."""
    total = rounds * steps + warmup_steps
    ds_model, pt_model = copy.deepcopy(model), copy.deepcopy(model)
    t0 = time.perf_counter()
    engine = build_engine(ds_model, lr=lr, total_steps=total, warmup=0.1, batch_size=len(batches[0][2]),
                          clipping=clipping)
    init_s = time.perf_counter() - t0
    opt = torch.optim.AdamW([p for p in pt_model.parameters() if p.requires_grad], lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(total, 0.1))
    ds_model.train()
    pt_model.train()

    def ds_step(b: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> float:
        loss, _ = engine(task, *b)
        engine.backward(loss)
        engine_step(engine)
        return float(loss.item())

    def pt_step(b: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> float:
        loss, _ = pt_model(task, *b)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(pt_model.parameters(), clipping)
        opt.step()
        sched.step()
        return float(loss.item())

    for i in range(warmup_steps):  # first steps allocate; not timed
        ds_step(batches[i % len(batches)])
        pt_step(batches[i % len(batches)])
    times: dict[str, list[float]] = {"deepspeed": [], "torch": []}
    losses: dict[str, list[float]] = {"deepspeed": [], "torch": []}
    k = warmup_steps
    for r in range(rounds):
        order = [("deepspeed", ds_step), ("torch", pt_step)]
        if r % 2:
            order.reverse()  # neither loop always goes first
        for name, fn in order:
            t = time.perf_counter()
            for j in range(steps):
                losses[name].append(fn(batches[(k + j) % len(batches)]))
            times[name].append(time.perf_counter() - t)
        k += steps
    n = len(batches[0][2])
    ds_eps = rounds * steps * n / sum(times["deepspeed"])
    pt_eps = rounds * steps * n / sum(times["torch"])
    return {
        "deepspeed_examples_per_s": round(ds_eps, 1),
        "torch_examples_per_s": round(pt_eps, 1),
        "ratio": round(ds_eps / pt_eps, 3),
        "round_ratios": [round(p / d, 3) for d, p in zip(times["deepspeed"], times["torch"], strict=True)],
        "median_round_ratio": round(statistics.median(p / d for d, p in zip(times["deepspeed"], times["torch"],
                                                                             strict=True)), 3),
        # the two loops draw dropout masks from one RNG in turn, so their losses agree only roughly
        "mean_loss": {k: round(sum(v) / len(v), 4) for k, v in losses.items()},
        "deepspeed_initialize_s": round(init_s, 2),
        "steps_per_loop": rounds * steps,
        "batch_size": n,
    }


def _batches(tok: Any, task: str, cfg: TrialConfig, root: Path, n: int) -> list[Any]:
    """``n`` batches of ``cfg.batch_size`` training rows of ``task`` (the first ``n`` batches' worth),
    cycling through the rows where the train split holds fewer (synth's XNLI does)."""
    size = n * cfg.batch_size
    rows = load_records("synth", task, "train", home=str(root))[:size]
    enc = encode(task_info(task), tok, rows, cfg.max_seq_len)
    order = [i % len(enc) for i in range(size)]
    fam = task_info(task).family
    return [collate(fam, [enc.ids[i] for i in order[k : k + cfg.batch_size]],
                    [enc.labels[i] for i in order[k : k + cfg.batch_size]], tok.pad_token_id)
            for k in range(0, size, cfg.batch_size)]


def _gpu_figures(quick: bool) -> dict[str, Any]:  # pragma: no cover - needs CUDA
    from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM

    config = XLMRobertaConfig(vocab_size=250002, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                              intermediate_size=3072, max_position_embeddings=514, type_vocab_size=1)
    model = MultiTaskModel(XLMRobertaForMaskedLM(config), {"xnli": 3}).cuda()
    g = torch.Generator().manual_seed(0)
    bs, length = 32, 128
    batches = [(torch.randint(5, 250000, (bs, length), generator=g).cuda(),
                torch.ones(bs, length, dtype=torch.long).cuda(),
                torch.randint(0, 3, (bs,), generator=g).cuda()) for _ in range(8)]
    out = compare_loops(model, batches, task="xnli", rounds=2 if quick else 4, steps=5 if quick else 20)
    out["deepspeed_tokens_per_s"] = round(out["deepspeed_examples_per_s"] * length, 1)
    out["torch_tokens_per_s"] = round(out["torch_examples_per_s"] * length, 1)
    out["model"] = "xlm-roberta-base shape, random init, seq len 128"
    return out


def run(quick: bool = False) -> dict[str, Any]:
    """The benchmark's JSON object (``quick``: a smoke-sized run, not for reported figures)."""
    from .trial import run_trial

    t_all = time.perf_counter()
    root = home()
    # one thread: the CPU share of a trial in the default search (cpus_per_trial: 1); two torch
    # threads on a shared 2-core machine measure the neighbours' load more than the loops
    threads = int(os.environ.get("XSTILTS_BENCH_THREADS", "1"))
    torch.set_num_threads(threads)
    cfg = TrialConfig()
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    default_dir = root / "models" / f"tiny-{cfg.tiny.key()}"
    # throughput depends on the shape, not the weights: use the cached default model, else the
    # same shape after a one-step pretraining (making the default model takes minutes)
    spec = cfg.tiny if (default_dir / "xstilts_pretrain.json").exists() else cfg.tiny.model_copy(
        update={"pretrain_steps": 1})
    path = ensure_tiny_model(root, spec, log=lambda s: None)
    tok, mlm = load_pretrained(path)
    model = MultiTaskModel(mlm, {"xnli": 3})
    batches = _batches(tok, "xnli", cfg, root, 16)
    seconds["setup"] = round(time.perf_counter() - t0, 2)

    t0 = time.perf_counter()
    # short alternating blocks: load from other processes falls on both loops alike
    cmp = compare_loops(model, batches, task="xnli", rounds=4 if quick else 40, steps=5 if quick else 10)
    seconds["loops"] = round(time.perf_counter() - t0, 2)

    # one real trial at the default budget (quick: reduced), timed by its phases
    t0 = time.perf_counter()
    trial_cfg = TrialConfig(intermediate={"mnli": 1.0}, tiny=spec,
                            **({"intermediate_steps": 30, "target_steps": 30, "eval_every": 30,
                                "eval_max_examples": 100} if quick else {}))
    m = run_trial(trial_cfg, None, runtime=TrialRuntime(threads=threads), log=lambda s: None)["metrics"]
    seconds["trial"] = round(time.perf_counter() - t0, 2)
    phases = {k.split("/", 1)[1].removesuffix("_s"): v for k, v in m.items() if k.startswith("time/")}

    out: dict[str, Any] = {
        "deepspeed_examples_per_s": cmp["deepspeed_examples_per_s"],
        "torch_examples_per_s": cmp["torch_examples_per_s"],
        "ratio": cmp["ratio"],
        "peak_rss_mb": _peak_rss_mb(),
        "seconds": {**seconds, "total": round(time.perf_counter() - t_all, 2)},
        "trial_phase_seconds": phases,
        "detail": {k: v for k, v in cmp.items() if k not in ("deepspeed_examples_per_s", "torch_examples_per_s",
                                                              "ratio")},
        "model": {"spec": spec.model_dump(), "params": sum(p.numel() for p in model.parameters()),
                  "path": str(path)},
        "threads": torch.get_num_threads(),
        "quick": quick,
        "target_ratio": 0.9,
        "meets_target": cmp["ratio"] >= 0.9,
    }
    if torch.cuda.is_available():  # pragma: no cover - no GPU here
        out["gpu"] = _gpu_figures(quick)
    return out
