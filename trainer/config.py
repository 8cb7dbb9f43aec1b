"""The configs of a trial, typed and validated at load; nothing here imports torch.

* ``TrialConfig``: what one trial *is* — data, model, the searched dimensions, the budget, the
  engine settings. Two trials with equal configs train the same model.
* ``TrialRuntime``: where and how it runs — the home folder, torch threads, the output folder,
  resuming. It never changes what is trained, so a search fixes it for every trial and never
  logs it as a dimension.
* ``TinyModelSpec``: the shape and pretraining budget of the locally made tiny model.

Unknown keys are errors (``extra="forbid"``), so a typo in a YAML never becomes a silent
default; ``load_trial_config`` names the file in the error.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .codec import subset_members
from .data import control_languages, task_languages
from .synth import LANGUAGES
from .tasks import TARGET_TASKS, TASKS, TRANSLATED_TASKS, task_info

__all__ = [
    "TrialConfig", "TrialRuntime", "TinyModelSpec", "StageConfig", "ConfigError", "load_trial_config",
    "format_validation_error", "ScheduleKind", "RUNTIME_KEYS", "read_yaml_mapping",
]

ScheduleKind = Literal["sequential", "interleaved", "annealed", "stages"]
TaskRates = Literal["explicit", "proportional", "temperature", "uniform", "unimax"]


# How the tiny model is pretrained, in its cache key. 2: the MLM loss projects the masked positions
# only (``model.masked_lm_loss``): the same loss, gradients equal up to float rounding, so a model
# that differs in its last bits from one of procedure 1, made anew rather than mixed with old caches.
PRETRAIN_PROCEDURE = 2


class TinyModelSpec(BaseModel):
    """Shape and pretraining budget of the locally made tiny model (part of its cache key)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    layers: int = 2
    hidden: int = 64
    heads: int = 4
    ffn_width: int = 256  # the feed-forward width (XLMRobertaConfig.intermediate_size)
    max_len: int = 64
    pretrain_steps: int = Field(5000, ge=1)
    pretrain_batch: int = Field(128, ge=1)
    pretrain_lr: float = 2e-3
    # languages of the pretraining batches sampled with q_l ∝ n_l^(1/T): XLM-R's alpha=0.3 as T = 1/alpha
    pretrain_temperature: float = 3.0
    seed: int = 0
    data_seed: int = 0

    def key(self) -> str:
        """Cache key: the spec and the synth version it is made from (a new synth retrains it).

        The hash reads the two renamed fields under the names they were first hashed with, so a
        model cached before the rename is still found."""
        from .synth import SYNTH_VERSION  # pure Python, no torch

        raw = {**self.model_dump(), "synth_version": SYNTH_VERSION}
        if PRETRAIN_PROCEDURE > 1:  # a model pretrained by an older procedure is not reused
            raw["pretrain_procedure"] = PRETRAIN_PROCEDURE
        raw["intermediate"] = raw.pop("ffn_width")
        raw["language_temperature"] = raw.pop("pretrain_temperature")
        return hashlib.sha1(json.dumps(raw, sort_keys=True).encode()).hexdigest()[:10]

    def folder(self, home: Path) -> Path:
        """Where this model is cached under the home folder (``model.ensure_tiny_model`` makes it)."""
        return home / "models" / f"tiny-{self.key()}"

    def is_cached(self, home: Path) -> bool:
        return (self.folder(home) / "xstilts_pretrain.json").exists()


class StageConfig(BaseModel):
    """One explicit stage: ``steps`` phase-1 steps drawn from ``mixture`` (component -> rate);
    components are intermediate tasks or ``mlm`` (multilingual MLM, languages by temperature)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    steps: int = Field(ge=1)
    mixture: dict[str, float]

    @field_validator("mixture")
    @classmethod
    def _known(cls, v: dict[str, float]) -> dict[str, float]:
        known = sorted(n for n, i in TASKS.items() if i.role == "intermediate") + ["mlm"]
        for t, r in v.items():
            if t not in known:
                raise ValueError(f"unknown stage component {t!r}; known: {', '.join(known)}")
            if r < 0:
                raise ValueError(f"rate of {t!r} is negative ({r})")
        if sum(v.values()) <= 0:
            raise ValueError(f"all stage rates are zero: {v}")
        return v


class ConfigError(ValueError):
    """A config file is invalid; the message names the file and the key."""


class TrialConfig(BaseModel):
    """One trial: intermediate mixture + schedule, English target fine-tuning, zero-shot eval."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    # --- data and model
    benchmark: Literal["synth", "xtreme"] = "synth"
    data_seed: int = 0
    data_dir: str | None = None
    # "tiny" (synth only), a hub name (xlm-roberta-base) or a local checkpoint folder
    model: str = Field("tiny", validate_default=True)
    tiny: TinyModelSpec = Field(default_factory=TinyModelSpec)
    target_tasks: list[str] = Field(default_factory=lambda: ["xnli"])
    # None: every language of each target task (``TrialConfig.languages``); a list: those of them each task has
    eval_languages: list[str] | None = None
    eval_max_examples: int | None = None  # cap per language and split (reduced fidelity)
    # also score each target's ``test_clean`` split where it has one (synth: items none of whose
    # content words is English), logged as ``test_clean/zero_shot/<task>/<lang>``
    eval_clean: bool = False
    # translate-train: the target phase also trains on these languages' machine-"translated"
    # train split (no longer zero-shot for them); empty is XTREME's zero-shot setting
    translate_train_languages: list[str] = Field(default_factory=list)
    # multilingual MLM on a real benchmark reads <lang>.txt (or .txt.gz) here, one document per line
    # (CC-100's layout; trainer/corpora.py); None: <data_dir>/mlm. Synth's MLM reads synth's own corpora
    mlm_corpus_dir: str | None = None
    # the MLM languages (ISO 639-1; each needs its corpus); None: synth's every language, on a real
    # benchmark every language the target tasks are scored in (English too) that has a corpus file
    mlm_languages: list[str] | None = None
    mlm_max_docs: int = Field(100_000, ge=1)  # documents read per MLM language: the file's first ones (memory)

    # --- the searched dimensions
    intermediate: dict[str, float] = Field(default_factory=dict)  # task -> ratio (normalised)
    multilingual_share: float = Field(0.0, ge=0.0, lt=1.0)  # share of phase-1 steps on multilingual MLM
    language_temperature: float = Field(1.0, gt=0.0)  # q_l ∝ n_l^(1/T) inside the MLM component
    schedule: ScheduleKind = "sequential"
    learning_rate: float = Field(1e-3, gt=0.0)
    # how the intermediate tasks' rates are set: the given ratios ("explicit"), or from the chosen
    # tasks' train sizes: proportional (cap K), temperature (T, cap K), uniform, unimax
    task_rates: TaskRates = "explicit"
    task_temperature: float = Field(2.0, gt=0.0)
    examples_cap: int | None = Field(None, ge=1)  # K of T5/jiant examples-proportional mixing
    unimax_epochs: float = Field(1.0, gt=0.0)  # UniMax: at most this many epochs of any one component
    language_sampling: Literal["temperature", "unimax"] = "temperature"  # languages inside the MLM component
    multilingual_share_start: float = Field(0.0, ge=0.0, lt=1.0)  # annealed: MLM share at phase-1 step 0
    anneal_curve: Literal["linear", "cosine"] = "linear"
    stages: list[StageConfig] | None = None  # schedule "stages": explicit {steps, mixture} list
    # the languages each intermediate task is drawn in: one list for every task ([en, xa, xb], or the
    # string "en+xa+xb", which a categorical search parameter can take), or {task: [languages]} (a task
    # not named: English only); a language but English is the task's machine-translated train data
    intermediate_languages: list[str] | dict[str, list[str]] = Field(default_factory=lambda: ["en"])
    # how an example's language is drawn among a task's languages: uniform, or temperature
    # (q_l ∝ n_l^(1/T), n_l the task's examples in l, T the MLM's language_temperature)
    intermediate_language_sampling: Literal["uniform", "temperature"] = "uniform"
    # share of each translated task's examples drawn from its translations (English gets the rest; the
    # translations split it by intermediate_language_sampling); None: the rule over every listed language
    translated_share: float | None = Field(None, ge=0.0, le=1.0)

    # --- budget (fidelity)
    intermediate_steps: int = Field(300, ge=0)
    # phase-1 steps between probes (None: none). A probe fine-tunes a copy of the model on the
    # English target for probe_steps, scores it zero-shot on dev and reports that with a
    # checkpoint, so a scheduler (PBT over the mixture rates) can act during intermediate training
    probe_every: int | None = Field(None, ge=1)
    probe_steps: int = Field(50, ge=1)
    target_steps: int = Field(300, ge=1)
    batch_size: int = Field(32, ge=1)
    eval_every: int = Field(100, ge=1)  # target-phase steps between zero-shot evaluations/reports
    # evaluate on dev at all (every eval_every steps and at the end of phase 2). False: phase 2 reports
    # nothing, and the final report has the test scores but no dev ones; for runs that read test scores
    # only (a benchmark), never a search (its objective and schedulers read dev). Test scores are the same
    # either way: an evaluation draws no random number
    eval_dev: bool = True
    max_seq_len: int = Field(64, ge=8)

    # --- engine
    seed: int = 0
    zero_stage: int = Field(0, ge=0, le=3)
    gradient_clipping: float = 1.0
    warmup: float = Field(0.1, ge=0.0, le=1.0)
    lr_decay: Literal["linear", "cosine", "constant"] = "linear"  # after warmup
    grad_accum: int = Field(1, ge=1)  # micro-batches per optimizer step (batch_size is per micro-batch)
    bf16: Literal["auto", "on", "off"] = "auto"  # auto: on where the accelerator supports it
    dropout: float | None = Field(None, ge=0.0, lt=1.0)  # override every dropout of the model (None: keep)
    retrieval_layer: int | None = None  # hidden layer mean-pooled for retrieval (None: the middle one)
    checkpoint_every: int | None = Field(None, ge=1)  # steps between checkpoints, in either phase

    @field_validator("intermediate")
    @classmethod
    def _known_intermediate(cls, v: dict[str, float]) -> dict[str, float]:
        for t, r in v.items():
            if t not in TASKS or TASKS[t].role != "intermediate":
                known = sorted(n for n, i in TASKS.items() if i.role == "intermediate")
                raise ValueError(f"unknown intermediate task {t!r}; known: {', '.join(known)}")
            if r < 0:
                raise ValueError(f"ratio of {t!r} is negative ({r})")
        if v and sum(v.values()) <= 0:
            raise ValueError(f"all intermediate ratios are zero: {v}")
        return v

    @field_validator("intermediate_languages", mode="before")
    @classmethod
    def _languages_from_text(cls, v: Any) -> Any:
        return subset_members(v) if isinstance(v, str) else v  # "en+xa+xb" -> [en, xa, xb]

    @field_validator("intermediate_languages")
    @classmethod
    def _intermediate_languages_exist(cls, v: list[str] | dict[str, list[str]], info: ValidationInfo
                                      ) -> list[str] | dict[str, list[str]]:
        bench = info.data.get("benchmark")
        if bench is None:
            return v
        if isinstance(v, list):
            drawn = _drawn_tasks(info.data.get("intermediate") or {}, info.data.get("stages"))
            _check_language_list(v, "intermediate_languages", ("en", *_translated_languages(bench)))
            if [lang for lang in v if lang != "en"]:
                for t in drawn:
                    _check_translated(t, bench, "intermediate_languages")
            return v
        for t, langs in v.items():
            if t not in TASKS or TASKS[t].role != "intermediate":
                known = sorted(n for n, i in TASKS.items() if i.role == "intermediate")
                raise ValueError(f"intermediate_languages.{t}: unknown intermediate task {t!r}; known: {', '.join(known)}")
            if [lang for lang in langs if lang != "en"]:
                _check_translated(t, bench, f"intermediate_languages.{t}")
            _check_language_list(langs, f"intermediate_languages.{t}", ("en", *task_languages(bench, t, "translate_train")))
        return v

    @field_validator("translated_share")
    @classmethod
    def _translations_listed(cls, v: float | None, info: ValidationInfo) -> float | None:
        langs = info.data.get("intermediate_languages")
        if v is None or langs is None:
            return v
        drawn = _drawn_tasks(info.data.get("intermediate") or {}, info.data.get("stages"))
        by_task = {t: _languages_of(langs, t) for t in drawn}
        translated = {t: ls for t, ls in by_task.items() if [x for x in ls if x != "en"]}
        if v > 0 and not translated:
            raise ValueError(f"translated_share {v}: no intermediate task is drawn in a language but English "
                             f"(intermediate_languages: {langs}); list translations, or leave translated_share unset")
        for t, ls in translated.items():
            if v < 1 and "en" not in ls:
                raise ValueError(f"translated_share {v} leaves {1 - v:.2g} of {t}'s examples to English, which "
                                 f"intermediate_languages lists not for {t} ({', '.join(ls)}): add en, or set 1")
        return v

    @field_validator("target_tasks")
    @classmethod
    def _known_targets(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("at least one target task is needed")
        for t in v:
            if t not in TASKS or TASKS[t].role != "target":
                known = sorted(n for n, i in TASKS.items() if i.role == "target")
                raise ValueError(f"unknown target task {t!r}; known: {', '.join(known)}")
        return v

    @field_validator("model")
    @classmethod
    def _model_fits_benchmark(cls, v: str, info: ValidationInfo) -> str:
        if v == "tiny" and info.data.get("benchmark", "synth") != "synth":
            raise ValueError("'tiny' is made from the synth corpora and knows no real language: with benchmark "
                             "'xtreme' name a real checkpoint (xlm-roberta-base, xlm-roberta-large or a folder)")
        return v

    @field_validator("eval_languages")
    @classmethod
    def _languages_exist(cls, v: list[str] | None, info: ValidationInfo) -> list[str] | None:
        bench, targets = info.data.get("benchmark"), info.data.get("target_tasks")
        if v is None or bench is None or targets is None:
            return v
        known = sorted({lang for t in targets for lang in task_languages(bench, t)})
        unknown = [lang for lang in v if lang not in known and lang != "en"]  # English: scored wherever it exists
        if unknown:
            raise ValueError(f"unknown language(s) {unknown} for {', '.join(targets)} on benchmark {bench!r}; "
                             f"allowed: {', '.join(known)}")
        left_out = {"en", *control_languages(bench)}
        for t in targets:
            if not [lang for lang in v if lang in task_languages(bench, t) and lang not in left_out]:
                raise ValueError(f"{t} has none of {v} but {' and '.join(sorted(left_out))}, which the objective "
                                 f"leaves out: its zero-shot score would be empty (its languages: "
                                 f"{', '.join(task_languages(bench, t))})")
        return v

    @field_validator("translate_train_languages")
    @classmethod
    def _translate_train_exists(cls, v: list[str], info: ValidationInfo) -> list[str]:
        bench, targets = info.data.get("benchmark"), info.data.get("target_tasks")
        if not v or bench is None or targets is None:
            return v
        if "en" in v:
            raise ValueError("English is always trained on; list other languages")
        trained = [t for t in targets if task_info(t).family != "retrieval"]
        missing = [t for t in trained if not task_languages(bench, t, "translate_train")]
        if missing:
            have = sorted(t for t in TARGET_TASKS if task_languages(bench, t, "translate_train"))
            where = "" if bench == "synth" else f" on benchmark {bench!r}"
            raise ValueError(f"no translate-train data for {', '.join(missing)}{where} (tasks that have it: "
                             f"{', '.join(have) or 'none'})")
        for t in trained:
            have_langs = task_languages(bench, t, "translate_train")
            absent = [lang for lang in v if lang not in have_langs]
            if absent:
                raise ValueError(f"{t} has no translate-train data in {absent} (it has: {', '.join(have_langs)})")
        return v

    @field_validator("mlm_languages")
    @classmethod
    def _mlm_languages_named(cls, v: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if v is None:
            return v
        bad = [lang for lang in v if not re.fullmatch(r"[a-z]{2,3}", lang)]
        if bad:
            raise ValueError(f"mlm_languages: {bad} are not language codes (ISO 639-1, lower case: en, de, sw)")
        synth = [spec.code for spec in LANGUAGES]
        allowed = tuple(synth) if info.data.get("benchmark") == "synth" else tuple(v)
        _check_language_list(v, "mlm_languages", allowed)
        return v

    @model_validator(mode="after")
    def _corpus_folder_is_for_real_data(self) -> TrialConfig:
        if self.mlm_corpus_dir is not None and self.benchmark == "synth":
            raise ValueError("mlm_corpus_dir: synth's MLM reads synth's own corpora; the folder is for real benchmarks")
        return self

    @model_validator(mode="after")
    def _clean_split_exists(self) -> TrialConfig:
        if self.eval_clean and self.benchmark != "synth":
            raise ValueError("eval_clean: clean test items (no English content word) exist only in synth")
        return self

    def intermediate_languages_of(self, task: str) -> list[str]:
        """The languages intermediate task ``task`` is drawn in (English only unless listed)."""
        return _languages_of(self.intermediate_languages, task)

    def languages(self, task: str, split: str) -> list[str]:
        """The languages ``task`` is scored in on ``split`` (dev, test, test_clean): ``eval_languages``
        (default: every language of the task) that the task has in that split, English first."""
        have = task_languages(self.benchmark, task, split)
        others = [lang for lang in (self.eval_languages or have) if lang in have and lang != "en"]
        return ["en", *others] if "en" in have else others  # English is always scored where the task has it

    @model_validator(mode="after")
    def _schedule_consistent(self) -> TrialConfig:
        if self.schedule == "sequential" and self.multilingual_share > 0:
            raise ValueError("schedule 'sequential' is English-only (translated intermediate data aside): it draws no "
                             "multilingual MLM, so multilingual_share must be 0 "
                             "(use schedule 'interleaved' to mix in multilingual MLM)")
        if self.schedule == "stages":
            if not self.stages:
                raise ValueError("schedule 'stages' needs a non-empty 'stages' list of {steps, mixture}")
            total = sum(s.steps for s in self.stages)
            if total != self.intermediate_steps:
                raise ValueError(f"the stages add up to {total} steps but intermediate_steps is "
                                 f"{self.intermediate_steps}: make them equal")
        elif self.stages is not None:
            raise ValueError(f"'stages' is only read by schedule 'stages' (the schedule is {self.schedule!r})")
        return self


def _drawn_tasks(intermediate: dict[str, float], stages: list[StageConfig] | None) -> list[str]:
    """The intermediate tasks phase 1 may draw (a positive ratio or a stage's positive rate), sorted."""
    in_stages = {t for s in stages or [] for t, r in s.mixture.items() if r > 0 and t in TASKS}
    return sorted({t for t, r in intermediate.items() if r > 0} | in_stages)


def _languages_of(langs: list[str] | dict[str, list[str]], task: str) -> list[str]:
    return list(langs.get(task, ["en"])) if isinstance(langs, dict) else list(langs)


def _translated_languages(bench: str) -> list[str]:
    """Every language some intermediate task of ``bench`` has translations in."""
    return sorted({lang for t in TRANSLATED_TASKS for lang in task_languages(bench, t, "translate_train")})


def _check_language_list(langs: list[str], key: str, allowed: tuple[str, ...]) -> None:
    if not langs:
        raise ValueError(f"{key}: give at least one language")
    if len(set(langs)) != len(langs):
        raise ValueError(f"{key}: {langs} repeats a language")
    unknown = [lang for lang in langs if lang not in allowed]
    if unknown:
        raise ValueError(f"{key}: unknown language(s) {unknown}; allowed: {', '.join(allowed)}")


def _check_translated(task: str, bench: str, key: str) -> None:
    if not task_languages(bench, task, "translate_train"):
        where = "" if bench == "synth" else f" on benchmark {bench!r}"
        raise ValueError(f"{key}: {task} has no translated data{where} (tasks that have it: "
                         f"{', '.join(TRANSLATED_TASKS)}); draw it in English ({{{task}: [en]}})")


@dataclass(frozen=True)
class TrialRuntime:
    """Where and how a trial runs; never what it trains."""

    home: str | None = None  # $XSTILTS_HOME override (caches: synth, the tiny model)
    threads: int | None = None  # torch threads; None leaves torch's default
    output_dir: str | None = None  # results.json and checkpoints go here (xstilts train); None: a scratch folder
    resume: bool = True  # resume from output_dir's last checkpoint when there is one
    resume_from: str | None = None  # a checkpoint folder to continue from (a retried or exploited Tune trial)
    # a folder of finished phase-1 states (``phase1_cache.py``): a trial whose phase 1 is there starts
    # phase 2 from it, one whose phase 1 is not keeps its own there; None: phase 1 always trains
    phase1_cache: str | None = None


RUNTIME_KEYS = ("home", "threads", "output_dir", "resume", "phase1_cache")  # what a trial config file may also set


def format_validation_error(err: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid configuration"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = "unknown key (not allowed here)" if e["type"] == "extra_forbidden" else e["msg"]
        lines.append(f"  {key}: {msg}")
    return "\n".join(lines)


def read_yaml_mapping(path: Path, what: str, error: type[ValueError] = ConfigError) -> dict[str, Any]:
    """The top-level mapping of a YAML file (empty file: ``{}``); ``error`` names the file when it is
    missing, not YAML, or not a mapping. ``what`` says what the file should be ("config", "space")."""
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise error(f"{path}: no such {what} file") from None
    except yaml.YAMLError as e:
        raise error(f"{path}: not valid YAML: {e}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise error(f"{path}: expected a mapping of keys at the top level, got {type(raw).__name__}")
    return raw


def load_trial_config(path: str | Path, overrides: dict[str, Any] | None = None
                      ) -> tuple[TrialConfig, TrialRuntime]:
    """A trial config file: the ``TrialConfig`` and the ``TrialRuntime`` keys it may also carry
    (``home``, ``threads``, ``output_dir``, ``resume``, ``phase1_cache``, at the top level)."""
    p = Path(path)
    raw = read_yaml_mapping(p, "config")
    raw.update(overrides or {})
    runtime = TrialRuntime(**{k: raw.pop(k) for k in RUNTIME_KEYS if k in raw})
    try:
        return TrialConfig.model_validate(raw), runtime
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, str(p))) from None
