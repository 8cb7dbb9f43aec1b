"""The task flags as the searchers see them, through real Optuna studies: random draws uniform over the
allowed subsets, every model proposal an allowed subset recorded as run, TPE learning what each task
does better than with one categorical over the subsets, and a study in that old encoding refused on
resume."""

from __future__ import annotations

import pickle
import random
import statistics
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

from xstilts.search.ledger import LEDGER_FILE, Ledger
from xstilts.search.resume import ResumeError, plan_resume
from xstilts.search.searchers import journal_storage, make_sampler, make_search_alg, top_quarter
from xstilts.search.subset_prior import SubsetPrior, encoding_clash, with_subset_prior
from xstilts.spaces import SearchSpec, SimplexParam, SubsetParam, define_by_run, load_space, to_trial_config
from xstilts.trainer import codec

SPACES = Path(__file__).resolve().parents[2] / "spaces"
optuna.logging.set_verbosity(optuna.logging.WARNING)
# points of XNLI per intermediate task on synth (bench transfer, in spaces/mixtures.yaml's header)
EFFECT = {"anli": 1.6, "commonsenseqa": -2.7, "cosmosqa": -14.3, "hellaswag": -7.4, "mnli": 3.1, "qqp": -1.6,
          "squad": -12.9, "sst2": -17.2}


def _mixtures(**search: Any) -> SearchSpec:
    raw = yaml.safe_load((SPACES / "mixtures.yaml").read_text())
    raw["search"].update(search)
    raw.pop("points_to_evaluate")
    return SearchSpec.model_validate(raw)


def _ask(study: optuna.Study, spec: SearchSpec) -> tuple[optuna.trial.Trial, dict[str, Any]]:
    trial = study.ask()
    constants = define_by_run(spec)(trial)
    return trial, {**trial.params, **constants}


def test_random_trials_draw_subsets_uniformly() -> None:
    """``searcher: random`` over 8 tasks, sizes 1..3: 8, 28 and 56 of the 92 subsets. One coin per task
    (repaired) would give size 3 in 86 % of the draws and size 1 in 3 %."""
    spec = _mixtures(searcher="random")
    sampler = with_subset_prior(spec, make_sampler(spec))
    assert isinstance(sampler, SubsetPrior) and isinstance(sampler.base, optuna.samplers.RandomSampler)
    study = optuna.create_study(sampler=sampler)
    sizes: Counter[int] = Counter()
    for _ in range(400):
        trial, config = _ask(study, spec)
        assert {k: v for k, v in trial.params.items() if k.startswith("tasks.")} == {
            k: v for k, v in config.items() if k.startswith("tasks.")}  # allowed as drawn: nothing repaired
        sizes[len(codec.subset_members(config["intermediate_tasks"]))] += 1
        study.tell(trial, 0.0)
    assert 20 <= sizes[1] <= 55 and 95 <= sizes[2] <= 150 and 205 <= sizes[3] <= 280, sizes


@pytest.mark.parametrize("searcher", ["tpe", "gp", "nsga2"])
def test_model_proposals_are_allowed_subsets_recorded_as_run(searcher: str) -> None:
    extra = {"objectives": {"zero_shot/avg": "max", "zero_shot/worst": "max"}} if searcher == "nsga2" else {}
    spec = _mixtures(searcher=searcher, trials=8, **extra)
    study = optuna.create_study(directions=["maximize"] * (2 if extra else 1),
                                sampler=with_subset_prior(spec, make_sampler(spec)))
    sub = spec.parameters["intermediate_tasks"]
    assert isinstance(sub, SubsetParam)
    recorded_as_run = 0
    for _ in range(8):  # 2 start-up trials, then 6 proposals of the model
        trial, config = _ask(study, spec)
        assert config["intermediate_tasks"] in sub.choices()
        to_trial_config(spec, config)
        recorded_as_run += all(trial.params[k] == config[k] for k in trial.params if k.startswith("tasks."))
        f = sum(EFFECT[m] for m in codec.subset_members(config["intermediate_tasks"]))
        study.tell(trial, [f, -f] if extra else f)
    # TPE and the GP propose every flag jointly (repaired before the trial reads them); NSGA-II's
    # mutations mix in prior draws, which the define-by-run function may have to repair
    assert recorded_as_run == 8 if searcher != "nsga2" else recorded_as_run >= 4


def test_the_wrapped_sampler_pickles_and_keeps_its_settings(tmp_path: Path) -> None:
    spec = _mixtures()
    alg = make_search_alg(spec, "w", tmp_path / "w.journal")
    sampler = pickle.loads(pickle.dumps(alg._sampler))  # Ray checkpoints the searcher with its sampler
    assert isinstance(sampler, SubsetPrior) and sampler.base._gamma is top_quarter
    assert set(sampler.flags) == {f"tasks.{m}" for m in EFFECT}
    plain = SearchSpec.model_validate({"name": "p", "parameters": {"learning_rate": {
        "type": "float", "low": 1e-4, "high": 1e-3}}})
    base = make_sampler(plain)
    assert with_subset_prior(plain, base) is base  # nothing to wrap without a subset


def _old_encoding(spec: SearchSpec, trial: Any) -> str:
    """Earlier versions' define-by-run function: the subset as one categorical over every allowed subset."""
    values: dict[str, Any] = {}
    for name, p in spec.parameters.items():
        if not p.is_active(values):
            continue
        if isinstance(p, SubsetParam):
            values[name] = trial.suggest_categorical(name, p.choices())
        elif isinstance(p, SimplexParam):
            chosen = codec.subset_members(values[p.over])
            for m in chosen if len(chosen) > 1 else []:
                trial.suggest_float(codec.raw_key(name, m), 0.0, 1.0)
        elif p.type == "float":
            values[name] = trial.suggest_float(name, p.low, p.high, log=p.log)
        elif p.type == "categorical":
            values[name] = trial.suggest_categorical(name, p.choices)
    return str(values["intermediate_tasks"])


def _second_half(spec: SearchSpec, seed: int, flags: bool, n: int = 48, noise: float = 4.0) -> float:
    """TPE as a search runs it on ``spec``; the objective is the sum of the chosen tasks' effects plus
    seed noise; the mean true effect of the second half of the trials."""
    sampler = make_sampler(spec, seed)
    study = optuna.create_study(direction="maximize",
                                sampler=with_subset_prior(spec, sampler, seed) if flags else sampler)
    rng, true = random.Random(seed), []
    for _ in range(n):
        trial = study.ask()
        subset = define_by_run(spec)(trial)["intermediate_tasks"] if flags else _old_encoding(spec, trial)
        f = sum(EFFECT[m] for m in codec.subset_members(subset))
        true.append(f)
        study.tell(trial, f + rng.gauss(0, noise))
    return statistics.mean(true[n // 2:])


def test_tpe_learns_what_each_task_does_better_with_flags_than_with_one_categorical() -> None:
    """mixtures.yaml's 8 tasks (92 subsets), 48 trials, noise SD 4 points: with one flag per task TPE's
    second half lands near the best subset (mnli+anli, +4.7); with one categorical over the 92 subsets
    it cannot carry what it saw of a task to the subsets it did not try (docs/search.md: 20 seeds)."""
    spec = _mixtures()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        flags = [_second_half(spec, s, flags=True) for s in range(3)]
        one_categorical = [_second_half(spec, s, flags=False) for s in range(3)]
    assert statistics.mean(flags) > statistics.mean(one_categorical) + 2.0, (flags, one_categorical)


def test_a_study_in_the_old_encoding_is_refused_on_resume(tmp_path: Path) -> None:
    spec = load_space(SPACES / "default.yaml")
    journal, run_dir = tmp_path / "old.journal", tmp_path / "run"
    run_dir.mkdir()
    study = optuna.create_study(study_name="old", storage=journal_storage(journal), direction="maximize")
    trial = study.ask()
    subset = _old_encoding(spec, trial)
    Ledger(run_dir / LEDGER_FILE).append({"event": "start", "trial": "t0000", "number": 0, "trial_id": "r0",
                                          "dirname": "t0000", "config": {"intermediate_tasks": subset}}, True)
    study.tell(trial, 0.5)
    assert "one categorical 'intermediate_tasks'" in (encoding_clash(spec, study.trials) or "")
    with pytest.raises(ResumeError, match="one flag per task") as e:
        plan_resume(spec, run_dir, journal, "old")
    assert "Start a new search" in str(e.value)
    new = optuna.create_study(sampler=with_subset_prior(spec, make_sampler(spec)))
    _ask(new, spec)
    assert encoding_clash(spec, new.trials) is None
