"""The tracking store is asked once, quickly, before anything waits on it; reading never creates one."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import call_cli
from tests.dashboards.conftest import SyntheticSearch
from xstilts.dashboards.status import print_status
from xstilts.dashboards.store import SearchNotFound, load_search
from xstilts.dashboards.store_check import sqlite_path, tracking_store_problem
from xstilts.search.cli import main

UNREACHABLE = "http://127.0.0.1:9/"  # the discard port: nothing listens there


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_server_that_answers_health(health_server: str) -> None:
    assert tracking_store_problem(health_server) is None
    assert "answered 404" in (tracking_store_problem(health_server + "/not-mlflow") or "")


def test_an_unreachable_server_is_one_line_at_once() -> None:
    t0 = time.perf_counter()
    problem = tracking_store_problem(UNREACHABLE)
    assert time.perf_counter() - t0 < 5
    assert problem is not None and problem.startswith(f"tracking store {UNREACHABLE}: no answer from")
    assert "\n" not in problem and "--tracking-uri" in problem


def test_sqlite_and_file_stores_need_a_writable_folder(tmp_path: Path) -> None:
    assert tracking_store_problem(f"sqlite:///{tmp_path}/new/folder/mlflow.db") is None
    assert not (tmp_path / "new").exists()  # asked, not made
    (tmp_path / "file").write_text("")
    assert "is not a folder" in (tracking_store_problem(f"sqlite:///{tmp_path}/file/mlflow.db") or "")
    assert sqlite_path(f"sqlite:///{tmp_path}/x.db") == tmp_path / "x.db"
    if Path("/sys/kernel").is_dir():  # read-only even for root
        assert "not writable" in (tracking_store_problem("sqlite:////sys/kernel/mlflow.db") or "")


def test_credentials_never_show(tmp_path: Path) -> None:
    problem = tracking_store_problem("postgresql://alice:s3cret@127.0.0.1:9/mlflow", timeout=2)
    assert problem is not None and "s3cret" not in problem and "127.0.0.1:9" in problem


def test_reading_a_missing_sqlite_store_does_not_create_it(tmp_path: Path) -> None:
    with pytest.raises(SearchNotFound, match="no tracking store at"):
        load_search(f"sqlite:///{tmp_path}/mlflow.db", "nope")
    assert not (tmp_path / "mlflow.db").exists()


def test_report_of_an_unknown_name_is_one_line_and_creates_no_store(tmp_path: Path) -> None:
    r = call_cli(["report", "nothing-like-this"], tmp_path)
    assert r.returncode == 1
    assert r.stderr.startswith("xstilts: no tracking store at") and "Traceback" not in r.stderr
    assert not (tmp_path / "mlflow.db").exists()


def test_status_against_an_unreachable_server_answers_at_once(tmp_path: Path) -> None:
    t0 = time.perf_counter()
    r = call_cli(["status", "--tracking-uri", UNREACHABLE], tmp_path)
    assert time.perf_counter() - t0 < 60  # MLflow's retries took minutes
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [f"xstilts: tracking store {UNREACHABLE}: no answer from "
                                             f"{UNREACHABLE}health within 10s ([Errno 111] Connection refused); "
                                             "start the server or pass another --tracking-uri"]


def test_report_of_an_unknown_name_in_a_store_is_one_line(synthetic_search: SyntheticSearch, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.html"
    assert main(["report", "nothing-like-this", "--tracking-uri", synthetic_search.uri, "--output", str(out)]) == 1
    err = capsys.readouterr().err
    assert err == "xstilts: no search run or experiment named 'nothing-like-this' in the tracking store\n"
    assert not out.exists()


def test_report_against_an_unreachable_server_answers_at_once(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    t0 = time.perf_counter()
    assert main(["report", "any", "--tracking-uri", UNREACHABLE, "--output", str(tmp_path / "r.html")]) == 1
    assert time.perf_counter() - t0 < 15  # one /health look, not MLflow's minutes of retries
    err = capsys.readouterr().err
    assert err.startswith(f"xstilts: tracking store {UNREACHABLE}: no answer from") and err.count("\n") == 1
    assert not (tmp_path / "r.html").exists()


def test_status_of_a_missing_sqlite_store_creates_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert print_status(None, tracking_uri=f"sqlite:///{tmp_path}/mlflow.db") == 1
    assert capsys.readouterr().err == (f"xstilts: no tracking store at {tmp_path}/mlflow.db: no search has been "
                                       "tracked there (pass --tracking-uri or --home to read another)\n")
    assert list(tmp_path.iterdir()) == []
