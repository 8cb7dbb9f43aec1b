"""``xstilts ui [NAME]``: an MLflow server over the search's tracking store, on 127.0.0.1, and a
link that opens on the answer: the runs table of search NAME (default: the latest) with its
trials ranked by the objective and what was searched as columns (``mlflow_view``), printed, and
opened in a browser where there is a display.

The server runs in its own process group (so a Ctrl-C in the terminal reaches ``xstilts ui``
alone, which then stops the whole group: gunicorn/uvicorn workers included) with one worker
and no job runner — healthy in seconds instead of half a minute.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import FrameType

__all__ = ["start_mlflow_server", "wait_healthy", "stop_server", "serve", "server_url", "search_link", "can_open_browser"]


def server_url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def start_mlflow_server(backend_uri: str, host: str = "127.0.0.1", port: int = 5000,
                        workers: int = 1, artifacts: str | None = None,
                        output: Path | None = None) -> subprocess.Popen[bytes]:
    """Start ``mlflow server`` (one worker, no job runner: healthy in seconds) in a new session;
    ``artifacts``: the folder the server keeps artifacts in (default: ./mlartifacts); ``output``: a
    file for the server's own log (default: this process's stdout and stderr)."""
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend_uri,
           "--host", host, "--port", str(port), "--workers", str(workers)]
    if artifacts:
        cmd += ["--artifacts-destination", artifacts]
    if output is None:
        return subprocess.Popen(cmd, env=env, start_new_session=True)
    with open(output, "ab") as log:  # the child keeps its own descriptor
        return subprocess.Popen(cmd, env=env, start_new_session=True, stdout=log, stderr=subprocess.STDOUT)


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


def stop_server(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM the server's process group, SIGKILL it if it lingers."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)
    except ProcessLookupError:
        pass
    # the group's other members (workers) may outlive the leader by a moment
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def search_link(backend_uri: str, base_url: str, search: str | None = None) -> tuple[str | None, str]:
    """(the runs table of ``search``'s trials ranked by its objective, a line saying what it shows),
    its saved view written (again) into the store first; (None, why) when there is no such search."""
    from mlflow.tracking import MlflowClient

    from .mlflow_view import mark_model_training, runs_view_url, save_runs_view
    from .store import SearchNotFound, load_search

    try:
        rec = load_search(backend_uri, search)
        client = MlflowClient(rec.tracking_uri)
        mark_model_training(client, rec.experiment_id)
        key = save_runs_view(client, rec)
    except SearchNotFound as e:
        return None, f"no runs table to link: {e}"
    except Exception as e:  # the UI is still worth starting
        return None, f"no runs table to link ({type(e).__name__}: {str(e)[:200]})"
    return (runs_view_url(base_url, rec.experiment_id, key),
            f"search {rec.run_name}: {len(rec.trials)} trials ranked by {rec.metric}")


def can_open_browser() -> bool:
    """A browser can be shown: a desktop session (X11 or Wayland), macOS or Windows."""
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) or sys.platform in ("darwin", "win32")


def serve(backend_uri: str, host: str = "127.0.0.1", port: int = 5000, search: str | None = None,
          browser: bool = True) -> int:
    """Run the server in the foreground until Ctrl-C (or SIGTERM); returns the exit code. Prints the
    link to ``search``'s ranked trials (``search_link``) and, with ``browser`` and a display, opens it."""
    previous = signal.signal(signal.SIGTERM, _interrupt)
    url = server_url(host, port)
    proc: subprocess.Popen[bytes] | None = None
    try:
        link, what = search_link(backend_uri, url, search)  # before the server: one writer on a SQLite store
        print(f"[xstilts] starting mlflow server over {backend_uri} on {host}:{port} ...", flush=True)
        proc = start_mlflow_server(backend_uri, host, port)
        wait_healthy(url, proc)
        print(f"[xstilts] MLflow UI: {url}  (Ctrl-C stops it)", flush=True)
        print(f"[xstilts] {what}" + (f":\n  {link}" if link else ""), flush=True)
        if link and browser and can_open_browser():
            import webbrowser

            webbrowser.open(link)
        return proc.wait()
    except KeyboardInterrupt:
        print("\n[xstilts] stopping the MLflow UI", flush=True)
        return 0
    except (RuntimeError, TimeoutError) as e:
        print(f"xstilts ui: {e}", file=sys.stderr, flush=True)
        return 1
    finally:
        if proc is not None:
            stop_server(proc)
        signal.signal(signal.SIGTERM, previous)
