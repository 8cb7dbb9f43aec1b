"""Sampling a ``SearchSpec``: the Optuna define-by-run function, a random stand-in for Optuna's
trial, grid enumeration and seed points in Optuna's param names.

A sampled configuration is what Ray hands a trial: the Optuna params (by parameter name) plus
the constants the define-by-run function returns (the mixture's flat keys, written by
``xstilts.trainer.codec``, and ``trial_number``). Encodings for the searcher:

* ``subset``: one flag per candidate task, ``tasks.<t>`` (a categorical over 0/1; ``always``
  members are in, and not suggested), so that a searcher sees every task as a dimension of its own
  and can learn that one task helps and another hurts across the subsets that hold them.
  ``min_size``/``max_size`` bound the size (``min_size: 0`` allows ``"none"``: no intermediate
  training), or ``sizes`` lists the allowed sizes exactly (``[1, 9]``: each task alone and all
  together); flags that break them are repaired to the nearest allowed subset (``_suggest_subset``).
  The subset itself is a constant of the configuration, written ``"mnli+sst2"`` (members in file
  order), as in seed points, trial names and MLflow. Random draws (``sample_random``, and Optuna's
  through ``search.subset_prior``) are uniform over the allowed subsets, not one coin per task.
* ``simplex``: the Dirichlet construction of the Optuna FAQ — one ``u_i ~ U(0, 1)`` per chosen
  member (Optuna params ``_u.<NAME>.<member>``), ``w_i = -log u_i``, rates ``w_i / Σ w``;
  uniform on the simplex under random sampling; a coordinate is present when its task's flag is
  in and more than one task is chosen. The normalised rates are what is logged
  (``ratio.<task>``), with ``tasks.<task>`` = 0/1 for membership. A seed point's rates ``r``
  are encoded as ``u_i = exp(-r_i / Σ r)``, which decodes to exactly ``r / Σ r``.
* ``grid`` (searcher): every combination of the active values — categorical choices, the allowed
  subsets (enumerated as ``"a+b"``, turned into flags by ``point_to_optuna``), the ``grid:`` values of float/int parameters — respecting ``when``; a simplex cannot be
  enumerated (leave it out: the chosen tasks then get equal ratios).

Every configuration also carries ``trial_number`` (the Optuna trial number, stable across
resumes), which names the trial (``t0007-...``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import Any

from xstilts.trainer import codec

from .spec import CategoricalParam, FloatParam, IntParam, SearchSpec, SimplexParam, SubsetParam

__all__ = ["RAW", "define_by_run", "sample_random", "with_constants", "grid_points", "point_to_optuna",
           "optuna_points", "placeholders"]

RAW = codec.RAW  # prefix of the raw simplex coordinates the searcher sees


class _DefineByRun:
    """The Optuna define-by-run function for a spec (a class so Ray can pickle the searcher)."""

    def __init__(self, spec: SearchSpec) -> None:
        self.spec = spec

    def __call__(self, trial: Any) -> dict[str, Any]:
        params = list(self.spec.parameters.items())
        sub = self.spec.subset()
        values: dict[str, Any] = {}
        constants: dict[str, Any] = {}
        number = getattr(trial, "number", None)
        if isinstance(number, int):
            constants[codec.NUMBER] = number
        for name, p in params:
            if not p.is_active(values):
                continue
            if isinstance(p, FloatParam):
                values[name] = trial.suggest_float(name, p.low, p.high, log=p.log)
            elif isinstance(p, IntParam):
                values[name] = trial.suggest_int(name, p.low, p.high, log=p.log)
            elif isinstance(p, CategoricalParam):
                values[name] = trial.suggest_categorical(name, p.choices)
            elif isinstance(p, SubsetParam):
                values[name] = constants[name] = _suggest_subset(trial, p)
            elif isinstance(p, SimplexParam):
                chosen = codec.subset_members(values[p.over])
                u = {m: trial.suggest_float(codec.raw_key(name, m), 0.0, 1.0) for m in chosen} if len(chosen) > 1 \
                    else dict.fromkeys(chosen, 1.0)
                values[name] = codec.rates_from_uniforms(u) if u else {}
        if sub:  # no simplex: equal ratios over the chosen tasks
            chosen = codec.subset_members(values[sub[0]])
            rates = next((values[n] for n, p in params if isinstance(p, SimplexParam)), dict.fromkeys(chosen, 1.0))
            constants.update(codec.encode_mixture(sub[1].members, rates))
        return constants


def _suggest_subset(trial: Any, p: SubsetParam) -> str:
    """The subset of a trial, suggested as one flag ``tasks.<t>`` per member not always in.

    A searcher that proposes the flags one by one may give a vector outside ``min_size`` /
    ``max_size``; it is repaired to the nearest allowed subset (``SubsetParam.repaired``: the fewest
    flags changed, which ones drawn from a generator seeded by the trial's number and its flags, so
    the same proposal is always repaired alike). The configuration (``tasks.<t>``, ``ratio.<t>``, the
    subset) says what runs; the Optuna trial keeps the flags proposed. ``search.subset_prior`` makes
    Optuna's random draws allowed subsets and repairs a model's joint proposal before the trial sees
    it, so a repair here is left to the rare mixed proposal (NSGA-II's crossover with mutation)."""
    flags = [m for m in p.free() if trial.suggest_categorical(codec.flag_key(m), codec.FLAG_CHOICES)]
    seed = f"{getattr(trial, 'number', None)}:{codec.subset_value(flags)}"
    return codec.subset_value(p.repaired(flags, random.Random(seed)))


def define_by_run(spec: SearchSpec) -> Callable[[Any], dict[str, Any]]:
    """The Optuna define-by-run function for ``spec``: cheap, no I/O (Ray calls it in the driver)."""
    return _DefineByRun(spec)


class _RandomTrial:
    """A stand-in for ``optuna.Trial`` drawing uniformly (validation and tests, no Optuna study);
    ``fixed`` values are returned as given (like Optuna's enqueued trials). The task flags come from
    one subset drawn uniformly from the allowed ones (``SubsetParam.draw``)."""

    def __init__(self, seed: int, fixed: dict[str, Any] | None = None, number: int | None = None,
                 subset: SubsetParam | None = None) -> None:
        self.rng = random.Random(seed)
        self.fixed = fixed or {}
        self.params: dict[str, Any] = {}
        self.subset = subset
        self.flags = {codec.flag_key(m): m for m in subset.free()} if subset else {}
        self.drawn: list[str] | None = None
        if number is not None:
            self.number = number

    def _flag(self, name: str) -> int:
        if self.drawn is None:
            assert self.subset is not None
            self.drawn = self.subset.draw(self.rng)
        return int(self.flags[name] in self.drawn)

    def _take(self, name: str, draw: Callable[[], Any]) -> Any:
        v = self.fixed[name] if name in self.fixed else draw()
        self.params[name] = v
        return v

    def suggest_float(self, name: str, low: float, high: float, log: bool = False) -> float:
        return float(self._take(name, lambda: math.exp(self.rng.uniform(math.log(low), math.log(high))) if log
                                else self.rng.uniform(low, high)))

    def suggest_int(self, name: str, low: int, high: int, log: bool = False) -> int:
        return int(self._take(name, lambda: self.rng.randint(low, high)))

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        if name in self.flags:
            return self._take(name, lambda: self._flag(name))
        return self._take(name, lambda: self.rng.choice(choices))


def _random_trial(spec: SearchSpec, seed: int, fixed: dict[str, Any] | None = None,
                  number: int | None = None) -> _RandomTrial:
    sub = spec.subset()
    return _RandomTrial(seed, fixed, number, sub[1] if sub else None)


def sample_random(spec: SearchSpec, seed: int = 0, number: int | None = None) -> dict[str, Any]:
    """One configuration as Ray would hand it to a trial (params + constants)."""
    t = _random_trial(spec, seed, number=number)
    constants = define_by_run(spec)(t)
    return {**t.params, **constants}


def with_constants(spec: SearchSpec, optuna_params: dict[str, Any], number: int | None = None) -> dict[str, Any]:
    """The full configuration (params + constants) of a point given in Optuna's param names."""
    t = _random_trial(spec, 0, fixed=optuna_params, number=number)
    constants = define_by_run(spec)(t)
    return {**t.params, **constants}


def grid_points(spec: SearchSpec) -> list[dict[str, Any]]:
    """Every grid point in the file's terms (a subset written ``"a+b"``; ``point_to_optuna`` gives
    Optuna's param names), respecting ``when``; file order."""
    points: list[dict[str, Any]] = [{}]
    for name, p in spec.parameters.items():
        values: list[Any]
        if isinstance(p, CategoricalParam):
            values = list(p.choices)
        elif isinstance(p, SubsetParam):
            values = p.choices()
        elif isinstance(p, FloatParam | IntParam):
            values = list(p.grid or [])
        else:
            continue  # a simplex is rejected for grids at validation
        nxt = []
        for pt in points:
            if p.is_active(pt):
                nxt += [{**pt, name: v} for v in values]
            else:
                nxt.append(pt)
        points = nxt
    return points


def point_to_optuna(spec: SearchSpec, point: dict[str, Any]) -> dict[str, Any]:
    """A seed point in the file's terms → Optuna param names and values (raises ``ValueError``); a
    subset ``"a+b"`` becomes its task flags."""
    unknown = [k for k in point if k not in spec.parameters]
    if unknown:
        raise ValueError(f"{unknown} are not parameters of this space (allowed: {', '.join(spec.parameters)})")
    out: dict[str, Any] = {}
    values: dict[str, Any] = {}
    for name, p in spec.parameters.items():
        if name not in point:
            continue  # left to the searcher
        v = point[name]
        if not p.is_active(values):
            raise ValueError(f"{name}: inactive here (it needs {p.when})")
        if isinstance(p, FloatParam | IntParam):
            if isinstance(v, bool) or not isinstance(v, int | float) or not p.low <= v <= p.high:
                raise ValueError(f"{name}: {v!r} is not a number in [{p.low}, {p.high}]")
            out[name] = values[name] = int(v) if isinstance(p, IntParam) else float(v)
        elif isinstance(p, CategoricalParam):
            if v not in p.choices:
                raise ValueError(f"{name}: {v!r} is not one of {p.choices}")
            out[name] = values[name] = v
        elif isinstance(p, SubsetParam):
            try:
                values[name] = p.canonical(v)
            except ValueError as e:
                raise ValueError(f"{name}: {e}") from None
            chosen = codec.subset_members(values[name])
            out.update({codec.flag_key(m): int(m in chosen) for m in p.free()})
        elif isinstance(p, SimplexParam):
            if p.over not in values:
                raise ValueError(f"{name}: give {p.over!r} too (the rates are over its chosen members)")
            chosen = codec.subset_members(values[p.over])
            if not isinstance(v, dict) or set(v) != set(chosen):
                raise ValueError(f"{name}: give a rate for each chosen member {chosen} (got {v!r})")
            if any(isinstance(r, bool) or not isinstance(r, int | float) or r <= 0 for r in v.values()):
                raise ValueError(f"{name}: rates must be positive numbers (got {v})")
            if len(chosen) > 1:
                out.update({codec.raw_key(name, m): u for m, u in codec.uniforms_from_rates(v).items()})
    return out


def placeholders(spec: SearchSpec) -> dict[str, Any]:
    """A value for every key a configuration may have (Ray's variant generator needs them all);
    an inactive parameter's placeholder is ignored by ``to_trial_config``."""
    out: dict[str, Any] = {codec.NUMBER: 0}
    for name, p in spec.parameters.items():
        if isinstance(p, FloatParam | IntParam):
            out[name] = p.low
        elif isinstance(p, CategoricalParam):
            out[name] = p.choices[0]
        elif isinstance(p, SubsetParam):
            out[name] = p.choices()[0]
            out.update(codec.encode_mixture(p.members, {}))
    return out


def optuna_points(spec: SearchSpec) -> list[dict[str, Any]]:
    """The space's ``points_to_evaluate`` in Optuna's param names (for ``OptunaSearch``)."""
    return [point_to_optuna(spec, p) for p in spec.points_to_evaluate]
