"""Where xstilts keeps what it generates: one home folder, ``$XSTILTS_HOME``.

Default ``./.xstilts`` (relative to the working directory, so a checkout keeps its own
caches and ``.gitignore`` covers them). Layout::

    $XSTILTS_HOME/
        data/      generated benchmarks (synth)            — reused by every search
        models/    tokenizer + MLM-pretrained tiny models  — reused by every search
        mlflow.db  the default MLflow tracking store (SQLite)
        ray/       Ray Tune results (one folder per search)
        optuna/    Optuna journals (one per search)
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["home", "default_tracking_uri"]


def home(path: str | os.PathLike[str] | None = None) -> Path:
    """The home folder (created if missing): ``path``, else ``$XSTILTS_HOME``, else ``./.xstilts``."""
    root = Path(path or os.environ.get("XSTILTS_HOME") or ".xstilts").expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    return root


def default_tracking_uri(root: Path | None = None) -> str:
    return f"sqlite:///{(root or home()) / 'mlflow.db'}"
