"""``xstilts status [NAME]``: where a running or finished search stands.

The tracking store is the record of every trial (running / completed / pruned / failed, the
best so far) and of the confirm phase (its retrainings on fresh seeds, the recommendation by mean
± SE, labelled "so far" while it runs); when a Ray cluster is up on this machine (or ``RAY_ADDRESS`` names one), Ray's
State API adds what is live: the Tune trial actors alive and the cluster's CPUs in use.

Trials are listed best first (``ranked_trials``: completed by the objective, then the early values
of pruned and running ones), the best marked ``*``, a pruned one with where it stopped; the
search's time includes the preparation before its first trial (checks, data, pretraining).
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from xstilts.trainer.names import TRIAL_FUNCTION

from .mlflow_view import stopped_at
from .recommendation import estimate_text, from_records
from .store import (
    SearchNotFound,
    SearchRecord,
    TrialRecord,
    best_trial,
    load_search,
    objective_value,
    ranked_trials,
)

__all__ = ["print_status", "status_text", "ray_live_state", "is_trial_actor", "confirm_lines"]


def _age(ms: int | None) -> str:
    if not ms:
        return "—"
    s = max(0.0, time.time() - ms / 1000)
    return f"{s:.0f}s ago" if s < 120 else f"{s / 60:.0f} min ago" if s < 7200 else f"{s / 3600:.1f} h ago"


def _took(rec: SearchRecord) -> str:
    """How long the search took (so far), preparation included: "; took 12.4 min (10.1 min preparation)"."""
    seconds = rec.metrics.get("search/seconds")
    if seconds is None and rec.start_ms:  # running (or killed before its end): its parent started with the command
        seconds = max(0.0, ((rec.end_ms or time.time() * 1000) - rec.start_ms) / 1000)
    if seconds is None:
        return ""
    prep = rec.metrics.get("search/prep_seconds")
    return f"; {'took' if rec.end_ms else 'running for'} {seconds / 60:.1f} min" + (
        f" ({prep / 60:.1f} min preparation)" if prep else "")


def _note(t: TrialRecord) -> str:
    """What a row adds after its numbers: where a pruned trial stopped, a failed one's last error line."""
    if t.status == "pruned":
        where = stopped_at(t.metrics, t.params)
        return f"stopped at {where}" if where else "stopped early"
    return _last_line(t) if t.status == "failed" else ""


def status_text(rec: SearchRecord, ray_state: dict[str, Any] | None = None) -> str:
    c = rec.counts()
    planned = rec.params.get("trials", "?")
    lines = [f"search {rec.run_name} (experiment {rec.experiment!r}): {rec.status}, started {_age(rec.start_ms)}"
             + (f", ended {_age(rec.end_ms)}" if rec.end_ms else "") + _took(rec),
             f"trials: {c['running']} running, {c['completed']} completed, {c['pruned']} pruned, "
             f"{c['failed']} failed ({len(rec.trials)} of {planned} planned)"]
    best = best_trial(rec.trials, rec.metric, rec.mode)
    if best is not None:
        lines.append(f"best so far: {rec.metric} = {objective_value(best, rec.metric):.4f} ({best.name})")
    else:
        live = best_trial(rec.trials, rec.metric, rec.mode, statuses=("running", "pruned"))
        lines.append("best so far: no completed trial yet" + (
            f"; best intermediate {rec.metric} = {objective_value(live, rec.metric):.4f} ({live.name})" if live else ""))
    width = max((len(t.name) for t in rec.trials), default=5)
    lines.append(f"  {'trial':<{width}}  {'status':<9}  {rec.metric:>13}  {'seconds':>8}   (best first; * the best)")
    for t in ranked_trials(rec):
        v = objective_value(t, rec.metric)
        mark = "*" if best is not None and t.run_id == best.run_id else " "
        note = _note(t)
        lines.append(f"{mark} {t.name:<{width}}  {t.status:<9}  {'' if v is None else f'{v:.4f}':>13}  {t.seconds:8.1f}"
                     + (f"  {note}" if note else ""))
    lines += confirm_lines(rec)
    if ray_state is not None:
        pids = ", ".join(map(str, ray_state["trial_pids"])) or "none"
        lines.append(f"Ray (live, {ray_state['address']}): {ray_state['trial_actors']} trial actor(s) alive "
                     f"(pids {pids}) of {ray_state['actors']} actors")
    return "\n".join(lines)


def confirm_lines(rec: SearchRecord) -> list[str]:
    """The confirm phase: its trials' progress and the recommendation (so far, while it runs)."""
    r = from_records(rec.trials, rec.confirm, rec.metric, rec.mode)
    if r is None:
        return []
    c = {s: sum(x.status == s for x in rec.confirm) for s in ("completed", "running", "failed")}
    planned = len(r.candidates) * int(rec.params.get("confirm.seeds", len(r.seeds)))
    lines = [f"confirm: {c['completed']} of {planned} retrainings of the top {len(r.candidates)} on fresh seeds "
             f"completed, {c['running']} running, {c['failed']} failed"]
    if r.recommended is not None:
        done = c["running"] == 0 and len(rec.confirm) >= planned
        lines.append(f"recommended{'' if done else ' so far'}: {r.recommended.name}  "
                     f"{estimate_text(r.recommended, rec.metric)} (mean ± SE; the best so far above is one seed's score)")
    return lines


def _last_line(t: TrialRecord) -> str:
    lines = [x for x in t.error.strip().splitlines() if x.strip()]
    return lines[-1][:160] if lines else ""


def ray_live_state(timeout: int = 5) -> dict[str, Any] | None:
    """Tune trial actors alive, from Ray's State API; None when no Ray cluster is up.

    Never starts Ray: it asks only a cluster that ``RAY_ADDRESS`` names or that runs on this
    machine (``ray start``, or the in-process Ray of a running ``xstilts search``)."""
    try:
        from ray._private.services import canonicalize_bootstrap_address
        from ray.util.state import list_actors

        address = canonicalize_bootstrap_address("auto")  # RAY_ADDRESS, else this machine's cluster
        if not address:
            return None
        actors = list_actors(filters=[("state", "=", "ALIVE")], limit=10000, timeout=timeout,
                             raise_on_missing_output=False)
    except Exception:  # no cluster, a stale address, or no dashboard: the tracking store suffices
        return None
    trial = [a for a in actors if is_trial_actor(a.class_name or "")]
    return {"address": address, "actors": len(actors), "trial_actors": len(trial),
            "trial_pids": sorted(int(a.pid) for a in trial if a.pid)}


def is_trial_actor(class_name: str) -> bool:
    """Tune runs a function trainable in an actor whose class is named after the function
    (``TRIAL_FUNCTION``) or ``ImplicitFunc``."""
    return any(s in class_name for s in (TRIAL_FUNCTION, "ImplicitFunc"))


def print_status(name: str | None, tracking_uri: str | None = None, out: TextIO | None = None) -> int:
    """Print the state of search ``name`` (default: the latest); exit code 0, or 1 if not found."""
    out = out or sys.stdout
    try:
        rec = load_search(tracking_uri, name)
    except SearchNotFound as e:
        print(f"xstilts: {e}", file=sys.stderr)
        return 1
    ray_state = ray_live_state() if rec.mlflow_status == "RUNNING" else None
    print(status_text(rec, ray_state), file=out)
    return 0
