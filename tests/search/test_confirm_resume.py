"""The confirm phase survives its driver: ``xstilts search`` is SIGKILLed (the whole process group,
no clean-up) after the first confirm trial ended; ``--resume`` runs neither the search phase nor a
finished confirm trial again, finishes the others, and writes the recommendation on the same parent.

Heavy (``make test-all``, not CI): a search of 2 trials, then 3 confirm trials, then the resume —
about a minute and a half on 2 cores.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import run_cli
from tests.search.helpers import children, run_dir_of, start_cli, wait_for, write_space
from tests.search.test_resume_faults import _kill_group
from xstilts.search.confirm import CONFIRM_DIR
from xstilts.search.ledger import CONFIRM_LEDGER, read_ledger

pytestmark = [pytest.mark.slow, pytest.mark.heavy]


def test_a_driver_killed_during_confirm_resumes_only_the_missing_confirm_trials(tiny_home: Path,
                                                                                 tmp_path: Path) -> None:
    space = write_space(tmp_path, "cfkill", search={"scheduler": "none", "confirm": {"top_k": 1, "seeds": 3}},
                        points=False)
    storage, uri, log = tmp_path / "ray", f"sqlite:///{tmp_path / 'track.db'}", tmp_path / "driver.log"
    proc = start_cli(["search", str(space), "--trials", "2", "--max-concurrent", "2", "--tracking-uri", uri,
                      "--storage", str(storage)], tiny_home, log)
    try:
        run_dir = wait_for(lambda: run_dir_of(storage, "cfkill"), 240, "the run folder", proc, log)

        def a_confirm_trial_ended() -> bool:
            return any(t.ended for t in read_ledger(run_dir, CONFIRM_LEDGER).values())

        wait_for(a_confirm_trial_ended, 600, "a finished confirm trial", proc, log)
    finally:
        _kill_group(proc)  # the driver and the Ray it started
    search_before = read_ledger(run_dir)
    before = read_ledger(run_dir, CONFIRM_LEDGER)
    ended_before = {n for n, t in before.items() if t.ended}
    assert ended_before and len(ended_before) < 3, {n: t.status for n, t in before.items()}
    parent, _ = children(uri, "cfkill")
    assert parent.info.status == "RUNNING"  # nobody closed it

    r = run_cli(["search", "--resume", run_dir.name, "--storage", str(storage)], tiny_home)
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
    assert "has all its 2 trials; nothing left to run" in r.stdout
    assert "of 3 trials to run" in r.stdout and "recommended: " in r.stdout

    # the search phase did not run again; no finished confirm trial ran again; every one ended once
    search_after = read_ledger(run_dir)
    assert {n: (t.starts, t.status) for n, t in search_after.items()} == \
        {n: (t.starts, t.status) for n, t in search_before.items()}
    after = read_ledger(run_dir, CONFIRM_LEDGER)
    assert len(after) == 3 and all(t.status == "completed" for t in after.values())
    assert all(after[n].starts == 1 and after[n].ends == 1 for n in ended_before)
    assert all(t.restarted_after_finish == 0 and t.ends == 1 for t in after.values())
    assert not list((run_dir / CONFIRM_DIR).glob("*/resume-checkpoint_*"))  # set-aside checkpoints cleared

    # the same parent, one child per confirm trial, the recommendation written
    parent2, kids = children(uri, "cfkill")
    assert parent2.info.run_id == parent.info.run_id and parent2.info.status == "FINISHED"
    confirm = [k for k in kids if k.data.tags.get("xstilts.phase") == "confirm"]
    assert sorted(k.info.run_name for k in confirm) == sorted(after)
    assert all(k.data.tags["xstilts.status"] == "completed" and k.info.status == "FINISHED" for k in confirm)
    (candidate,) = {k.data.tags["xstilts.confirm_of"] for k in confirm}
    assert parent2.data.tags["xstilts.recommended_trial"] == candidate
    values = [k.data.metrics["zero_shot/avg"] for k in confirm]
    assert parent2.data.metrics["recommended/zero_shot/avg"] == pytest.approx(sum(values) / 3, abs=1e-9)
    assert parent2.data.metrics["recommended/seeds"] == 3
    client = MlflowClient(uri)
    assert [f.path for f in client.list_artifacts(parent2.info.run_id, "confirm")] == ["confirm/confirm.json"]
