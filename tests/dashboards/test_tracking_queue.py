"""The writer queue: in order, retried while the store does not answer, dropped when it refuses."""

from __future__ import annotations

import threading

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, TEMPORARILY_UNAVAILABLE

from xstilts.dashboards.tracking_queue import TrackingQueue, is_transient, store_answers


def _down() -> MlflowException:
    return MlflowException("API request to http://127.0.0.1:9/api failed with exception ... Connection refused")


def test_what_counts_as_the_store_not_answering() -> None:
    assert is_transient(_down())  # MLflow's REST client: a refused connection is an INTERNAL_ERROR (500)
    assert is_transient(MlflowException("busy", error_code=TEMPORARILY_UNAVAILABLE))
    assert is_transient(ConnectionRefusedError()) and is_transient(TimeoutError())
    assert not is_transient(MlflowException("bad value", error_code=INVALID_PARAMETER_VALUE))
    assert not is_transient(FileExistsError("a file where the database folder should be"))
    assert not is_transient(ValueError("a bug of ours"))


def test_an_outage_keeps_every_write_in_order_and_loses_none() -> None:
    """The store is down for the first four attempts: the first write waits (doubling delays), the
    later ones wait behind it, and then all of them run, in order."""
    attempts = {"n": 0}
    done: list[str] = []
    sleeps: list[float] = []

    def flaky(label: str):
        def write() -> None:
            attempts["n"] += 1
            if attempts["n"] <= 4:
                raise _down()
            done.append(label)
        return write

    q = TrackingQueue(probe=lambda: False, first_delay=0.5, max_delay=1.5, sleep=sleeps.append)
    for label in ("start", "result 1", "result 2", "end"):
        q.submit(label, flaky(label))
    assert q.flush(timeout=30)
    assert done == ["start", "result 1", "result 2", "end"]
    assert sleeps == [0.5, 1.0, 1.5, 1.5]  # backoff, capped
    assert (q.errors, q.retries, q.outages, len(q)) == (0, 4, 1, 0)


def test_a_write_the_store_refuses_is_dropped_and_the_queue_moves_on() -> None:
    done: list[str] = []

    def refused() -> None:
        raise MlflowException("param changed", error_code=INVALID_PARAMETER_VALUE)

    def server_error() -> None:  # a 500 for this write alone, while the store answers (probe True)
        raise MlflowException("boom")

    q = TrackingQueue(probe=lambda: True, sleep=lambda s: None)
    q.submit("refused", refused)
    q.submit("always 500", server_error)
    q.submit("fine", lambda: done.append("fine"))
    assert q.flush(timeout=30)
    assert done == ["fine"] and q.errors == 2 and q.retries == 2  # the 500: tried 3 times, then the probe said up


def test_a_bounded_flush_lists_what_is_still_waiting() -> None:
    gate = threading.Event()
    q = TrackingQueue(sleep=lambda s: None)
    q.submit("t0001: start", lambda: gate.wait(30))
    q.submit("t0001: result 1", lambda: None)
    assert q.flush(timeout=0.2) is False
    assert q.pending() == ["t0001: start", "t0001: result 1"]
    gate.set()
    assert q.flush(timeout=30) and q.pending() == []


def test_store_answers_tells_a_dead_server_from_a_live_store(tmp_path) -> None:
    assert store_answers("http://127.0.0.1:9", timeout=2) is False  # nothing listens on port 9
    assert store_answers(f"sqlite:///{tmp_path / 'fresh.db'}") is True
