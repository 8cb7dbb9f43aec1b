"""Where xstilts keeps what it generates: one home folder, ``$XSTILTS_HOME``.

Default ``./.xstilts`` (relative to the working directory, so a checkout keeps its own
caches and ``.gitignore`` covers them). Layout::

    $XSTILTS_HOME/
        data/              generated benchmarks (synth)            — reused by every search
        models/            tokenizer + MLM-pretrained tiny models  — reused by every search
        torch_extensions/  DeepSpeed's JIT-built C++ ops (TORCH_EXTENSIONS_DIR, unless set already)
        mlflow.db          the default MLflow tracking store (SQLite)
        ray/               Ray Tune results (one folder per search)
        optuna/            Optuna journals (one per search)

A home that is a file, cannot be created or cannot be written is a ``HomeError`` whose message
is one line saying which folder and why.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["home", "default_tracking_uri", "HomeError", "check_writable", "use_home_torch_extensions",
           "TORCH_EXTENSIONS_ENV"]

TORCH_EXTENSIONS_ENV = "TORCH_EXTENSIONS_DIR"  # where torch's cpp_extension (DeepSpeed's JIT ops) builds


class HomeError(ValueError):
    """The home folder is unusable; the message names it, says why, and how to point elsewhere."""


def _named(path: str | os.PathLike[str] | None) -> tuple[Path, str]:
    """The home folder and what named it (for the message)."""
    if path:
        return Path(path).expanduser().resolve(), "the home folder"
    if os.environ.get("XSTILTS_HOME"):
        return Path(os.environ["XSTILTS_HOME"]).expanduser().resolve(), "XSTILTS_HOME"
    return Path(".xstilts").resolve(), "the default home ./.xstilts"


def home(path: str | os.PathLike[str] | None = None) -> Path:
    """The home folder (created if missing): ``path``, else ``$XSTILTS_HOME``, else ``./.xstilts``."""
    root, what = _named(path)
    if root.exists() and not root.is_dir():
        raise HomeError(f"{what} {root} is a file, not a folder: point XSTILTS_HOME (or --home) at a folder")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise HomeError(f"{what} {root} cannot be created ({e.strerror or e}): point XSTILTS_HOME (or --home) at "
                        "a folder you can write") from None
    return root


def check_writable(root: Path) -> None:
    """``HomeError`` unless a file can be written in ``root`` (tried, not guessed: root ignores modes)."""
    probe = root / f".write-probe-{os.getpid()}"
    try:
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise HomeError(f"the home folder {root} is not writable ({e.strerror or e}): point XSTILTS_HOME (or "
                        "--home) at a folder you can write") from None


def use_home_torch_extensions(root: Path) -> Path:
    """Build torch extensions (DeepSpeed's ops) under ``root/torch_extensions`` in this process and
    those it starts, unless ``TORCH_EXTENSIONS_DIR`` is set already (empty counts as unset); returns
    the folder in use."""
    if not os.environ.get(TORCH_EXTENSIONS_ENV):
        os.environ[TORCH_EXTENSIONS_ENV] = str(root / "torch_extensions")
    return Path(os.environ[TORCH_EXTENSIONS_ENV])


def default_tracking_uri(root: Path | None = None) -> str:
    return f"sqlite:///{(root or home()) / 'mlflow.db'}"
