"""``xstilts ui``: an MLflow server over the search's tracking store, on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request

__all__ = ["start_mlflow_server", "wait_healthy", "serve"]


def start_mlflow_server(backend_uri: str, host: str = "127.0.0.1", port: int = 5000,
                        workers: int = 1) -> subprocess.Popen[bytes]:
    """Start ``mlflow server`` (one worker, no job runner: healthy in seconds)."""
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend_uri,
           "--host", host, "--port", str(port), "--workers", str(workers)]
    return subprocess.Popen(cmd, env=env, start_new_session=True)


def wait_healthy(url: str, proc: subprocess.Popen[bytes] | None = None, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"mlflow server at {url} not healthy after {timeout:.0f}s")


def serve(backend_uri: str, host: str = "127.0.0.1", port: int = 5000) -> int:
    """Run the server in the foreground until Ctrl-C; returns its exit code."""
    proc = start_mlflow_server(backend_uri, host, port)
    url = f"http://{host}:{port}"
    try:
        wait_healthy(url, proc)
        print(f"[xstilts] MLflow UI: {url}  (tracking store {backend_uri}); Ctrl-C stops it", flush=True)
        return proc.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        if proc.poll() is None:
            import signal

            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
