"""A search space's file format and its typed, validated form: ``SearchSpec`` and its parts.

A space file has five top-level keys (unknown keys anywhere are errors naming the file and
the key path; every error is raised by ``load_space``, before Ray starts)::

    name: default                  # the search (and MLflow experiment) name
    search:                        # HOW to search (see ``SearchSettings``; each field documented there)
      searcher: tpe | gp | random | grid | nsga2 | mixlaw
      scheduler: asha | none | pbt
      trials, max_concurrent, cpus_per_trial, gpus_per_trial, time_budget_s, max_failures,
      metric, mode, objectives: {METRIC: max|min, ...}   # several objectives (nsga2, tpe, random)
      seed, asha: {grace_period, reduction_factor}, pbt: {perturbation_interval, quantile_fraction, ...}
      confirm: {top_k, seeds}      # after the search: retrain the top_k on fresh seeds (``ConfirmSettings``)
      fidelities: {NAME: {intermediate_steps, target_steps, eval_max_examples?}}   # cheap copies of a trial
      asha: {..., proxy: NAME}     # ASHA's first rung: that fidelity's score, run first (``AshaSettings``)
    trial:  {...}                  # fixed TrialConfig fields (see xstilts.trainer.config)
    parameters:                    # the searched dimensions, sampled in this order
      NAME: {type: float, low, high, log?, grid?, when?}
      NAME: {type: int, low, high, log?, grid?, when?}
      NAME: {type: categorical, choices: [...], when?}
      NAME: {type: subset, members: [task, ...], min_size?, max_size?, sizes?: [k, ...], always?: [task, ...]}
      NAME: {type: simplex, over: SUBSET_NAME}           # ratios over the chosen members
    points_to_evaluate:            # optional seed configurations, tried first (in this order)
      - {intermediate_tasks: mnli+sst2, ratios: {mnli: 0.7, sst2: 0.3}, schedule: sequential}

A subset is searched as one flag ``tasks.<t>`` per member (``always`` members excepted) and written
``"a+b"`` everywhere else (``xstilts.spaces.sampling``). Parameters are sampled in file order, except
that one naming another (``when``, ``over``) comes after it. ``when: {OTHER: value}`` (or ``{OTHER: [v1, v2]}``) makes a parameter present
only when a categorical parameter has that value (Optuna's conditional, define-by-run spaces).

Non-subset parameter names must be ``TrialConfig`` fields. Task names are checked against the
trainer's registry (``xstilts.trainer.tasks.TASKS``) here; the fixed ``trial`` part, the
languages and the seed points are checked when the file is loaded (``xstilts.spaces.loading``),
where the space can be sampled.
"""

from __future__ import annotations

import itertools
import math
import random
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from xstilts.trainer import codec
from xstilts.trainer.config import TrialConfig
from xstilts.trainer.names import OBJECTIVE
from xstilts.trainer.tasks import INTERMEDIATE_TASKS

__all__ = ["FloatParam", "IntParam", "CategoricalParam", "SubsetParam", "SimplexParam", "Param",
           "AshaSettings", "PbtSettings", "ConfirmSettings", "FidelitySettings", "SearchSettings", "SearchSpec"]


def _intermediate_tasks() -> list[str]:
    return sorted(INTERMEDIATE_TASKS)


class _Param(BaseModel):
    model_config = ConfigDict(extra="forbid")
    when: dict[str, Any] | None = None  # {categorical: value or [values]}: present only then

    def is_active(self, values: dict[str, Any]) -> bool:
        """Whether the parameter is present, given the values of those sampled before it."""
        if not self.when:
            return True
        return all(values.get(k) in (v if isinstance(v, list) else [v]) for k, v in self.when.items())


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

    def allowed_sizes(self) -> list[int]:
        """The sizes a chosen subset may have, ascending (0: ``"none"``, no intermediate training)."""
        hi = len(self.members) if self.max_size is None else self.max_size
        sizes = sorted(set(self.sizes)) if self.sizes is not None else range(self.min_size, hi + 1)
        return [k for k in sizes if k >= len(self.always)]

    def free(self) -> list[str]:
        """The members the searcher decides on, one flag ``tasks.<t>`` each: all but ``always``."""
        return [m for m in self.members if m not in self.always]

    def choices(self) -> list[str]:
        """Every allowed subset, written ``"a+b"`` (members in file order; ``"none"`` first)."""
        free = self.free()
        return [codec.subset_value(m for m in self.members if m in self.always or m in combo)
                for k in self.allowed_sizes() for combo in itertools.combinations(free, k - len(self.always))]

    def draw(self, rng: random.Random) -> list[str]:
        """A subset drawn uniformly from the allowed ones (not one coin per task, which would favour
        subsets of half the members): its size k with weight C(free, k − |always|), then k members."""
        free, n_always = self.free(), len(self.always)
        sizes = self.allowed_sizes()
        k = rng.choices(sizes, weights=[math.comb(len(free), s - n_always) for s in sizes])[0]
        picked = set(rng.sample(free, k - n_always))
        return [m for m in self.members if m in self.always or m in picked]

    def repaired(self, chosen: list[str], rng: random.Random) -> list[str]:
        """The allowed subset nearest ``chosen`` (plus ``always``): unchanged when allowed, else the
        fewest members added or dropped to reach the nearest allowed size, which ones drawn by ``rng``
        (a flag vector that breaks ``min_size``/``max_size``; see ``sampling._suggest_subset``)."""
        have = set(chosen) | set(self.always)
        sizes = self.allowed_sizes()
        if len(have) not in sizes:
            gap = min(abs(k - len(have)) for k in sizes)
            k = rng.choice([s for s in sizes if abs(s - len(have)) == gap])
            if k > len(have):
                have |= set(rng.sample([m for m in self.members if m not in have], k - len(have)))
            else:
                have -= set(rng.sample([m for m in self.members if m in have and m not in self.always],
                                       len(have) - k))
        return [m for m in self.members if m in have]

    def canonical(self, value: Any) -> str:
        """A subset written as ``"a+b"``, ``[a, b]`` or ``"none"`` → the choice string."""
        chosen = value if isinstance(value, list) else codec.subset_members(str(value))
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
    """ASHA over the zero-shot evaluations (one rung per ``eval_every`` target steps). With ``proxy``
    (a name in ``search.fidelities``) every trial first runs that cheap fidelity and reports its score
    as its first result, so ASHA's first rung (``grace_period: 1``) decides on it; a trial ASHA keeps
    then runs in full from the start (its reports follow: the proxy's model is not continued, as in
    Hyperband's successive halving with restarts). Opt-in: ``xstilts bench search --only
    rank_agreement`` measures how well a fidelity ranks trials before a space should rely on it."""

    model_config = ConfigDict(extra="forbid")
    grace_period: int = Field(1, ge=1)  # evaluations every trial gets before it may be stopped
    reduction_factor: float = Field(2, gt=1)  # keep the top 1/reduction_factor at each rung
    proxy: str | None = None  # a fidelity of search.fidelities whose score is every trial's first report


class FidelitySettings(BaseModel):
    """A cheap fidelity: the same configuration trained for fewer steps — its schedule (an annealed
    mixture's path, the warm-up and learning-rate decay) compressed to them, not cut short — and
    scored on at most ``eval_max_examples`` dev and test examples per language, once, at its end.
    Its score is the trial's at a lower budget, as in Hyperband or BOHB; ``bench search --only
    rank_agreement`` measures its Spearman with the full score and its share of a full trial's seconds."""

    model_config = ConfigDict(extra="forbid")
    intermediate_steps: int = Field(ge=1)  # phase-1 steps (fewer than the trial's)
    target_steps: int = Field(ge=1)  # phase-2 steps (at most the trial's)
    eval_max_examples: int | None = Field(None, ge=1)  # examples per language and split (None: the trial's cap)

    def overrides(self, full: TrialConfig) -> dict[str, Any]:
        """The ``TrialConfig`` fields that make ``full`` this fidelity: fewer steps (never more than
        ``full``'s, e.g. under ``--steps``), one dev evaluation at the end, the evaluation cap."""
        target = min(self.target_steps, full.target_steps)
        out: dict[str, Any] = {"intermediate_steps": min(self.intermediate_steps, full.intermediate_steps),
                               "target_steps": target, "eval_every": target, "probe_every": None,
                               "checkpoint_every": None}
        if self.eval_max_examples is not None:
            out["eval_max_examples"] = min(self.eval_max_examples, full.eval_max_examples or self.eval_max_examples)
        return out

    def config(self, full: TrialConfig) -> TrialConfig:
        """``full`` at this fidelity (validated again)."""
        return TrialConfig.model_validate({**full.model_dump(), **self.overrides(full)})


class PbtSettings(BaseModel):
    """Population-based training over the mixture: the population is sampled at random from the
    space, then every ``perturbation_interval`` reports the bottom ``quantile_fraction`` copy the
    top's checkpoint and perturb its ``mutate`` dimensions (``ratios`` = the simplex rates)."""

    model_config = ConfigDict(extra="forbid")
    perturbation_interval: int = Field(1, ge=1)
    quantile_fraction: float = Field(0.25, gt=0, le=0.5)
    resample_probability: float = Field(0.25, ge=0, le=1)
    mutate: list[str] = Field(default_factory=lambda: ["ratios", "multilingual_share"], min_length=1)


class ConfirmSettings(BaseModel):
    """The confirm phase: when the search ends, its ``top_k`` completed trials (by the objective) are
    trained again on ``seeds`` training seeds none of its trials used, and the search recommends the
    one with the best mean over those seeds (reported as mean ± SE). A search's own best is one
    seed's score, picked as the maximum of many noisy ones: it overstates what its configuration
    gives. Costs ``top_k × seeds`` more trials. Absent (or ``--no-confirm``): no confirm phase."""

    model_config = ConfigDict(extra="forbid")
    top_k: int = Field(2, ge=1)  # how many of the best completed trials are trained again
    seeds: int = Field(3, ge=2)  # fresh training seeds per candidate (at least 2, for an SE)


class SearchSettings(BaseModel):
    """How a space is searched; the CLI may override the budget fields."""

    model_config = ConfigDict(extra="forbid")
    # Optuna sampler (grid: enumerated; mixlaw: xstilts.search.mixlaw, a regression over the reports)
    searcher: Literal["tpe", "gp", "random", "grid", "nsga2", "mixlaw"] = "tpe"
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
    confirm: ConfirmSettings | None = None  # retrain the best trials on fresh seeds at the end (None: off)
    # cheap fidelities the space offers, by name (``FidelitySettings``); asha.proxy may name one
    fidelities: dict[str, FidelitySettings] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _objectives(self) -> SearchSettings:
        if self.objectives is not None:
            if len(self.objectives) < 2:
                raise ValueError("objectives: give at least two (one objective is `metric` + `mode`)")
            if self.searcher in ("gp", "grid", "mixlaw"):
                raise ValueError(f"objectives: searcher {self.searcher!r} optimises one objective; "
                                 "use nsga2, tpe or random")
            self.metric, self.mode = next(iter(self.objectives.items()))
        elif self.searcher == "nsga2":
            raise ValueError("searcher 'nsga2' needs `objectives` (e.g. {zero_shot/avg: max, zero_shot/worst: max})")
        if self.asha.proxy is not None and self.asha.proxy not in self.fidelities:
            raise ValueError(f"asha.proxy: {self.asha.proxy!r} is not a fidelity of search.fidelities "
                             f"(offered: {', '.join(self.fidelities) or 'none'})")
        if self.scheduler == "pbt" and self.searcher != "random":
            raise ValueError(f"scheduler 'pbt' samples its population at random and cannot follow a model-based "
                             f"searcher; set searcher: random (got {self.searcher!r})")
        return self

    def proxy_fidelity(self) -> FidelitySettings | None:
        """The fidelity every trial runs first (``asha.proxy``), when ASHA is the scheduler."""
        return self.fidelities[self.asha.proxy] if self.scheduler == "asha" and self.asha.proxy else None

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
            raise ValueError(f"{bad}: reserved parameter names (_u.*, tasks.*, ratio.*, {codec.NUMBER})")
        return v

    @model_validator(mode="after")
    def _cross_checks(self) -> SearchSpec:
        """References between parameters, and what the searcher and scheduler need of them; the
        seed points are checked by ``load_space``, which can sample the space."""
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
        if "eval_dev" in self.parameters or self.trial.get("eval_dev") is False:
            raise ValueError("eval_dev: a search selects on dev scores, so its trials evaluate dev (only a study "
                             "comparing test scores turns it off)")
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
        return self

    def subset(self) -> tuple[str, SubsetParam] | None:
        return next(((n, p) for n, p in self.parameters.items() if isinstance(p, SubsetParam)), None)

    def with_overrides(self, **search: Any) -> SearchSpec:
        upd = {k: v for k, v in search.items() if v is not None}
        return self.model_copy(update={"search": self.search.model_copy(update=upd)})

    def n_trials(self) -> int:
        """The number of trials: ``search.trials``; for the grid, at most the grid's size."""
        if self.search.searcher == "grid":
            from .sampling import grid_points  # here, not at the top: sampling imports this module

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


