"""A trial's checkpoints on disk: where they go, how one is written whole, how the newest is found.

    <output_dir>/checkpoints/              (CHECKPOINT_DIR; a scratch folder without an output_dir)
        <phase>-<step:06d>/                one checkpoint, e.g. target-000040
            ...                            DeepSpeed's states: model, optimizer, LR scheduler (all ranks)
            client_state.pt                ours: phase, step, samplers, streams, RNGs, loss history
        latest                             the tag of the newest complete checkpoint

``save_checkpoint`` writes DeepSpeed's states, then (rank 0) the client state, then replaces
``latest`` atomically and removes every older checkpoint: a kill at any moment leaves ``latest``
naming a complete checkpoint. ``find_checkpoint`` / ``read_client_state`` / ``load_engine_state``
read one back.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch

__all__ = ["CHECKPOINT_DIR", "CLIENT_STATE", "latest_checkpoint", "find_checkpoint", "save_checkpoint",
           "write_client_state", "read_client_state", "load_engine_state", "prune"]

CHECKPOINT_DIR = "checkpoints"  # under output_dir
CLIENT_STATE = "client_state.pt"  # our part of a checkpoint, beside DeepSpeed's


def latest_checkpoint(root: str | Path) -> Path | None:
    """The newest complete checkpoint under ``root``: ``latest`` names it, and is replaced atomically
    only after the checkpoint (DeepSpeed states + client state) is fully written."""
    latest = Path(root) / "latest"
    if not latest.exists():
        return None
    tag = latest.read_text().strip()
    return Path(root) / tag if (Path(root) / tag).is_dir() else None


def find_checkpoint(path: str | Path) -> Path:
    """The checkpoint to resume from: the newest under ``path``, or ``path`` itself when it is one
    (a checkpoint folder handed over by Tune)."""
    path = Path(path)
    found = latest_checkpoint(path) or (path if (path / CLIENT_STATE).exists() else None)
    if found is None:
        raise FileNotFoundError(f"no checkpoint to resume from in {path}")
    return found


def save_checkpoint(engine: Any, root: Path, tag: str, client: dict[str, Any], *, write_client: bool) -> Path:
    """Write checkpoint ``tag`` under ``root``: the engine's states (every rank calls this), and where
    ``write_client`` (rank 0) the client state and the ``latest`` pointer. Returns its folder."""
    engine.save_checkpoint(str(root), tag=tag, save_latest=False)  # model, optimizer, LR sched (all ranks)
    if write_client:
        write_client_state(root, tag, client)
    return root / tag


def write_client_state(root: Path, tag: str, client: dict[str, Any]) -> None:
    """Save ``client`` into checkpoint ``tag``, point ``latest`` at it, drop every other checkpoint."""
    torch.save(client, root / tag / CLIENT_STATE)
    (root / "latest.tmp").write_text(tag)
    (root / "latest.tmp").replace(root / "latest")  # atomic: a kill never leaves half a pointer
    prune(root, tag)


def read_client_state(checkpoint: Path) -> dict[str, Any]:
    state: dict[str, Any] = torch.load(checkpoint / CLIENT_STATE, weights_only=False)
    return state


def load_engine_state(engine: Any, checkpoint: Path) -> None:
    """Load the engine's states (model, optimizer, LR scheduler) from ``checkpoint``."""
    engine.load_checkpoint(str(checkpoint.parent), tag=checkpoint.name)


def prune(root: Path, keep: str) -> None:
    """Remove every checkpoint folder under ``root`` but ``keep``."""
    for d in root.iterdir():
        if d.is_dir() and d.name != keep:
            shutil.rmtree(d, ignore_errors=True)
