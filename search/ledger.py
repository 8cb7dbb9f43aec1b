"""The search's ledger: what ran, appended by the driver as it happens (``xstilts_ledger.jsonl``).

    Tune's hooks (driver) ─► LedgerCallback ─► <run folder>/xstilts_ledger.jsonl   (one JSON object a line)
        start   a trial starts (or starts again): name, Optuna number, Ray id, folder, config   fsync
        result  a result it reported: its metrics, Tune's iteration, the checkpoint it carried  flush
        end     it ended: completed / pruned / failed, its last result, the error            fsync
        rerun   a resume hands it a checkpoint again (set aside: its folder, its iteration)  fsync
        search  the search run ended (its parent run's status, summary and tags)              fsync

The confirm phase (``confirm``) keeps its own ledger, ``xstilts_confirm.jsonl``, in the same format:
first a ``confirm`` line (its candidates and fresh seeds, fsync), then its trials' start / result /
end lines; kept apart so that the search's trials, its resume plan and ``xstilts sync`` never see
the retrainings as trials of the search.

Why a ledger: Tune saves its experiment state now and then (a background copy every ten seconds
or more), so a driver killed between two copies leaves a state in which finished trials are still
running. The ledger is written in Tune's event loop when the event happens, and start, end and
rerun lines reach the disk (fsync) before Tune goes on: a kill at any instant loses at most the
line being written, and ``read_ledger`` skips a truncated last line. The Optuna journal is the
other record that is always current; ``resume`` reconciles the two and never reads Tune's state.

``read_ledger`` folds the lines into one ``LedgerTrial`` per trial name (the name carries the Optuna
trial number, ``t0007-...``); ``tally`` counts a search from them for the runner's summary.
Results Tune is handed again by a resumed trial (``REPLAYED``) are not written twice.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ray.tune import Callback

from xstilts.dashboards.mlflow_logging import trial_error_text
from xstilts.trainer.codec import NUMBER
from xstilts.trainer.names import REPLAYED, TRIAL_DONE

__all__ = ["LEDGER_FILE", "CONFIRM_LEDGER", "ledger_events", "Ledger", "LedgerCallback", "LedgerTrial", "Tally",
           "read_ledger", "search_end", "tally",
           "kept_result", "end_event", "FINISHED"]

LEDGER_FILE = "xstilts_ledger.jsonl"  # in the Ray run folder, beside Tune's own files
CONFIRM_LEDGER = "xstilts_confirm.jsonl"  # the confirm phase's ledger, beside it (``confirm``)
FINISHED = ("completed", "pruned")  # the statuses of a trial that ran as far as it will
# what a ledger result keeps beside the trial's metrics (every key with a "/"): Tune's bookkeeping
_RAY_KEYS = (TRIAL_DONE, "training_iteration", "time_total_s", "timestamp", "trial_id", "pid", "checkpoint_dir_name")


def kept_result(result: dict[str, Any]) -> dict[str, Any]:
    """What the ledger keeps of a Tune result: the trial's metrics and Tune's iteration, time, ids."""
    return {k: v for k, v in result.items() if ("/" in k or k in _RAY_KEYS) and _plain(v)}


def _plain(v: Any) -> bool:
    return v is None or isinstance(v, str | bool | int) or (isinstance(v, float) and math.isfinite(v))


class Ledger:
    """An append-only JSON-lines file; ``seconds`` is the time spent writing it (what it costs the search)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: Any = None
        self.seconds = 0.0
        self.lines = 0

    def append(self, event: dict[str, Any], durable: bool) -> None:
        """Write one line; ``durable``: on the disk (fsync) before returning."""
        t0 = time.perf_counter()
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the search
        self._file.write(json.dumps({**event, "time": round(time.time(), 3)}, default=str) + "\n")
        self._file.flush()
        if durable:
            os.fsync(self._file.fileno())
        self.lines += 1
        self.seconds += time.perf_counter() - t0

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def end_event(name: str, number: int | None, status: str, last: dict[str, Any], error: str = "") -> dict[str, Any]:
    """The ``end`` line of a trial."""
    return {"event": "end", "trial": name, "number": number, "status": status, "result": kept_result(last),
            **({"error": error[-5000:]} if error else {})}


class LedgerCallback(Callback):
    """Tune's hooks written to the ledger of ``run_dir`` (driver side, in Tune's event loop)."""

    def __init__(self, run_dir: Path, file: str = LEDGER_FILE) -> None:
        self.run_dir = Path(run_dir)
        self.file = file  # LEDGER_FILE, or CONFIRM_LEDGER for the confirm phase's trials
        self.ledger = Ledger(self.run_dir / file)

    def __getstate__(self) -> dict[str, Any]:  # Tune pickles its callbacks with the run config
        return {"run_dir": self.run_dir, "file": self.file}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.run_dir = Path(state["run_dir"])
        self.file = state.get("file", LEDGER_FILE)
        self.ledger = Ledger(self.run_dir / self.file)

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        cfg = dict(trial.config or {})
        self.ledger.append({"event": "start", "trial": str(trial), "number": cfg.get(NUMBER),
                            "trial_id": str(trial.trial_id), "dirname": _dirname(trial), "config": cfg}, durable=True)

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any],
                        **info: Any) -> None:
        if result.get(REPLAYED):
            return  # the resumed trial handing Tune a result the ledger already holds
        kept = kept_result(result)
        ckpt = kept.pop("checkpoint_dir_name", None)
        self.ledger.append({"event": "result", "trial": str(trial), "result": kept,
                            **({"checkpoint": f"{_dirname(trial)}/{ckpt}"} if ckpt else {})}, durable=False)

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        last = dict(trial.last_result or {})
        status = "completed" if last.get(TRIAL_DONE) else "pruned"
        self.ledger.append(end_event(str(trial), (trial.config or {}).get(NUMBER), status, last), durable=True)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.ledger.append(end_event(str(trial), (trial.config or {}).get(NUMBER), "failed",
                                     dict(trial.last_result or {}), trial_error_text(trial)), durable=True)

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        self.ledger.close()

    def flush(self) -> None:
        """Nothing to wait for: every line is written when its hook returns (what ``drive`` in the tests expects)."""


def _dirname(trial: Any) -> str:
    path = getattr(trial, "path", None)
    return Path(path).name if path else str(trial)


@dataclass
class LedgerTrial:
    """One trial as the ledger tells it (every attempt folded in; a later result of one iteration wins)."""

    name: str
    number: int | None = None  # its Optuna trial number
    trial_id: str = ""  # the Ray trial id of its latest start
    dirname: str = ""  # its folder in the run folder
    config: dict[str, Any] = field(default_factory=dict)
    results: dict[int, dict[str, Any]] = field(default_factory=dict)  # Tune's iteration -> result
    status: str = "running"  # running (started, no end yet) / completed / pruned / failed
    error: str = ""
    last: dict[str, Any] = field(default_factory=dict)  # the result its end recorded
    starts: int = 0  # how often it started (a retried or resumed trial starts again)
    ends: int = 0  # how often it ended (a failed trial retried on resume ends again)
    restarted_after_finish: int = 0  # starts after it had completed or been pruned: must stay 0
    checkpoints: dict[int, str] = field(default_factory=dict)  # iteration -> checkpoint folder (run-relative)

    @property
    def checkpoint(self) -> str | None:
        """Its newest checkpoint folder, relative to the run folder."""
        return self.checkpoints[max(self.checkpoints)] if self.checkpoints else None

    @property
    def ended(self) -> bool:
        return self.status != "running"

    @property
    def final(self) -> dict[str, Any]:
        """Its last result: the one its end recorded, else the latest it reported."""
        if self.last:
            return self.last
        return self.results[max(self.results)] if self.results else {}

    def fold(self, e: dict[str, Any]) -> None:
        kind = e.get("event")
        if kind == "start":
            self.starts += 1
            self.restarted_after_finish += self.status in FINISHED
            self.status, self.last, self.error = "running", {}, ""
            self.number = e.get("number", self.number)
            self.trial_id, self.dirname, self.config = e.get("trial_id", ""), e.get("dirname", ""), e.get("config", {})
        elif kind == "result":
            r = e.get("result", {})
            if "time" in e:
                r.setdefault("timestamp", e["time"])  # when it came in, if Tune did not stamp it
            it = int(r.get("training_iteration", len(self.results) + 1))
            self.results[it] = r
            if e.get("checkpoint"):
                self.checkpoints[it] = e["checkpoint"]
        elif kind == "rerun" and e.get("checkpoint"):  # set aside by a resume: replaces that iteration's folder
            self.checkpoints[int(e.get("iteration", 0))] = e["checkpoint"]
        elif kind == "end":
            self.status, self.last, self.error = e.get("status", "failed"), e.get("result", {}), e.get("error", "")
            self.ends += 1
            if self.number is None:
                self.number = e.get("number")


def ledger_events(run_dir: Path, file: str = LEDGER_FILE) -> list[dict[str, Any]]:
    """The ledger's lines in order; a line that does not parse (the one a kill cut short) is skipped."""
    path = Path(run_dir) / file
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            e = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(e, dict):
            out.append(e)
    return out


def read_ledger(run_dir: Path, file: str = LEDGER_FILE) -> dict[str, LedgerTrial]:
    """The trials of the ledger in ``run_dir`` by name, in the order they first started ({} without one)."""
    trials: dict[str, LedgerTrial] = {}
    for e in ledger_events(run_dir, file):
        if e.get("trial"):
            trials.setdefault(str(e["trial"]), LedgerTrial(str(e["trial"]))).fold(e)
    return trials


def search_end(run_dir: Path) -> dict[str, Any] | None:
    """The last ``search`` line: how the search run last ended (MLflow run status, summary metrics and
    tags of its parent run), so ``xstilts sync`` can close a parent the store was down to close."""
    ends = [e for e in ledger_events(run_dir) if e.get("event") == "search"]
    return ends[-1] if ends else None


@dataclass
class Tally:
    """A search counted from its ledger."""

    counts: dict[str, int]  # completed, pruned, failed, unfinished (started, no end)
    best: LedgerTrial | None  # the best trial that reported the metric and did not fail
    nodes: dict[str, int]  # Ray node id -> trials whose last result came from it


def tally(trials: dict[str, LedgerTrial], metric: str, mode: str) -> Tally:
    counts = {"completed": 0, "pruned": 0, "failed": 0, "unfinished": 0}
    nodes: dict[str, int] = {}
    best: LedgerTrial | None = None
    sign = 1.0 if mode == "max" else -1.0
    for t in trials.values():
        counts["unfinished" if t.status == "running" else t.status] += 1
        node = t.final.get("ray/node_id")
        if node:
            nodes[str(node)] = nodes.get(str(node), 0) + 1
        v = t.final.get(metric)
        if t.status in FINISHED and isinstance(v, int | float):
            if best is None or sign * v > sign * best.final[metric]:
                best = t
    return Tally(counts, best, nodes)
