"""Searchers: one explicit conversion from a ``SearchSpec`` to a Ray Tune search algorithm.

Every searcher is an ``OptunaSearch`` over the same define-by-run function and the same
persistent Optuna study (a journal file beside the Ray results), so resume, seed points and
the logged parameters behave the same whichever sampler proposes the trials:

==========  ==========================================================================
``tpe``     ``TPESampler(multivariate=True, group=True, gamma=top_quarter)`` — the default;
            ``group`` lets the multivariate TPE handle the conditional (define-by-run)
            parameters. ``top_quarter``: the top 25 % of the finished trials are TPE's "good"
            group, not Optuna's default 10 %, which for the tens of trials a search here runs
            makes that group a single trial.
``gp``      ``GPSampler`` — a Gaussian process over float, int and categorical parameters;
            conditional parameters outside the space every trial shares (``multilingual_share``
            under ``when: {schedule: interleaved}``, the simplex coordinates of a varying
            subset) are drawn by its independent sampler (random). Single objective.
``random``  ``RandomSampler``.
``grid``    every point of ``spaces.grid_points`` enqueued in order (``RandomSampler`` behind
            it never draws: the number of trials is at most the grid's size).
``nsga2``   ``NSGAIISampler`` over ``search.objectives`` (a Pareto front, e.g. zero-shot
            average and worst language).
``mixlaw``  ``search.mixlaw.MixlawSampler`` — bagged gradient-boosted trees fitted on every report
            (the decoded mixture, schedule, numeric parameters and fidelity as features) propose
            the prior draw with the highest predicted score + spread. Single objective.
==========  ==========================================================================

Every sampler is wrapped in ``subset_prior.SubsetPrior`` when the space has a task subset: the
subset is one flag ``tasks.<t>`` per task (``spaces.sampling``), and the wrapper keeps random draws
uniform over the allowed subsets and a model's proposals inside ``min_size``/``max_size``.

Seed configurations (``points_to_evaluate`` in the space file) are enqueued first for every
searcher. A trial that ended without its final report (``trial_done``: stopped by ASHA or by the
time budget) reaches the study as PRUNED, its intermediate values (one per report) kept, so the
samplers treat it as Optuna's own pruned trials: TPE ranks it by its last step and value below every
finished trial, and the GP fits finished trials only, mixlaw every report (fidelity a feature). Ray's ``OptunaSearch`` would tell it COMPLETE
with its early value, as if that were final. PBT needs Ray's own variant generator (it rejects model-based searchers): its
population is drawn with ``spaces.sample_random``.
"""

from __future__ import annotations

import functools
import math
import warnings
from pathlib import Path
from typing import Any

from xstilts.spaces import (
    SearchSpec,
    define_by_run,
    grid_points,
    optuna_points,
    point_to_optuna,
    sample_random,
    with_constants,
)
from xstilts.trainer.names import TRIAL_DONE

__all__ = ["make_sampler", "make_search_alg", "journal_storage", "pbt_population", "top_quarter", "optuna_state",
           "PrunedToOptuna", "seed_points"]


def top_quarter(n: int) -> int:
    """TPE's split: how many of ``n`` finished trials form the "good" group (at most 25).

    Optuna's default, ``ceil(0.1 n)``, leaves one trial in that group until 11 have finished, so
    with a budget of tens of trials TPE's model of a good configuration is one trial (plus the
    prior) for most of the search; a quarter gives it 1 trial of 4, 3 of 12, 5 of 20."""
    return min(math.ceil(0.25 * n), 25)


def make_sampler(spec: SearchSpec, seed: int | None = None) -> Any:
    """The Optuna sampler for ``spec.search.searcher`` (raises on anything unsupported), seeded with
    ``seed`` (default: the space's)."""
    import optuna

    s = spec.search.model_copy(update={"seed": spec.search.seed if seed is None else seed})
    n = spec.n_trials()
    startup = min(10, max(2, n // 3))
    if s.searcher == "tpe":
        with warnings.catch_warnings():  # multivariate/group are "experimental" in Optuna's terms only
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(seed=s.seed, n_startup_trials=startup, multivariate=True, group=True,
                                              gamma=top_quarter, constant_liar=s.max_concurrent > 1)
    if s.searcher == "gp":
        return optuna.samplers.GPSampler(seed=s.seed, n_startup_trials=startup, warn_independent_sampling=False,
                                         independent_sampler=optuna.samplers.RandomSampler(seed=s.seed))
    if s.searcher in ("random", "grid"):
        return optuna.samplers.RandomSampler(seed=s.seed)
    if s.searcher == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=s.seed, population_size=max(2, min(50, n // 2)))
    if s.searcher == "mixlaw":
        from .mixlaw import MixlawSampler

        return MixlawSampler(spec, seed=s.seed, n_startup_trials=startup)
    raise ValueError(f"unsupported searcher {s.searcher!r}")


def journal_storage(path: Path) -> Any:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


def optuna_state(result: dict[str, Any] | None, error: bool) -> str:
    """How a Ray trial that ended with ``result`` (its last report) ends in the Optuna study:
    ``"fail"`` (it raised, or never reported), ``"pruned"`` (stopped before its final report),
    or ``"complete"`` (its final report, which carries ``trial_done``)."""
    if error or not result:
        return "fail"
    return "complete" if result.get(TRIAL_DONE) else "pruned"


class PrunedToOptuna:
    """Mixin for an ``OptunaSearch``: a trial stopped before its final report is told to the study as
    PRUNED (a trial that raised or never reported: FAIL), not COMPLETE with its early value (see the
    module's docstring). A mixin, so that this module imports no Ray: ``make_search_alg`` combines it
    with Ray's class, and so can another ``OptunaSearch`` subclass."""

    _completed_trials: set[str]
    _ot_trials: dict[str, Any]
    _ot_study: Any

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        from optuna.trial import TrialState

        state = optuna_state(result, error)
        if state == "complete" or trial_id in self._completed_trials or trial_id not in self._ot_trials:
            super().on_trial_complete(trial_id, result=result, error=error)  # type: ignore[misc]
            return
        if state == "pruned":
            self._report_stopping_result(trial_id, result)
        try:  # PRUNED takes the last intermediate value as its value; FAIL has none
            self._ot_study.tell(self._ot_trials[trial_id], None,
                                state=TrialState.PRUNED if state == "pruned" else TrialState.FAIL)
        except Exception as exc:  # as Ray's own: a study that refuses a state must not stop the search
            warnings.warn(f"optuna refused trial {trial_id} as {state}: {exc}", stacklevel=1)
        self._completed_trials.add(trial_id)

    def _report_stopping_result(self, trial_id: str, result: dict[str, Any] | None) -> None:
        """The result a scheduler stopped the trial on, as its intermediate value at that step: Tune
        hands that result to ``on_trial_complete`` only, never to ``on_trial_result``, so without
        this a trial ASHA stopped at its first rung reaches the study with no value at all."""
        metric = getattr(self, "metric", None)
        if not isinstance(metric, str) or not result or metric not in result or "training_iteration" not in result:
            return
        with warnings.catch_warnings():  # a step reported already keeps its value (Optuna warns)
            warnings.simplefilter("ignore")
            self._ot_trials[trial_id].report(float(result[metric]), int(result["training_iteration"]))


@functools.cache
def _optuna_search_class() -> type:
    """Ray's ``OptunaSearch`` with ``PrunedToOptuna`` (one class, built on first use)."""
    from ray.tune.search.optuna import OptunaSearch

    return type("PrunedAwareOptunaSearch", (PrunedToOptuna, OptunaSearch), {"__module__": __name__})


def __getattr__(name: str) -> Any:
    """``PrunedAwareOptunaSearch`` by name, so that pickle finds the class (built on first use)."""
    if name == "PrunedAwareOptunaSearch":
        return _optuna_search_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def seed_points(spec: SearchSpec) -> list[dict[str, Any]]:
    """What the study tries first, in Optuna's param names: the seed points, then (grid) every grid point."""
    points = optuna_points(spec)
    if spec.search.searcher == "grid":
        points += [point_to_optuna(spec, g) for g in grid_points(spec)]
    return points


def make_search_alg(spec: SearchSpec, study_name: str, journal: Path, reruns: list[Any] | None = None,
                    seed: int | None = None) -> Any:
    """A pruning-aware ``OptunaSearch`` for ``spec`` on the study ``study_name`` in ``journal``.

    With ``reruns`` (a resumed search, ``resume.Rerun``): a ``ContinuedOptunaSearch`` that hands
    those out first; the seed points are in the study already (``plan_resume`` enqueues any a kill
    kept out), so they are not enqueued twice."""
    from .subset_prior import with_subset_prior

    metrics, modes = spec.search.objective_list()
    common: dict[str, Any] = dict(
        space=define_by_run(spec),
        metric=metrics if len(metrics) > 1 else metrics[0],
        mode=modes if len(modes) > 1 else modes[0],
        sampler=with_subset_prior(spec, make_sampler(spec, seed), seed),
        study_name=study_name,
        storage=journal_storage(journal),
    )
    if reruns is not None:
        from .resume import ContinuedOptunaSearch

        return ContinuedOptunaSearch(reruns=reruns, **common)
    return _optuna_search_class()(points_to_evaluate=seed_points(spec) or None, **common)


def pbt_population(spec: SearchSpec) -> list[dict[str, Any]]:
    """PBT's initial population: the seed points, then random draws (``seed`` + index)."""
    from xstilts.trainer.codec import without_raw

    out = [with_constants(spec, p, number=i) for i, p in enumerate(optuna_points(spec))]
    while len(out) < spec.n_trials():
        out.append(sample_random(spec, spec.search.seed * 100_003 + len(out), number=len(out)))
    # the raw simplex coordinates stay out: PBT perturbs the normalised rates (``ratio.*``) directly
    return [without_raw(c) for c in out[: spec.n_trials()]]
