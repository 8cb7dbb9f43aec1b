"""Study files: validation (errors name the file and the key), arms resolved to trials, the shipped studies."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from xstilts.spaces.study import DEFAULT_SEEDS, StudyError, evaluation_mismatch, load_study, resolve_arm

STUDIES = sorted(Path(__file__).resolve().parents[2].joinpath("studies").glob("*.yaml"))


def _raw() -> dict:
    return {"name": "s", "reference": "seq",
            "trial": {"benchmark": "synth", "target_tasks": ["xnli"], "intermediate_steps": 100},
            "arms": {"seq": {"schedule": "sequential", "intermediate": {"mnli": 1.0}},
                     "inter": {"schedule": "interleaved", "intermediate": {"mnli": 1.0}, "multilingual_share": 0.3}}}


def _write(tmp_path: Path, raw: dict) -> Path:
    p = tmp_path / "study.yaml"
    p.write_text(yaml.safe_dump(raw, sort_keys=False))
    return p


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.name)
def test_every_shipped_study_loads_and_says_how_to_launch(path: Path) -> None:
    spec = load_study(path)
    assert spec.source == str(path) and spec.reference in spec.arms and len(spec.seeds) >= 5
    head = "".join(path.read_text().splitlines(keepends=True)[:6])
    assert "xstilts study" in head
    configs = {a: resolve_arm(spec, a) for a in spec.arms}
    assert evaluation_mismatch(configs) is None


def test_the_question_compares_the_schedules_at_equal_intermediate_steps() -> None:
    for path in STUDIES:
        spec = load_study(path)
        configs = {a: resolve_arm(spec, a) for a in spec.arms}
        assert {c.schedule for a, c in configs.items() if c.intermediate_steps} == {"sequential", "interleaved",
                                                                                     "annealed"}
        steps = {c.intermediate_steps for c in configs.values()}
        assert len(steps - {0}) == 1 and configs["none"].intermediate_steps == 0  # equal, and one arm without
        assert configs["sequential"].multilingual_share == 0 and spec.reference == "sequential"
    assert load_study(STUDIES[0].parent / "question.yaml").trial["benchmark"] == "synth"
    assert load_study(STUDIES[0].parent / "xtreme.yaml").trial["model"].startswith("xlm-roberta")


def test_arms_layer_over_the_shared_trial_block_and_take_each_seed(tmp_path: Path) -> None:
    spec = load_study(_write(tmp_path, _raw()))
    assert spec.seeds == list(range(DEFAULT_SEEDS))
    tc = resolve_arm(spec, "inter", seed=7, overrides={"target_steps": 20, "intermediate_steps": 40})
    assert (tc.schedule, tc.multilingual_share, tc.seed, tc.target_steps) == ("interleaved", 0.3, 7, 20)
    assert tc.intermediate_steps == 40  # the CLI's override of the shared block
    raw = _raw()
    raw["arms"]["none"] = {"intermediate_steps": 0}
    spec = load_study(_write(tmp_path, raw))
    assert resolve_arm(spec, "none", overrides={"intermediate_steps": 40}).intermediate_steps == 0  # the arm wins


def test_a_search_arm_starts_from_the_search_trial_then_the_study_then_its_set(tmp_path: Path) -> None:
    raw = _raw()
    raw["arms"]["tuned"] = {"from_search": "interleave", "where": {"schedule": "interleaved"},
                            "set": {"learning_rate": 5e-4}}
    spec = load_study(_write(tmp_path, raw))
    searched = {"schedule": "interleaved", "intermediate": {"sst2": 1.0}, "multilingual_share": 0.4,
                "intermediate_steps": 999, "learning_rate": 2e-3, "seed": 3}
    tc = resolve_arm(spec, "tuned", searched=searched, seed=4)
    assert tc.intermediate == {"sst2": 1.0} and tc.multilingual_share == 0.4  # the search's choice
    assert tc.intermediate_steps == 100  # the study's budget
    assert tc.learning_rate == 5e-4 and tc.seed == 4
    with pytest.raises(ValueError, match="comes from search"):
        resolve_arm(spec, "tuned")


def test_a_study_of_test_scores_skips_the_dev_evaluation(tmp_path: Path) -> None:
    """Dev scores nobody compares are not computed (``eval_dev`` off, also over a search trial's
    config); a study of dev scores keeps them, and a study may ask for them on test too."""
    raw = _raw()
    raw["arms"]["tuned"] = {"from_search": "interleave"}
    spec = load_study(_write(tmp_path, raw))
    assert spec.statistics.split == "test"
    assert [resolve_arm(spec, a).eval_dev for a in ("seq", "inter")] == [False, False]
    assert not resolve_arm(spec, "tuned", searched={"intermediate": {"sst2": 1.0}, "eval_dev": True}).eval_dev
    assert resolve_arm(spec, "seq", overrides={"eval_dev": True}).eval_dev  # asked for: kept
    raw["statistics"] = {"split": "dev"}
    spec = load_study(_write(tmp_path, raw))
    assert resolve_arm(spec, "seq").eval_dev and resolve_arm(spec, "tuned", searched={"eval_dev": True}).eval_dev


def test_seeds_as_a_count_or_a_list(tmp_path: Path) -> None:
    assert load_study(_write(tmp_path, {**_raw(), "seeds": 3})).seeds == [0, 1, 2]
    assert load_study(_write(tmp_path, {**_raw(), "seeds": [4, 9]})).seeds == [4, 9]


@pytest.mark.parametrize(
    "mutate, key, hint",
    [
        (lambda r: r.update(armz={}), "armz", "unknown key"),
        (lambda r: r.update(statistics={"splitt": "dev"}), "statistics.splitt", "unknown key"),
        (lambda r: r.update(statistics={"split": "train"}), "statistics.split", "test"),
        (lambda r: r.update(run={"cpus": 2}), "run.cpus", "unknown key"),
        (lambda r: r["trial"].update(learning_rat=1e-3), "learning_rat", "unknown key"),
        (lambda r: r["arms"]["inter"].update(multilingual_shar=0.2), "multilingual_shar", "unknown key"),
        (lambda r: r["arms"]["inter"].update(multilingual_share=2.0), "arms.inter", "multilingual_share"),
        (lambda r: r["arms"]["seq"].update(multilingual_share=0.2), "arms.seq", "English-only"),
        (lambda r: r["arms"]["seq"].update(seed=3), "seed", "study's `seeds`"),
        (lambda r: r["trial"].update(seed=3), "seed", "study's `seeds`"),
        (lambda r: r["arms"]["seq"].update(target_tasks=["pawsx"]), "target_tasks", "same data"),
        (lambda r: r["arms"].update(tuned={"from_search": "x", "wher": {}}), "wher", "unknown key"),
        (lambda r: r["arms"].update(tuned={"from_search": "x", "set": {"lr": 1}}), "lr", "not a trial setting"),
        (lambda r: r["arms"].update(tuned={"from_search": "x", "pick": "worst"}), "pick", "best"),
        (lambda r: r.update(reference="nope"), "reference", "not an arm"),
        (lambda r: r["arms"].update({"a/b": {}}), "a/b", "arm name"),
        (lambda r: r.update(seeds=0), "seeds", "at least one seed"),
        (lambda r: r.update(seeds=[1, 1]), "seeds", "distinct"),
        (lambda r: r.update(arms={"seq": {}}), "arms", "at least 2"),
        (lambda r: r.update(statistics={"split": "dev"}, trial={**r["trial"], "eval_dev": False}), "trial.eval_dev",
         "must evaluate dev"),
        (lambda r: (r.update(statistics={"split": "dev"}),
                    r["arms"].update(tuned={"from_search": "x", "set": {"eval_dev": False}})),
         "arms.tuned.set.eval_dev", "statistics.split: dev"),
    ],
)
def test_bad_studies_name_the_file_and_the_key(tmp_path: Path, mutate, key: str, hint: str) -> None:
    raw = _raw()
    mutate(raw)
    p = _write(tmp_path, raw)
    with pytest.raises(StudyError) as e:
        load_study(p)
    msg = str(e.value)
    assert str(p) in msg and key in msg and hint in msg, msg


def test_missing_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(StudyError, match="no such study file"):
        load_study(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n")
    with pytest.raises(StudyError, match="expected a mapping"):
        load_study(bad)
