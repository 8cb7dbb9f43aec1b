"""Shared fixtures: one small home (synth + a briefly pretrained tiny model) per test session."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def _torch_default_extensions_dir() -> str:
    """torch's own default for ``TORCH_EXTENSIONS_DIR`` (``<cache>/torch_extensions/py<ver>_<accel>``)."""
    import torch
    from torch.utils.cpp_extension import get_default_build_root

    accel = f"cu{torch.version.cuda.replace('.', '')}" if torch.version.cuda else "cpu"
    return os.path.join(get_default_build_root(), f"py{sys.version_info.major}{sys.version_info.minor}_{accel}")


# The CLI builds DeepSpeed's CPU op into $XSTILTS_HOME/torch_extensions unless TORCH_EXTENSIONS_DIR is set:
# every test home would build it again (~85 s), so the tests (and the commands they run) share torch's default.
os.environ.setdefault("TORCH_EXTENSIONS_DIR", _torch_default_extensions_dir())

# A tiny model pretrained for a few hundred steps: enough for the plumbing tests, ~15 s on 2 cores.
TEST_TINY = {"pretrain_steps": 300, "pretrain_batch": 64}
# Reduced fidelity for end-to-end runs.
TEST_FIDELITY = {"intermediate_steps": 40, "target_steps": 40, "eval_every": 20, "batch_size": 16,
                 "eval_max_examples": 100}


@pytest.fixture(scope="session")
def tiny_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home folder with synth generated and the test tiny model pretrained (once per session)."""
    from xstilts.trainer.config import TinyModelSpec
    from xstilts.trainer.model import ensure_tiny_model

    root = tmp_path_factory.mktemp("xstilts_home")
    ensure_tiny_model(root, TinyModelSpec(**TEST_TINY), log=lambda s: None)
    return root


def run_cli(args: list[str], home: Path, timeout: float = 600, cwd: Path | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real ``xstilts`` console entry point in a subprocess (``env``: more variables)."""
    env = {**os.environ, "XSTILTS_HOME": str(home), "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "xstilts.search.cli", *args], env=env, cwd=cwd or home,
                          capture_output=True, text=True, timeout=timeout)
