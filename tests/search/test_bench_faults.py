"""``xstilts bench faults``: what counts as a fault survived, and the suite end to end at smoke size
(its figures come from the full-size run, never from a test)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli
from xstilts.search.bench_faults import Outcome, summary


def test_a_fault_survives_only_when_its_search_lost_repeated_and_duplicated_nothing() -> None:
    ok = Outcome("driver", "after_trial_end", injected=True, completed=True, trials=4)
    assert ok.survived
    assert not Outcome("driver", injected=False, completed=True).survived  # the search ended before the fault
    for bad in ({"trials_lost": 1}, {"trials_rerun": 1}, {"duplicated_children": 1}, {"writes_lost": 3},
                {"completed": False}):
        assert not Outcome("worker", **{"injected": True, "completed": True, **bad}).survived, bad
    s = summary([ok, Outcome("worker", injected=True, completed=True, writes_lost=2)],
                [{"refused_before_training": True, "seconds": 1.5}, {"refused_before_training": True, "seconds": 4.0},
                 {"refused_before_training": False, "seconds": 60.0}])
    assert s["faults"] == {"driver": {"injected": 1, "survived": 1}, "worker": {"injected": 1, "survived": 0}}
    assert s["every_fault_survived"] is False and s["writes_lost"] == 2 and s["searches_completed"] == 2
    assert (s["bad_inputs_tried"], s["refused_before_training"], s["slowest_refusal_s"]) == (3, 2, 4.0)


@pytest.mark.slow
def test_bench_faults_cli_prints_one_json_object_at_smoke_size(tiny_home: Path) -> None:
    r = run_cli(["bench", "faults", "--quick", "--json"], tiny_home, timeout=2400)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout)
    assert out["benchmark"] == "faults" and out["quick"] is True
    assert set(out["faults"]) == {"driver"}  # the worker kill: test_resume_faults.py
    for kind, counts in out["faults"].items():
        assert counts["injected"] == counts["survived"] == 1, (kind, out["runs"])
    assert out["searches_completed"] == out["searches"] == 1
    assert out["trials_lost"] == out["trials_rerun"] == out["duplicated_children"] == out["writes_lost"] == 0
    (driver,) = [x for x in out["runs"] if x["kind"] == "driver"]
    assert driver["resumes"] >= 1 and "had just ended" in driver["note"]
    assert out["bad_inputs_tried"] == len(out["bad_inputs"]) == 2
    assert out["refused_before_training"] == 2, out["bad_inputs"]
    assert out["ledger"]["durable_append_ms"] > 0 and out["ledger"]["fit_seconds"] > 0
