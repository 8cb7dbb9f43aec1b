"""The DeepSpeed engine of a trial.

Each trial process gets its own ``MASTER_PORT`` (a free port picked at start), because
DeepSpeed's default 29500 collides when several trials share a host. On this machine the
CPU accelerator with gloo is used; on a GPU host DeepSpeed picks CUDA by itself.

On the CPU accelerator the first engine JIT-builds DeepSpeed's shared-memory collectives op
(``deepspeed_shm_comm``, C++ with g++ and ninja: about 85 s on 2 cores) into
``TORCH_EXTENSIONS_DIR``; ``ensure_deepspeed_op`` builds it ahead, with progress, so no trial waits.
A search or a study starts that build in a process of its own (``start_deepspeed_op_build``) and
makes its data and model meanwhile, then waits for it (``wait_deepspeed_op``) before any trial.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .model import lr_lambda
from .ports import free_port

__all__ = ["init_distributed", "build_engine", "ds_config", "world", "bf16_supported", "engine_step",
           "DEEPSPEED_CPU_OP", "deepspeed_op_file", "ensure_deepspeed_op", "start_deepspeed_op_build",
           "wait_deepspeed_op", "clear_stale_op_lock", "STALE_LOCK_S"]

DEEPSPEED_CPU_OP = "deepspeed_shm_comm"  # what DeepSpeed's CPU accelerator JIT-builds at its first engine
# torch's build lock (the file ``lock`` in the op's build folder) older than this was left by a build
# that was killed (the build takes 1-2 min): every later build would wait on it forever
STALE_LOCK_S = 600.0
_PENDING: dict[str, Any] = {}  # the build start_deepspeed_op_build started: its process and stderr file


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


def world() -> tuple[int, int]:
    """(rank, world size) of this process (1 process unless launched with WORLD_SIZE > 1)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def bf16_supported() -> bool:
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def ds_config(*, batch_size: int, zero_stage: int, clipping: float, grad_accum: int = 1,
              bf16: str | bool = "auto", world_size: int = 1) -> dict[str, Any]:
    """The DeepSpeed config of a trial. ``batch_size`` is the global micro-batch (all ranks)."""
    if batch_size % world_size:
        raise ValueError(f"batch_size {batch_size} is not divisible by the {world_size} workers")
    use_bf16 = bf16_supported() if bf16 == "auto" else bf16 in (True, "on")
    if use_bf16 and not bf16_supported():
        raise ValueError("bf16 'on' asked for, but this accelerator has no bf16 support (use 'auto')")
    return {
        "train_micro_batch_size_per_gpu": batch_size // world_size,
        "gradient_accumulation_steps": grad_accum,
        "train_batch_size": batch_size * grad_accum,
        "gradient_clipping": clipping,
        "zero_optimization": {"stage": zero_stage},
        "bf16": {"enabled": use_bf16},
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


def build_engine(model: torch.nn.Module, *, lr: float, total_steps: int, warmup: float, batch_size: int,
                 zero_stage: int = 0, clipping: float = 1.0, grad_accum: int = 1, bf16: str | bool = "auto",
                 decay: str = "linear") -> Any:
    """``deepspeed.initialize`` with AdamW and warmup + decay over ``total_steps`` optimizer steps."""
    import deepspeed

    init_distributed()
    # one worker without ZeRO in fp32: clip with torch's fused clip_grad_norm_ in ``engine_step``
    # (same math; DeepSpeed's per-tensor Python clipping costs ~10% of a tiny model's step on CPU)
    own_clip = world()[1] == 1 and zero_stage == 0 and clipping > 0 and not (
        bf16_supported() if bf16 == "auto" else bf16 in (True, "on"))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(total_steps, warmup, decay))
    engine, _, _, _ = deepspeed.initialize(
        model=model, optimizer=opt, lr_scheduler=sched,
        config=ds_config(batch_size=batch_size, zero_stage=zero_stage, clipping=0.0 if own_clip else clipping,
                         grad_accum=grad_accum,
                         bf16=bf16, world_size=world()[1]),
    )
    if world()[1] == 1 and zero_stage == 0:
        # one worker: the gradient all-reduce is an identity, but DeepSpeed still flattens, reduces
        # (through gloo on CPU) and unflattens every gradient each step; skip it
        engine.enable_backward_allreduce = False
    engine.xstilts_clip = clipping if own_clip else 0.0
    return engine


def engine_step(engine: Any) -> None:
    """``engine.step()``, clipping the gradients first at an accumulation boundary where
    ``build_engine`` left clipping to us (DeepSpeed clips inside ``step`` otherwise)."""
    clip = getattr(engine, "xstilts_clip", 0.0)
    if clip and engine.is_gradient_accumulation_boundary():
        torch.nn.utils.clip_grad_norm_(engine.module.parameters(), clip)
    engine.step()


def deepspeed_op_file() -> Path | None:
    """Where the JIT-built CPU op lives (``TORCH_EXTENSIONS_DIR`` or torch's default), or None when
    this host needs none (an accelerator other than the CPU)."""
    if torch.cuda.is_available() or os.environ.get("DS_ACCELERATOR", "cpu") != "cpu":
        return None
    from torch.utils.cpp_extension import _get_build_directory

    return Path(_get_build_directory(DEEPSPEED_CPU_OP, verbose=False)) / f"{DEEPSPEED_CPU_OP}.so"


def ensure_deepspeed_op(log: Callable[[str], None] = print, every: float = 15.0) -> str:
    """Build DeepSpeed's CPU op unless it is built, logging progress every ``every`` seconds; returns
    what was found or done. Raises ``RuntimeError`` (one line) when it cannot be built."""
    so = deepspeed_op_file()
    if so is None:
        return "no JIT-built op needed on this accelerator"
    if so.exists():
        return f"{DEEPSPEED_CPU_OP} built ({so})"
    builder = _op_builder()
    if builder is None:
        return f"{DEEPSPEED_CPU_OP} not used on this host (DeepSpeed falls back to gloo)"
    cleared = clear_stale_op_lock(so.parent)
    if cleared:
        log(f"[xstilts] {cleared}")
    log(f"[xstilts] building DeepSpeed's CPU op {DEEPSPEED_CPU_OP} into {so.parent} (once; ~85 s on 2 cores, "
        "needs g++) ...")
    t0, done = time.perf_counter(), threading.Event()

    def heartbeat() -> None:
        while not done.wait(every):
            log(f"[xstilts]   still compiling {DEEPSPEED_CPU_OP}: {time.perf_counter() - t0:.0f}s")

    threading.Thread(target=heartbeat, daemon=True).start()
    try:
        builder.load(verbose=False)
    except Exception as e:  # noqa: BLE001 - a compiler or ninja failure of any kind is one line
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RuntimeError(f"DeepSpeed's CPU op {DEEPSPEED_CPU_OP} could not be built into {so.parent} (it needs "
                           f"g++ and ninja): {first}") from None
    finally:
        done.set()
    log(f"[xstilts] {DEEPSPEED_CPU_OP} built in {time.perf_counter() - t0:.0f}s")
    return f"{DEEPSPEED_CPU_OP} built now ({so})"


def _op_builder() -> Any:
    """DeepSpeed's builder of the CPU op, or None when this host does not use it."""
    import deepspeed.ops
    from deepspeed.accelerator import get_accelerator

    builder = get_accelerator().create_op_builder("ShareMemCommBuilder")
    if builder is None or not deepspeed.ops.__compatible_ops__.get(builder.NAME, False):
        return None
    return builder


def clear_stale_op_lock(build_dir: Path, max_age_s: float = STALE_LOCK_S) -> str | None:
    """Remove torch's build lock in ``build_dir`` when it is older than ``max_age_s`` (a killed
    build left it; torch would wait on it forever) and say so; None when there is none to remove."""
    lock = build_dir / "lock"
    try:
        age = time.time() - lock.stat().st_mtime
    except FileNotFoundError:
        return None
    if age < max_age_s:
        return None  # a build may be running now: torch waits for it
    lock.unlink(missing_ok=True)
    return (f"removed a stale build lock {lock} ({age / 60:.0f} min old, left by a build that was killed; "
            "torch would have waited on it forever)")


def start_deepspeed_op_build(log: Callable[[str], None] = print) -> str:
    """Start building DeepSpeed's CPU op in a process of its own, unless it is built or not needed;
    returns what was found or started. The build runs in its own session (a Ctrl-C of the search
    stops neither it nor leaves torch's build lock behind) and prints its progress;
    ``wait_deepspeed_op`` waits for it. What can be checked at once is: RuntimeError (one line)
    when no C++ compiler or no ninja is found."""
    so = deepspeed_op_file()
    if so is None:
        return "no JIT-built op needed on this accelerator"
    if so.exists():
        return f"{DEEPSPEED_CPU_OP} built ({so})"
    from torch.utils.cpp_extension import is_ninja_available

    cxx = os.environ.get("CXX", "c++")
    missing = [what for what, ok in ((f"a C++ compiler ({cxx})", shutil.which(cxx)),
                                     ("ninja", is_ninja_available())) if not ok]
    if missing:
        raise RuntimeError(f"DeepSpeed's CPU op {DEEPSPEED_CPU_OP} cannot be built into {so.parent}: "
                           f"{' and '.join(missing)} not found on PATH")
    if _op_builder() is None:
        return f"{DEEPSPEED_CPU_OP} not used on this host (DeepSpeed falls back to gloo)"
    err = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen([sys.executable, "-c", "from xstilts.trainer.engine import _build_op_main; "
                             "_build_op_main()"], stderr=err, start_new_session=True)
    _PENDING.update(proc=proc, err=err, t0=time.perf_counter())
    return f"{DEEPSPEED_CPU_OP} building in the background (pid {proc.pid}) into {so.parent}"


def wait_deepspeed_op(log: Callable[[str], None] = print) -> str | None:
    """Wait for the build ``start_deepspeed_op_build`` started (None when it started none); what it
    did, or RuntimeError with the build's one-line reason when it failed."""
    proc = _PENDING.pop("proc", None)
    if proc is None:
        return None
    err, t0 = _PENDING.pop("err"), _PENDING.pop("t0")
    if proc.poll() is None:
        log(f"[xstilts] waiting for DeepSpeed's CPU op {DEEPSPEED_CPU_OP} to finish building ...")
    rc = proc.wait()
    err.seek(0)
    lines = [line.strip() for line in err.read().splitlines() if line.strip()]
    err.close()
    if rc != 0:
        raise RuntimeError(lines[-1] if lines else f"DeepSpeed's CPU op {DEEPSPEED_CPU_OP} build exited with {rc}")
    return f"{DEEPSPEED_CPU_OP} built in the background ({time.perf_counter() - t0:.0f}s after it started)"


def _build_op_main() -> None:
    """The background build's process: ``ensure_deepspeed_op`` with its progress on stdout, its
    failure as one line on stderr (exit 1)."""
    try:
        ensure_deepspeed_op(lambda line: print(line, flush=True))
    except RuntimeError as e:
        print(e, file=sys.stderr, flush=True)
        sys.exit(1)
