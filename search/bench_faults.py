"""``xstilts bench faults --json``: real faults injected into real searches, and what survived them.

Every fault is a real process killed or stopped, in searches of the tiny model on ``synth`` (the
caches of ``$XSTILTS_HOME``; the searches themselves go to a temporary work folder):

==============  ===========================================================================================
``driver``      the search's process group (driver, the Ray it started, its trials) SIGKILLed at an instant,
                then ``xstilts search --resume`` until the search completes. Instants: ``after_trial_end``
                (the moment a trial's end reaches the ledger; Tune's state file in the results folder is then
                cut in half, as a kill mid-copy leaves it), ``mid_checkpoint`` (the moment a trial's new
                checkpoint folder appears in the run folder, before the driver has taken its result),
                ``random`` (a seeded instant between the first trial's start and the search's expected end)
``worker``      a running trial's worker process SIGKILLed; Tune retries the trial from its checkpoint
``tracking``    the MLflow tracking server stopped once a trial has reported, started again 20 s later
``node``        the worker node of a two-node ``LocalCluster`` SIGKILLed while one of its trials runs
                (``ray job submit``); the trial is retried from its checkpoint on the head node
``bad_input``   ``xstilts search`` on inputs that must be refused before training (each within 60 s)
==============  ===========================================================================================

What survived, per search, once it completed (read from the ledger, the Optuna journal and the store):
``trials_lost`` (requested trials that never ended), ``trials_rerun`` (trials started again after
they had completed or been pruned, and Optuna trials beyond one per trial), ``duplicated_children``
(MLflow child runs beyond one per trial), ``writes_lost`` (what the store lacks of the ledger's
records: params, metric values by step, artifacts, statuses — ``sync.run_gaps``). A fault survived
when its search completed with all four 0. A bad input is ``refused_before_training`` when the
command exits non-zero before any trial starts; ``slowest_refusal_s`` is the longest such refusal.

``ledger``: what durability costs — the seconds the drivers spent appending the ledger against their
``Tuner.fit`` seconds, and one fsynced append on this disk, in milliseconds.

Default: three driver kills (one per instant), one of each other kind, the bad inputs — about 15-20
minutes on 2 cores. ``--quick``: one driver kill (after a trial's end) and two bad inputs (a key
misspelt, a data row cut short), at a smaller size: a smoke run of the same code, not figures to
report (the worker kill has its own test, ``tests/search/test_resume_faults.py``).
"""

from __future__ import annotations

import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .ledger import LEDGER_FILE, Ledger, read_ledger, search_end

__all__ = ["run", "poll_until", "Outcome", "assess", "bad_inputs", "ledger_cost", "FIDELITY", "TINY"]

TINY = {"pretrain_steps": 300, "pretrain_batch": 64}  # faults need a model that trains, not a good one
FIDELITY = {"intermediate_steps": 20, "target_steps": 60, "eval_every": 20, "batch_size": 16,
            "eval_max_examples": 60, "tiny": TINY}
INSTANTS = ("after_trial_end", "mid_checkpoint", "random")


@dataclass
class Outcome:
    """One injected fault and how its search came out."""

    kind: str  # driver / worker / tracking / node
    instant: str = ""  # driver kills: when
    run_name: str = ""
    injected: bool = False  # the fault happened (the search had not finished before it)
    completed: bool = False  # the search ended with every requested trial ended
    resumes: int = 0  # `xstilts search --resume` runs it took
    trials: int = 0  # trials that ended
    trials_lost: int = 0
    trials_rerun: int = 0
    duplicated_children: int = 0
    writes_lost: int = 0
    seconds: float = 0.0
    note: str = ""

    @property
    def survived(self) -> bool:
        return self.injected and self.completed and not (
            self.trials_lost or self.trials_rerun or self.duplicated_children or self.writes_lost)


@dataclass
class _Bench:
    """Where the searches run, and how they are started."""

    home: Path  # $XSTILTS_HOME: the caches
    work: Path  # the searches' results folder, tracking store, spaces and logs
    trials: int
    rng: random.Random
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def storage(self) -> Path:
        return self.work / "ray"

    @property
    def uri(self) -> str:
        return f"sqlite:///{self.work / 'track.db'}"

    def space(self, name: str, folder: Path | None = None, **search: Any) -> Path:
        from xstilts.spaces import default_space_path

        raw = yaml.safe_load(default_space_path().read_text())
        raw["name"] = name
        raw["search"].update({"max_concurrent": 2, "max_failures": 1, **search})
        raw["search"].pop("confirm", None)  # the faults measured are the search phase's
        raw["trial"].update(FIDELITY)
        raw.pop("points_to_evaluate", None)
        path = (folder or self.work) / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
        return path

    def cli(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """``xstilts ARGS`` in its own process group (so all of it can be killed), output to ``log``."""
        full = {**os.environ, "XSTILTS_HOME": str(self.home), "PYTHONUNBUFFERED": "1", **(env or {})}
        full.pop("RAY_ADDRESS", None)
        with open(log, "ab") as f:
            return subprocess.Popen([sys.executable, "-m", "xstilts.search.cli", *args], env=full, cwd=self.work,
                                    stdout=f, stderr=subprocess.STDOUT, start_new_session=True)

    def search(self, name: str, *extra: str, uri: str | None = None, **search: Any) -> subprocess.Popen[bytes]:
        return self.cli(["search", str(self.space(name, **search)), "--trials", str(self.trials), "--tracking-uri",
                         uri or self.uri, "--storage", str(self.storage), "--run-name", f"{name}-run", *extra],
                        self.work / f"{name}.log")


def poll_until(cond: Any, timeout: float, proc: subprocess.Popen[bytes] | None = None, every: float = 0.05) -> Any:
    """Poll ``cond`` until it returns something true (returned), ``proc`` exits or ``timeout`` passes (None)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        if proc is not None and proc.poll() is not None:
            return None
        time.sleep(every)
    return None


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=60)


def _kill_instant(run_dir: Path, instant: str, proc: subprocess.Popen[bytes], rng: random.Random) -> str:
    """Wait for ``instant`` in the search of ``run_dir``; what was seen when it came ("" if the search ended first)."""
    if instant == "after_trial_end":
        hit = poll_until(lambda: [t.name for t in read_ledger(run_dir).values() if t.ended], 900, proc, every=0.02)
        return f"{hit[0]} had just ended" if hit else ""
    if instant == "mid_checkpoint":
        def new_checkpoint() -> str:
            known = {c for t in read_ledger(run_dir).values() for c in t.checkpoints.values()}
            fresh = [p for p in run_dir.glob("*/checkpoint_*") if str(p.relative_to(run_dir)) not in known]
            return str(fresh[0].relative_to(run_dir)) if fresh else ""
        hit = poll_until(new_checkpoint, 900, proc, every=0.01)
        return f"{hit} written, its result not yet taken" if hit else ""
    started = poll_until(lambda: read_ledger(run_dir), 900, proc)
    delay = rng.uniform(2, 25)  # inside a 4-trial search even on an idle 2-core machine (its trials: ~25 s)
    if not started or poll_until(lambda: proc.poll() is not None, delay) is not None:
        return ""
    return f"{delay:.1f} s after the first trial started"


def _cut_tune_state(run_dir: Path) -> None:
    """Cut Tune's newest state file in the results folder in half, as a kill mid-copy leaves it."""
    files = sorted(run_dir.glob("experiment_state-*.json"))
    if files:
        data = files[-1].read_bytes()
        files[-1].write_bytes(data[: len(data) // 2])


def driver_fault(b: _Bench, instant: str) -> Outcome:
    name, t0 = f"driver-{instant.replace('_', '-')}", time.perf_counter()
    proc = b.search(name, scheduler="asha")
    run_dir = b.storage / f"{name}-run"
    out = Outcome("driver", instant, run_dir.name)
    try:
        out.note = _kill_instant(run_dir, instant, proc, b.rng)
    finally:
        _kill_group(proc)
    out.injected = bool(out.note)
    if instant == "after_trial_end":
        _cut_tune_state(run_dir)
    while out.resumes < 3 and not _complete(run_dir, b.trials):
        out.resumes += 1
        r = b.cli(["search", "--resume", run_dir.name, "--storage", str(b.storage)], b.work / f"{name}.log")
        r.wait(timeout=1800)
    return assess(b, out, run_dir, t0)


def worker_fault(b: _Bench) -> Outcome:
    """SIGKILL the worker process of a trial that has reported and not ended; Tune retries it."""
    name, t0 = "worker", time.perf_counter()
    proc = b.search(name, scheduler="none")
    run_dir = b.storage / f"{name}-run"
    out = Outcome("worker", run_name=run_dir.name)

    def running_pid() -> int | None:
        for t in read_ledger(run_dir).values():
            if not t.ended and t.results:
                return int(t.results[max(t.results)].get("pid") or 0) or None
        return None

    pid = poll_until(running_pid, 900, proc)
    if pid:
        os.kill(pid, signal.SIGKILL)
        out.injected, out.note = True, f"worker pid {pid} killed"
    proc.wait(timeout=1800)
    return assess(b, out, run_dir, t0)


def tracking_fault(b: _Bench) -> Outcome:
    """Stop the MLflow tracking server once a trial has reported; start it again 20 s later."""
    from xstilts.dashboards.ui import start_mlflow_server, stop_server, wait_healthy
    from xstilts.trainer.ports import free_port

    name, t0 = "tracking", time.perf_counter()
    port = free_port()
    url, backend, artifacts = f"http://127.0.0.1:{port}", f"sqlite:///{b.work / 'server.db'}", str(b.work / "srv")
    server_log = b.work / "server.log"  # not stdout: that is the one JSON object's
    server = start_mlflow_server(backend, port=port, artifacts=artifacts, output=server_log)
    wait_healthy(url, server, timeout=180)
    proc = b.search(name, uri=url, scheduler="none")
    run_dir = b.storage / f"{name}-run"
    out = Outcome("tracking", run_name=run_dir.name)
    try:
        if poll_until(lambda: any(t.results for t in read_ledger(run_dir).values()), 900, proc):
            stop_server(server)
            time.sleep(20)
            out.injected, out.note = True, "server stopped 20 s"
            server = start_mlflow_server(backend, port=port, artifacts=artifacts, output=server_log)
            wait_healthy(url, server, timeout=180)
        proc.wait(timeout=1800)
        return assess(b, out, run_dir, t0, uri=url)
    finally:
        stop_server(server)


def node_fault(b: _Bench) -> Outcome:
    """A search submitted to a two-node ``LocalCluster``; the worker node SIGKILLed mid-trial."""
    from .cluster import LocalCluster

    name, t0 = "node", time.perf_counter()
    project = b.work / "node-project"  # what `ray job submit --working-dir .` uploads: the space alone
    b.space(name, folder=project, scheduler="none", cpus_per_trial=1)
    run_dir = b.storage / f"{name}-run"
    out = Outcome("node", run_name=run_dir.name)
    with LocalCluster(nodes=2, cpus_per_node=1) as cluster:
        worker = next(n["node_id"] for n in cluster.alive_nodes() if not n.get("is_head_node"))
        args = ["xstilts", "search", f"{name}.yaml", "--trials", "2", "--max-concurrent", "2", "--tracking-uri",
                b.uri, "--storage", str(b.storage), "--run-name", run_dir.name]
        job = threading.Thread(target=cluster.job_submit, args=(project, args),
                               kwargs={"runtime_env": {"env_vars": {"XSTILTS_HOME": str(b.home)}}, "timeout": 1800})
        job.start()

        def on_worker() -> bool:
            return any(not t.ended and t.results and t.results[max(t.results)].get("ray/node_id") == worker
                       for t in read_ledger(run_dir).values())

        if poll_until(on_worker, 900, every=0.2):
            out.injected, out.note = True, f"{cluster.kill_node(1)} processes of the worker node killed"
        job.join(timeout=1800)
    return assess(b, out, run_dir, t0, requested=2)


def _complete(run_dir: Path, requested: int) -> bool:
    trials = read_ledger(run_dir)
    end = search_end(run_dir)
    return bool(end) and sum(t.ended for t in trials.values()) >= requested and not any(
        not t.ended for t in trials.values())


def assess(b: _Bench, out: Outcome, run_dir: Path, t0: float, uri: str | None = None,
           requested: int | None = None) -> Outcome:
    """Fill ``out`` from what the search left: the ledger, the Optuna journal, the tracking store."""
    import optuna
    from mlflow.tracking import MlflowClient

    from xstilts.dashboards.mlflow_logging import find_search_run_id

    from .searchers import journal_storage
    from .sync import run_gaps

    requested = requested or b.trials
    out.seconds = round(time.perf_counter() - t0, 1)
    trials = read_ledger(run_dir)
    ended = [t for t in trials.values() if t.ended]
    out.trials, out.completed = len(ended), _complete(run_dir, requested)
    out.trials_lost = max(0, requested - len(ended))
    journal = b.home / "optuna" / f"{run_dir.name}.journal"
    asked = 0
    if journal.exists():
        study = optuna.load_study(study_name=run_dir.name, storage=journal_storage(journal))
        asked = sum(t.state.is_finished() for t in study.get_trials(deepcopy=False))
    out.trials_rerun = sum(t.restarted_after_finish for t in trials.values()) + max(0, asked - len(ended))
    uri = uri or b.uri
    parent = find_search_run_id(uri, run_dir.name)
    if parent:
        kids = MlflowClient(uri).search_runs(
            [e.experiment_id for e in MlflowClient(uri).search_experiments()],
            filter_string=f"tags.mlflow.parentRunId = '{parent}'")
        names = [k.data.tags.get("xstilts.trial") or k.info.run_name for k in kids]
        out.duplicated_children = len(names) - len(set(names))
    out.writes_lost = sum(g.writes for g in run_gaps(run_dir.name, str(b.storage), uri, str(b.home)))
    return out


def _bad_home(b: _Bench, change: str) -> Path:
    """A home whose synth data has one file changed (``change``), its models those of ``b.home``."""
    from xstilts.trainer.data import synth_benchmark

    root = b.work / f"home-{change}"
    shutil.copytree(synth_benchmark(str(b.home)).root, root / "data" / synth_benchmark(str(b.home)).root.name)
    (root / "models").symlink_to(b.home / "models")
    f = next((root / "data").glob("*/xnli/validation.*.jsonl"), None) or next((root / "data").glob("*/xnli/*.jsonl"))
    lines = f.read_text().splitlines()
    if change == "label":
        row = json.loads(lines[3])
        row["gold_label"] = "neutrall"
        lines[3] = json.dumps(row)
    else:
        lines[3] = lines[3][: len(lines[3]) // 2]
    f.write_text("\n".join(lines) + "\n")
    return root


QUICK_BAD_INPUTS = ("an unknown key in the space", "a data row cut short")  # --quick's two


def bad_inputs(b: _Bench, only: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """``xstilts search`` on each bad input (those named in ``only``, default all): refused before
    any trial started, and how fast."""
    space = b.space("bad", scheduler="none")
    typo = b.work / "typo.yaml"
    typo.write_text(space.read_text().replace("target_steps:", "tagret_steps:"))
    a_file = b.work / "home-is-a-file"
    a_file.write_text("not a folder")
    cases: list[tuple[str, list[str], dict[str, str]]] = [
        ("an unknown key in the space", [str(typo)], {}),
        ("--trials 0", [str(space), "--trials", "0"], {}),
        ("an unreachable tracking store", [str(space), "--tracking-uri", "http://127.0.0.1:9/"], {}),
        ("a model folder that does not exist", [str(space), "--set", "model=/nonexistent/model"], {}),
        ("an evaluation language the benchmark lacks", [str(space), "--set", "eval_languages=[zz]"], {}),
        ("XSTILTS_HOME is a file", [str(space)], {"XSTILTS_HOME": str(a_file)}),
        ("a data row with an unknown label", [str(space)], {"XSTILTS_HOME": str(_bad_home(b, "label"))}),
        ("a data row cut short", [str(space)], {"XSTILTS_HOME": str(_bad_home(b, "cut"))}),
    ]
    return [_refusal(b, i, what, args, env) for i, (what, args, env) in enumerate(cases)
            if only is None or what in only]


def _refusal(b: _Bench, i: int, what: str, args: list[str], env: dict[str, str]) -> dict[str, Any]:
    storage = b.work / f"bad-{i}"
    t0 = time.perf_counter()
    proc = b.cli(["search", *args, "--storage", str(storage), "--run-name", f"bad-{i}"], b.work / f"bad-{i}.log",
                 env=env)
    trained = poll_until(lambda: any(storage.glob(f"*/{LEDGER_FILE}")), 60, proc, every=0.1)
    if proc.poll() is None:
        _kill_group(proc)
    seconds = round(time.perf_counter() - t0, 2)
    log = (b.work / f"bad-{i}.log").read_text(errors="replace").strip().splitlines()
    refused = not trained and proc.returncode not in (0, None, -9)
    return {"input": what, "refused_before_training": refused, "seconds": seconds, "exit": proc.returncode,
            "said": (log[-1] if log else "")[:300]}


def ledger_cost(b: _Bench, appends: int = 200) -> dict[str, Any]:
    """The drivers' time in the ledger against their fit time (from each session's ``search`` line),
    and one durable append (fsync) on this disk."""
    spent = fit = 0.0
    for f in b.storage.glob(f"*/{LEDGER_FILE}"):
        for e in map(json.loads, f.read_text().splitlines()):
            if e.get("event") == "search":
                spent += float(e.get("ledger_seconds", 0.0))
                fit += float(e.get("summary", {}).get("search/fit_seconds", 0.0))
    probe = Ledger(b.work / "probe.jsonl")
    for i in range(appends):
        probe.append({"event": "probe", "i": i}, durable=True)
    probe.close()
    return {"seconds": round(spent, 3), "fit_seconds": round(fit, 1),
            "share_of_fit": round(spent / fit, 5) if fit else None,
            "durable_append_ms": round(1000 * probe.seconds / appends, 3)}


def run(quick: bool = False, seed: int = 0) -> dict[str, Any]:
    """The fault suite as one JSON-ready dict (see the module docstring)."""
    from xstilts.search.runner import prepare_assets
    from xstilts.spaces import load_space
    from xstilts.trainer.home import home

    t_start = time.perf_counter()
    b = _Bench(home(), Path(tempfile.mkdtemp(prefix="xstilts-faults-")), 3 if quick else 4, random.Random(seed))
    spec = load_space()
    prepare_assets(spec.model_copy(update={"trial": {**spec.trial, **FIDELITY}}), b.home)  # caches: not timed
    for instant in INSTANTS[:1] if quick else INSTANTS:
        b.outcomes.append(driver_fault(b, instant))
    if not quick:
        b.outcomes.append(worker_fault(b))
        b.outcomes.append(tracking_fault(b))
        b.outcomes.append(node_fault(b))
    bad = bad_inputs(b, QUICK_BAD_INPUTS if quick else None)
    result = summary(b.outcomes, bad)
    result.update({"quick": quick, "seed": seed, "ledger": ledger_cost(b), "cpus": os.cpu_count(),
                   "machine": platform.machine(), "bench_seconds": round(time.perf_counter() - t_start, 1),
                   "work_dir": str(b.work)})
    return result


def summary(outcomes: list[Outcome], bad: list[dict[str, Any]]) -> dict[str, Any]:
    """The headline counts: faults by kind (injected, survived), searches, losses, refusals."""
    kinds: dict[str, dict[str, int]] = {}
    for o in outcomes:
        k = kinds.setdefault(o.kind, {"injected": 0, "survived": 0})
        k["injected"] += int(o.injected)
        k["survived"] += int(o.survived)
    refusals = [x["seconds"] for x in bad if x["refused_before_training"]]
    return {
        "benchmark": "faults", "faults": kinds,
        "every_fault_survived": all(o.survived for o in outcomes),
        "searches": len(outcomes), "searches_completed": sum(o.completed for o in outcomes),
        "trials_lost": sum(o.trials_lost for o in outcomes), "trials_rerun": sum(o.trials_rerun for o in outcomes),
        "duplicated_children": sum(o.duplicated_children for o in outcomes),
        "writes_lost": sum(o.writes_lost for o in outcomes),
        "bad_inputs_tried": len(bad), "refused_before_training": len(refusals),
        "slowest_refusal_s": max(refusals) if refusals else None,
        "runs": [asdict(o) | {"survived": o.survived} for o in outcomes], "bad_inputs": bad,
    }
