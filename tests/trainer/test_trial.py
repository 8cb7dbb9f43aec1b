"""Real trials in-process: every task family trains and evaluates, every schedule kind runs, and the
report contract (metric names, checkpoints handed over, trial_done) holds."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TEST_TINY
from xstilts.trainer.config import TrialConfig, TrialRuntime
from xstilts.trainer.tasks import INTERMEDIATE_TASKS, TARGET_TASKS
from xstilts.trainer.trial import run_trial

pytestmark = pytest.mark.slow

LANGS = ["en", "xa", "xz"]


def trial(home: Path, **kw: Any) -> tuple[dict[str, Any], list[tuple[dict[str, Any], str | None]]]:
    reports: list[tuple[dict[str, Any], str | None]] = []

    def report(metrics: dict[str, Any], checkpoint_dir: str | None = None) -> None:
        reports.append((dict(metrics), checkpoint_dir))
        if checkpoint_dir is not None:  # the checkpoint exists when it is handed over
            assert (Path(checkpoint_dir) / "client_state.pt").exists()

    base = {"tiny": TEST_TINY, "batch_size": 8, "eval_max_examples": 20, "eval_languages": LANGS}
    runtime = TrialRuntime(home=str(home), threads=1, output_dir=kw.pop("output_dir", None))
    result = run_trial(TrialConfig(**{**base, **kw}), report, runtime=runtime, log=lambda s: None)
    return result, reports


def test_every_family_trains_and_evaluates_in_one_trial(tiny_home: Path) -> None:
    inter = list(INTERMEDIATE_TASKS)
    stages = [{"steps": 9, "mixture": dict.fromkeys(inter[:3], 1.0)},
              {"steps": 9, "mixture": dict.fromkeys(inter[3:6], 1.0)},
              {"steps": 9, "mixture": {**dict.fromkeys(inter[6:], 1.0), "mlm": 1.0}}]
    result, reports = trial(tiny_home, intermediate=dict.fromkeys(inter, 1.0), schedule="stages", stages=stages,
                            intermediate_steps=27, target_tasks=list(TARGET_TASKS), target_steps=18, eval_every=9)
    m = result["metrics"]
    assert len(result["curves"]["intermediate"]) == 27 and len(result["curves"]["target"]) == 18
    assert all(math.isfinite(x) for x in result["curves"]["intermediate"] + result["curves"]["target"])
    for t in TARGET_TASKS:
        for lang in ("xa", "xz"):
            for prefix in ("", "test/"):
                v = m[f"{prefix}zero_shot/{t}/{lang}"]
                assert 0.0 <= v <= 1.0, (t, lang, v)
        if t not in ("bucc", "tatoeba"):
            assert 0.0 <= m[f"en/{t}"] <= 1.0
        assert m[f"zero_shot/{t}"] == pytest.approx(m[f"zero_shot/{t}/xa"])  # xz is the control: not averaged
    assert m["zero_shot/avg"] == pytest.approx(sum(m[f"zero_shot/{t}"] for t in TARGET_TASKS) / len(TARGET_TASKS))
    assert m["zero_shot/worst"] == min(m[f"zero_shot/{t}/xa"] for t in TARGET_TASKS)
    # reports: one per evaluation, the last one final (with test scores, no checkpoint)
    assert [r[0]["train/step"] for r in reports] == [9, 18]
    assert reports[0][1] is not None and reports[-1][1] is None
    assert reports[-1][0]["trial_done"] == 1 and "trial_done" not in reports[0][0]
    assert "stages: 9 steps" in (result["schedule"] or "")


@pytest.mark.parametrize(("kw", "mix"), [
    ({"schedule": "sequential", "intermediate": {"anli": 1.0, "commonsenseqa": 1.0}, "task_rates": "uniform"},
     {"anli": 0.5, "commonsenseqa": 0.5}),
    ({"schedule": "interleaved", "intermediate": {"qqp": 1.0, "ccg": 1.0}, "multilingual_share": 0.5,
      "task_rates": "temperature", "language_sampling": "unimax"}, {"qqp": 0.25, "ccg": 0.25, "mlm": 0.5}),
    ({"schedule": "annealed", "intermediate": {"cosmosqa": 1.0}, "multilingual_share": 0.6,
      "anneal_curve": "cosine", "task_rates": "unimax"}, {"cosmosqa": 0.4, "mlm": 0.6}),
])  # fmt: skip
def test_every_schedule_kind_runs_in_a_trial(tiny_home: Path, kw: dict[str, Any], mix: dict[str, float]) -> None:
    result, reports = trial(tiny_home, intermediate_steps=12, target_steps=10, eval_every=5,
                            target_tasks=["pawsx"], **kw)
    assert result["phase1_mixture"] == pytest.approx(mix)
    assert result["schedule"].startswith(kw["schedule"])
    assert len(result["curves"]["intermediate"]) == 12
    assert 0.0 <= result["metrics"]["test/zero_shot/pawsx/xa"] <= 1.0
    assert len(reports) == 2 and reports[-1][0]["trial_done"] == 1


def test_retrieval_only_targets_need_no_fine_tuning(tiny_home: Path) -> None:
    result, reports = trial(tiny_home, target_tasks=["bucc", "tatoeba"], retrieval_layer=1)
    assert result["curves"]["target"] == [] and len(reports) == 1
    m = result["metrics"]
    assert 0.0 <= m["test/zero_shot/bucc/xa"] <= 1.0 and 0.0 <= m["zero_shot/tatoeba/xz"] <= 1.0
    assert m["test/zero_shot/tatoeba/xa"] > m["test/zero_shot/tatoeba/xz"]  # shared words align xa with English


def test_clean_items_are_scored_where_the_task_has_them(tiny_home: Path) -> None:
    result, _ = trial(tiny_home, target_tasks=["xnli", "udpos"], target_steps=10, eval_every=10, eval_clean=True)
    m = result["metrics"]
    for lang in ("xa", "xz"):
        assert 0.0 <= m[f"test_clean/zero_shot/xnli/{lang}"] <= 1.0
    assert m["test_clean/zero_shot/xnli"] == m["test_clean/zero_shot/xnli/xa"]  # the control stays out
    assert not any(k.startswith("test_clean/") and "udpos" in k for k in m)  # udpos has no clean split
    plain, _ = trial(tiny_home, target_tasks=["xnli"], target_steps=10, eval_every=10)
    assert not any(k.startswith("test_clean/") for k in plain["metrics"])


def test_translate_train_adds_the_translated_training_data(tiny_home: Path) -> None:
    """With translate-train the target trains on English plus each listed language's train split."""
    a, _ = trial(tiny_home, target_tasks=["pawsx"], target_steps=10, eval_every=10)
    b, _ = trial(tiny_home, target_tasks=["pawsx"], target_steps=10, eval_every=10,
                 translate_train_languages=["xa", "xz"])
    assert b["train_examples"]["pawsx"] == 3 * a["train_examples"]["pawsx"] > 0
    assert a["curves"]["target"] != b["curves"]["target"]  # other batches were trained on


def test_probes_report_during_phase_one_without_changing_the_result(tiny_home: Path) -> None:
    """A probe fine-tunes a copy on the target and reports the zero-shot objective with a checkpoint
    during intermediate training (what PBT over the mixture acts on); the run itself is unchanged."""
    kw = {"intermediate": {"mnli": 1.0, "sst2": 1.0}, "intermediate_steps": 30, "target_steps": 20,
          "eval_every": 10, "seed": 3}
    plain, plain_reports = trial(tiny_home, **kw)
    probed, reports = trial(tiny_home, probe_every=10, probe_steps=8, **kw)
    phase1 = [r for r in reports if r[0].get("train/phase") == 1]
    assert [r[0]["train/step"] for r in phase1] == [10, 20]  # not at the end of phase 1: phase 2 follows
    for m, ckpt in phase1:
        assert ckpt is not None and 0.0 <= m["zero_shot/avg"] <= 1.0 and m["probe/steps"] == 8
    assert len(reports) == len(plain_reports) + 2
    for key in ("test/zero_shot/avg", "zero_shot/avg", "test/en/xnli"):
        assert probed["metrics"][key] == plain["metrics"][key], key
    assert probed["curves"] == plain["curves"]
    assert probed["metrics"]["time/probe_s"] > 0


def test_a_trial_resumes_from_a_probe_checkpoint_with_a_new_mixture(tiny_home: Path, tmp_path: Path) -> None:
    """PBT's exploit: another config continues from a phase-1 probe checkpoint; the new rates apply."""
    kw = {"intermediate_steps": 30, "target_steps": 10, "eval_every": 10, "probe_every": 10, "probe_steps": 4}
    _, reports = trial(tiny_home, intermediate={"mnli": 1.0, "sst2": 1.0}, output_dir=str(tmp_path / "a"), **kw)
    ckpt = next(c for m, c in reports if m.get("train/phase") == 1 and m["train/step"] == 20)
    assert ckpt is not None
    base = {"tiny": TEST_TINY, "batch_size": 8, "eval_max_examples": 20, "eval_languages": LANGS}
    res = run_trial(TrialConfig(**{**base, **kw, "intermediate": {"mnli": 0.1, "sst2": 0.9}}), None,
                    runtime=TrialRuntime(home=str(tiny_home), threads=1, resume_from=ckpt), log=lambda s: None)
    assert res["resumed"] and len(res["curves"]["intermediate"]) == 30
    assert res["phase1_mixture"] == pytest.approx({"mnli": 0.1, "sst2": 0.9})


@pytest.mark.parametrize("ending", ["done", "stopped"])
def test_a_trial_without_output_dir_leaves_no_scratch_checkpoints(tiny_home: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch, ending: str) -> None:
    """A pruned trial is stopped by SystemExit out of its report (how Tune stops a function trainable):
    its scratch checkpoint folder goes too, as it does when the trial ends normally."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    seen: list[str] = []

    def report(metrics: dict[str, Any], checkpoint_dir: str | None = None) -> None:
        if checkpoint_dir is not None:
            seen.append(checkpoint_dir)
            assert Path(checkpoint_dir).is_dir()
            if ending == "stopped":
                raise SystemExit(0)

    cfg = TrialConfig(tiny=TEST_TINY, batch_size=8, eval_max_examples=20, eval_languages=LANGS,
                      intermediate={"mnli": 1.0}, intermediate_steps=4, target_steps=8, eval_every=4)
    runtime = TrialRuntime(home=str(tiny_home), threads=1)
    if ending == "stopped":
        with pytest.raises(SystemExit):
            run_trial(cfg, report, runtime=runtime, log=lambda s: None)
    else:
        run_trial(cfg, report, runtime=runtime, log=lambda s: None)
    assert seen and all(Path(d).is_relative_to(tmp_path) for d in seen)
    assert not list(tmp_path.glob("xstilts-ckpt-*"))


def test_without_dev_evaluation_the_test_scores_are_the_same(tiny_home: Path) -> None:
    """``eval_dev: false`` (a study comparing test scores) skips the dev evaluations and the phase-2
    reports, yet every test score is the one a trial evaluated on dev gets: BUCC's test threshold
    is still the one chosen on dev."""
    kw = {"target_tasks": ["xnli", "bucc"], "intermediate_steps": 0, "target_steps": 10, "eval_every": 5,
          "eval_max_examples": 40}
    dev, dev_reports = trial(tiny_home, **kw)
    none, reports = trial(tiny_home, eval_dev=False, **kw)
    test = {k: v for k, v in dev["metrics"].items() if k.startswith("test/")}
    assert "test/zero_shot/bucc/xa" in test and "test/zero_shot/xnli/xa" in test
    assert test == {k: v for k, v in none["metrics"].items() if k.startswith("test/")}
    assert none["curves"] == dev["curves"]
    assert "zero_shot/avg" in dev["metrics"] and not any(k.startswith(("zero_shot/", "en/")) for k in none["metrics"])
    assert [r[0]["train/step"] for r in dev_reports] == [5, 10] and len(reports) == 1  # only the final one
    assert reports[0][0]["trial_done"] == 1 and reports[0][1] is None
