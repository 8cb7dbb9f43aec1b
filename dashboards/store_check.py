"""Does the tracking store answer? One quick look before anything waits on MLflow.

MLflow's client retries an unreachable server for minutes before it gives up; a search would
generate data, pretrain and start Ray first, and ``xstilts status`` would hang. So every command
that needs the store asks ``tracking_store_problem(uri)`` first and stops with its one line:

* ``http(s)://``: a GET of ``<uri>/health`` answers within ``TIMEOUT_S`` (any answer but "not
  found" or a server error: credentials are MLflow's business);
* ``sqlite:///PATH``: the database's folder exists or can be made, and can be written;
* a file store (``file://`` or a plain path): its folder can be written;
* a database server (``postgresql://``, ``mysql://`` ...): its host accepts a connection.
"""

from __future__ import annotations

import os
import socket
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

__all__ = ["tracking_store_problem", "sqlite_path", "TIMEOUT_S"]

TIMEOUT_S = 10.0  # how long a tracking store may take to answer
_DB_PORTS = {"postgresql": 5432, "postgres": 5432, "mysql": 3306, "mssql": 1433}


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, else None."""
    if not uri.startswith("sqlite:"):
        return None
    return Path(uri.split(":///", 1)[1] if ":///" in uri else uri.split(":", 1)[1].lstrip("/"))


def _writable_folder(folder: Path) -> str | None:
    """Why files cannot be written in ``folder`` (made if missing), or None."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is not a folder"
    probe = existing / f".xstilts-write-probe-{os.getpid()}"
    try:
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        return f"{existing} is not writable ({e.strerror or e})"
    return None


def _http_problem(uri: str, timeout: float) -> str | None:
    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout):  # noqa: S310 - the user's own tracking URI
            return None
    except urllib.error.HTTPError as e:
        if e.code in (401, 403):
            return None  # it answers; MLflow's client brings the credentials
        return f"{_shown(url)} answered {e.code} {e.reason}: is it an MLflow tracking server?"
    except (urllib.error.URLError, OSError, ValueError) as e:
        why = getattr(e, "reason", e)
        return (f"no answer from {_shown(url)} within {timeout:.0f}s ({why}); start the server or pass another "
                "--tracking-uri")


def _shown(uri: str) -> str:
    """``uri`` without its credentials (``user:password@``)."""
    u = urlparse(uri)
    return u._replace(netloc=u.netloc.rsplit("@", 1)[1]).geturl() if "@" in u.netloc else uri


def tracking_store_problem(uri: str, timeout: float = TIMEOUT_S) -> str | None:
    """Why the tracking store ``uri`` cannot be used now (one line, naming it), or None."""
    scheme = urlparse(uri).scheme
    if scheme in ("http", "https"):
        why = _http_problem(uri, timeout)
    elif scheme == "sqlite":
        db = sqlite_path(uri)
        assert db is not None
        why = _writable_folder(db.parent)
        if why is None and db.exists() and not os.access(db, os.W_OK):
            why = f"{db} is not writable"
    elif scheme in ("", "file"):
        why = _writable_folder(Path(urlparse(uri).path if scheme else uri))
    elif scheme.split("+")[0] in _DB_PORTS:
        u = urlparse(uri)
        try:
            socket.create_connection((u.hostname or "localhost", u.port or _DB_PORTS[scheme.split("+")[0]]),
                                     timeout=timeout).close()
            why = None
        except OSError as e:
            why = f"no connection to {u.hostname}:{u.port or _DB_PORTS[scheme.split('+')[0]]} within {timeout:.0f}s ({e})"
    else:
        return None  # databricks and other stores: MLflow's own client is the judge
    return None if why is None else f"tracking store {_shown(uri)}: {why}"
