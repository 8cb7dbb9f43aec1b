"""``xstilts study`` end to end, through the real CLI, at tiny fidelity:

* the shipped ``studies/question.yaml`` (2 of its seeds, 20 + 20 steps): its JSON holds, for every
  arm × seed, the per-language scores its MLflow child holds (test scores only: no dev evaluation
  in a study of test scores); the parent run carries the statistics
  (metrics, tables, the report), and ``xstilts report`` rebuilds the same statistics from the store;
* an arm taken from a finished search (its best sequential trial), with the search's EVP curves;
* a study whose driver's process group is SIGKILLed after two trials finished: ``--resume`` ends it
  without rerunning them, on the same parent run, with one child per arm × seed.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.conftest import TEST_TINY, run_cli
from tests.search.helpers import (
    FAST,
    result_lines,
    run_dir_of,
    start_cli,
    trial_states,
    wait_for,
    write_space,
)
from xstilts.dashboards.store import best_trial, load_search
from xstilts.dashboards.study_record import cell_metric, load_study_record

pytestmark = pytest.mark.slow

QUESTION = Path(__file__).resolve().parents[2] / "studies" / "question.yaml"
TINY_SETS = ["--set", f"tiny={json.dumps(TEST_TINY)}", "--set", "eval_max_examples=60", "--set", "batch_size=16"]


def _json(stdout: str) -> dict[str, Any]:
    return json.loads(stdout.strip().splitlines()[-1])


def _study_runs(uri: str, experiment: str) -> tuple[Any, list[Any]]:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None
    runs = client.search_runs([exp.experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("xstilts.kind") == "study"]
    return parent, [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]


def test_the_question_study_reports_what_its_children_hold(tiny_home: Path, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'track.db'}"
    r = run_cli(["study", str(QUESTION), "--seeds", "2", "--steps", "20", *TINY_SETS, "--tracking-uri", uri,
                 "--storage", str(tmp_path / "ray"), "--json"], tiny_home, timeout=1200)
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-5000:])
    out = _json(r.stdout)
    assert out["counts"] == {"completed": 10, "failed": 0, "unfinished": 0} and not out["interrupted"]
    arms = ("none", "sequential", "interleaved", "annealed", "translated")
    assert [(t["arm"], t["seed"]) for t in out["trials"]] == [(a, s) for s in (0, 1) for a in arms]
    parent, kids = _study_runs(uri, "question")
    assert parent.data.tags["xstilts.study"] == out["study"] and parent.info.status == "FINISHED"
    by_arm_seed = {(k.data.tags["xstilts.arm"], int(k.data.tags["xstilts.seed"])): k for k in kids}
    assert len(kids) == len(by_arm_seed) == 10
    for t in out["trials"]:  # every arm × seed: the JSON's scores are its child's, language by language
        child = by_arm_seed[t["arm"], t["seed"]]
        assert child.data.tags["xstilts.status"] == "completed" and child.data.params["seed"] == str(t["seed"])
        # a study of test scores evaluates no dev set: neither the child nor the JSON has dev scores
        assert child.data.params["eval_dev"] == "False" and "zero_shot/avg" not in child.data.metrics
        assert not any(k.startswith(("zero_shot/", "en/")) for k in t["metrics"]) and "test/zero_shot/avg" in t["metrics"]
        per_language = {k: v for k, v in t["metrics"].items() if k.startswith("test/zero_shot/") and k.count("/") == 3}
        assert {k.split("/")[2] for k in per_language} == {"xnli", "tatoeba"} and len(per_language) >= 10
        for k, v in per_language.items():
            assert child.data.metrics[k] == v, (t["name"], k)
        for cell, v in t["values"].items():
            assert child.data.metrics[cell_metric(cell, "test")] == v

    stats = out["statistics"]
    assert "Holm" in stats["method"] and stats["reference"] == "sequential" and stats["seeds"] == 2
    comp = {(c["arm"], c["cell"]): c for c in stats["comparisons"]}
    assert len(comp) == 4 * len(stats["cells"]) and "xnli/xa" in stats["cells"] and "avg" in stats["cells"]
    m = parent.data.metrics
    for key in ("diff", "ci_low", "ci_high", "p_holm"):
        assert m[f"{key}/interleaved/xnli/xa"] == pytest.approx(comp["interleaved", "xnli/xa"][key])
    assert [v["label"] for v in stats["verdict"]] == ["xnli", "tatoeba", "avg"]
    client = MlflowClient(uri)
    assert {a.path for a in client.list_artifacts(parent.info.run_id, "statistics")} >= {
        "statistics/comparisons.json", "statistics/arms.json", "statistics/verdict.json", "statistics/statistics.json"}
    assert any(a.path.endswith(".html") for a in client.list_artifacts(parent.info.run_id, "report"))
    assert Path(out["report"]).read_text().count("data:image/png;base64") >= 1

    # the store alone gives the same statistics, and `xstilts report` renders the study from it
    again = load_study_record(uri, out["study"]).statistics().as_dict()
    assert again["comparisons"] == stats["comparisons"] and again["verdict"] == stats["verdict"]
    rep = run_cli(["report", out["study"], "--tracking-uri", uri, "--output", str(tmp_path / "study.html")], tiny_home)
    assert rep.returncode == 0, rep.stderr[-2000:]
    html = (tmp_path / "study.html").read_text()
    assert "xstilts study" in html and "Forest plot" in html and "Verdict" in html


def _write_study(tmp_path: Path, name: str, arms: dict[str, Any], seeds: int, trial: dict[str, Any] | None = None,
                 **top: Any) -> Path:
    raw = {"name": name, "reference": next(iter(arms)), "seeds": seeds,
           "trial": {"benchmark": "synth", "model": "tiny", "target_tasks": ["xnli"], "tiny": TEST_TINY, **FAST,
                     **(trial or {})},
           "run": {"max_concurrent": 2}, "arms": arms, **top}
    p = tmp_path / f"{name}.yaml"
    p.write_text(yaml.safe_dump(raw, sort_keys=False))
    return p


@pytest.mark.heavy
def test_an_arm_from_a_search_reruns_its_best_trial_and_draws_its_evp(tiny_home: Path, tmp_path: Path) -> None:
    uri, storage = f"sqlite:///{tmp_path / 'track.db'}", str(tmp_path / "ray")
    space = write_space(tmp_path, "src", search={"scheduler": "none"})
    r = run_cli(["search", str(space), "--trials", "3", "--tracking-uri", uri, "--storage", storage], tiny_home)
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
    study = _write_study(tmp_path, "fromsearch", {
        "best-seq": {"from_search": "src", "where": {"schedule": "sequential"}},
        "none": {"intermediate_steps": 0}}, seeds=2)
    r = run_cli(["study", str(study), "--tracking-uri", uri, "--storage", storage, "--json"], tiny_home)
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-5000:])
    out = _json(r.stdout)
    assert out["counts"]["completed"] == 4

    rec = load_search(uri, "src")
    best_seq = best_trial([t for t in rec.trials if t.params.get("schedule") == "sequential"], rec.metric)
    assert best_seq is not None
    parent, kids = _study_runs(uri, "fromsearch")
    assert parent.data.params["arm.best-seq.search_trial"] == best_seq.name
    for k in kids:
        if k.data.tags["xstilts.arm"] == "best-seq":  # the search trial's mixture and learning rate, a new seed
            assert float(k.data.params["learning_rate"]) == pytest.approx(float(best_seq.params["learning_rate"]))
            assert k.data.params["intermediate_tasks"] == best_seq.params["intermediate_tasks"]
    (evp,) = out["evp"]
    assert evp["search"] == rec.run_name and "sequential" in evp["curves"]
    curve = evp["curves"]["sequential"]
    assert curve == sorted(curve) and curve[0] <= curve[-1]  # the expected best only grows with trials
    assert "expected validation performance" in Path(out["report"]).read_text()


@pytest.mark.heavy
def test_a_killed_study_resumes_without_rerunning_or_duplicating(tiny_home: Path, tmp_path: Path) -> None:
    uri, storage, log = f"sqlite:///{tmp_path / 'track.db'}", tmp_path / "ray", tmp_path / "driver.log"
    study = _write_study(tmp_path, "killed", {"seq": {"intermediate": {"mnli": 1.0}},
                                              "none": {"intermediate_steps": 0}}, seeds=3,
                         trial={"target_steps": 60})
    proc = start_cli(["study", str(study), "--tracking-uri", uri, "--storage", str(storage)], tiny_home, log)
    try:
        run_dir = wait_for(lambda: run_dir_of(storage, "killed"), 240, "the run folder", proc, log)

        def two_done() -> bool:
            return sum(s["status"] == "TERMINATED" for s in trial_states(run_dir).values()) >= 2

        wait_for(two_done, 400, "two finished trials in Ray's saved state", proc, log)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray it started: no clean-up
        proc.wait(timeout=30)
    before = {s["dirname"]: len(result_lines(run_dir, s["dirname"])) for s in trial_states(run_dir).values()
              if s["status"] == "TERMINATED"}
    parent, _ = _study_runs(uri, "killed")
    assert parent.info.status == "RUNNING"  # nobody closed it

    r = run_cli(["study", "--resume", "killed", "--storage", str(storage), "--json"], tiny_home)
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-5000:])
    out = _json(r.stdout)
    assert out["study"] == run_dir.name and out["counts"]["completed"] == 6
    after = trial_states(run_dir)
    assert len(after) == 6 and all(s["status"] == "TERMINATED" for s in after.values())
    for dirname, n in before.items():  # finished trials were not run again
        assert len(result_lines(run_dir, dirname)) == n
    parent2, kids = _study_runs(uri, "killed")
    assert parent2.info.run_id == parent.info.run_id and parent2.info.status == "FINISHED"
    assert parent2.data.tags["xstilts.resumes"] == "1"
    assert sorted((k.data.tags["xstilts.arm"], k.data.tags["xstilts.seed"]) for k in kids) == sorted(
        (a, str(s)) for a in ("seq", "none") for s in range(3))
    assert all(k.data.tags["xstilts.status"] == "completed" for k in kids)
    assert "diff/none/xnli/avg" in parent2.data.metrics
