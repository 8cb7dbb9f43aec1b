"""A real multi-node Ray cluster on one machine (tests, the benchmark, trying ``ray job submit``).

``LocalCluster(nodes=2, cpus_per_node=1)`` runs ``ray start --head`` and ``ray start
--address=...`` for the other nodes, each with its own ``--temp-dir`` (a second node sharing the
head's temp dir deletes the job's extracted working dir) and its own free ports, so it never
meets another Ray on the same machine. ``stop()`` ends only the processes whose command line
names this cluster's temp dirs, and their children — never ``ray stop``, which would stop every
Ray on the machine.

Token authentication (Ray 2.60): Python's ``ray.init(address=...)`` finds the token file by
itself, the CLI needs ``RAY_AUTH_MODE=token`` in its environment — ``cli_env()`` sets it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from xstilts.trainer.ports import free_port

__all__ = ["LocalCluster", "cli_env", "ray_cli"]


def ray_cli() -> str:
    """The ``ray`` executable of this environment."""
    cand = Path(sys.executable).with_name("ray")
    return str(cand) if cand.exists() else (shutil.which("ray") or "ray")


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for Ray's CLI: token auth on, this environment's bin first on PATH."""
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("RAY_ADDRESS", None)
    return {**env, **(extra or {})}


class LocalCluster:
    """``nodes`` Ray nodes on this machine; a context manager that always stops what it started."""

    def __init__(self, nodes: int = 2, cpus_per_node: int = 1, root: str | Path | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.nodes = nodes
        self.cpus_per_node = cpus_per_node
        # short paths: Ray's unix socket names must stay under ~107 characters
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="xr", dir="/tmp"))
        self.env = cli_env(env)
        self.port = free_port()
        self.dashboard_port = free_port()
        self.temp_dirs: list[Path] = []
        self.started = False

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def _node_ports(self) -> list[str]:
        return [f"--node-manager-port={free_port()}", f"--object-manager-port={free_port()}",
                f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
                f"--metrics-export-port={free_port()}", f"--runtime-env-agent-port={free_port()}"]

    def _ray(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        r = subprocess.run([ray_cli(), *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"ray {' '.join(args)} failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}")
        return r

    def start(self) -> LocalCluster:
        self.started = True
        for i in range(self.nodes):
            tmp = self.root / f"n{i}"
            tmp.mkdir(parents=True, exist_ok=True)
            self.temp_dirs.append(tmp)
            common = [f"--num-cpus={self.cpus_per_node}", "--num-gpus=0", f"--temp-dir={tmp}",
                      "--disable-usage-stats", *self._node_ports()]
            if i == 0:
                self._ray("start", "--head", f"--port={self.port}", "--dashboard-host=127.0.0.1",
                          f"--dashboard-port={self.dashboard_port}", f"--ray-client-server-port={free_port()}",
                          *common)
            else:
                self._ray("start", f"--address={self.address}", *common)
        self.wait_for_nodes()
        return self

    def alive_nodes(self) -> list[dict[str, Any]]:
        import json

        r = self._ray("list", "nodes", f"--address={self.address}", "--format=json", "--detail", timeout=60)
        out = r.stdout[r.stdout.find("["):]
        nodes = json.loads(out) if out else []
        return [n for n in nodes if n.get("state") == "ALIVE"]

    def wait_for_nodes(self, timeout: float = 90) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        nodes: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            try:
                nodes = self.alive_nodes()
            except RuntimeError:
                nodes = []
            if len(nodes) >= self.nodes:
                return nodes
            time.sleep(1)
        raise RuntimeError(f"only {len(nodes)} of {self.nodes} Ray nodes came up")

    def job_submit(self, working_dir: Path, entrypoint: list[str], runtime_env: dict[str, Any] | None = None,
                   timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """``ray job submit --address DASHBOARD --working-dir . -- ENTRYPOINT`` run from ``working_dir``."""
        import json

        args = [ray_cli(), "job", "submit", "--address", self.dashboard_url, "--working-dir", "."]
        if runtime_env:
            args += ["--runtime-env-json", json.dumps(runtime_env)]
        return subprocess.run([*args, "--", *entrypoint], env=self.env, cwd=working_dir, capture_output=True,
                              text=True, timeout=timeout)

    def kill_node(self, i: int) -> int:
        """SIGKILL node ``i`` (not the head): its raylet, its workers and everything else of it, as a
        machine lost mid-run. Returns how many processes were killed."""
        import psutil

        if i == 0:
            raise ValueError("node 0 is the head; kill a worker node")
        procs = self._our_processes([str(self.temp_dirs[i])], gcs=False)
        for p in procs:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(procs, timeout=10)
        return len(procs)

    def _our_processes(self, marks: list[str] | None = None, gcs: bool = True) -> list[Any]:
        """This cluster's processes and their children: those whose command line names one of
        ``marks`` (default: every node's temp dir) or, with ``gcs``, this cluster's GCS port."""
        import psutil

        marks = marks if marks is not None else [str(t) for t in self.temp_dirs] + [str(self.root)]
        ours = {}
        for p in psutil.process_iter(["pid", "cmdline"]):
            try:
                cmd = " ".join(p.info["cmdline"] or [])
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            named = any(m in cmd for m in marks)  # (node temp dirs n0, n1, ...: none is a prefix of another)
            if named or (gcs and (f"--gcs-address=127.0.0.1:{self.port}" in cmd or f"--gcs_server_port={self.port}"
                                  in cmd or f"--gcs-address 127.0.0.1:{self.port}" in cmd)):
                ours[p.pid] = p
                try:
                    for c in p.children(recursive=True):
                        ours[c.pid] = c
                except psutil.NoSuchProcess:
                    pass
        ours.pop(os.getpid(), None)
        return list(ours.values())

    def stop(self) -> None:
        """End this cluster's processes (SIGTERM, then SIGKILL) and remove its temp dirs."""
        import psutil

        if not self.started:
            return
        procs = self._our_processes()
        for p in procs:
            try:
                p.send_signal(signal.SIGTERM)
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(procs, timeout=10)
        for p in alive + self._our_processes():
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(alive, timeout=5)
        self.started = False
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
