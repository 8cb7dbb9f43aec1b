"""``xstilts ui``: a real subprocess binds 127.0.0.1, prints its URL and the link to the latest
search's ranked trials, and a Ctrl-C (SIGINT to its process group, as a terminal sends it) stops it
and the MLflow server it started."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from tests.dashboards.conftest import SyntheticSearch
from xstilts.dashboards.ui import server_url
from xstilts.trainer.ports import free_port

pytestmark = pytest.mark.slow


def test_server_url_never_shows_a_wildcard_host() -> None:
    assert server_url("127.0.0.1", 5000) == "http://127.0.0.1:5000"
    assert server_url("0.0.0.0", 8080) == "http://127.0.0.1:8080"
    assert server_url("::1", 80) == "http://[::1]:80"


def _listening(port: int) -> list[str]:
    return [c.laddr.ip for c in psutil.net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port]


def test_xstilts_ui_prints_its_url_binds_localhost_and_stops_on_ctrl_c(tmp_path: Path,
                                                                       synthetic_search: SyntheticSearch) -> None:
    port = free_port()
    shutil.copyfile(synthetic_search.uri[len("sqlite:///"):], tmp_path / "ui.db")  # a store with a search in it
    env = {**os.environ, "XSTILTS_HOME": str(tmp_path), "PYTHONUNBUFFERED": "1", "DISPLAY": ""}
    proc = subprocess.Popen([sys.executable, "-m", "xstilts.search.cli", "ui", "--tracking-uri",
                             f"sqlite:///{tmp_path / 'ui.db'}", "--port", str(port), "--no-browser"],
                            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    server_pids: list[int] = []
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 120
        url = f"http://127.0.0.1:{port}"
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith(f"  {url}/#/experiments/"):
                break
        assert any(f"MLflow UI: {url}" in x for x in lines), "".join(lines)[-3000:]
        # the link to the latest search's trials, best first (see test_mlflow_view for what it opens)
        assert lines[-2].strip() == f"[xstilts] search {synthetic_search.run_name}: 4 trials ranked by zero_shot/avg:"
        assert lines[-1].strip().endswith(f"/runs?viewStateShareKey={synthetic_search.parent_id}"
                                          "&workflowType=machine_learning")
        with urllib.request.urlopen(f"{url}/health", timeout=5) as r:
            assert r.status == 200
        assert _listening(port) == ["127.0.0.1"]  # loopback only
        server_pids = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
        assert server_pids, "the MLflow server runs as a child of `xstilts ui`"

        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        rest, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, rest[-3000:]
        assert "stopping the MLflow UI" in rest
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (any(psutil.pid_exists(p) for p in server_pids) or _listening(port)):
            time.sleep(0.2)
        alive = [p for p in server_pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
        assert not alive, f"server processes left behind: {alive}"
        assert not _listening(port)
    finally:
        for pid in [proc.pid, *server_pids]:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        proc.wait(timeout=10)

