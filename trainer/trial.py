"""One trial, start to end: ``run_trial(config, report)`` runs the steps of a ``TrialRecipe``.

    setup            encoder checkpoint -> multi-task model (one head per intermediate task); data -> token ids
                     -> BatchStreams (one per task and language, one per MLM language); phase-1 schedule;
                     resume point
    run_intermediate phase 1: intermediate training on a schedule of mixtures (tasks by rate,
                     multilingual MLM whose languages are sampled with temperature T or UniMax), one
                     component per step (a task's language drawn among English and its translations by
                     ``intermediate_languages``); every ``probe_every`` steps a probe (a short English target
                     fine-tune of a copy, scored zero-shot) reported with a checkpoint; or its end state
                     taken from ``TrialRuntime.phase1_cache`` (``phase1_cache.py``), kept there if absent
    run_target       phase 2: a head per target task; English fine-tuning on the target task(s); every
                     ``eval_every`` steps a zero-shot evaluation in every language of each target
                     (``TrialConfig.languages``; none without ``eval_dev``), reported with a checkpoint
    finish           test-set evaluation in every language; results reported, returned (and written);
                     if the test phase fails, the dev results are reported and written first (partial)

    TrialConfig ─► setup ─► run_intermediate ─► run_target ─► finish ─► report(final) / results.json
                              │  probe(step)       │  evaluate("dev")    evaluate("test")
                              └── save_checkpoint ─┴── (every checkpoint_every steps and at every report)

It knows nothing of Ray, Optuna or MLflow: it reports through the callable it is handed,
``report(metrics, checkpoint_dir=None)``, so the same trial runs under Ray Tune, from
``xstilts train`` and inside a plain pytest.

Exact resume: a checkpoint (DeepSpeed's ``save_checkpoint``: model, optimizer, LR scheduler,
plus our client state: phase, step, the schedule sampler's, the language samplers' and every data
stream's RNG and position, the masking generator, torch's RNG, the loss history) is written every
``checkpoint_every`` steps in either phase and at every report (``checkpoints.py``).
``run_trial(..., runtime=TrialRuntime(resume_from=DIR))`` (or a runtime whose ``output_dir`` holds
one, with ``resume`` on) continues from it and ends with the same metrics, bit for bit on CPU, as a
run that was never interrupted.

Phase 1 depends on its own config only: the target heads are added at phase 2 (each from a seed of
the trial's seed and the task), and each phase starts torch's RNG from a seed of its own, so the
targets change no draw of phase 1 and a phase 1 taken from the cache gives the very metrics of one
trained here.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from .checkpoints import (
    CHECKPOINT_DIR,
    find_checkpoint,
    latest_checkpoint,
    load_engine_state,
    read_client_state,
    save_checkpoint,
)
from .config import TrialConfig, TrialRuntime
from .corpora import encode_docs, mlm_documents
from .data import control_languages, load_records
from .engine import bf16_supported, build_engine, engine_step, world
from .evaluation import ZeroShotEvaluator, objective_languages
from .families import Encoded, collate, encode
from .home import home, use_home_torch_extensions
from .mixture import Mixture, MixtureSampler, language_rates, temperature_rates, unimax_rates
from .model import MultiTaskModel, ensure_tiny_model, load_pretrained, mask_tokens, pad
from .names import TRIAL_DONE, TRIAL_PARTIAL
from .phase1_cache import load_phase1, phase1_key, store_phase1
from .schedule import (
    Schedule,
    ScheduleSampler,
    phase1_mixture,
    phase1_schedule,
    phase1_tasks,
    phase1_uses_mlm,
)
from .streams import BatchStream, as_random_state
from .tasks import task_info

__all__ = ["run_trial", "TrialRecipe", "TrialProgress", "Report", "objective_languages"]

Report = Callable[..., None]
Sampler = MixtureSampler | ScheduleSampler  # draws the component of each step


def _seed(seed: int, what: str) -> int:
    """A seed of its own for ``what`` (a phase, a head) of a trial with seed ``seed``."""
    return int.from_bytes(hashlib.sha256(f"{seed}-{what}".encode()).digest()[:8], "little") >> 1


def run_trial(cfg: TrialConfig, report: Report | None = None, *, runtime: TrialRuntime | None = None,
              log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run one trial. Without ``runtime.output_dir`` its checkpoints go to a scratch folder that is
    removed however the trial ends: done, raising, or stopped by its caller (Tune stops a pruned
    trial by raising ``SystemExit`` out of its next ``report``)."""
    rt = runtime or TrialRuntime()
    scratch: Path | None = None
    if rt.output_dir:
        checkpoint_root = Path(rt.output_dir) / CHECKPOINT_DIR
    else:
        scratch = checkpoint_root = Path(tempfile.mkdtemp(prefix="xstilts-ckpt-"))
    try:
        recipe = TrialRecipe(cfg, rt, report, log, checkpoint_root=checkpoint_root)
        recipe.setup()
        recipe.run_intermediate()
        metrics = recipe.run_target()
        return recipe.finish(metrics)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


@dataclass
class TrialProgress:
    """What a checkpoint carries of the trial's own bookkeeping (the client state's loss history)."""

    phase1_losses: list[float] = field(default_factory=list)  # one per phase-1 step
    phase2_losses: list[float] = field(default_factory=list)  # one per phase-2 step
    chunk: list[float] = field(default_factory=list)  # phase-2 losses since the last evaluation
    first_loss: float = float("nan")  # mean phase-2 loss of the chunk ending at step min(20, target_steps)
    metrics: dict[str, Any] = field(default_factory=dict)  # the last phase-2 evaluation's report

    def state_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> TrialProgress:
        return cls(**{f.name: state[f.name] for f in fields(cls)})


class TrialRecipe:
    """The steps of one trial, in order: ``setup``, ``run_intermediate``, ``run_target``, ``finish``.
    Its state lives on the object; ``run_trial`` is the entry point that runs them."""

    def __init__(self, cfg: TrialConfig, runtime: TrialRuntime, report: Report | None,
                 log: Callable[[str], None], *, checkpoint_root: Path) -> None:
        self.cfg, self.rt, self.log = cfg, runtime, log
        self.report: Report = report or (lambda metrics, checkpoint_dir=None: None)
        self.checkpoint_root = checkpoint_root
        self.t_start = time.perf_counter()
        self.times: dict[str, float] = {}  # seconds per part, reported as time/<part>
        self.progress = TrialProgress()
        self.streams: dict[str, BatchStream] = {}  # every component's training batches
        self.lang_sampler: MixtureSampler | None = None  # the language of each MLM step
        self.mlm_docs: dict[str, int] = {}  # MLM language -> documents held (its size for the sampler)
        self.mlm_rates: dict[str, float] = {}  # MLM language -> its share of the MLM steps
        self.task_languages: dict[str, dict[str, float]] = {}  # intermediate task -> its languages' rates
        self.task_lang_samplers: dict[str, MixtureSampler] = {}  # the language of a task's step (several only)
        self.schedule: Schedule | None = None  # phase 1 (None: no intermediate training)
        self.mix = Mixture()  # phase 1's mixture (the schedule's overall rates)
        self.resume_point: Path | None = None  # the checkpoint this run continues from
        self.resumed: dict[str, Any] | None = None  # its client state
        self.engine_name = ""
        # where phase 1's end state came from: "trained" (here, in part if resumed in phase 1), "cache"
        # (TrialRuntime.phase1_cache), "checkpoint" (resumed in phase 2); None without phase 1
        self.phase1_source: str | None = None

    # ---- setup ----------------------------------------------------------------------------------

    def setup(self) -> None:
        """Model, tokenizer, languages, data streams, samplers, phase-1 schedule; the resume point."""
        cfg = self.cfg
        if self.rt.threads:
            torch.set_num_threads(self.rt.threads)
        torch.manual_seed(cfg.seed)
        self.root = home(self.rt.home)
        use_home_torch_extensions(self.root)  # DeepSpeed's ops build here unless TORCH_EXTENSIONS_DIR is set
        self.rank, self.world_size = world()
        mlm = self._load_encoder()
        self.controls = control_languages(cfg.benchmark)  # scored, never part of the objective
        self.evaluator = ZeroShotEvaluator(cfg, self.tok.pad_token_id, self.controls, self._encode)
        sizes = self._intermediate_streams()
        if phase1_uses_mlm(cfg):
            sizes["mlm"] = self._mlm_streams()
        self.schedule = phase1_schedule(cfg, sizes)
        self.mix = phase1_mixture(cfg, sizes) if self.schedule is not None else Mixture()
        self._build_model(mlm)
        self.mask_gen = torch.Generator().manual_seed(cfg.seed)
        self._target_streams()
        self.times["setup_s"] = time.perf_counter() - self.t_start
        self._find_resume_point()

    def _load_encoder(self) -> Any:
        """The tokenizer (on ``self``) and the pretrained MLM model (returned)."""
        cfg = self.cfg
        if cfg.model == "tiny":
            if cfg.benchmark != "synth":
                raise ValueError("model 'tiny' is made from the synth corpora; name a real checkpoint for xtreme")
            self.model_path: str | Path = ensure_tiny_model(self.root, cfg.tiny, log=self.log)
        else:
            self.model_path = cfg.model
        self.tok, mlm = load_pretrained(self.model_path)
        return mlm

    def _encode(self, task: str, split: str, lang: str = "en", cap: int | None = None) -> Encoded:
        cfg = self.cfg
        rows = load_records(cfg.benchmark, task, split, lang, home=str(self.root), seed=cfg.data_seed,
                            data_dir=cfg.data_dir)
        return encode(task_info(task), self.tok, rows[:cap], cfg.max_seq_len)

    def _intermediate_streams(self) -> dict[str, int]:
        """A stream for every task the schedule may draw (``<task>``: English, ``<task>.<lang>``: its
        translations) and the languages' rates; the English train sizes (for the rate functions)."""
        cfg = self.cfg
        self.intermediate_tasks = phase1_tasks(cfg)
        for t in self.intermediate_tasks:
            self.streams[t] = BatchStream(self._encode(t, "train"), cfg.batch_size, f"{cfg.seed}-{t}")
            langs = cfg.intermediate_languages_of(t)
            n = {"en": len(self.streams[t].data)} if "en" in langs else {}
            for lang in (x for x in langs if x != "en"):
                stream = BatchStream(self._encode(t, "translate_train", lang), cfg.batch_size, f"{cfg.seed}-{t}-{lang}")
                self.streams[f"{t}.{lang}"], n[lang] = stream, len(stream.data)
            q = language_rates(n, cfg.intermediate_language_sampling, cfg.language_temperature, cfg.translated_share)
            self.task_languages[t] = q
            if len(q) > 1:
                self.task_lang_samplers[t] = MixtureSampler(Mixture(q), f"{cfg.seed}-languages-{t}")
        return {t: len(self.streams[t].data) for t in self.intermediate_tasks}

    def _task_stream(self, task: str) -> str:
        """The stream of an intermediate step of ``task``: English, or the translation drawn."""
        sampler = self.task_lang_samplers.get(task)
        lang = sampler() if sampler else next(iter(self.task_languages.get(task, {"en": 1.0})))
        return task if lang == "en" else f"{task}.{lang}"

    def _mlm_streams(self) -> int:
        """A stream per MLM language (``corpora.mlm_documents``: synth's corpora or a real benchmark's
        files) and the language sampler; the documents held. The sampler's n_l are the documents held,
        min(the file's, mlm_max_docs) (a file's length is unknown without reading it whole): languages
        above the cap count as equal, their rates uniform whatever T; raise it to keep more imbalance."""
        cfg = self.cfg
        for lang, docs in mlm_documents(cfg, self.root).items():
            ids = encode_docs(self.tok, docs, cfg.max_seq_len)
            self.streams[f"mlm.{lang}"] = BatchStream(Encoded("mlm", ids, [0] * len(ids)), cfg.batch_size,
                                                      f"{cfg.seed}-mlm-{lang}")
            self.mlm_docs[lang] = len(ids)
        if cfg.language_sampling == "unimax":
            q = unimax_rates(self.mlm_docs, cfg.intermediate_steps * cfg.batch_size * cfg.multilingual_share,
                             cfg.unimax_epochs)
        else:
            q = temperature_rates(self.mlm_docs, cfg.language_temperature)
        self.mlm_rates = q
        self.lang_sampler = MixtureSampler(Mixture(q), cfg.seed + 1)
        self.log(f"[trial] MLM: {', '.join(f'{lang} {q[lang]:.3f} ({n} docs)' for lang, n in self.mlm_docs.items())}")
        return sum(self.mlm_docs.values())

    def _build_model(self, mlm: Any) -> None:
        """The multi-task model: the encoder with one head per intermediate task. The target heads
        come at phase 2 (``_add_target_heads``), so that phase 1 depends on its own config only."""
        cfg = self.cfg
        self.families = {t: task_info(t).family for t in [*self.intermediate_tasks, *cfg.target_tasks]}
        self.model = MultiTaskModel(mlm, {t: task_info(t).num_labels for t in self.intermediate_tasks},
                                    self.families)
        self._set_dropout(self.model)

    def _set_dropout(self, module: torch.nn.Module) -> None:
        if self.cfg.dropout is not None:
            for m in module.modules():
                if isinstance(m, torch.nn.Dropout):
                    m.p = self.cfg.dropout

    def _add_target_heads(self, net: MultiTaskModel) -> None:
        """A head per target task ``net`` lacks, each initialised from a seed of its own (the trial's
        seed and the task): the same heads whatever was drawn before, torch's RNG left as it was."""
        for t in self.cfg.target_tasks:
            if t in net.heads or task_info(t).family == "retrieval":
                continue
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(_seed(self.cfg.seed, f"head-{t}"))
                head = net.add_head(t, task_info(t).family, task_info(t).num_labels)
            if head is not None:
                self._set_dropout(head)

    def _target_streams(self) -> None:
        """A stream per fine-tuned target (retrieval targets are not trained): English train data,
        plus the translate-train languages' data where asked."""
        cfg = self.cfg
        self.trainable_targets = [t for t in cfg.target_tasks if task_info(t).family != "retrieval"]
        for t in self.trainable_targets:
            data = self._encode(t, "train")
            for lang in cfg.translate_train_languages:
                more = self._encode(t, "translate_train", lang)
                data = Encoded(data.family, data.ids + more.ids, data.labels + more.labels, data.meta + more.meta)
            self.streams[t] = BatchStream(data, cfg.batch_size, f"{cfg.seed}-{t}")

    def _find_resume_point(self) -> None:
        resume_from: str | Path | None = self.rt.resume_from
        if (resume_from is None and self.rt.resume and self.rt.output_dir
                and latest_checkpoint(self.checkpoint_root)):
            resume_from = self.checkpoint_root
        if resume_from is None:
            return
        self.resume_point = find_checkpoint(resume_from)
        self.resumed = read_client_state(self.resume_point)
        self.log(f"[trial] resuming from {self.resume_point} "
                 f"(phase {self.resumed['phase']}, step {self.resumed['step']})")

    # ---- training steps ---------------------------------------------------------------------------

    def _new_engine(self, total: int, net: MultiTaskModel | None = None) -> Any:
        cfg = self.cfg
        return build_engine(net or self.model, lr=cfg.learning_rate, total_steps=total, warmup=cfg.warmup,
                            batch_size=cfg.batch_size, zero_stage=cfg.zero_stage, clipping=cfg.gradient_clipping,
                            grad_accum=cfg.grad_accum, bf16=cfg.bf16, decay=cfg.lr_decay)

    def _train_step(self, engine: Any, sampler: Sampler) -> float:
        """One optimizer step (``grad_accum`` micro-batches, a component drawn for each); its mean loss."""
        return statistics.fmean(self._step_batch(engine, sampler()) for _ in range(self.cfg.grad_accum))

    def _step_batch(self, engine: Any, comp: str, src: dict[str, BatchStream] | None = None) -> float:
        """One micro-batch of component ``comp`` through the engine; this rank trains on its share of
        the global batch. Returns the global batch's loss."""
        if comp == "mlm":
            loss = self._mlm_loss(engine)
        else:
            key = comp if src is not None or comp not in self.task_languages else self._task_stream(comp)
            loss = self._task_loss(engine, comp, src or self.streams, key)
        engine.backward(loss)
        engine_step(engine)
        value = loss.detach()
        if self.world_size > 1:  # the loss of the global batch: the mean over ranks
            torch.distributed.all_reduce(value)
            value = value / self.world_size
        return float(value.item())  # note: sync point; cheap on CPU

    def _mlm_loss(self, engine: Any) -> torch.Tensor:
        assert self.lang_sampler is not None
        r, n, tok = self.rank, self.world_size, self.tok
        ids_l, _ = self.streams[f"mlm.{self.lang_sampler()}"].next()
        ids, attn = pad(ids_l, tok.pad_token_id)
        inp, labels = mask_tokens(ids, ids <= 2, tok.mask_token_id, len(tok), self.mask_gen)
        loss, _ = engine("mlm", inp[r::n], attn[r::n], labels[r::n])
        return loss  # type: ignore[no-any-return]

    def _task_loss(self, engine: Any, task: str, streams: dict[str, BatchStream], key: str) -> torch.Tensor:
        """The loss of ``task``'s head on the next batch of stream ``key`` (the task, or a translation of it)."""
        r, n = self.rank, self.world_size
        ids_l, y = streams[key].next()
        x, attn, lab = collate(self.families[task], ids_l[r::n], y[r::n], self.tok.pad_token_id)
        loss, _ = engine(task, x, attn, lab)
        return loss  # type: ignore[no-any-return]

    # ---- phase 1 ------------------------------------------------------------------------------------

    def run_intermediate(self) -> None:
        """Phase 1: the schedule's steps (from the resume point, if it is in phase 1), with probes and
        checkpoints on the way. Skipped without a schedule or when resuming in phase 2."""
        cfg, schedule = self.cfg, self.schedule
        if schedule is None or (self.resumed is not None and self.resumed["phase"] == "target"):
            self.phase1_source = "checkpoint" if schedule is not None else None
            return
        t0 = time.perf_counter()
        cache_key = self._phase1_cache_key()
        if cache_key is not None and self._take_phase1(cache_key):
            self.times["phase1_s"] = time.perf_counter() - t0
            return
        self.phase1_source = "trained"
        torch.manual_seed(_seed(cfg.seed, "intermediate"))  # (a resumed run sets the saved RNG state next)
        engine = self._new_engine(schedule.total_steps)
        self.engine_name = type(engine).__name__
        sampler = ScheduleSampler(schedule, cfg.seed)
        start = self.restore(engine, sampler) if self.resumed is not None else 0
        self.log(f"[trial] phase 1: {schedule.describe()}")
        for step in range(start + 1, schedule.total_steps + 1):
            self.progress.phase1_losses.append(self._train_step(engine, sampler))
            if step == schedule.total_steps:
                break  # phase 2 follows; nothing to probe or keep
            if cfg.probe_every and step % cfg.probe_every == 0 and self.trainable_targets:
                self._probe_and_report(engine, sampler, step)
            elif cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
                self.save_checkpoint(engine, "intermediate", step, sampler)
        losses = self.progress.phase1_losses
        self.times["phase1_s"] = time.perf_counter() - t0 - self.times.get("probe_s", 0.0)
        self.log(f"[trial] phase 1 done: {schedule.total_steps} steps, loss {statistics.fmean(losses[:20]):.3f} -> "
                 f"{statistics.fmean(losses[-50:]):.3f}")
        if cache_key is not None and self.rank == 0:
            store_phase1(self.rt.phase1_cache or "", cache_key, self._phase1_state())

    def _phase1_cache_key(self) -> str | None:
        """The key of this trial's phase 1 in ``TrialRuntime.phase1_cache``, or None where the cache is
        not used: none given, a resumed run, probes (they report target scores during phase 1), or
        where a cached phase 1 is not known to give the very numbers of a trained one (several
        workers, ZeRO stages > 0, bf16)."""
        cfg = self.cfg
        if not self.rt.phase1_cache or self.resumed is not None:
            return None
        bf16 = bf16_supported() if cfg.bf16 == "auto" else cfg.bf16 == "on"
        why = ("probes report during phase 1" if cfg.probe_every else f"{self.world_size} workers"
               if self.world_size > 1 else f"ZeRO stage {cfg.zero_stage}" if cfg.zero_stage else "bf16" if bf16 else "")
        if why:
            self.log(f"[trial] phase-1 cache not used: {why}")
            return None
        return phase1_key(cfg)

    def _phase1_state(self) -> dict[str, Any]:
        """What phase 2 and the results read of phase 1: the model's weights, the loss history, and
        the phase-1 streams', samplers' and masking generator's states (checkpoints carry them)."""
        return {"model": self.model.state_dict(), "phase1_losses": list(self.progress.phase1_losses),
                "engine_name": self.engine_name, **self._draw_state(leave_out=tuple(self.trainable_targets))}

    def _take_phase1(self, key: str) -> bool:
        """Phase 1's end state from the cache, if it holds ``key``: whether it did."""
        state = load_phase1(self.rt.phase1_cache or "", key)
        if state is None:
            return False
        self.model.load_state_dict(state["model"])
        self.progress.phase1_losses = list(state["phase1_losses"])
        self._load_draw_state(state)
        self.engine_name = state["engine_name"]
        self.phase1_source = "cache"
        self.log(f"[trial] phase 1 taken from the cache ({key})")
        return True

    def _probe_and_report(self, engine: Any, sampler: Sampler, step: int) -> None:
        """A probe's scores, reported with a checkpoint: what PBT needs to act on the mixture."""
        cfg = self.cfg
        assert cfg.probe_every
        scores = self.probe(step)
        path = self.save_checkpoint(engine, "intermediate", step, sampler)
        if self.rank == 0:
            loss = statistics.fmean(self.progress.phase1_losses[-cfg.probe_every:])
            self.report({**scores, "train/phase": 1, "train/step": step, "probe/steps": cfg.probe_steps,
                         "intermediate/loss": loss}, checkpoint_dir=str(path))

    def probe(self, step: int) -> dict[str, float]:
        """What the objective would be if intermediate training stopped now: a short English target
        fine-tune of a *copy* of the model, scored zero-shot on dev. The run itself is untouched
        (its RNG streams are saved and restored), so probing never changes a trial's result."""
        cfg = self.cfg
        tp, eval_before = time.perf_counter(), self.evaluator.eval_s
        rng_state, mask_state = torch.get_rng_state(), self.mask_gen.get_state()
        net = copy.deepcopy(self.model)
        self._add_target_heads(net)
        engine = self._new_engine(cfg.probe_steps, net)
        src = {t: BatchStream(self.streams[t].data, cfg.batch_size, f"{cfg.seed}-{t}-probe{step}")
               for t in self.trainable_targets}
        pick = MixtureSampler(Mixture({t: 1.0 for t in self.trainable_targets}), cfg.seed + 3 + step)
        net.train()
        for _ in range(cfg.probe_steps * cfg.grad_accum):
            self._step_batch(engine, pick(), src)
        out = self.evaluate("dev", net)
        del engine, net
        torch.set_rng_state(rng_state)
        self.mask_gen.set_state(mask_state)
        self.evaluator.eval_s = eval_before  # probe time is its own line, not the phase's evaluation time
        self.times["probe_s"] = self.times.get("probe_s", 0.0) + time.perf_counter() - tp
        return out

    # ---- phase 2 ------------------------------------------------------------------------------------

    def run_target(self) -> dict[str, Any]:
        """Phase 2: English fine-tuning of the target task(s) (from the resume point, if it is in
        phase 2), evaluated zero-shot on dev every ``eval_every`` steps and reported with a checkpoint
        (neither without ``eval_dev``); the last metrics are returned (the final report follows, with test
        scores)."""
        cfg = self.cfg
        t0 = time.perf_counter()
        torch.manual_seed(_seed(cfg.seed, "target"))  # phase 2's own draws (a resumed run sets the saved state next)
        self._add_target_heads(self.model)
        if not self.trainable_targets:  # only retrieval targets: nothing to fine-tune
            self.model.train()
            metrics: dict[str, Any] = {**self._dev_scores(), "train/step": 0,
                                       "intermediate/loss": self._intermediate_loss()}
            self.times["phase2_s"] = time.perf_counter() - t0 - self.evaluator.eval_s
            return metrics
        sampler = MixtureSampler(Mixture({t: 1.0 for t in self.trainable_targets}), cfg.seed + 2)
        engine = self._new_engine(cfg.target_steps)
        self.engine_name = self.engine_name or type(engine).__name__
        resuming_here = self.resumed is not None and self.resumed["phase"] == "target"
        start = self.restore(engine, sampler) if resuming_here else 0
        inter_loss = self._intermediate_loss()
        self.model.train()
        p = self.progress  # (restore replaces it)
        metrics = dict(p.metrics)
        for step in range(start + 1, cfg.target_steps + 1):
            p.chunk.append(self._train_step(engine, sampler))
            p.phase2_losses.append(p.chunk[-1])
            if step == min(20, cfg.target_steps):
                p.first_loss = statistics.fmean(p.chunk)
            last = step == cfg.target_steps
            if last or (cfg.eval_dev and step % cfg.eval_every == 0):
                metrics = {**self._dev_scores(), "train/loss": statistics.fmean(p.chunk), "train/step": step,
                           "train/phase": 2, "intermediate/loss": inter_loss}
                p.chunk, p.metrics = [], metrics
                if last:
                    break  # the final report follows, with test scores
                path = self.save_checkpoint(engine, "target", step, sampler)
                if self.rank == 0:
                    self.report(metrics, checkpoint_dir=str(path))
            elif cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
                self.save_checkpoint(engine, "target", step, sampler)
        self.times["phase2_s"] = time.perf_counter() - t0 - self.evaluator.eval_s
        return metrics

    def _intermediate_loss(self) -> float:
        """The mean of phase 1's last 50 losses (nan without phase 1)."""
        losses = self.progress.phase1_losses
        return statistics.fmean(losses[-50:]) if losses else float("nan")

    # ---- evaluation ---------------------------------------------------------------------------------

    def _dev_scores(self) -> dict[str, float]:
        """A phase-2 report's dev scores: the dev evaluation, none when ``eval_dev`` is off."""
        return self.evaluate("dev") if self.cfg.eval_dev else {}

    def evaluate(self, split: str, net: MultiTaskModel | None = None) -> dict[str, float]:
        """Every target task in every evaluation language on ``split`` (``ZeroShotEvaluator.evaluate``)."""
        return self.evaluator.evaluate(net or self.model, split)

    # ---- checkpoints ------------------------------------------------------------------------------

    def save_checkpoint(self, engine: Any, phase: str, step: int, sampler: Sampler) -> Path:
        """Checkpoint ``<phase>-<step>``: the engine's states and everything else a resumed run needs
        to draw the same batches, masks and dropout (the client state)."""
        client = {"phase": phase, "step": step, "sampler": sampler.state_dict(), **self._draw_state(),
                  "torch_rng": torch.get_rng_state(), **self.progress.state_dict()}
        return save_checkpoint(engine, self.checkpoint_root, f"{phase}-{step:06d}", client,
                               write_client=self.rank == 0)

    def _draw_state(self, leave_out: tuple[str, ...] = ()) -> dict[str, Any]:
        """The states of what draws batches and masks: every stream (but ``leave_out``), the language
        samplers, the masking generator."""
        return {"streams": {k: s.state_dict() for k, s in self.streams.items() if k not in leave_out},
                "lang_sampler": self.lang_sampler.state_dict() if self.lang_sampler else None,
                "task_lang_samplers": {t: s.state_dict() for t, s in self.task_lang_samplers.items()},
                "mask_gen": self.mask_gen.get_state()}

    def _load_draw_state(self, state: dict[str, Any]) -> None:
        """Put back what ``_draw_state`` saved (every stream it has; task samplers it lacks stay as they are)."""
        for k, s in state["streams"].items():
            self.streams[k].load_state_dict(s)
        if self.lang_sampler and state["lang_sampler"]:
            self.lang_sampler.load_state_dict({**state["lang_sampler"],
                                               "rng": as_random_state(state["lang_sampler"]["rng"])})
        saved = state.get("task_lang_samplers") or {}
        for t, lang_sampler in self.task_lang_samplers.items():
            if t in saved:
                lang_sampler.load_state_dict({**saved[t], "rng": as_random_state(saved[t]["rng"])})
        self.mask_gen.set_state(state["mask_gen"])

    def restore(self, engine: Any, sampler: Sampler) -> int:
        """Put the engine, the phase's sampler, every stream, the RNGs and the loss history back as
        the resume point had them; the step it was taken at."""
        assert self.resumed is not None and self.resume_point is not None
        resumed = self.resumed
        load_engine_state(engine, self.resume_point)
        sampler.load_state_dict({**resumed["sampler"], "rng": as_random_state(resumed["sampler"]["rng"])})
        self._load_draw_state(resumed)
        torch.set_rng_state(resumed["torch_rng"])
        self.progress = TrialProgress.from_state_dict(resumed)
        return int(resumed["step"])

    # ---- the end ----------------------------------------------------------------------------------

    def finish(self, metrics: dict[str, Any]) -> dict[str, Any]:
        """Test scores added to phase 2's last ``metrics``; the final report and ``results.json``
        (rank 0); the result returned. When the test phase fails, what was measured is kept first:
        the dev scores are reported (marked ``TRIAL_PARTIAL``) and written to ``results.json``
        (``"partial": true`` and the error), then the error is raised: the trial fails with its reason."""
        try:
            test = self.evaluate("test")
        except Exception as e:
            self._keep_partial(metrics, e)
            raise
        final = self._with_times({**metrics, **test})
        final[TRIAL_DONE] = 1
        result = self._result(final)
        if self.rank == 0:
            self.report(final)
            self._write_results(result)
        self.log(f"[trial] done in {self.times['trial_s']:.1f}s: zero_shot/avg {final.get('zero_shot/avg', math.nan):.3f} (dev), "
                 f"{final['test/zero_shot/avg']:.3f} (test); engine {self.engine_name}")
        return result

    def _with_times(self, metrics: dict[str, Any]) -> dict[str, Any]:
        self.times["eval_s"] = self.evaluator.eval_s
        self.times["trial_s"] = time.perf_counter() - self.t_start
        return {**metrics, **{f"time/{k}": round(v, 3) for k, v in self.times.items()},
                "train/first_loss": self.progress.first_loss}

    def _keep_partial(self, metrics: dict[str, Any], error: BaseException) -> None:
        """The dev scores of a trial whose test phase failed: reported and written, marked partial."""
        partial = self._with_times({**metrics, TRIAL_PARTIAL: 1})
        why = f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
        if self.rank == 0:
            self.report(partial)
            self._write_results({**self._result(partial), "partial": True,
                                 "error": f"the test phase failed: {why}"})
        self.log(f"[trial] the test phase failed ({why}); the dev scores are kept, marked partial"
                 + (f", in {Path(self.rt.output_dir) / 'results.json'}" if self.rt.output_dir else ""))

    def _write_results(self, result: dict[str, Any]) -> None:
        if self.rt.output_dir:
            out_dir = Path(self.rt.output_dir)
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / "results.json").write_text(json.dumps(result, indent=2, default=str))

    def _result(self, final: dict[str, Any]) -> dict[str, Any]:
        return {"metrics": final, "engine": self.engine_name, "model_path": str(self.model_path),
                "config": self.cfg.model_dump(), "phase1_mixture": self.mix.rates,
                "intermediate_languages": self.task_languages,
                "mlm_languages": self.mlm_rates,
                "mlm_docs": self.mlm_docs,
                "schedule": self.schedule.describe() if self.schedule else None, "resumed": self.resumed is not None,
                "phase1_source": self.phase1_source,
                "world_size": self.world_size,
                "train_examples": {t: len(self.streams[t].data) for t in self.trainable_targets},
                "curves": {"intermediate": self.progress.phase1_losses, "target": self.progress.phase2_losses}}
