"""``mixlaw``: a searcher that fits a *mixture law* — the objective as a function of the mixture, the
schedule and the training settings — on every report so far, and proposes the configuration it
predicts best plus an exploration bonus (RegMix's recipe for LM loss, here for a zero-shot score)::

    the study (journal): every trial, every report ──► rows  features(config) + fidelity → value
    rows ──B bootstrap resamples of the trials──► B gradient-boosted tree models (scikit-learn)
    N draws from the space's prior (its own define-by-run function, so min_size, max_size,
        always and when hold) ──features at fidelity 1──► μ (mean over the B models), σ (their SD)
    proposal = argmax μ + κ·σ            (the first ``n_startup_trials`` trials: one prior draw)

**Features**, one column each: per candidate task its inclusion (``tasks.<t>``) and its normalised
rate (``ratio.<t>``, 0 when absent) — the decoded mixture, so that "task t helps" is learnt across
every subset that contains t; each categorical parameter one-hot (all 0 while inactive); each float
or int parameter scaled to [0, 1] (on a log scale when ``log``; -1 while inactive); the fidelity.

**Fidelity**: one row per report (Ray's ``training_iteration`` is the step of Optuna's intermediate
values). A finished (COMPLETE) trial's report at step s has fidelity s / its last step and its final
value fidelity 1; a trial stopped early (PRUNED, see ``searchers.PrunedToOptuna``) has s / the full
length (the last step of the finished trials; before any has finished, the largest step seen).
Candidates are predicted at fidelity 1, so early reports inform the law without passing for results.

**Exploration**: σ is the spread of the bootstrap models (trials, not rows, are resampled: one
trial's reports are not independent), κ = 1 by default. A candidate within ``RUNNING_RADIUS`` (RMS
distance of the features) of a trial still running is not proposed, so concurrent trials differ.

**How it plugs in**: ``MixlawSampler`` is an Optuna sampler, so ``searcher: mixlaw`` is an
``OptunaSearch`` like every other searcher (journal, seed points, PRUNED trials, resume). The
proposal is made in ``before_trial`` (when Ray's ``OptunaSearch`` asks the study for a trial, before
its define-by-run function runs) and handed out parameter by parameter by ``sample_independent``, in
Optuna's param names only (never derived values such as the subset's ``ratio.*``). Parameters fixed
by an enqueued trial (seed points, reruns of a resumed search) stay fixed and the candidates are
drawn around them. After a driver kill the resumed searcher refits from the study's trials: nothing
else is persisted; a proposal's random draws are seeded by (seed, trial number), so the same study
gives the same proposal. The predicted μ and σ of a proposal are kept in the trial's system
attributes (``mixlaw``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from optuna.samplers import BaseSampler, RandomSampler
from optuna.trial import FrozenTrial, TrialState

from xstilts.spaces import (
    CategoricalParam,
    FloatParam,
    IntParam,
    SearchSpec,
    SubsetParam,
    define_by_run,
)
from xstilts.trainer import codec

__all__ = ["MixlawSampler", "Features", "observations", "RUNNING_RADIUS"]

RUNNING_RADIUS = 0.1  # RMS feature distance under which a candidate counts as a running trial's twin
_INACTIVE = -1.0  # a float/int parameter absent under this configuration's `when`


class _PriorDraw:
    """A stand-in for ``optuna.Trial`` that draws every parameter the define-by-run function asks from
    its prior (uniform, log-uniform for ``log``) and records it; ``fixed`` values are returned as given."""

    def __init__(self, rng: random.Random, fixed: Mapping[str, Any]) -> None:
        self.rng, self.fixed = rng, fixed
        self.params: dict[str, Any] = {}

    def _take(self, name: str, draw: Callable[[], Any]) -> Any:
        v = self.fixed[name] if name in self.fixed else draw()
        self.params[name] = v
        return v

    def _uniform(self, low: float, high: float, log: bool) -> float:
        return math.exp(self.rng.uniform(math.log(low), math.log(high))) if log else self.rng.uniform(low, high)

    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None,
                      log: bool = False) -> float:
        return float(self._take(name, lambda: self._uniform(low, high, log)))

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        return int(self._take(name, lambda: min(high, max(low, round(self._uniform(low - 0.5 * (not log),
                                                                                   high + 0.5 * (not log), log))))))

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self._take(name, lambda: choices[self.rng.randrange(len(choices))])


def _draw(fn: Callable[[Any], Any], rng: random.Random, fixed: Mapping[str, Any]
          ) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(Optuna params, the full configuration) of one prior draw around ``fixed``; None when the
    define-by-run function refuses those values (e.g. an old trial's params in a changed space)."""
    t = _PriorDraw(rng, fixed)
    try:
        constants = fn(t) or {}
    except (ValueError, KeyError, TypeError):
        return None
    return t.params, {**t.params, **constants}


class Features:
    """The regression's columns for a space: per candidate task ``tasks.<t>`` and ``ratio.<t>``, one-hot
    categoricals, scaled floats/ints, then ``fidelity`` (see the module's docstring). Plain data, so
    that the sampler pickles (Ray saves the searcher)."""

    def __init__(self, spec: SearchSpec) -> None:
        self.columns: list[str] = []
        self._cells: list[tuple[str, str, Any]] = []  # (kind, config key, what the kind needs)
        for name, p in spec.parameters.items():
            if isinstance(p, SubsetParam):
                for m in p.members:
                    self._add(f"{codec.TASK_FLAG}{m}", ("flag", f"{codec.TASK_FLAG}{m}", None))
                    self._add(f"{codec.RATIO}{m}", ("rate", f"{codec.RATIO}{m}", None))
            elif isinstance(p, CategoricalParam):
                for c in p.choices:
                    self._add(f"{name}={c}", ("one_hot", name, c))
            elif isinstance(p, FloatParam | IntParam):
                lo, hi = (math.log(p.low), math.log(p.high)) if p.log else (float(p.low), float(p.high))
                self._add(name, ("scaled", name, (lo, hi - lo, p.log)))
        self.columns.append("fidelity")

    def _add(self, column: str, cell: tuple[str, str, Any]) -> None:
        self.columns.append(column)
        self._cells.append(cell)

    def row(self, config: Mapping[str, Any], fidelity: float = 1.0) -> list[float]:
        return [_cell(kind, config.get(key), arg) for kind, key, arg in self._cells] + [fidelity]


def _cell(kind: str, v: Any, arg: Any) -> float:
    if kind == "flag":
        return float(v is not None and str(v) not in ("0", "0.0", "False", ""))
    if kind == "rate":
        return float(v or 0.0)
    if kind == "one_hot":
        return float(v is not None and type(v) is type(arg) and v == arg)
    lo, span, log = arg  # scaled: [0, 1], log-scaled when `log`; a parameter absent here is -1
    if v is None or isinstance(v, bool):
        return _INACTIVE
    x = math.log(float(v)) if log else float(v)
    return min(1.0, max(0.0, (x - lo) / span))


def observations(trials: Sequence[FrozenTrial]) -> list[tuple[FrozenTrial, list[tuple[float, float]]]]:
    """Each trial with a result and its (fidelity, value) points: a COMPLETE trial's reports at
    step / its last step and its value at 1; a PRUNED trial's reports at step / the full length."""
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    pruned = [t for t in trials if t.state == TrialState.PRUNED and t.intermediate_values]
    lasts = [max(t.intermediate_values) for t in complete if t.intermediate_values]
    full = max(lasts) if lasts else max((max(t.intermediate_values) for t in pruned), default=1)
    out = []
    for t in complete:
        last = max(t.intermediate_values, default=0)
        pts = [(s / last, v) for s, v in t.intermediate_values.items() if 0 <= s < last] + [(1.0, float(t.values[0]))]
        out.append((t, pts))
    for t in pruned:
        out.append((t, [(min(max(s, 0) / max(full, 1), 1.0), v) for s, v in t.intermediate_values.items()]))
    return [(t, [(f, v) for f, v in pts if math.isfinite(v)]) for t, pts in out]


def bagged_ucb(x: np.ndarray, y: np.ndarray, groups: np.ndarray, candidates: np.ndarray, n_bags: int,
               seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(μ, σ) at ``candidates`` over ``n_bags`` gradient-boosted tree models, each fitted on a bootstrap
    resample of the groups (trials: row i belongs to trial ``groups[i]``)."""
    import sklearn
    from sklearn.ensemble import GradientBoostingRegressor

    rng = np.random.default_rng(seed)
    n = int(groups.max()) + 1
    preds = []
    for b in range(n_bags):
        weight = np.bincount(rng.integers(0, n, n), minlength=n)[groups].astype(float)
        keep = weight > 0
        model = GradientBoostingRegressor(n_estimators=50, max_depth=3, learning_rate=0.1, min_samples_leaf=2,
                                          random_state=(seed + b) % 2**31)
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):  # 50 small fits: checks cost
            model.fit(x[keep], y[keep], sample_weight=weight[keep])
            preds.append(model.predict(candidates))
    p = np.stack(preds)
    return p.mean(axis=0), p.std(axis=0)


class MixlawSampler(BaseSampler):
    """An Optuna sampler proposing ``argmax μ + κ·σ`` of a bagged mixture law over the study's reports
    (see the module's docstring); the first ``n_startup_trials`` trials with a result are prior draws."""

    def __init__(self, spec: SearchSpec, seed: int = 0, n_startup_trials: int = 4, n_candidates: int = 1000,
                 n_bags: int = 8, kappa: float = 1.0) -> None:
        self._spec, self._seed = spec, seed
        self._n_startup, self._n_candidates, self._n_bags, self._kappa = n_startup_trials, n_candidates, n_bags, kappa
        self._fn = define_by_run(spec)
        self._features = Features(spec)
        self._random = RandomSampler(seed=seed)  # anything the proposal does not cover
        self._proposals: dict[int, dict[str, Any]] = {}  # trial id → Optuna params, while it is sampled

    def infer_relative_search_space(self, study: Any, trial: FrozenTrial) -> dict[str, Any]:
        return {}

    def sample_relative(self, study: Any, trial: FrozenTrial, search_space: dict[str, Any]) -> dict[str, Any]:
        return {}

    def sample_independent(self, study: Any, trial: FrozenTrial, param_name: str, param_distribution: Any) -> Any:
        proposal = self._proposals.get(trial._trial_id, {})
        if param_name in proposal:
            v = proposal[param_name]
            try:
                if param_distribution._contains(param_distribution.to_internal_repr(v)):
                    return v
            except ValueError:  # not one of a categorical's choices
                pass
        return self._random.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: Any, trial: FrozenTrial) -> None:
        self._raise_error_if_multi_objective(study)
        # an enqueued trial's values (seed points), and those a trial has already (a re-run of a resumed search)
        fixed = {**trial.params, **trial.system_attrs.get("fixed_params", {})}
        rng = random.Random(self._seed * 1_000_003 + trial.number)
        first = _draw(self._fn, rng, fixed)
        if first is None or set(first[0]) <= set(fixed):
            return  # every parameter given: nothing to propose
        history = observations(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))
        if sum(bool(pts) for _, pts in history) < self._n_startup:
            self._proposals[trial._trial_id] = first[0]
            return
        proposed = self._propose(study, trial, fixed, rng, history)
        if proposed is None:  # no past trial decodes in this space
            self._proposals[trial._trial_id] = first[0]
            return
        params, mu, sd = proposed
        self._proposals[trial._trial_id] = params
        study._storage.set_trial_system_attr(trial._trial_id, "mixlaw", {"mean": mu, "sd": sd})

    def after_trial(self, study: Any, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> None:
        self._proposals.pop(trial._trial_id, None)

    def reseed_rng(self) -> None:
        self._random.reseed_rng()

    def _config(self, params: Mapping[str, Any]) -> dict[str, Any] | None:
        """A past trial's full configuration (its params, decoded by the define-by-run function)."""
        drawn = _draw(self._fn, random.Random(0), params)
        return None if drawn is None else drawn[1]

    def _propose(self, study: Any, trial: FrozenTrial, fixed: Mapping[str, Any], rng: random.Random,
                 history: list[tuple[FrozenTrial, list[tuple[float, float]]]]
                 ) -> tuple[dict[str, Any], float, float] | None:
        """(Optuna params, μ, σ) of the candidate with the highest μ + κ·σ (the objective turned to max)."""
        sign = 1.0 if study.direction.name == "MAXIMIZE" else -1.0
        rows: list[list[float]] = []
        y: list[float] = []
        groups: list[int] = []
        for t, pts in history:
            config = self._config(t.params)
            if config is None or not pts:
                continue
            g = groups[-1] + 1 if groups else 0
            for fidelity, value in pts:
                rows.append(self._features.row(config, fidelity))
                y.append(sign * value)
                groups.append(g)
        if not rows:
            return None
        drawn = [d for d in (_draw(self._fn, rng, fixed) for _ in range(self._n_candidates)) if d is not None]
        if not drawn:
            raise ValueError(f"mixlaw: the space's define-by-run function refused every draw around {fixed}")
        cand = np.array([self._features.row(c) for _, c in drawn])
        mu, sd = bagged_ucb(np.array(rows), np.array(y), np.array(groups), cand, self._n_bags,
                            self._seed * 1_000_003 + trial.number)
        score = mu + self._kappa * sd
        running = [c for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                   if t.number != trial.number and t.params and (c := self._config(t.params)) is not None]
        if running:
            near = np.array([self._features.row(c) for c in running])
            dist = np.sqrt(((cand[:, None, :-1] - near[None, :, :-1]) ** 2).mean(axis=2)).min(axis=1)
            if (dist >= RUNNING_RADIUS).any():
                score = np.where(dist >= RUNNING_RADIUS, score, -np.inf)
        best = int(np.argmax(score))
        return drawn[best][0], float(sign * mu[best]), float(sd[best])
