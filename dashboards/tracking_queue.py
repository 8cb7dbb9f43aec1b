"""Writes to the tracking store off Tune's event loop, in order, retried through an outage.

    a hook (Tune's loop) ─► submit(label, write) ─► queue ─► one writer thread runs each write in turn
        the store does not answer (refused, timed out, HTTP 5xx / 408 / 429)
            ─► wait 0.5 s, doubling up to 30 s, and try the same write again; the later ones wait behind it
        the store answers but refuses this write (or any other error)
            ─► logged, counted in ``errors``, dropped; the queue moves on

A write is retried for as long as the store does not answer (``probe``): a long outage keeps the
queue, in order, and loses nothing. After three failures of one write its ``probe`` decides: a store
that answers is refusing this write (a server error that will not go away), so it is dropped
rather than holding every later write forever. ``flush(timeout)`` waits for the queue; whatever is
still in it when the timeout passes is ``pending()`` (labels: what each write was for).

``bounded_http_retries`` keeps MLflow's own HTTP retries short (its default is about two minutes
of retries per call) so that the waiting happens here, where it is visible and bounded.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

__all__ = ["TrackingQueue", "is_transient", "store_answers", "bounded_http_retries"]

log = logging.getLogger(__name__)

Write = Callable[[], object]


def is_transient(e: BaseException) -> bool:
    """Whether ``e`` says the store did not answer (worth retrying), not that it refused the write."""
    if isinstance(e, ConnectionError | TimeoutError):
        return True
    try:
        import requests

        if isinstance(e, requests.exceptions.ConnectionError | requests.exceptions.Timeout):
            return True
    except ImportError:  # pragma: no cover - requests comes with mlflow
        pass
    from mlflow.exceptions import MlflowException

    if isinstance(e, MlflowException):
        code = e.get_http_status_code()
        return code >= 500 or code in (408, 429)
    return False


def store_answers(tracking_uri: str, timeout: float = 5.0) -> bool:
    """Whether the tracking store answers now: an HTTP server's ``/health``, else a one-row query."""
    try:
        if tracking_uri.startswith(("http://", "https://")):
            with urllib.request.urlopen(f"{tracking_uri.rstrip('/')}/health", timeout=timeout) as r:
                return bool(r.status == 200)
        from mlflow.tracking import MlflowClient

        MlflowClient(tracking_uri).search_experiments(max_results=1)
        return True
    except Exception:
        return False


def bounded_http_retries(max_retries: int = 2, timeout_s: int = 15) -> None:
    """Cap MLflow's HTTP retries and request timeout for this process, unless the user set them."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(max_retries))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(timeout_s))


class TrackingQueue:
    """One daemon thread running submitted writes in order, retrying them while the store is down."""

    def __init__(self, probe: Callable[[], bool] = lambda: True, first_delay: float = 0.5, max_delay: float = 30.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._queue: queue.Queue[tuple[str, Write]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._current: str | None = None
        self.probe = probe
        self.first_delay = first_delay
        self.max_delay = max_delay
        self._sleep = sleep
        self.errors = 0  # writes dropped (the store refused them, or they raised otherwise)
        self.retries = 0  # attempts repeated because the store did not answer
        self.outages = 0  # times the store stopped answering

    def submit(self, label: str, write: Write) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="xstilts-mlflow-writer", daemon=True)
                self._thread.start()
        self._queue.put((label, write))

    def _loop(self) -> None:
        while True:
            label, write = self._queue.get()
            self._current = label
            try:
                self._run(label, write)
            finally:
                self._current = None
                self._queue.task_done()

    def _run(self, label: str, write: Write) -> None:
        delay, failures = self.first_delay, 0
        while True:
            try:
                write()
                if failures:
                    log.warning("xstilts: the tracking store answers again (%s written after %d retries)", label,
                                failures)
                return
            except Exception as e:  # tracking must never stop the search
                failures += 1
                if not is_transient(e) or (failures >= 3 and self.probe()):
                    self.errors += 1
                    log.warning("xstilts: an MLflow write failed (%s: %s: %s); the search goes on", label,
                                type(e).__name__, e, exc_info=log.isEnabledFor(logging.DEBUG))
                    return
                if failures == 1:
                    self.outages += 1
                    log.warning("xstilts: the tracking store does not answer (%s: %s); %s and the writes after it "
                                "are kept and retried", type(e).__name__, str(e)[:200], label)
                self.retries += 1
                self._sleep(min(delay, self.max_delay))
                delay *= 2

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every submitted write has run (at most ``timeout`` seconds); False if some are left."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._queue.all_tasks_done:
            while self._queue.unfinished_tasks:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._queue.all_tasks_done.wait(left)
        return True

    def pending(self) -> list[str]:
        """The labels of the writes not done yet (the one being tried first)."""
        with self._queue.mutex:
            queued = [label for label, _ in list(self._queue.queue)]
        current = self._current
        return ([current] if current else []) + queued

    def __len__(self) -> int:
        return int(self._queue.unfinished_tasks)

    def describe(self) -> dict[str, Any]:
        return {"errors": self.errors, "retries": self.retries, "outages": self.outages, "pending": len(self)}
