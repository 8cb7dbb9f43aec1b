"""trainer.engine: DeepSpeed options from the config; 2 CPU workers (gloo) follow 1 worker's loss curve;
a model given by path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from tests.conftest import TEST_TINY, run_cli
from xstilts.trainer.engine import ds_config
from xstilts.trainer.ports import free_port

# no dropout, so that 1 and 2 workers see the very same computation up to float reduction order
BASE = {"tiny": TEST_TINY, "intermediate": {"mnli": 1.0}, "intermediate_steps": 12, "target_steps": 12,
        "eval_every": 12, "batch_size": 16, "eval_max_examples": 30, "eval_languages": ["en", "xa"],
        "dropout": 0.0, "threads": 1, "learning_rate": 2e-3}


def test_ds_config_from_the_trial_options() -> None:
    c = ds_config(batch_size=32, zero_stage=2, clipping=0.5, grad_accum=4, bf16="off", world_size=2)
    assert c["train_micro_batch_size_per_gpu"] == 16 and c["gradient_accumulation_steps"] == 4
    assert c["train_batch_size"] == 128  # global: micro x accumulation x workers
    assert c["zero_optimization"] == {"stage": 2} and c["gradient_clipping"] == 0.5
    assert c["bf16"] == {"enabled": False}
    assert ds_config(batch_size=8, zero_stage=0, clipping=1.0)["bf16"]["enabled"] is (
        torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    with pytest.raises(ValueError, match="not divisible by the 3 workers"):
        ds_config(batch_size=16, zero_stage=0, clipping=1.0, world_size=3)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no bf16 support"):
            ds_config(batch_size=16, zero_stage=0, clipping=1.0, bf16="on")


def _run(tmp_path: Path, home: Path, name: str, world: int = 1, **kw: Any) -> dict[str, Any]:
    cfg = tmp_path / f"{name}.yaml"
    cfg.write_text(yaml.safe_dump({**BASE, **kw}))
    out = tmp_path / name
    if world == 1:
        r = run_cli(["train", str(cfg), "--output-dir", str(out)], home)
        assert r.returncode == 0, r.stderr[-3000:]
    else:
        port = str(free_port())
        procs = []
        for rank in range(world):
            env = {**os.environ, "XSTILTS_HOME": str(home), "RANK": str(rank), "LOCAL_RANK": str(rank),
                   "WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}
            procs.append(subprocess.Popen([sys.executable, "-m", "xstilts.search.cli", "train", str(cfg),
                                           "--output-dir", str(out)], env=env, cwd=home,
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        for p in procs:
            log, _ = p.communicate(timeout=600)
            assert p.returncode == 0, log[-3000:]
    return dict(json.loads((out / "results.json").read_text()))


@pytest.mark.slow
def test_two_gloo_workers_follow_one_workers_loss_curve(tiny_home: Path, tmp_path: Path) -> None:
    one = _run(tmp_path, tiny_home, "one")
    two = _run(tmp_path, tiny_home, "two", world=2, zero_stage=1)
    accum = _run(tmp_path, tiny_home, "accum", batch_size=8, grad_accum=2)
    assert (one["world_size"], two["world_size"]) == (1, 2)
    assert two["engine"] == "DeepSpeedEngine"
    for phase in ("intermediate", "target"):
        a, b, c = one["curves"][phase], two["curves"][phase], accum["curves"][phase]
        assert len(a) == len(b) == len(c) == 12
        assert sum(a[-4:]) < sum(a[:4])  # it learns
        assert b == pytest.approx(a, abs=2e-3), (phase, a, b)  # same global batch, 2 workers, ZeRO-1
        assert c == pytest.approx(a, abs=2e-3), (phase, a, c)  # same global batch, 2 micro-batches
    assert two["metrics"]["zero_shot/avg"] == pytest.approx(one["metrics"]["zero_shot/avg"], abs=0.05)


@pytest.mark.slow
def test_a_model_given_by_path(tiny_home: Path, tmp_path: Path) -> None:
    """Any XLM-R-compatible checkpoint folder (save_pretrained) is a model: here a small random one."""
    from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM

    from xstilts.trainer.config import TinyModelSpec
    from xstilts.trainer.model import ensure_tiny_model, load_pretrained

    tok, _ = load_pretrained(ensure_tiny_model(tiny_home, TinyModelSpec(**TEST_TINY), log=lambda s: None))
    folder = tmp_path / "small-xlmr"
    config = XLMRobertaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=3, num_attention_heads=2,
                              intermediate_size=64, max_position_embeddings=130, pad_token_id=1, bos_token_id=0,
                              eos_token_id=2, type_vocab_size=1)
    torch.manual_seed(0)
    XLMRobertaForMaskedLM(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    res = _run(tmp_path, tiny_home, "bypath", model=str(folder), zero_stage=2, target_tasks=["xnli", "tatoeba"],
               intermediate_steps=4, target_steps=4, eval_every=4)
    assert res["model_path"] == str(folder)
    assert 0.0 <= res["metrics"]["test/zero_shot/tatoeba/xa"] <= 1.0
    assert res["curves"]["target"] and all(v == v for v in res["curves"]["target"])


def test_bench_compares_the_two_loops_on_the_same_batches(tiny_home: Path) -> None:
    from xstilts.trainer.bench import compare_loops
    from xstilts.trainer.config import TinyModelSpec
    from xstilts.trainer.model import MultiTaskModel, ensure_tiny_model, load_pretrained

    _, mlm = load_pretrained(ensure_tiny_model(tiny_home, TinyModelSpec(**TEST_TINY), log=lambda s: None))
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randint(5, 50, (8, 12), generator=g), torch.ones(8, 12, dtype=torch.long),
                torch.randint(0, 3, (8,), generator=g)) for _ in range(3)]
    out = compare_loops(MultiTaskModel(mlm, {"xnli": 3}), batches, task="xnli", rounds=2, steps=3, warmup_steps=1)
    assert out["deepspeed_examples_per_s"] > 0 and out["torch_examples_per_s"] > 0
    assert out["ratio"] == pytest.approx(out["deepspeed_examples_per_s"] / out["torch_examples_per_s"], rel=0.01)
    assert len(out["round_ratios"]) == 2 and out["steps_per_loop"] == 6 and out["batch_size"] == 8
    assert set(out["mean_loss"]) == {"deepspeed", "torch"}


def test_our_clipping_matches_a_plain_torch_loop_and_deepspeeds(tiny_home: Path) -> None:
    """ZeRO-0 on one worker clips with torch's clip_grad_norm_ at the accumulation boundary: the same
    weights as a plain PyTorch loop over the same (accumulated) batches; ZeRO-1 (DeepSpeed clips) agrees
    up to its flat-buffer numerics."""
    import copy

    from xstilts.trainer.config import TinyModelSpec
    from xstilts.trainer.engine import build_engine, engine_step
    from xstilts.trainer.model import MultiTaskModel, ensure_tiny_model, load_pretrained, lr_lambda

    _, mlm = load_pretrained(ensure_tiny_model(tiny_home, TinyModelSpec(**TEST_TINY), log=lambda s: None))
    base = MultiTaskModel(mlm, {"xnli": 3})
    for m in base.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randint(5, 50, (8, 12), generator=g), torch.randint(0, 3, (8,), generator=g)) for _ in range(6)]

    def flat(model: torch.nn.Module) -> torch.Tensor:
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    ref = copy.deepcopy(base)
    opt = torch.optim.AdamW(ref.parameters(), lr=1e-3, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(3, 0.0))
    for k in range(3):  # 3 optimizer steps of 2 micro-batches
        opt.zero_grad()
        for x, y in batches[2 * k : 2 * k + 2]:
            loss, _ = ref("xnli", x, torch.ones_like(x), y)
            (loss / 2).backward()
        torch.nn.utils.clip_grad_norm_(ref.parameters(), 0.05)
        opt.step()
        sched.step()
    weights = []
    for stage in (0, 1):
        model = copy.deepcopy(base)
        engine = build_engine(model, lr=1e-3, total_steps=3, warmup=0.0, batch_size=8, zero_stage=stage,
                              clipping=0.05, grad_accum=2)
        assert engine.xstilts_clip == (0.05 if stage == 0 else 0.0)
        for x, y in batches:
            loss, _ = engine("xnli", x, torch.ones_like(x), y)
            engine.backward(loss)
            engine_step(engine)
        weights.append(flat(model))
    assert not torch.equal(weights[0], flat(base))
    assert torch.allclose(weights[0], flat(ref), atol=1e-6)
    assert torch.allclose(weights[1], flat(ref), atol=1e-3)
