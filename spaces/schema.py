"""Search-space YAML → a validated, typed ``SearchSpec`` → an Optuna define-by-run function.

A space file has five top-level keys (unknown keys anywhere are errors naming the file and
the key path; every error is raised by ``load_space``, before Ray starts)::

    name: default                  # the search (and MLflow experiment) name
    search:                        # HOW to search (see ``SearchSettings``; each field documented there)
      searcher: tpe | gp | random | grid | nsga2
      scheduler: asha | none | pbt
      trials, max_concurrent, cpus_per_trial, gpus_per_trial, time_budget_s, max_failures,
      metric, mode, objectives: {METRIC: max|min, ...}   # several objectives (nsga2, tpe, random)
      seed, asha: {grace_period, reduction_factor}, pbt: {perturbation_interval, quantile_fraction, ...}
    trial:  {...}                  # fixed TrialConfig fields (see xstilts.trainer.config)
    parameters:                    # the searched dimensions, sampled in this order
      NAME: {type: float, low, high, log?, grid?, when?}
      NAME: {type: int, low, high, log?, grid?, when?}
      NAME: {type: categorical, choices: [...], when?}
      NAME: {type: subset, members: [task, ...], min_size?, max_size?, sizes?: [k, ...], always?: [task, ...]}
      NAME: {type: simplex, over: SUBSET_NAME}           # ratios over the chosen members
    points_to_evaluate:            # optional seed configurations, tried first (in this order)
      - {intermediate_tasks: mnli+sst2, ratios: {mnli: 0.7, sst2: 0.3}, schedule: sequential}

Parameters are sampled in file order, except that one naming another (``when``, ``over``)
comes after it. ``when: {OTHER: value}`` (or ``{OTHER: [v1, v2]}``) makes a parameter present
only when a categorical parameter has that value (Optuna's conditional, define-by-run spaces).

Encodings for the searcher:

* ``subset``: one categorical over the allowed subsets, written ``"mnli+sst2"`` (members in
  file order); ``min_size``/``max_size`` bound the size (``min_size: 0`` allows ``"none"``: no
  intermediate training), or ``sizes`` lists the allowed sizes exactly (``[1, 9]``: each task
  alone and all together); ``always`` members are in every subset.
* ``simplex``: the Dirichlet construction of the Optuna FAQ — one ``u_i ~ U(0, 1)`` per chosen
  member (Optuna params ``_u.<NAME>.<member>``), ``w_i = -log u_i``, rates ``w_i / Σ w``;
  uniform on the simplex under random sampling. The normalised rates are what is logged
  (``ratio.<task>``), with ``tasks.<task>`` = 0/1 for membership. A seed point's rates ``r``
  are encoded as ``u_i = exp(-r_i / Σ r)``, which decodes to exactly ``r / Σ r``.
* ``grid`` (searcher): every combination of the active values — categorical choices, subset
  choices, the ``grid:`` values of float/int parameters — respecting ``when``; a simplex cannot be
  enumerated (leave it out: the chosen tasks then get equal ratios).

Every configuration also carries ``trial_number`` (the Optuna trial number, stable across
resumes), which names the trial (``t0007-...``).

Non-subset parameter names must be ``TrialConfig`` fields; ``to_trial_config`` turns a
sampled configuration into the ``TrialConfig`` the trainer runs. Task names are checked
against the trainer's registry (``xstilts.trainer.tasks.TASKS``), languages against the
benchmark's languages.
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
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from xstilts.trainer import codec
from xstilts.trainer.config import TrialConfig, format_validation_error
from xstilts.trainer.names import OBJECTIVE
from xstilts.trainer.tasks import INTERMEDIATE_TASKS, XTREME_LANGUAGES

__all__ = ["SearchSpec", "SearchSettings", "SpaceError", "load_space", "default_space_path", "define_by_run",
           "to_trial_config", "trial_params", "sample_random", "grid_points", "optuna_points", "with_constants",
           "known_languages",
           "XTREME_LANGUAGES"]

RAW = codec.RAW  # prefix of the raw simplex coordinates the searcher sees
NUMBER = codec.NUMBER  # the constant naming a configuration's trial


class SpaceError(ValueError):
    """An invalid space file; the message names the file, the key and what is allowed."""


def _intermediate_tasks() -> list[str]:
    return sorted(INTERMEDIATE_TASKS)


def known_languages(benchmark: str) -> tuple[str, ...]:
    if benchmark == "synth":
        from xstilts.trainer.synth import LANGUAGES

        return tuple(lang.code for lang in LANGUAGES)
    return XTREME_LANGUAGES


class _Param(BaseModel):
    model_config = ConfigDict(extra="forbid")
    when: dict[str, Any] | None = None  # {categorical: value or [values]}: present only then


class _Numeric(_Param):
    log: bool = False
    grid: list[float] | None = None  # the values the grid searcher tries

    @model_validator(mode="after")
    def _bounds(self) -> Any:
        low, high = self.low, self.high  # type: ignore[attr-defined]
        if not low < high:
            raise ValueError(f"low ({low}) must be < high ({high})")
        if self.log and low <= 0:
            raise ValueError(f"log scale needs low > 0 (got {low})")
        if self.grid is not None:
            if not self.grid:
                raise ValueError("grid: give at least one value")
            out = [g for g in self.grid if not low <= g <= high]
            if out:
                raise ValueError(f"grid values {out} are outside [{low}, {high}]")
        return self


class FloatParam(_Numeric):
    type: Literal["float"]
    low: float
    high: float


class IntParam(_Numeric):
    type: Literal["int"]
    low: int
    high: int
    grid: list[int] | None = None  # type: ignore[assignment]


class CategoricalParam(_Param):
    type: Literal["categorical"]
    choices: list[Any] = Field(min_length=1)


class SubsetParam(_Param):
    type: Literal["subset"]
    members: list[str] = Field(min_length=1)
    min_size: int = Field(1, ge=0)
    max_size: int | None = None
    always: list[str] = Field(default_factory=list)  # members that are always in
    sizes: list[int] | None = None  # the allowed sizes exactly (instead of min_size..max_size), e.g. [1, 9]

    @model_validator(mode="after")
    def _sizes(self) -> SubsetParam:
        known = _intermediate_tasks()
        unknown = [m for m in self.members if m not in known]
        if unknown:
            raise ValueError(f"unknown intermediate task(s) {unknown}; allowed: {', '.join(known)}")
        if len(set(self.members)) != len(self.members):
            raise ValueError("members are repeated")
        bad = [a for a in self.always if a not in self.members]
        if bad:
            raise ValueError(f"'always' names {bad}, which are not members")
        if self.sizes is not None:
            bad_sizes = [k for k in self.sizes if not 1 <= k <= len(self.members)]
            if not self.sizes or bad_sizes:
                raise ValueError(f"impossible sizes {self.sizes}: each must be in 1..{len(self.members)}")
            if "min_size" in self.model_fields_set or "max_size" in self.model_fields_set:
                raise ValueError("give either sizes or min_size/max_size, not both")
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
        for k in sorted(set(self.sizes)) if self.sizes is not None else range(max(self.min_size, 1), hi + 1):
            for combo in itertools.combinations(self.members, k):
                if set(self.always) <= set(combo):
                    out.append("+".join(combo))
        if self.min_size == 0 and not self.always and self.sizes is None:
            out.insert(0, "none")
        return out

    def canonical(self, value: Any) -> str:
        """A subset written as ``"a+b"``, ``[a, b]`` or ``"none"`` → the choice string."""
        chosen = value if isinstance(value, list) else _members(str(value))
        order = [m for m in self.members if m in chosen]
        extra = [m for m in chosen if m not in self.members]
        if extra:
            raise ValueError(f"{extra} are not members ({self.members})")
        v = "+".join(order) or "none"
        if v not in self.choices():
            raise ValueError(f"{value!r} is not an allowed subset (sizes {self.min_size}..{self.max_size}, "
                             f"always {self.always})")
        return v


class SimplexParam(_Param):
    type: Literal["simplex"]
    over: str


Param = Annotated[FloatParam | IntParam | CategoricalParam | SubsetParam | SimplexParam, Field(discriminator="type")]


class AshaSettings(BaseModel):
    """ASHA over the zero-shot evaluations (one rung per ``eval_every`` target steps)."""

    model_config = ConfigDict(extra="forbid")
    grace_period: int = Field(1, ge=1)  # evaluations every trial gets before it may be stopped
    reduction_factor: float = Field(2, gt=1)  # keep the top 1/reduction_factor at each rung


class PbtSettings(BaseModel):
    """Population-based training over the mixture: the population is sampled at random from the
    space, then every ``perturbation_interval`` reports the bottom ``quantile_fraction`` copy the
    top's checkpoint and perturb its ``mutate`` dimensions (``ratios`` = the simplex rates)."""

    model_config = ConfigDict(extra="forbid")
    perturbation_interval: int = Field(1, ge=1)
    quantile_fraction: float = Field(0.25, gt=0, le=0.5)
    resample_probability: float = Field(0.25, ge=0, le=1)
    mutate: list[str] = Field(default_factory=lambda: ["ratios", "multilingual_share"], min_length=1)


class SearchSettings(BaseModel):
    """How a space is searched; the CLI may override the budget fields."""

    model_config = ConfigDict(extra="forbid")
    searcher: Literal["tpe", "gp", "random", "grid", "nsga2"] = "tpe"  # Optuna sampler (grid: enumerated)
    scheduler: Literal["asha", "none", "pbt"] = "asha"
    trials: int | None = Field(12, ge=1)  # number of trials (grid: default = the grid's size)
    max_concurrent: int = Field(2, ge=1)  # trials at a time
    cpus_per_trial: float = Field(1, gt=0)
    gpus_per_trial: float = Field(0, ge=0)
    time_budget_s: float | None = Field(None, gt=0)  # stop starting/running trials after this (TuneConfig)
    max_failures: int = Field(1, ge=0)  # retries of a trial whose worker died (from its last checkpoint)
    metric: str = OBJECTIVE  # what ASHA and "best" use (the first objective when there are several)
    mode: Literal["max", "min"] = "max"
    objectives: dict[str, Literal["max", "min"]] | None = None  # several objectives at once (Pareto front)
    seed: int = 0
    asha: AshaSettings = Field(default_factory=AshaSettings)
    pbt: PbtSettings = Field(default_factory=PbtSettings)

    @model_validator(mode="after")
    def _objectives(self) -> SearchSettings:
        if self.objectives is not None:
            if len(self.objectives) < 2:
                raise ValueError("objectives: give at least two (one objective is `metric` + `mode`)")
            if self.searcher in ("gp", "grid"):
                raise ValueError(f"objectives: searcher {self.searcher!r} optimises one objective; "
                                 "use nsga2, tpe or random")
            self.metric, self.mode = next(iter(self.objectives.items()))
        elif self.searcher == "nsga2":
            raise ValueError("searcher 'nsga2' needs `objectives` (e.g. {zero_shot/avg: max, zero_shot/worst: max})")
        if self.scheduler == "pbt" and self.searcher != "random":
            raise ValueError(f"scheduler 'pbt' samples its population at random and cannot follow a model-based "
                             f"searcher; set searcher: random (got {self.searcher!r})")
        return self

    def objective_list(self) -> tuple[list[str], list[str]]:
        if self.objectives:
            return list(self.objectives), list(self.objectives.values())
        return [self.metric], [self.mode]


class SearchSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    search: SearchSettings = Field(default_factory=SearchSettings)
    trial: dict[str, Any] = Field(default_factory=dict)
    parameters: dict[str, Param] = Field(default_factory=dict)
    points_to_evaluate: list[dict[str, Any]] = Field(default_factory=list)
    source: str = ""  # the file it came from (set by load_space)

    @field_validator("parameters")
    @classmethod
    def _names(cls, v: dict[str, Any]) -> dict[str, Any]:
        bad = [n for n in v if codec.is_bookkeeping(n) or n.startswith(codec.RATIO)]
        if bad:
            raise ValueError(f"{bad}: reserved parameter names (_u.*, tasks.*, ratio.*, {NUMBER})")
        return v

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
                    for one in v if isinstance(v, list) else [v]:
                        if one not in dep.choices:
                            raise ValueError(f"parameters.{name}.when: {one!r} is not a choice of {k!r} "
                                             f"({dep.choices})")
            if isinstance(p, SimplexParam):
                if not isinstance(seen.get(p.over), SubsetParam):
                    raise ValueError(f"parameters.{name}.over: {p.over!r} must name a subset parameter "
                                     f"of this space (a simplex over nothing)")
                if any(isinstance(q, SimplexParam) for q in seen.values()):
                    raise ValueError(f"parameters.{name}: only one simplex per space")
            elif isinstance(p, SubsetParam):
                if any(isinstance(q, SubsetParam) for q in seen.values()):
                    raise ValueError(f"parameters.{name}: only one subset of intermediate tasks per space")
                if p.when:
                    raise ValueError(f"parameters.{name}.when: the task subset cannot be conditional")
            elif name not in fields:
                raise ValueError(f"parameters.{name}: not a trial setting; allowed: {', '.join(sorted(fields))}")
            seen[name] = p
        overlap = set(self.parameters) & set(self.trial)
        if overlap:
            raise ValueError(f"{sorted(overlap)} are both fixed (trial) and searched (parameters)")
        s = self.search
        if s.searcher == "grid":
            for name, p in self.parameters.items():
                if isinstance(p, SimplexParam):
                    raise ValueError(f"parameters.{name}: searcher 'grid' cannot enumerate a simplex; leave it out "
                                     f"(equal ratios over the chosen tasks) or seed rates with points_to_evaluate")
                if isinstance(p, FloatParam | IntParam) and p.grid is None:
                    raise ValueError(f"parameters.{name}: searcher 'grid' needs `grid: [values]` on a {p.type}")
        if s.scheduler == "pbt":
            searched = {n for n, p in self.parameters.items() if isinstance(p, FloatParam | IntParam)}
            simplex = next((n for n, p in self.parameters.items() if isinstance(p, SimplexParam)), None)
            for m in s.pbt.mutate:
                if m == "ratios":
                    if simplex is None:
                        raise ValueError("search.pbt.mutate: 'ratios' needs a simplex parameter in the space")
                elif m not in searched:
                    raise ValueError(f"search.pbt.mutate: {m!r} is not a float/int parameter of this space "
                                     f"(allowed: ratios, {', '.join(sorted(searched))})")
        for i, point in enumerate(self.points_to_evaluate):
            try:
                _point_to_optuna(self, point)
            except ValueError as e:
                raise ValueError(f"points_to_evaluate.{i}: {e}") from None
        return self

    def subset(self) -> tuple[str, SubsetParam] | None:
        return next(((n, p) for n, p in self.parameters.items() if isinstance(p, SubsetParam)), None)

    def with_overrides(self, **search: Any) -> SearchSpec:
        upd = {k: v for k, v in search.items() if v is not None}
        return self.model_copy(update={"search": self.search.model_copy(update=upd)})

    def n_trials(self) -> int:
        """The number of trials: ``search.trials``; for the grid, at most the grid's size."""
        if self.search.searcher == "grid":
            n = len(grid_points(self))
            return min(n, self.search.trials) if self.search.trials else n
        return self.search.trials or 12


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
        raise SpaceError(f"{p}: expected a mapping with keys name, search, trial, parameters, points_to_evaluate")
    raw.setdefault("name", p.stem)
    try:
        spec = SearchSpec.model_validate({**raw, "source": str(p)})
    except ValidationError as e:
        raise SpaceError(format_validation_error(e, str(p))) from None
    check_space(spec, str(p))
    return spec


def check_space(spec: SearchSpec, where: str) -> None:
    """The checks that need the trainer's config: the fixed part, languages, sampled points."""
    try:
        TrialConfig.model_validate(spec.trial)
    except ValidationError as e:
        raise SpaceError(format_validation_error(e, f"{where} (trial)")) from None
    bench = spec.trial.get("benchmark", TrialConfig.model_fields["benchmark"].default)
    langs = spec.trial.get("eval_languages") or []
    allowed = known_languages(bench)
    unknown = [lang for lang in langs if lang not in allowed]
    if unknown:
        raise SpaceError(f"{where}: invalid configuration\n  trial.eval_languages: unknown language(s) {unknown} "
                         f"for benchmark {bench!r}; allowed: {', '.join(allowed)}")
    points = [sample_random(spec, seed) for seed in range(8)]
    if spec.search.searcher == "grid":
        points += [with_constants(spec, g) for g in grid_points(spec)]
    points += [with_constants(spec, q) for q in optuna_points(spec)]
    for cfg in points:
        try:
            to_trial_config(spec, cfg)
        except ValidationError as e:
            raise SpaceError(format_validation_error(e, f"{where} (a sampled point {cfg})")) from None


def _active(p: _Param, values: dict[str, Any]) -> bool:
    if not p.when:
        return True
    return all(values.get(k) in (v if isinstance(v, list) else [v]) for k, v in p.when.items())


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
            constants[NUMBER] = number
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
            elif isinstance(p, SimplexParam):
                chosen = _members(values[p.over])
                u = {m: trial.suggest_float(codec.raw_key(name, m), 0.0, 1.0) for m in chosen} if len(chosen) > 1 \
                    else dict.fromkeys(chosen, 1.0)
                values[name] = codec.rates_from_uniforms(u) if u else {}
        if sub:  # no simplex: equal ratios over the chosen tasks
            chosen = _members(values[sub[0]])
            rates = next((values[n] for n, p in params if isinstance(p, SimplexParam)), dict.fromkeys(chosen, 1.0))
            constants.update(codec.encode_mixture(sub[1].members, rates))
        return constants


def define_by_run(spec: SearchSpec) -> Callable[[Any], dict[str, Any]]:
    """The Optuna define-by-run function for ``spec``: cheap, no I/O (Ray calls it in the driver)."""
    return _DefineByRun(spec)


def _members(subset_value: str) -> list[str]:
    return codec.subset_members(subset_value)


class _RandomTrial:
    """A stand-in for ``optuna.Trial`` drawing uniformly (validation and tests, no Optuna study);
    ``fixed`` values are returned as given (like Optuna's enqueued trials)."""

    def __init__(self, seed: int, fixed: dict[str, Any] | None = None, number: int | None = None) -> None:
        self.rng = random.Random(seed)
        self.fixed = fixed or {}
        self.params: dict[str, Any] = {}
        if number is not None:
            self.number = number

    def _take(self, name: str, draw: Callable[[], Any]) -> Any:
        v = self.fixed[name] if name in self.fixed else draw()
        self.params[name] = v
        return v

    def suggest_float(self, name: str, low: float, high: float, log: bool = False) -> float:
        return float(self._take(name, lambda: math.exp(self.rng.uniform(math.log(low), math.log(high))) if log
                                else self.rng.uniform(low, high)))

    def suggest_int(self, name: str, low: int, high: int, log: bool = False) -> int:
        return int(self._take(name, lambda: self.rng.randint(low, high)))

    def suggest_categorical(self, name: str, choices: list[Any]) -> Any:
        return self._take(name, lambda: self.rng.choice(choices))


def sample_random(spec: SearchSpec, seed: int = 0, number: int | None = None) -> dict[str, Any]:
    """One configuration as Ray would hand it to a trial (params + constants)."""
    t = _RandomTrial(seed, number=number)
    constants = define_by_run(spec)(t)
    return {**t.params, **constants}


def with_constants(spec: SearchSpec, optuna_params: dict[str, Any], number: int | None = None) -> dict[str, Any]:
    """The full configuration (params + constants) of a point given in Optuna's param names."""
    t = _RandomTrial(0, fixed=optuna_params, number=number)
    constants = define_by_run(spec)(t)
    return {**t.params, **constants}


def grid_points(spec: SearchSpec) -> list[dict[str, Any]]:
    """Every grid point (Optuna param names → values), respecting ``when``; file order."""
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
            if _active(p, pt):
                nxt += [{**pt, name: v} for v in values]
            else:
                nxt.append(pt)
        points = nxt
    return points


def _point_to_optuna(spec: SearchSpec, point: dict[str, Any]) -> dict[str, Any]:
    """A seed point in the file's terms → Optuna param names and values (raises ``ValueError``)."""
    unknown = [k for k in point if k not in spec.parameters]
    if unknown:
        raise ValueError(f"{unknown} are not parameters of this space (allowed: {', '.join(spec.parameters)})")
    out: dict[str, Any] = {}
    values: dict[str, Any] = {}
    for name, p in spec.parameters.items():
        if name not in point:
            continue  # left to the searcher
        v = point[name]
        if not _active(p, values):
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
                out[name] = values[name] = p.canonical(v)
            except ValueError as e:
                raise ValueError(f"{name}: {e}") from None
        elif isinstance(p, SimplexParam):
            if p.over not in values:
                raise ValueError(f"{name}: give {p.over!r} too (the rates are over its chosen members)")
            chosen = _members(values[p.over])
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
    out: dict[str, Any] = {NUMBER: 0}
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
    return [_point_to_optuna(spec, p) for p in spec.points_to_evaluate]


def to_trial_config(spec: SearchSpec, config: dict[str, Any], **extra: Any) -> TrialConfig:
    """The ``TrialConfig`` for a sampled configuration (fixed part + sampled dimensions)."""
    raw: dict[str, Any] = dict(spec.trial)
    sub = spec.subset()
    for name, p in spec.parameters.items():
        if isinstance(p, SubsetParam | SimplexParam) or name not in config or not _active(p, config):
            continue  # an inactive parameter's value (a PBT placeholder) is never used
        raw[name] = config[name]
    if sub:
        raw["intermediate"] = codec.trial_fields(config, ["intermediate"])["intermediate"]
    raw.update(extra)
    return TrialConfig.model_validate(raw)


def trial_params(spec: SearchSpec, config: dict[str, Any], overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a trial logs as params: every sampled dimension (resolved where it was inactive,
    e.g. ``multilingual_share`` = 0 under ``sequential``) and the fixed settings."""
    tc = to_trial_config(spec, config, **(overrides or {}))
    out: dict[str, Any] = codec.without_raw(config)
    for name, p in spec.parameters.items():
        if isinstance(p, SubsetParam | SimplexParam):
            continue
        if name not in out or not _active(p, config):
            out[name] = getattr(tc, name)
    for k, v in {**spec.trial, **(overrides or {})}.items():
        out.setdefault(k, v)
    return out
