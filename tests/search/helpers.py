"""Helpers for the search end-to-end tests: small spaces, polling Ray's saved state, MLflow reads."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from mlflow.tracking import MlflowClient

from tests.conftest import TEST_TINY
from xstilts.search.bench_faults import poll_until

# short trials: two evaluations each (ASHA has a rung), a few seconds on one core
FAST = {"intermediate_steps": 20, "target_steps": 40, "eval_every": 20, "batch_size": 16, "eval_max_examples": 60}


def write_space(tmp_path: Path, name: str, trial: dict[str, Any] | None = None,
                search: dict[str, Any] | None = None, points: bool = True) -> Path:
    """The default space with these changes, at the fast fidelity; no confirm phase unless ``search``
    gives one."""
    from xstilts.spaces import default_space_path

    raw = yaml.safe_load(default_space_path().read_text())
    raw["name"] = name
    raw["search"].pop("confirm", None)
    raw["search"].update(search or {})
    raw["trial"].update({"tiny": TEST_TINY, **FAST, **(trial or {})})
    if not points:
        raw.pop("points_to_evaluate", None)
    p = tmp_path / f"{name}.yaml"
    p.write_text(yaml.safe_dump(raw, sort_keys=False))
    return p


def start_cli(args: list[str], home: Path, log: Path) -> subprocess.Popen[bytes]:
    """The real ``xstilts`` CLI in its own process group (so a test can kill all of it)."""
    env = {**os.environ, "XSTILTS_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    f = open(log, "wb")  # noqa: SIM115 - closed with the process
    return subprocess.Popen([sys.executable, "-m", "xstilts.search.cli", *args], env=env, cwd=home, stdout=f,
                            stderr=subprocess.STDOUT, start_new_session=True)


def trial_states(run_dir: Path) -> dict[str, dict[str, Any]]:
    """Ray's saved experiment state: trial id -> {status, config, num_failures}.

    The newest file is the one with the latest name (``experiment_state-<start time>.json``), as
    Ray picks it: modification times do not tell, because every sync re-uploads the whole staging
    folder, the state files of earlier driver sessions included."""
    files = sorted(glob.glob(str(run_dir / "experiment_state-*.json")))
    if not files:
        return {}
    try:
        state = json.loads(Path(files[-1]).read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    out = {}
    for meta, run_meta in state.get("trial_data", []):
        m, r = json.loads(meta), json.loads(run_meta)
        out[m["trial_id"]] = {"status": m["status"], "config": m["config"], "num_failures": r["num_failures"],
                              "dirname": m.get("custom_dirname")}
    return out


def wait_for(cond: Callable[[], Any], timeout: float, what: str, proc: subprocess.Popen[bytes] | None = None,
             log: Path | None = None) -> Any:
    v = poll_until(cond, timeout, proc, every=0.3)
    if v:
        return v
    if proc is not None and proc.poll() is not None:
        raise AssertionError(f"the search exited ({proc.returncode}) before {what}:\n"
                             f"{log.read_text()[-4000:] if log else ''}")
    raise AssertionError(f"timed out waiting for {what}:\n{log.read_text()[-4000:] if log else ''}")


def run_dir_of(storage: Path, name: str) -> Path | None:
    runs = sorted(storage.glob(f"{name}-*"))
    return runs[-1] if runs else None


def children(uri: str, experiment: str) -> tuple[Any, list[Any]]:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("xstilts.kind") == "search"]
    assert len(parents) == 1, [p.info.run_name for p in parents]
    kids = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    return parents[0], kids


def result_lines(run_dir: Path, dirname: str) -> list[dict[str, Any]]:
    f = run_dir / dirname / "result.json"
    return [json.loads(x) for x in f.read_text().splitlines() if x.strip()] if f.exists() else []


def optuna_states(journal: Path, study: str) -> list[str]:
    """The state name of every trial of ``study`` in the Optuna journal (number order); [] before it exists."""
    import optuna

    from xstilts.search.searchers import journal_storage

    if not journal.exists():
        return []
    try:
        s = optuna.load_study(study_name=study, storage=journal_storage(journal))
    except KeyError:
        return []
    return [t.state.name for t in s.get_trials(deepcopy=False)]


RAY_STATE_FILES = ("experiment_state-*.json", "search_gen_state-*.json", "searcher-state-*.pkl", "tuner.pkl")


def snapshot_ray_state(run_dir: Path) -> dict[str, bytes]:
    """Tune's saved experiment state as it is in the results folder now (file name -> bytes)."""
    return {f.name: f.read_bytes() for pattern in RAY_STATE_FILES for f in run_dir.glob(pattern)}


def put_back_ray_state(run_dir: Path, snapshot: dict[str, bytes]) -> None:
    """Make the results folder hold exactly ``snapshot`` of Tune's state: what a driver killed
    before its next sync leaves there."""
    for pattern in RAY_STATE_FILES:
        for f in run_dir.glob(pattern):
            f.unlink()
    for name, data in snapshot.items():
        (run_dir / name).write_bytes(data)
