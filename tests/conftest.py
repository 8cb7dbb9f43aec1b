"""Shared fixtures: one small home (synth + a briefly pretrained tiny model) per test session."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from dataclasses import dataclass
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


@dataclass
class RealSearch:
    """What ``real_search`` ran and read back from its tracking store."""
    uri: str
    home: Path
    run_name: str
    experiment_id: str
    parent_id: str
    children: list  # mlflow Run objects: the search's trials
    stdout: str
    confirm: list  # mlflow Run objects: the confirm phase's trials (tag xstilts.phase=confirm)
    space: Path


@pytest.fixture(scope="session")
def real_search(tiny_home: Path, tmp_path_factory: pytest.TempPathFactory) -> RealSearch:
    """One real 2-trial search of the default space (Ray Tune + Optuna + ASHA + DeepSpeed on the tiny
    model, experiment ``dash``) with a confirm phase (the best trial on 2 fresh seeds), run once per
    session for the MLflow contract (tests/search/test_search_e2e) and what a person looks at
    (tests/dashboards/test_dashboards_e2e): each such search costs ~1-2 min of CI."""
    import yaml
    from mlflow.tracking import MlflowClient

    from xstilts.spaces import default_space_path

    tmp = tmp_path_factory.mktemp("dash_e2e")
    raw = yaml.safe_load(default_space_path().read_text())
    raw["name"] = "dash"
    raw["trial"].update({"tiny": TEST_TINY, **TEST_FIDELITY})
    raw["search"]["confirm"] = {"top_k": 1, "seeds": 2}
    space = tmp / "dash.yaml"
    space.write_text(yaml.safe_dump(raw))
    uri = f"sqlite:///{tmp / 'track.db'}"
    r = run_cli(["search", str(space), "--trials", "2", "--max-concurrent", "2", "--tracking-uri", uri], tiny_home)
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("dash")
    parent = client.search_runs([exp.experiment_id], filter_string="tags.`xstilts.kind` = 'search'")[0]
    children = client.search_runs([exp.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    search = [c for c in children if c.data.tags.get("xstilts.phase") != "confirm"]
    confirm = [c for c in children if c.data.tags.get("xstilts.phase") == "confirm"]
    return RealSearch(uri, tiny_home, parent.data.tags["xstilts.search"], exp.experiment_id, parent.info.run_id,
                      search, r.stdout, confirm, space)


def run_cli(args: list[str], home: Path, timeout: float = 600, cwd: Path | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real ``xstilts`` console entry point in a subprocess (``env``: more variables)."""
    env = {**os.environ, "XSTILTS_HOME": str(home), "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "xstilts.search.cli", *args], env=env, cwd=cwd or home,
                          capture_output=True, text=True, timeout=timeout)


def call_cli(args: list[str], home: Path, cwd: Path | None = None,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``xstilts ARGS`` in this process: ``main(args)`` with the home, working folder and environment
    ``run_cli`` would give it, stdout and stderr captured, and ``SystemExit`` ended the way the
    interpreter ends it (a message to stderr and exit 1; a number as the status). For the refusals
    that a subprocess would only add interpreter start-up and imports to (each command keeps a
    ``run_cli`` smoke test of its own). The environment and the working folder are restored after."""
    from xstilts.search.cli import main

    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    out, err = io.StringIO(), io.StringIO()
    os.environ.update({"XSTILTS_HOME": str(home), **(env or {})})
    try:
        os.chdir(cwd or home)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(args)
            except SystemExit as e:
                if e.code is None or isinstance(e.code, int):
                    code = e.code or 0
                else:
                    print(e.code, file=sys.stderr)
                    code = 1
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    return subprocess.CompletedProcess(["xstilts", *args], code, out.getvalue(), err.getvalue())
