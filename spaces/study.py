"""A study file's format, its typed form ``StudySpec``, and an arm resolved to the trial it runs.

A study compares a few fixed configurations (arms) over seeds that every arm shares, so each
comparison with the reference arm is paired seed by seed. Its file (unknown keys anywhere are
errors naming the file and the key; ``load_study`` raises every error, before Ray starts)::

    name: question                  # the study (and MLflow experiment) name
    reference: sequential           # the arm every other arm is compared with
    seeds: 10                       # N (seeds 0..N-1) or a list; shared by every arm (default 10)
    trial: {...}                    # TrialConfig fields every arm shares: benchmark, model, targets, fidelity
    run: {max_concurrent, cpus_per_trial, gpus_per_trial, max_failures}      # see ``StudyRunSettings``
    statistics: {split, cells, confidence, resamples, seed}                  # see ``StatisticsSettings``
    arms:                           # name -> a partial trial config, or the best trial of a search
      none: {intermediate_steps: 0}
      sequential: {schedule: sequential, intermediate: {mnli: 1.0}}
      tuned: {from_search: interleave, where: {schedule: interleaved}, set: {learning_rate: 1.0e-3}}

One arm's trial config, the later winning (``resolve_arm``)::

    inline arm:       TrialConfig defaults < study < trial < (CLI --set / --steps) < the arm's fields < seed
    from_search arm:  the search trial's config < study < trial < (CLI --set / --steps) < the arm's set < seed

where ``study`` is what the study itself sets: ``eval_dev`` off when it compares test scores (a dev
evaluation would be work nobody reads; ``split: dev`` keeps it, and refuses ``eval_dev: false``).

The search trial behind a ``from_search`` arm is found in the tracking store when the study
starts (``xstilts.search.study``), not here. Every arm must end up with the same evaluation
(``EVALUATION_FIELDS``: benchmark, data, targets, languages), or its scores could not be paired.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from xstilts.trainer.config import TrialConfig, format_validation_error

from .loading import validated_file

__all__ = ["StudySpec", "SearchArm", "StudyRunSettings", "StatisticsSettings", "StudyError", "load_study",
           "check_study", "resolve_arm", "evaluation_mismatch", "EVALUATION_FIELDS", "DEFAULT_SEEDS"]

DEFAULT_SEEDS = 10  # with n seeds the smallest two-sided permutation p is 2/2^n: 5 seeds never reach 0.05
# what every arm must share: the data each is scored on and how (else its scores are not paired)
EVALUATION_FIELDS = ("benchmark", "data_seed", "data_dir", "target_tasks", "eval_languages", "eval_max_examples",
                     "eval_clean")
_NAME = r"^[A-Za-z0-9_.-]+$"


class StudyError(ValueError):
    """An invalid study file, or a study that cannot start; the message names the file and the key."""


class SearchArm(BaseModel):
    """An arm taken from a search: the best completed trial among those ``where`` selects, run
    again on the study's seeds (fresh seeds: the search's selection does not flatter it)."""

    model_config = ConfigDict(extra="forbid")
    from_search: str  # a search run name (its MLflow parent), or a search name: its latest run
    # the trials' params that must match: {param: value} or {param: [values]}, e.g. {schedule: interleaved}
    where: dict[str, Any] = Field(default_factory=dict)
    pick: Literal["best"] = "best"  # the completed trial with the best objective (the search's metric and mode)
    set: dict[str, Any] = Field(default_factory=dict)  # TrialConfig fields set on top of the trial found


class StudyRunSettings(BaseModel):
    """How the trials run on Ray (the same settings as a search's)."""

    model_config = ConfigDict(extra="forbid")
    max_concurrent: int = Field(2, ge=1)  # trials at a time
    cpus_per_trial: float = Field(1, gt=0)
    gpus_per_trial: float = Field(0, ge=0)
    max_failures: int = Field(1, ge=0)  # retries of a trial whose worker died (from its last checkpoint)


class StatisticsSettings(BaseModel):
    """What is compared and how sure the comparison must be."""

    model_config = ConfigDict(extra="forbid")
    # the scores compared: the held-out test split, or dev (what a search selects on)
    split: Literal["test", "dev"] = "test"
    # all: every zero-shot language of every target, each target's mean and the overall mean;
    # averages: the means only (fewer comparisons for the Holm correction to share alpha over)
    cells: Literal["all", "averages"] = "all"
    confidence: float = Field(0.95, gt=0.5, lt=1.0)  # of the bootstrap intervals; Holm's alpha is 1 - confidence
    resamples: int = Field(10_000, ge=100)  # bootstrap resamples (and sign patterns past 16 seeds)
    seed: int = 0  # of the resampling, so a study's statistics are reproducible


class StudySpec(BaseModel):
    """A study: arms compared on shared seeds against a reference arm."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=_NAME)
    reference: str
    seeds: list[int] = Field(default_factory=lambda: list(range(DEFAULT_SEEDS)))
    trial: dict[str, Any] = Field(default_factory=dict)
    run: StudyRunSettings = Field(default_factory=StudyRunSettings)
    statistics: StatisticsSettings = Field(default_factory=StatisticsSettings)
    arms: dict[str, dict[str, Any]] = Field(min_length=2)
    source: str = ""  # the file it came from (set by load_study)

    @field_validator("seeds", mode="before")
    @classmethod
    def _seed_list(cls, v: Any) -> Any:
        if isinstance(v, int) and not isinstance(v, bool):
            if v < 1:
                raise ValueError(f"give at least one seed (got {v})")
            return list(range(v))
        return v

    @field_validator("seeds")
    @classmethod
    def _distinct(cls, v: list[int]) -> list[int]:
        if not v or len(set(v)) != len(v) or min(v) < 0:
            raise ValueError(f"seeds must be distinct non-negative integers, at least one (got {v})")
        return v

    @field_validator("trial")
    @classmethod
    def _trial_keys(cls, v: dict[str, Any]) -> dict[str, Any]:
        _check_trial_keys(v)
        return v

    @model_validator(mode="after")
    def _arms(self) -> StudySpec:
        import re

        for name in self.arms:
            if not re.match(_NAME, name):
                raise ValueError(f"arms.{name}: an arm name is letters, digits, '_', '.', '-' (it names metrics)")
        if self.reference not in self.arms:
            raise ValueError(f"reference: {self.reference!r} is not an arm (arms: {', '.join(self.arms)})")
        return self

    def search_arm(self, name: str) -> SearchArm | None:
        """The arm's search settings when it comes from a search, else None."""
        raw = self.arms[name]
        return SearchArm.model_validate(raw) if "from_search" in raw else None


def _check_trial_keys(v: dict[str, Any], where: str = "") -> None:
    """Partial trial configs: ``TrialConfig`` fields only, and no seed (the study's seeds set it)."""
    unknown = [k for k in v if k not in TrialConfig.model_fields]
    if unknown:
        raise ValueError(f"{where}{unknown[0]}: unknown key (not a trial setting)")
    if "seed" in v:
        raise ValueError(f"{where}seed: set by the study's `seeds` (every arm runs every seed)")


def resolve_arm(spec: StudySpec, name: str, searched: dict[str, Any] | None = None,
                overrides: dict[str, Any] | None = None, seed: int | None = None) -> TrialConfig:
    """The ``TrialConfig`` arm ``name`` runs (with ``seed``, default the study's first); ``searched``
    is the search trial's config for a ``from_search`` arm (raises pydantic's ValidationError)."""
    arm = spec.search_arm(name)
    if arm is not None and searched is None:
        raise ValueError(f"arm {name!r} comes from search {arm.from_search!r}: its trial's config is needed")
    base = dict(searched or {}) if arm is not None else {}
    own = arm.set if arm is not None else spec.arms[name]
    study = {"eval_dev": spec.statistics.split == "dev"}  # dev scores only where they are compared
    raw = {**base, **study, **spec.trial, **(overrides or {}), **own, "seed": spec.seeds[0] if seed is None else seed}
    return TrialConfig.model_validate(raw)


def evaluation_mismatch(configs: dict[str, TrialConfig]) -> str | None:
    """Why the arms' scores would not be paired (an evaluation field differs), or None."""
    names = list(configs)
    for f in EVALUATION_FIELDS:
        values = {n: getattr(configs[n], f) for n in names}
        first = values[names[0]]
        for n in names[1:]:
            if values[n] != first:
                return (f"arms.{n}.{f}: {values[n]!r} differs from arm {names[0]!r} ({first!r}); every arm is scored "
                        f"on the same data: set {f} in the study's `trial:`")
    return None


def _dev_turned_off(spec: StudySpec, overrides: dict[str, Any]) -> str | None:
    """Where ``eval_dev: false`` is set (``trial``, ``--set``, an arm), or None."""
    places = {"trial.eval_dev": spec.trial, "--set eval_dev=false": overrides}
    for name, raw in spec.arms.items():
        arm = spec.search_arm(name)
        places[f"arms.{name}.{'set.' if arm is not None else ''}eval_dev"] = arm.set if arm is not None else raw
    return next((where for where, raw in places.items() if raw.get("eval_dev") is False), None)


def load_study(path: str | Path) -> StudySpec:
    """Load and validate a study file; every error names the file and the key (``StudyError``)."""
    p = Path(path)
    spec = validated_file(p, StudySpec, "study", StudyError)
    check_study(spec, str(p))
    return spec


def check_study(spec: StudySpec, where: str, overrides: dict[str, Any] | None = None) -> None:
    """The checks that need the trainer's config: the shared trial block, every arm's keys, every
    inline arm resolved to a valid trial, and their evaluations equal."""
    try:
        TrialConfig.model_validate({**spec.trial, **(overrides or {})})
    except ValidationError as e:
        raise StudyError(format_validation_error(e, f"{where} (trial)")) from None
    inline: dict[str, TrialConfig] = {}
    for name in spec.arms:
        try:
            arm = spec.search_arm(name)
            if arm is not None:
                _check_trial_keys(arm.set, "set.")
            else:
                _check_trial_keys(spec.arms[name])
                inline[name] = resolve_arm(spec, name, overrides=overrides)
        except ValidationError as e:
            raise StudyError(format_validation_error(e, f"{where} (arms.{name})")) from None
        except ValueError as e:
            raise StudyError(f"{where}: invalid configuration\n  arms.{name}.{e}") from None
    no_dev = _dev_turned_off(spec, overrides or {})
    if no_dev and spec.statistics.split == "dev":
        raise StudyError(f"{where}: invalid configuration\n  {no_dev}: dev scores are compared (statistics.split: dev): "
                         "the trials must evaluate dev")
    problem = evaluation_mismatch(inline) if len(inline) > 1 else None
    if problem:
        raise StudyError(f"{where}: invalid configuration\n  {problem}")
