"""The DeepSpeed engine of a trial.

Each trial process gets its own ``MASTER_PORT`` (a free port picked at start), because
DeepSpeed's default 29500 collides when several trials share a host. On this machine the
CPU accelerator with gloo is used; on a GPU host DeepSpeed picks CUDA by itself.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

import torch

from .model import lr_lambda

__all__ = ["free_port", "init_distributed", "build_engine", "ds_config"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def init_distributed() -> None:
    """Initialise a single-process group once per process, on a port of its own."""
    import deepspeed

    logging.getLogger("DeepSpeed").setLevel(logging.WARNING)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return
    os.environ.setdefault("RANK", "0")
    os.environ.setdefault("LOCAL_RANK", "0")
    os.environ.setdefault("WORLD_SIZE", "1")
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    if os.environ.get("WORLD_SIZE", "1") == "1":
        os.environ["MASTER_PORT"] = str(free_port())  # never the shared default 29500
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    deepspeed.init_distributed(dist_backend=backend, verbose=False)


def ds_config(*, batch_size: int, zero_stage: int, clipping: float, grad_accum: int = 1) -> dict[str, Any]:
    bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return {
        "train_micro_batch_size_per_gpu": batch_size,
        "gradient_accumulation_steps": grad_accum,
        "gradient_clipping": clipping,
        "zero_optimization": {"stage": zero_stage},
        "bf16": {"enabled": bf16},
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


def build_engine(model: torch.nn.Module, *, lr: float, total_steps: int, warmup: float, batch_size: int,
                 zero_stage: int = 0, clipping: float = 1.0) -> Any:
    """``deepspeed.initialize`` with AdamW and linear warmup/decay over ``total_steps``."""
    import deepspeed

    init_distributed()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(total_steps, warmup))
    engine, _, _, _ = deepspeed.initialize(
        model=model, optimizer=opt, lr_scheduler=sched,
        config=ds_config(batch_size=batch_size, zero_stage=zero_stage, clipping=clipping),
    )
    return engine
