"""Optuna's draws of a task subset: allowed subsets only, and uniform over them when drawn at random.

The define-by-run function (``spaces.sampling``) suggests a space's subset as one flag
``tasks.<t>`` (0/1) per candidate task, so that TPE or a GP sees each task as a dimension of its
own. Left to itself, a sampler that draws those flags at random tosses one coin per task: it
favours subsets of half the members and ignores ``min_size``/``max_size`` (``sizes: [1, 9]`` over
nine tasks: 10 of 512 coin vectors are allowed). ``SubsetPrior`` wraps the study's sampler through
Optuna's public ``BaseSampler`` interface only (as Optuna's own ``PartialFixedSampler`` wraps one;
nothing private to TPE, GP or NSGA-II is touched, so it holds across Optuna upgrades)::

    trial ── infer_relative_search_space ─► the wrapped sampler
          ── sample_relative ──► the wrapped sampler's joint proposal (TPE's multivariate model,
          │                      the GP, NSGA-II's crossover); the flags repaired to the nearest
          │                      allowed subset (SubsetParam.repaired) before the trial reads them
          ── sample_independent ─► a flag: read from ONE subset drawn for this trial uniformly from
                                   the allowed ones (SubsetParam.draw; seeded by seed and number);
                                   any other parameter: the wrapped sampler

A flag is sampled on its own exactly where the wrapped sampler has no model of it: TPE's and the
GP's start-up trials, ``searcher: random``, NSGA-II's first generation and its mutations. So random
trials keep the uniform prior over subsets, and every trial a model proposes is an allowed subset
whose flags the study records as run (``spaces.sampling`` repairs a mixed proposal, rare, itself).

``encoding_clash`` says when a study was made with the one-categorical subset encoding of earlier
versions (a param named after the subset, ``"mnli+sst2"`` its value): a resume refuses to mix it in.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from optuna.samplers import BaseSampler

from xstilts.spaces import SearchSpec, SubsetParam
from xstilts.trainer import codec

__all__ = ["SubsetPrior", "with_subset_prior", "encoding_clash"]


class SubsetPrior(BaseSampler):
    """A sampler wrapper: task flags from the uniform prior over allowed subsets, or repaired (see the
    module's docstring). Picklable (Ray checkpoints the searcher, sampler included)."""

    def __init__(self, base: Any, subset: SubsetParam, seed: int = 0) -> None:
        self.base = base
        self.subset = subset
        self.seed = seed
        self.flags = {codec.flag_key(m): m for m in subset.free()}  # Optuna param -> task

    def __str__(self) -> str:
        return f"{self.base} with the subset prior"

    def _rng(self, trial: Any, purpose: str) -> random.Random:
        return random.Random(f"{self.seed}:{trial.number}:{purpose}")

    def infer_relative_search_space(self, study: Any, trial: Any) -> dict[str, Any]:
        space: dict[str, Any] = self.base.infer_relative_search_space(study, trial)
        return space

    def sample_relative(self, study: Any, trial: Any, search_space: dict[str, Any]) -> dict[str, Any]:
        params: dict[str, Any] = dict(self.base.sample_relative(study, trial, search_space))
        if self.flags and all(k in params for k in self.flags):
            proposed = [m for k, m in self.flags.items() if params[k]]
            chosen = set(self.subset.repaired(proposed, self._rng(trial, "repair")))
            params.update({k: int(m in chosen) for k, m in self.flags.items()})
        return params

    def sample_independent(self, study: Any, trial: Any, param_name: str, param_distribution: Any) -> Any:
        if param_name in self.flags:
            return int(self.flags[param_name] in self.subset.draw(self._rng(trial, "prior")))
        return self.base.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: Any, trial: Any) -> None:
        self.base.before_trial(study, trial)

    def after_trial(self, study: Any, trial: Any, state: Any, values: Sequence[float] | None) -> None:
        self.base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.base.reseed_rng()


def with_subset_prior(spec: SearchSpec, sampler: Any, seed: int | None = None) -> Any:
    """``sampler`` wrapped in a ``SubsetPrior`` for ``spec``'s subset (as it is when the space has no
    subset, or none of its members is left to the searcher), an Optuna ``BaseSampler`` either way."""
    sub = spec.subset()
    if sub is None or not sub[1].free():
        return sampler
    return SubsetPrior(sampler, sub[1], spec.search.seed if seed is None else seed)


def encoding_clash(spec: SearchSpec, trials: Sequence[Any]) -> str | None:
    """Why ``trials`` (an Optuna study's) cannot be continued with ``spec``'s encoding, or None: they
    hold the subset as one categorical param named after it (earlier versions' encoding), which the
    per-task flags cannot be mixed with."""
    sub = spec.subset()
    if sub is None:
        return None
    old = [t.number for t in trials if sub[0] in t.params]
    if not old:
        return None
    return (f"its Optuna study encodes the task subset as one categorical {sub[0]!r} (in {len(old)} trial(s)), "
            f"the encoding of earlier xstilts versions; this version searches one flag per task "
            f"({codec.flag_key('<task>')}) and cannot mix the two in one study. Start a new search on the "
            f"space ({spec.source or spec.name}); the finished trials stay in MLflow for comparison")
