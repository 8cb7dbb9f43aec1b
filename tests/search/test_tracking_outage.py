"""Tracking outages lose nothing, with a real MLflow tracking server stopped mid-search:

* started again later: at the end every trial's params, metrics (every step) and artifacts are in
  the store, because the driver's writes waited in order and were retried;
* never back: the search still finishes, says what the store lacks and what to run; ``xstilts
  sync`` then writes exactly that once the server answers, and a second sync writes nothing.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.search.helpers import start_cli, wait_for, write_space
from xstilts.dashboards.ui import start_mlflow_server, stop_server, wait_healthy
from xstilts.search.ledger import read_ledger
from xstilts.search.sync import run_gaps
from xstilts.trainer.ports import free_port

pytestmark = pytest.mark.slow


class _Server:
    """An MLflow tracking server over a SQLite file, that a test can stop and start on the same port."""

    def __init__(self, root: Path) -> None:
        self.backend, self.artifacts = f"sqlite:///{root / 'server.db'}", str(root / "server-artifacts")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = start_mlflow_server(self.backend, port=self.port, artifacts=self.artifacts)
        wait_healthy(self.url, self.proc, timeout=180)

    def stop(self) -> None:
        if self.proc is not None:
            stop_server(self.proc)
            self.proc = None


@pytest.fixture
def server(tmp_path: Path):
    s = _Server(tmp_path)
    s.start()
    yield s
    s.stop()


def _search_during_outage(tmp_path: Path, home: Path, server: _Server, name: str, *extra: str):
    """Start a 3-trial search on ``server``, stop the server once a trial has reported: (process, run folder, log)."""
    space = write_space(tmp_path, name, search={"scheduler": "none"}, points=False,
                        trial={"target_steps": 60, "eval_every": 20})
    storage, log = tmp_path / "ray", tmp_path / f"{name}.log"
    proc = start_cli(["search", str(space), "--trials", "3", "--max-concurrent", "2", "--tracking-uri", server.url,
                      "--storage", str(storage), *extra], home, log)
    run_dir = wait_for(lambda: next(iter(sorted(storage.glob(f"{name}-*"))), None), 240, "the run folder", proc, log)

    def results() -> int:
        return sum(len(t.results) for t in read_ledger(run_dir).values())

    wait_for(lambda: results() >= 1, 400, "a trial's first result", proc, log)
    server.stop()
    n = results()
    wait_for(lambda: results() >= n + 2, 400, "results while the store is down", proc, log)
    return proc, run_dir, log


def _missing(run_dir: Path, home: Path, uri: str) -> dict[str, int]:
    return {g.trial.name: g.writes for g in run_gaps(run_dir.name, str(run_dir.parent), uri, str(home)) if g.writes}


def test_a_server_that_comes_back_gets_every_write(tiny_home: Path, tmp_path: Path, server: _Server) -> None:
    proc, run_dir, log = _search_during_outage(tmp_path, tiny_home, server, "outage")
    try:
        server.start()
        rc = proc.wait(timeout=900)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = log.read_text()
    assert rc == 0, out[-4000:]
    assert "does not answer" in out and "answers again" in out  # the outage was met, and outlived
    trials = read_ledger(run_dir)
    assert len(trials) == 3 and all(t.status == "completed" for t in trials.values())
    assert _missing(run_dir, tiny_home, server.url) == {}  # params, every metric at every step, artifacts, status
    assert "xstilts sync" not in out


@pytest.mark.heavy
def test_a_server_that_never_comes_back_is_synced_afterwards(tiny_home: Path, tmp_path: Path,
                                                             server: _Server) -> None:
    proc, run_dir, log = _search_during_outage(tmp_path, tiny_home, server, "gone", "--tracking-wait", "5")
    rc = proc.wait(timeout=900)
    out = log.read_text()
    assert rc == 0, out[-4000:]  # the search finished all the same
    assert "did not take" in out and f"xstilts sync {run_dir.name}" in out  # what is missing, and what to run
    assert len(read_ledger(run_dir)) == 3

    server.start()
    assert _missing(run_dir, tiny_home, server.url)  # what the outage kept from the store
    r = run_cli(["sync", run_dir.name, "--storage", str(run_dir.parent)], tiny_home)
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
    assert "parent run closed" in r.stdout
    assert _missing(run_dir, tiny_home, server.url) == {}
    again = run_cli(["sync", run_dir.name, "--storage", str(run_dir.parent)], tiny_home)
    assert again.returncode == 0 and "nothing missing" in again.stdout, again.stdout[-2000:]
