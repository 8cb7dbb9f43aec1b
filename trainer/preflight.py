"""Checks before training: what a trial will need, found missing or broken before it starts.

    TrialConfig ... ──data_needs──► (task, split, language) ... ──check_data──► every record read, checked
                ──check_model──► the encoder folder exists; its config and tokenizer load
                ──check_data──► (real data, MLM in phase 1) the corpus folder, a non-empty UTF-8 file per MLM language
    home ──check_home──► writable        ensure_deepspeed_op ──► DeepSpeed's CPU op built (or built now)

``preflight_trials`` runs them all and returns a ``Preflight``: every problem found at once (each
naming the file and line or row, the field, the value and what is allowed), notes on what will be
made before training (synth generated, the tiny model pretrained) and what was checked.
``xstilts train`` runs it before its trial; ``xstilts check`` and ``xstilts search`` add the
search's own checks (``xstilts.search.preflight``). Nothing here generates data or pretrains.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import TrialConfig
from .corpora import CorpusError, corpus_plan, read_docs
from .data import load_records, synth_benchmark
from .engine import deepspeed_op_file, ensure_deepspeed_op, start_deepspeed_op_build
from .home import HomeError, check_writable
from .hub import DataNotFoundError, hub_unavailable
from .model import local_model_folder
from .records import RecordError
from .schedule import phase1_tasks, phase1_uses_mlm
from .synth import LANGUAGES, synth_folder
from .tasks import task_info

__all__ = ["Need", "Preflight", "data_needs", "check_data", "check_model", "check_home", "check_deepspeed_op",
           "preflight_trials", "DETAILED"]

DETAILED = 20  # problems shown with every line; later ones with their first line only
Log = Callable[[str], None]


@dataclass(frozen=True, order=True)
class Need:
    """One task x split x language a trial reads; ``split`` is ours (train, dev, test,
    translate_train, test_clean); task ``corpus`` is synth's monolingual MLM corpus."""

    task: str
    split: str
    lang: str

    def __str__(self) -> str:
        return f"{self.task} {self.split} {self.lang}"


@dataclass
class Preflight:
    """What the checks found. ``problems``: one message each (its first line says what; the others
    list the details); ``notes``: what will be made before training; ``checked``: what passed."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    def merge(self, other: Preflight) -> Preflight:
        self.problems += [p for p in other.problems if p not in self.problems]
        self.notes += [n for n in other.notes if n not in self.notes]
        self.checked += other.checked
        return self

    def text(self) -> str:
        lines = [f"checked: {c}" for c in self.checked] + [f"note: {n}" for n in self.notes]
        if not self.problems:
            return "\n".join([*lines, f"no problems found ({self.seconds:.1f}s)"])
        n = len(self.problems)
        lines.append(f"{n} problem{'s' * (n > 1)} found before training ({self.seconds:.1f}s); nothing was trained:")
        for i, p in enumerate(self.problems, 1):
            first, *rest = p.splitlines()
            lines.append(f"  {i}. {first}")
            if i <= DETAILED:
                lines += [f"     {r}" for r in rest]
        if n > DETAILED:
            lines.append(f"  (problems after the first {DETAILED} show their first line only)")
        return "\n".join(lines)


def data_needs(cfg: TrialConfig) -> list[Need]:
    """Every task x split x language ``run_trial`` reads for ``cfg``, in the order it reads them."""
    needs = []
    for t in phase1_tasks(cfg):  # English train, then the translations it is drawn in
        needs += [Need(t, "train", "en"), *(Need(t, "translate_train", lang)
                                            for lang in cfg.intermediate_languages_of(t) if lang != "en")]
    if phase1_uses_mlm(cfg) and cfg.benchmark == "synth":
        needs += [Need("corpus", "train", lang) for lang in cfg.mlm_languages or [spec.code for spec in LANGUAGES]]
    for t in cfg.target_tasks:
        info = task_info(t)
        if info.family != "retrieval":
            needs.append(Need(t, "train", "en"))
            needs += [Need(t, "translate_train", lang) for lang in cfg.translate_train_languages]
        for split in ("dev", "test"):
            needs += [Need(t, split, lang) for lang in cfg.languages(t, split)]
        if cfg.eval_clean and "test_clean" in info.splits:
            needs += [Need(t, "test_clean", lang) for lang in cfg.languages(t, "test_clean") if lang != "en"]
    return needs


def _source(cfg: TrialConfig, need: Need) -> tuple[Any, ...]:
    """What a need reads: two needs with one source (XQuAD's dev and test; a target's English train
    that is an intermediate task's) are read once."""
    task, split = need.task, need.split
    if task != "corpus":
        info = task_info(task)
        if split == "train" and info.english_train:
            task, info = info.english_train, task_info(info.english_train)
        split = info.splits.get(split, split)
    return cfg.benchmark, cfg.data_seed, cfg.data_dir, task, split, need.lang


def _read(cfg: TrialConfig, need: Need, root: Path) -> int:
    if need.task == "corpus":
        return len(synth_benchmark(str(root), cfg.data_seed).corpus(need.lang))
    return len(load_records(cfg.benchmark, need.task, need.split, need.lang, home=str(root), seed=cfg.data_seed,
                            data_dir=cfg.data_dir))


def check_data(cfgs: Iterable[TrialConfig], root: Path) -> Preflight:
    """Read every record each config needs and check it against its task's schema. Synth not
    generated yet is a note (it is generated, then checked as it is read, before training)."""
    out, seen = Preflight(), set[tuple[Any, ...]]()
    per_need: dict[str, list[Need]] = {}  # an error -> the needs it stops (one bad file serves several languages)
    sets = rows = 0
    corpora: list[int] = []  # the documents read of each MLM corpus file that passed
    for cfg in cfgs:
        if phase1_uses_mlm(cfg) and cfg.benchmark != "synth":
            corpora += _check_corpora(cfg, out, seen)
        if cfg.benchmark == "synth" and not (synth_folder(root, cfg.data_seed) / "manifest.json").exists():
            out.notes.append(f"synth (seed {cfg.data_seed}) is not generated yet: it will be generated into "
                             f"{synth_folder(root, cfg.data_seed)} before training, its records checked as read")
            continue
        for need in data_needs(cfg):
            key = _source(cfg, need)
            if key in seen:
                continue
            seen.add(key)
            try:
                rows += _read(cfg, need, root)
                sets += 1
            except (RecordError, DataNotFoundError, ValueError) as e:
                per_need.setdefault(str(e), []).append(need)
    # after what concerns whole configurations
    out.problems += [f"data {'; '.join(map(str, needs))}: {msg}" for msg, needs in per_need.items()]
    if sets:
        out.checked.append(f"data: {sets} task/split/language sets, {rows} records read and schema-checked")
    if corpora:
        out.checked.append(f"mlm corpora: {len(corpora)} file(s), {sum(corpora)} documents read as UTF-8 "
                           "(up to mlm_max_docs each)")
    return out


def _check_corpora(cfg: TrialConfig, out: Preflight, seen: set[tuple[Any, ...]]) -> list[int]:
    """The MLM text of a real benchmark's ``cfg``: its folder, a file for every MLM language, each
    read (as far as the trial reads it: ``mlm_max_docs`` documents) as non-empty UTF-8 text. Adds
    problems (one line each) and notes to ``out``; returns the documents of each file that passed."""
    plan = corpus_plan(cfg)
    out.problems += [p for p in plan.problems() if p not in out.problems]
    out.notes += [n for n in plan.notes() if n not in out.notes]
    docs = []
    for lang, path in plan.files.items():
        if ("mlm", path, cfg.mlm_max_docs) in seen:
            continue
        seen.add(("mlm", path, cfg.mlm_max_docs))
        try:
            n = sum(1 for _ in read_docs(path, cfg.mlm_max_docs))
        except CorpusError as e:
            out.problems.append(f"mlm corpus {e} (MLM language {lang!r})")
            continue
        if n == 0:
            out.problems.append(f"mlm corpus {path}: empty (no non-blank line) for MLM language {lang!r}")
        else:
            docs.append(n)
    return docs


def _load_model_files(name: str) -> None:
    """Load the config and the tokenizer of ``name`` (a folder, or a hub name from the cache when
    the hub cannot be reached)."""
    from transformers import AutoConfig, AutoTokenizer

    offline = local_model_folder(name) is None and hub_unavailable() is not None
    AutoConfig.from_pretrained(name, local_files_only=offline)
    AutoTokenizer.from_pretrained(name, local_files_only=offline)


def check_model(cfgs: Iterable[TrialConfig], root: Path) -> Preflight:
    """The encoder of each config: the tiny model cached (else a note: it will be pretrained), or a
    folder that exists, or a hub name; its config and tokenizer load."""
    out, seen = Preflight(), set()
    for cfg in cfgs:
        name = str(cfg.tiny.folder(root)) if cfg.model == "tiny" else cfg.model
        if name in seen:
            continue
        seen.add(name)
        if cfg.model == "tiny" and not cfg.tiny.is_cached(root):
            out.notes.append(f"model tiny is not pretrained yet: it will be pretrained ({cfg.tiny.pretrain_steps} "
                             f"MLM steps) into {name} before training")
            continue
        folder = local_model_folder(name)
        if folder is not None and not folder.is_dir():
            out.problems.append(f"model: {folder} is not a folder (no such checkpoint); give a local folder with "
                                "config.json and the tokenizer files, or a hub name such as xlm-roberta-base")
            continue
        try:
            _load_model_files(name)
        except Exception as e:  # noqa: BLE001 - whatever transformers raises is one problem line
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            out.problems.append(f"model {cfg.model}: its config or tokenizer does not load from {name}: "
                                f"{type(e).__name__}: {first}")
            continue
        out.checked.append(f"model {cfg.model}: config and tokenizer load" + (f" ({name})" if folder else ""))
    return out


def check_home(root: Path) -> Preflight:
    out = Preflight()
    try:
        check_writable(root)
        out.checked.append(f"home {root}: writable")
    except HomeError as e:
        out.problems.append(str(e))
    return out


def check_deepspeed_op(log: Log = print, background: bool = False) -> Preflight:
    """DeepSpeed's CPU op: built, or built now (with progress) so that no trial waits for it; with
    ``background``, its build started in a process of its own (the caller makes its data and model
    meanwhile, then ``engine.wait_deepspeed_op``), once a compiler and ninja are found."""
    out = Preflight()
    try:
        out.checked.append(f"DeepSpeed: {(start_deepspeed_op_build if background else ensure_deepspeed_op)(log)}")
    except RuntimeError as e:
        out.problems.append(str(e))
    return out


def preflight_trials(cfgs: Iterable[TrialConfig], root: Path, log: Log = print, refused: bool = False,
                     op_background: bool = False) -> Preflight:
    """Every trainer-side check for ``cfgs``: the home folder, the data, the model, DeepSpeed's op
    (not built into a home that cannot be written, nor when another problem, here or ``refused``
    by the caller's checks, refuses the run anyway: a refusal comes at once, not after the build;
    ``op_background``: see ``check_deepspeed_op``)."""
    t0, configs = time.perf_counter(), list(cfgs)
    out = check_home(root)
    home_ok = out.ok
    out.merge(check_model(configs, root)).merge(check_data(configs, root))
    op = deepspeed_op_file()
    if home_ok and (out.ok and not refused or op is None or op.exists()):
        out.merge(check_deepspeed_op(log, op_background))
    elif home_ok:
        out.notes.append("DeepSpeed's CPU op: not built yet; it is built (once) when the problems above are fixed")
    out.seconds = time.perf_counter() - t0
    return out
