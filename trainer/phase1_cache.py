"""A folder of finished phase-1 states, shared by trials whose intermediate training is the same.

Phase 1 (intermediate training) depends on part of a trial's config only: not on the target
tasks, the target steps or how the targets are evaluated (the target heads are added after
phase 1, from seeds of their own; phase 2 starts from a seed of its own: ``trial.py``). Trials
that differ in those alone (``bench transfer``: each intermediate task before each target) train
the same phase 1; with ``TrialRuntime.phase1_cache`` set the first one keeps its end state here
and the others start phase 2 from it, with the very metrics they would have had.

    <phase1_cache>/<key>.pt        torch.save of the state at the end of phase 1: the model (encoder,
                                   MLM head, intermediate heads), the phase-1 losses, the streams',
                                   samplers' and masking generator's states, the engine's name
    key = sha1(the config less PHASE2_FIELDS, the trainer's source, torch's version, the device)

An entry is written to a temporary name, flushed to disk and renamed: a reader sees a whole entry
or none, and concurrent writers of one key (the same bytes) leave one. The trainer's source is in
the key, so an entry of other code is never read; nothing is ever removed. Importing this module
imports no torch (``bench transfer`` reads the source hash before torch's threads are set).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import pickle
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import TrialConfig

__all__ = ["PHASE2_FIELDS", "phase1_key", "trainer_source_hash", "load_phase1", "store_phase1"]

# TrialConfig fields that phase 1 does not read: the targets, their training and their evaluation,
# and when checkpoints are written (they change no number). Every other field is in the key, so a
# field added later keys the cache until it is listed here (a miss, never a wrong hit).
PHASE2_FIELDS = frozenset({
    "target_tasks", "target_steps", "translate_train_languages", "eval_languages", "eval_max_examples",
    "eval_clean", "eval_every", "eval_dev", "retrieval_layer", "checkpoint_every",
})


@functools.cache
def trainer_source_hash() -> str:
    """A hash of the trainer's source (synth included): what a trial's numbers depend on."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha1()
    for f in sorted(root.rglob("*.py")):
        h.update(f.relative_to(root).as_posix().encode() + f.read_bytes())
    return h.hexdigest()[:12]


def phase1_key(cfg: TrialConfig) -> str:
    """The cache key of ``cfg``'s phase 1: its config less ``PHASE2_FIELDS``, the trainer's source,
    torch's version and the device kind."""
    import torch

    fields = {k: v for k, v in cfg.model_dump(mode="json").items() if k not in PHASE2_FIELDS}
    raw = {"config": fields, "code": trainer_source_hash(), "torch": torch.__version__,
           "device": "cuda" if torch.cuda.is_available() else "cpu"}
    return hashlib.sha1(json.dumps(raw, sort_keys=True).encode()).hexdigest()[:16]


def _entry(folder: str | Path, key: str) -> Path:
    return Path(folder) / f"{key}.pt"


def load_phase1(folder: str | Path, key: str) -> dict[str, Any] | None:
    """The state kept under ``key``, or None when there is none (or it cannot be read)."""
    import torch

    path = _entry(folder, key)
    if not path.exists():
        return None
    try:
        state: dict[str, Any] = torch.load(path, weights_only=False)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError):  # a damaged entry: trained again, then replaced
        return None
    return state


def store_phase1(folder: str | Path, key: str, state: dict[str, Any]) -> Path:
    """Keep ``state`` under ``key`` atomically (temporary name, fsync, rename); its path."""
    import torch

    path = _entry(folder, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        with tmp.open("wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
