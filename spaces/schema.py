"""Search-space YAML → a validated, typed ``SearchSpec`` → an Optuna define-by-run function.

A space file has four top-level keys (unknown keys anywhere are errors naming the file
and the key path)::

    name: default                  # the search (and MLflow experiment) name
    search: {searcher, scheduler, trials, max_concurrent, cpus_per_trial, metric, mode, seed}
    trial:  {...}                  # fixed TrialConfig fields (see xstilts.trainer.config)
    parameters:                    # the searched dimensions, sampled in this order
      NAME: {type: float, low, high, log?, when?}
      NAME: {type: int, low, high, log?, when?}
      NAME: {type: categorical, choices: [...], when?}
      NAME: {type: subset, members: [task, ...], min_size?, max_size?}   # which intermediate tasks
      NAME: {type: simplex, over: SUBSET_NAME}                          # ratios over the chosen ones

Parameters are sampled in file order, except that one naming another (``when``, ``over``)
comes after it.

``when: {OTHER: value}`` makes a parameter present only when a categorical
parameter has that value (Optuna's conditional, define-by-run spaces).

Encodings for the searcher:

* ``subset``: one categorical over the allowed subsets, written ``"mnli+sst2"``.
* ``simplex``: the Dirichlet construction of the Optuna FAQ — one ``u_i ~ U(0, 1)`` per chosen
  member (Optuna params ``_u.<NAME>.<member>``), ``w_i = -log u_i``, rates ``w_i / Σ w``;
  uniform on the simplex under random sampling. The normalised rates are what is logged
  (``ratio.<task>``), with ``tasks.<task>`` = 0/1 for membership.

Non-subset parameter names must be ``TrialConfig`` fields; ``to_trial_config`` turns a
sampled configuration into the ``TrialConfig`` the trainer runs.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from xstilts.trainer.config import TrialConfig, format_validation_error
from xstilts.trainer.tasks import INTERMEDIATE_TASKS

__all__ = ["SearchSpec", "SpaceError", "load_space", "default_space_path", "define_by_run", "to_trial_config",
           "trial_params",
           "sample_random"]

RAW = "_u."  # prefix of the raw simplex coordinates the searcher sees


class SpaceError(ValueError):
    """An invalid space file; the message names the file, the key and what is allowed."""


class _Param(BaseModel):
    model_config = ConfigDict(extra="forbid")
    when: dict[str, Any] | None = None


class FloatParam(_Param):
    type: Literal["float"]
    low: float
    high: float
    log: bool = False

    @model_validator(mode="after")
    def _bounds(self) -> FloatParam:
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be < high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"log scale needs low > 0 (got {self.low})")
        return self


class IntParam(_Param):
    type: Literal["int"]
    low: int
    high: int
    log: bool = False

    @model_validator(mode="after")
    def _bounds(self) -> IntParam:
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be < high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"log scale needs low > 0 (got {self.low})")
        return self


class CategoricalParam(_Param):
    type: Literal["categorical"]
    choices: list[Any] = Field(min_length=1)


class SubsetParam(_Param):
    type: Literal["subset"]
    members: list[str] = Field(min_length=1)
    min_size: int = Field(1, ge=0)
    max_size: int | None = None
    always: list[str] = Field(default_factory=list)  # members that are always in

    @model_validator(mode="after")
    def _sizes(self) -> SubsetParam:
        unknown = [m for m in self.members if m not in INTERMEDIATE_TASKS]
        if unknown:
            raise ValueError(f"unknown intermediate task(s) {unknown}; allowed: {', '.join(INTERMEDIATE_TASKS)}")
        if len(set(self.members)) != len(self.members):
            raise ValueError("members are repeated")
        bad = [a for a in self.always if a not in self.members]
        if bad:
            raise ValueError(f"'always' names {bad}, which are not members")
        hi = len(self.members) if self.max_size is None else self.max_size
        if not max(self.min_size, len(self.always), 0) <= hi <= len(self.members):
            raise ValueError(f"impossible sizes: min_size {self.min_size}, max_size {hi}, "
                             f"{len(self.members)} members, {len(self.always)} always in")
        if not self.choices():
            raise ValueError("the subset allows no choice at all (empty subset)")
        return self

    def choices(self) -> list[str]:
        hi = len(self.members) if self.max_size is None else self.max_size
        out = []
        for k in range(max(self.min_size, 1), hi + 1):
            for combo in itertools.combinations(self.members, k):
                if set(self.always) <= set(combo):
                    out.append("+".join(combo))
        if self.min_size == 0 and not self.always:
            out.insert(0, "none")
        return out


class SimplexParam(_Param):
    type: Literal["simplex"]
    over: str


Param = Annotated[FloatParam | IntParam | CategoricalParam | SubsetParam | SimplexParam, Field(discriminator="type")]


class SearchSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    searcher: Literal["tpe", "random"] = "tpe"
    scheduler: Literal["asha", "none"] = "asha"
    trials: int = Field(12, ge=1)
    max_concurrent: int = Field(2, ge=1)
    cpus_per_trial: float = Field(1, gt=0)
    gpus_per_trial: float = Field(0, ge=0)
    metric: str = "zero_shot/avg"
    mode: Literal["max", "min"] = "max"
    seed: int = 0


class SearchSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    search: SearchSettings = Field(default_factory=SearchSettings)
    trial: dict[str, Any] = Field(default_factory=dict)
    parameters: dict[str, Param] = Field(default_factory=dict)
    source: str = ""  # the file it came from (set by load_space)

    @model_validator(mode="after")
    def _cross_checks(self) -> SearchSpec:
        self.parameters = _dependency_order(self.parameters)
        seen: dict[str, Any] = {}
        fields = set(TrialConfig.model_fields)
        for name, p in self.parameters.items():
            if p.when:
                for k, v in p.when.items():
                    dep = seen.get(k)
                    if not isinstance(dep, CategoricalParam):
                        raise ValueError(f"parameters.{name}.when: {k!r} must be a categorical parameter "
                                         f"of this space")
                    if v not in dep.choices:
                        raise ValueError(f"parameters.{name}.when: {v!r} is not a choice of {k!r} ({dep.choices})")
            if isinstance(p, SimplexParam):
                if not isinstance(seen.get(p.over), SubsetParam):
                    raise ValueError(f"parameters.{name}.over: {p.over!r} must name a subset parameter "
                                     f"of this space (a simplex over nothing)")
            elif isinstance(p, SubsetParam):
                if any(isinstance(q, SubsetParam) for q in seen.values()):
                    raise ValueError(f"parameters.{name}: only one subset of intermediate tasks per space")
            elif name not in fields:
                raise ValueError(f"parameters.{name}: not a trial setting; allowed: {', '.join(sorted(fields))}")
            seen[name] = p
        overlap = set(self.parameters) & set(self.trial)
        if overlap:
            raise ValueError(f"{sorted(overlap)} are both fixed (trial) and searched (parameters)")
        return self

    def subset(self) -> tuple[str, SubsetParam] | None:
        return next(((n, p) for n, p in self.parameters.items() if isinstance(p, SubsetParam)), None)

    def with_overrides(self, **search: Any) -> SearchSpec:
        upd = {k: v for k, v in search.items() if v is not None}
        return self.model_copy(update={"search": self.search.model_copy(update=upd)})


def _dependency_order(params: dict[str, Any]) -> dict[str, Any]:
    """File order, except that a parameter comes after those its ``when``/``over`` name."""
    out: dict[str, Any] = {}
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in out or name not in params:
            return
        if name in visiting:
            raise ValueError(f"parameters.{name}: circular 'when'/'over' references")
        visiting.add(name)
        p = params[name]
        for dep in [*(p.when or {}), *([p.over] if isinstance(p, SimplexParam) else [])]:
            visit(dep)
        visiting.discard(name)
        out[name] = p

    for n in params:
        visit(n)
    return out


def default_space_path() -> Path:
    return Path(str(resources.files("xstilts.spaces") / "default.yaml"))


def load_space(path: str | Path | None = None) -> SearchSpec:
    """Load and validate a space file; every error names the file and the key."""
    p = Path(path) if path else default_space_path()
    try:
        raw = yaml.safe_load(p.read_text())
    except FileNotFoundError:
        raise SpaceError(f"{p}: no such space file") from None
    except yaml.YAMLError as e:
        raise SpaceError(f"{p}: not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise SpaceError(f"{p}: expected a mapping with keys name, search, trial, parameters")
    raw.setdefault("name", p.stem)
    try:
        spec = SearchSpec.model_validate({**raw, "source": str(p)})
    except ValidationError as e:
        raise SpaceError(format_validation_error(e, str(p))) from None
    # the fixed part must be a valid (partial) TrialConfig, and sampled points must build one
    try:
        TrialConfig.model_validate(spec.trial)
    except ValidationError as e:
        raise SpaceError(format_validation_error(e, f"{p} (trial)")) from None
    for seed in range(8):
        cfg = sample_random(spec, seed)
        try:
            to_trial_config(spec, cfg)
        except ValidationError as e:
            raise SpaceError(format_validation_error(e, f"{p} (a sampled point {cfg})")) from None
    return spec


def _active(p: _Param, values: dict[str, Any]) -> bool:
    return not p.when or all(values.get(k) == v for k, v in p.when.items())


class _DefineByRun:
    """The Optuna define-by-run function for a spec (a class so Ray can pickle the searcher)."""

    def __init__(self, spec: SearchSpec) -> None:
        self.spec = spec

    def __call__(self, trial: Any) -> dict[str, Any]:
        params = list(self.spec.parameters.items())
        sub = self.spec.subset()
        values: dict[str, Any] = {}
        constants: dict[str, Any] = {}
        for name, p in params:
            if not _active(p, values):
                continue
            if isinstance(p, FloatParam):
                values[name] = trial.suggest_float(name, p.low, p.high, log=p.log)
            elif isinstance(p, IntParam):
                values[name] = trial.suggest_int(name, p.low, p.high, log=p.log)
            elif isinstance(p, CategoricalParam):
                values[name] = trial.suggest_categorical(name, p.choices)
            elif isinstance(p, SubsetParam):
                values[name] = trial.suggest_categorical(name, p.choices())
                chosen = _members(values[name])
                for m in p.members:
                    constants[f"tasks.{m}"] = int(m in chosen)
            elif isinstance(p, SimplexParam):
                chosen = _members(values[p.over])
                if len(chosen) == 1:
                    rates = {chosen[0]: 1.0}
                else:
                    w = {m: -math.log(max(trial.suggest_float(f"{RAW}{name}.{m}", 0.0, 1.0), 1e-12)) for m in chosen}
                    z = sum(w.values()) or 1.0
                    rates = {m: v / z for m, v in w.items()}
                assert sub is not None
                for m in sub[1].members:
                    constants[f"ratio.{m}"] = round(rates.get(m, 0.0), 6)
        if sub and not any(isinstance(p, SimplexParam) for _, p in params):
            chosen = _members(values[sub[0]])  # no simplex: equal ratios
            for m in sub[1].members:
                constants[f"ratio.{m}"] = round(1.0 / len(chosen), 6) if m in chosen else 0.0
        return constants


def define_by_run(spec: SearchSpec) -> Callable[[Any], dict[str, Any]]:
    """The Optuna define-by-run function for ``spec``: cheap, no I/O (Ray calls it in the driver)."""
    return _DefineByRun(spec)


def _members(subset_value: str) -> list[str]:
    return [] if subset_value == "none" else subset_value.split("+")


class _RandomTrial:
    """A stand-in for ``optuna.Trial`` drawing uniformly (validation and tests, no Optuna study)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.params: dict[str, Any] = {}

    def suggest_float(self, name: str, low: float, high: float, log: bool = False) -> float:
        v = math.exp(self.rng.uniform(math.log(low), math.log(high))) if log else self.rng.uniform(low, high)
        self.params[name] = v
        return v

    def suggest_int(self, name: str, low: int, high: int, log: bool = False) -> int:
        v = self.rng.randint(low, high)
        self.params[name] = v
        return v

    def suggest_categorical(self, name: str, choices: list[Any]) -> Any:
        v = self.rng.choice(choices)
        self.params[name] = v
        return v


def sample_random(spec: SearchSpec, seed: int = 0) -> dict[str, Any]:
    """One configuration as Ray would hand it to a trial (params + constants)."""
    t = _RandomTrial(seed)
    constants = define_by_run(spec)(t)
    return {**t.params, **constants}


def to_trial_config(spec: SearchSpec, config: dict[str, Any], **extra: Any) -> TrialConfig:
    """The ``TrialConfig`` for a sampled configuration (fixed part + sampled dimensions)."""
    raw: dict[str, Any] = dict(spec.trial)
    sub = spec.subset()
    for name, p in spec.parameters.items():
        if isinstance(p, SubsetParam | SimplexParam) or name not in config:
            continue
        raw[name] = config[name]
    if sub:
        raw["intermediate"] = {m: config[f"ratio.{m}"] for m in sub[1].members if config.get(f"tasks.{m}")}
    raw.update(extra)
    return TrialConfig.model_validate(raw)


def trial_params(spec: SearchSpec, config: dict[str, Any], overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a trial logs as params: every sampled dimension (resolved where it was inactive,
    e.g. ``multilingual_share`` = 0 under ``sequential``) and the fixed settings."""
    tc = to_trial_config(spec, config, **(overrides or {}))
    out: dict[str, Any] = {k: v for k, v in config.items() if not k.startswith(RAW)}
    for name, p in spec.parameters.items():
        if name not in out and not isinstance(p, SubsetParam | SimplexParam):
            out[name] = getattr(tc, name)
    for k, v in {**spec.trial, **(overrides or {})}.items():
        out.setdefault(k, v)
    return out
