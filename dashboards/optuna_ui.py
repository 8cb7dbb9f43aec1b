"""``xstilts ui --optuna NAME``: optuna-dashboard over a search's Optuna study (its journal file).

optuna-dashboard is an optional extra (``pip install 'xstilts[optuna]'``). It runs in this process
(its own wsgiref server, on 127.0.0.1 unless ``--host`` says otherwise) until Ctrl-C or SIGTERM.
The study's trials carry the user attributes the search wrote (``trial_name``, ``mixture``,
``mlflow_run_id``): optuna-dashboard shows them in its trial list and trial table.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from .ui import server_url

__all__ = ["serve_optuna", "study_url", "OPTUNA_EXTRA_HINT"]

OPTUNA_EXTRA_HINT = "pip install 'xstilts[optuna]' (or: pip install optuna-dashboard)"


def study_url(storage: Any, study_name: str | None, host: str, port: int) -> str:
    """The dashboard's page of ``study_name`` in ``storage`` (its first study when None; the study
    list when there is none)."""
    base = f"{server_url(host, port)}/dashboard"
    names = [s.study_name for s in storage.get_all_studies()]
    chosen = study_name if study_name in names else names[0] if names and study_name is None else None
    return f"{base}/studies/{storage.get_study_id_from_name(chosen)}" if chosen else base


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def serve_optuna(journal: Path, study_name: str | None = None, host: str = "127.0.0.1", port: int = 8080) -> int:
    """Run optuna-dashboard on ``journal`` in the foreground until Ctrl-C (or SIGTERM); the exit code."""
    try:
        from optuna_dashboard import run_server
    except ImportError:
        print(f"xstilts ui --optuna: optuna-dashboard is not installed: {OPTUNA_EXTRA_HINT}", file=sys.stderr)
        return 1
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    if not journal.is_file():
        print(f"xstilts ui --optuna: no Optuna journal at {journal}", file=sys.stderr)
        return 1
    storage = JournalStorage(JournalFileBackend(str(journal)))
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        print(f"[xstilts] optuna-dashboard over {journal}: {study_url(storage, study_name, host, port)}  "
              "(Ctrl-C stops it)", flush=True)
        run_server(storage, host=host, port=port)  # bottle returns on Ctrl-C
    except KeyboardInterrupt:
        pass
    except OSError as e:  # the port is taken
        print(f"xstilts ui --optuna: {e}", file=sys.stderr, flush=True)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    print("\n[xstilts] stopping optuna-dashboard", flush=True)
    return 0
