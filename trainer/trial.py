"""One trial, start to end: ``run_trial(config, report)``.

    setup   : encoder checkpoint -> multi-task model (one head per task); data -> token ids
    phase 1 : intermediate training on a schedule of mixtures (tasks by rate, multilingual MLM
              whose languages are sampled with temperature T or UniMax), one component per step
    phase 2 : English fine-tuning on the target task(s); every ``eval_every`` steps a zero-shot
              evaluation in every language, reported through ``report`` with a checkpoint
    end     : test-set evaluation in every language; results returned (and written)

It knows nothing of Ray, Optuna or MLflow: it reports through the callable it is handed,
``report(metrics, checkpoint_dir=None)``, so the same trial runs under Ray Tune, from
``xstilts train`` and inside a plain pytest.

Exact resume: a checkpoint (DeepSpeed's ``save_checkpoint``: model, optimizer, LR scheduler,
plus our client state: phase, step, the schedule sampler's and every data stream's RNG and
position, the masking generator, torch's RNG, the loss history) is written every
``checkpoint_every`` steps in either phase and at every report. ``run_trial(..., runtime=TrialRuntime(
resume_from=DIR))`` (or a runtime whose ``output_dir`` holds one, with ``resume`` on) continues from it and ends
with the same metrics, bit for bit on CPU, as a run that was never interrupted.
"""

from __future__ import annotations

import copy
import json
import math
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .config import TrialConfig, TrialRuntime
from .data import benchmark_languages, load_records, synth_benchmark
from .engine import build_engine, engine_step, world
from .families import Encoded, collate, encode, evaluate
from .home import home
from .mixture import Mixture, MixtureSampler, temperature_rates, unimax_rates
from .model import MultiTaskModel, ensure_tiny_model, load_pretrained, mask_tokens, pad
from .names import TRIAL_DONE
from .schedule import ScheduleSampler, phase1_mixture, phase1_schedule
from .tasks import task_info

__all__ = ["run_trial", "Report", "objective_languages",
           "latest_checkpoint", "CHECKPOINT_DIR"]

Report = Callable[..., None]
CHECKPOINT_DIR = "checkpoints"  # under output_dir


@dataclass
class _Stream:
    """Endless shuffled batches over one dataset, deterministic from its seed; resumable."""

    data: Encoded
    batch_size: int
    seed: str
    rng: random.Random = field(init=False)
    order: list[int] = field(default_factory=list)
    pos: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def next(self) -> tuple[list[Any], list[Any]]:
        ids: list[Any] = []
        labels: list[Any] = []
        while len(ids) < self.batch_size:
            if self.pos >= len(self.order):
                self.order = list(range(len(self.data.ids)))
                self.rng.shuffle(self.order)
                self.pos = 0
            i = self.order[self.pos]
            self.pos += 1
            ids.append(self.data.ids[i])
            labels.append(self.data.labels[i])
        return ids, labels

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.getstate(), "order": list(self.order), "pos": self.pos}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.setstate(_tuple_state(state["rng"]))
        self.order, self.pos = list(state["order"]), int(state["pos"])


def _tuple_state(s: Any) -> Any:
    """``random.Random`` states come back from a checkpoint as lists; ``setstate`` wants tuples."""
    return tuple(_tuple_state(x) for x in s) if isinstance(s, list | tuple) else s


# --- mixtures and schedules from the config ------------------------------------------------------


def objective_languages(langs: list[str], controls: list[str]) -> list[str]:
    return [lang for lang in langs if lang != "en" and lang not in controls]


# --- checkpoints ----------------------------------------------------------------------------------


def latest_checkpoint(root: str | Path) -> Path | None:
    """The newest complete checkpoint under ``root``: ``latest`` names it, and is replaced atomically
    only after the checkpoint (DeepSpeed states + client state) is fully written."""
    latest = Path(root) / "latest"
    if not latest.exists():
        return None
    tag = latest.read_text().strip()
    return Path(root) / tag if (Path(root) / tag).is_dir() else None


def _prune(root: Path, keep: str) -> None:
    for d in root.iterdir():
        if d.is_dir() and d.name != keep:
            shutil.rmtree(d, ignore_errors=True)


# --- the trial ---------------------------------------------------------------------------------


def run_trial(cfg: TrialConfig, report: Report | None = None, *, runtime: TrialRuntime | None = None,
              log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run one trial. Without ``runtime.output_dir`` its checkpoints go to a scratch folder that is
    removed however the trial ends: done, raising, or stopped by its caller (Tune stops a pruned
    trial by raising ``SystemExit`` out of its next ``report``)."""
    rt = runtime or TrialRuntime()
    scratch: Path | None = None
    if rt.output_dir:
        ckpt_root = Path(rt.output_dir) / CHECKPOINT_DIR
    else:
        scratch = ckpt_root = Path(tempfile.mkdtemp(prefix="xstilts-ckpt-"))
    try:
        return _run_trial(cfg, report, rt, log=log, ckpt_root=ckpt_root)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _run_trial(cfg: TrialConfig, report: Report | None, rt: TrialRuntime, *, log: Callable[[str], None],
               ckpt_root: Path) -> dict[str, Any]:
    t_start = time.perf_counter()
    report = report or (lambda metrics, checkpoint_dir=None: None)
    if rt.threads:
        torch.set_num_threads(rt.threads)
    torch.manual_seed(cfg.seed)
    root = home(rt.home)
    rank, world_size = world()
    times: dict[str, float] = {}

    # ---- setup: model and data -------------------------------------------------------
    if cfg.model == "tiny":
        if cfg.benchmark != "synth":
            raise ValueError("model 'tiny' is made from the synth corpora; name a real checkpoint for xtreme")
        model_path: str | Path = ensure_tiny_model(root, cfg.tiny, log=log)
    else:
        model_path = cfg.model
    tok, mlm = load_pretrained(model_path)
    if cfg.benchmark == "synth":
        langs, controls = benchmark_languages("synth", str(root), cfg.data_seed)
    else:
        langs, controls = list(cfg.eval_languages or ["en"]), []
    eval_langs = list(cfg.eval_languages or langs)
    if "en" not in eval_langs:
        eval_langs.insert(0, "en")
    obj_langs = objective_languages(eval_langs, controls)

    def records(task: str, split: str, lang: str) -> list[dict[str, Any]]:
        return load_records(cfg.benchmark, task, split, lang, home=str(root), seed=cfg.data_seed,
                            data_dir=cfg.data_dir)

    def enc(task: str, split: str, lang: str = "en", cap: int | None = None) -> Encoded:
        return encode(task_info(task), tok, records(task, split, lang)[:cap], cfg.max_seq_len)

    # train data of every task the schedule may draw (sizes feed the rate functions)
    streams: dict[str, _Stream] = {}
    sizes: dict[str, int] = {}
    inter = sorted({t for t, r in cfg.intermediate.items() if r > 0}
                   | {t for s in (cfg.stages or []) for t, r in s.mixture.items() if r > 0 and t != "mlm"})
    for t in inter:
        streams[t] = _Stream(enc(t, "train"), cfg.batch_size, f"{cfg.seed}-{t}")
        sizes[t] = len(streams[t].data)
    uses_mlm = (cfg.multilingual_share > 0 or (cfg.schedule == "annealed" and cfg.multilingual_share_start > 0)
                or any(s.mixture.get("mlm", 0) > 0 for s in (cfg.stages or [])))
    lang_sampler: MixtureSampler | None = None
    if uses_mlm and cfg.intermediate_steps > 0 and cfg.schedule != "sequential":
        if cfg.benchmark != "synth":
            raise ValueError("multilingual MLM needs monolingual corpora; only synth ships them so far")
        bench = synth_benchmark(str(root), cfg.data_seed)
        corpus = {lang: bench.corpus(lang) for lang in bench.languages}
        for lang, docs in corpus.items():
            ids = tok(docs, truncation=True, max_length=cfg.max_seq_len)["input_ids"]
            streams[f"mlm.{lang}"] = _Stream(Encoded("mlm", ids, [0] * len(ids)), cfg.batch_size,
                                             f"{cfg.seed}-mlm-{lang}")
        n_docs = {lang: len(d) for lang, d in corpus.items()}
        if cfg.language_sampling == "unimax":
            q = unimax_rates(n_docs, cfg.intermediate_steps * cfg.batch_size * cfg.multilingual_share,
                             cfg.unimax_epochs)
        else:
            q = temperature_rates(n_docs, cfg.language_temperature)
        lang_sampler = MixtureSampler(Mixture(q), cfg.seed + 1)
        sizes["mlm"] = sum(n_docs.values())
    schedule = phase1_schedule(cfg, sizes)
    mix = phase1_mixture(cfg, sizes) if schedule is not None else Mixture()

    heads = {t: task_info(t).num_labels for t in [*inter, *cfg.target_tasks]}
    families = {t: task_info(t).family for t in heads}
    model = MultiTaskModel(mlm, heads, families)
    if cfg.dropout is not None:
        for m in model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = cfg.dropout
    mask_gen = torch.Generator().manual_seed(cfg.seed)
    trainable_targets = [t for t in cfg.target_tasks if task_info(t).family != "retrieval"]
    for t in trainable_targets:
        data = enc(t, "train")
        for lang in cfg.translate_train_languages:  # translate-train: English plus "translated" train data
            more = enc(t, "translate_train", lang)
            data = Encoded(data.family, data.ids + more.ids, data.labels + more.labels, data.meta + more.meta)
        streams[t] = _Stream(data, cfg.batch_size, f"{cfg.seed}-{t}")
    times["setup_s"] = time.perf_counter() - t_start

    def step_batch(engine: Any, comp: str, src: dict[str, _Stream] | None = None) -> float:
        """One micro-batch through the engine; this rank trains on its share of the global batch."""
        if comp == "mlm":
            assert lang_sampler is not None
            ids_l, _ = streams[f"mlm.{lang_sampler()}"].next()
            ids, attn = pad(ids_l, tok.pad_token_id)
            inp, labels = mask_tokens(ids, ids <= 2, tok.mask_token_id, len(tok), mask_gen)
            inp, attn, labels = inp[rank::world_size], attn[rank::world_size], labels[rank::world_size]
            loss, _ = engine("mlm", inp, attn, labels)
        else:
            ids_l, y = (src or streams)[comp].next()
            x, attn, lab = collate(families[comp], ids_l[rank::world_size], y[rank::world_size], tok.pad_token_id)
            loss, _ = engine(comp, x, attn, lab)
        engine.backward(loss)
        engine_step(engine)
        value = loss.detach()
        if world_size > 1:  # the loss of the global batch: the mean over ranks
            torch.distributed.all_reduce(value)
            value = value / world_size
        return float(value.item())  # note: sync point; cheap on CPU

    def new_engine(total: int, net: MultiTaskModel | None = None) -> Any:
        return build_engine(net or model, lr=cfg.learning_rate, total_steps=total, warmup=cfg.warmup,
                            batch_size=cfg.batch_size, zero_stage=cfg.zero_stage, clipping=cfg.gradient_clipping,
                            grad_accum=cfg.grad_accum, bf16=cfg.bf16, decay=cfg.lr_decay)

    # ---- checkpoints and resume ------------------------------------------------------------
    resume_from: str | Path | None = rt.resume_from
    if resume_from is None and rt.resume and rt.output_dir and latest_checkpoint(ckpt_root):
        resume_from = ckpt_root
    resumed: dict[str, Any] | None = None
    if resume_from is not None:
        rpath = Path(resume_from)
        latest = latest_checkpoint(rpath) or (rpath if (rpath / "client_state.pt").exists() else None)
        if latest is None:
            raise FileNotFoundError(f"no checkpoint to resume from in {rpath}")
        resumed = torch.load(latest / "client_state.pt", weights_only=False)
        log(f"[trial] resuming from {latest} (phase {resumed['phase']}, step {resumed['step']})")

    state: dict[str, Any] = {"phase1_losses": [], "phase2_losses": [], "chunk": [], "first_loss": float("nan"),
                             "metrics": {}}

    def save(engine: Any, phase: str, step: int, sampler: Any) -> Path:
        tag = f"{phase}-{step:06d}"
        client = {
            "phase": phase, "step": step, "sampler": sampler.state_dict(),
            "streams": {k: s.state_dict() for k, s in streams.items()},
            "lang_sampler": lang_sampler.state_dict() if lang_sampler else None,
            "mask_gen": mask_gen.get_state(), "torch_rng": torch.get_rng_state(), **state,
        }
        engine.save_checkpoint(str(ckpt_root), tag=tag, save_latest=False)  # model, optimizer, LR sched (all ranks)
        if rank == 0:
            torch.save(client, ckpt_root / tag / "client_state.pt")
            (ckpt_root / "latest.tmp").write_text(tag)
            (ckpt_root / "latest.tmp").replace(ckpt_root / "latest")  # atomic: a kill never leaves half a pointer
            _prune(ckpt_root, tag)
        return ckpt_root / tag

    def restore(engine: Any, sampler: Any) -> int:
        assert resumed is not None and resume_from is not None
        src = latest_checkpoint(resume_from) or Path(resume_from)
        engine.load_checkpoint(str(src.parent), tag=src.name)
        sampler.load_state_dict({**resumed["sampler"], "rng": _tuple_state(resumed["sampler"]["rng"])})
        for k, s in streams.items():
            s.load_state_dict(resumed["streams"][k])
        if lang_sampler and resumed["lang_sampler"]:
            lang_sampler.load_state_dict({**resumed["lang_sampler"],
                                          "rng": _tuple_state(resumed["lang_sampler"]["rng"])})
        mask_gen.set_state(resumed["mask_gen"])
        torch.set_rng_state(resumed["torch_rng"])
        for k in state:
            state[k] = resumed[k]
        return int(resumed["step"])

    def train_step(engine: Any, sampler: Any) -> float:
        return statistics.fmean(step_batch(engine, sampler()) for _ in range(cfg.grad_accum))

    eval_cache: dict[tuple[str, str, str], Encoded] = {}
    eval_state: dict[tuple[str, str], dict[str, Any]] = {}
    eval_s = 0.0

    def evaluate_all(split: str, net: MultiTaskModel | None = None) -> dict[str, float]:
        nonlocal eval_s
        net = net or model
        te = time.perf_counter()
        net.eval()
        out: dict[str, float] = {}
        prefix = "test/" if split == "test" else ""
        per_task = []
        worst = math.inf
        with torch.no_grad():
            for t in cfg.target_tasks:
                info = task_info(t)
                for lang in eval_langs:
                    if info.family == "retrieval" and lang == "en":
                        continue  # retrieval pairs a language with English
                    key = (t, split, lang)
                    if key not in eval_cache:
                        eval_cache[key] = enc(t, split, lang, cfg.eval_max_examples)
                    st = eval_state.setdefault((t, lang), {})
                    st["split"] = split
                    score = evaluate(net, info, eval_cache[key], tok.pad_token_id, layer=cfg.retrieval_layer,
                                     state=st)
                    name = f"{prefix}en/{t}" if lang == "en" else f"{prefix}zero_shot/{t}/{lang}"
                    out[name] = score
                    if lang in obj_langs:
                        worst = min(worst, score)
                scores = [out[f"{prefix}zero_shot/{t}/{lang}"] for lang in obj_langs]
                out[f"{prefix}zero_shot/{t}"] = statistics.fmean(scores) if scores else float("nan")
                per_task.append(out[f"{prefix}zero_shot/{t}"])
        out[f"{prefix}zero_shot/avg"] = statistics.fmean(per_task)
        out[f"{prefix}zero_shot/worst"] = worst if worst < math.inf else float("nan")
        if split == "test" and cfg.eval_clean:
            out.update(evaluate_clean())
        net.train()
        eval_s += time.perf_counter() - te
        return out

    def evaluate_clean() -> dict[str, float]:
        """Scores on ``test_clean`` (items whose deciding words are not English), where a task has it."""
        out: dict[str, float] = {}
        for t in cfg.target_tasks:
            info = task_info(t)
            if "test_clean" not in info.splits:
                continue
            for lang in eval_langs:
                if lang == "en":
                    continue
                key = (t, "test_clean", lang)
                if key not in eval_cache:
                    eval_cache[key] = enc(t, "test_clean", lang, cfg.eval_max_examples)
                out[f"test_clean/zero_shot/{t}/{lang}"] = evaluate(model, info, eval_cache[key], tok.pad_token_id,
                                                                   layer=cfg.retrieval_layer)
            scores = [out[f"test_clean/zero_shot/{t}/{lang}"] for lang in obj_langs]
            out[f"test_clean/zero_shot/{t}"] = statistics.fmean(scores) if scores else float("nan")
        return out

    def probe(step: int) -> dict[str, float]:
        """What the objective would be if intermediate training stopped now: a short English target
        fine-tune of a *copy* of the model, scored zero-shot on dev. The run itself is untouched
        (its RNG streams are saved and restored), so probing never changes a trial's result."""
        nonlocal eval_s
        tp, eval_before = time.perf_counter(), eval_s
        rng_state, mask_state = torch.get_rng_state(), mask_gen.get_state()
        net = copy.deepcopy(model)
        pe = new_engine(cfg.probe_steps, net)
        src = {t: _Stream(streams[t].data, cfg.batch_size, f"{cfg.seed}-{t}-probe{step}") for t in trainable_targets}
        pick = MixtureSampler(Mixture({t: 1.0 for t in trainable_targets}), cfg.seed + 3 + step)
        net.train()
        for _ in range(cfg.probe_steps * cfg.grad_accum):
            step_batch(pe, pick(), src)
        out = evaluate_all("dev", net)
        del pe, net
        torch.set_rng_state(rng_state)
        mask_gen.set_state(mask_state)
        eval_s = eval_before  # probe time is its own line, not the phase's evaluation time
        times["probe_s"] = times.get("probe_s", 0.0) + time.perf_counter() - tp
        return out

    # ---- phase 1: intermediate schedule -----------------------------------------------------
    inter_loss = float("nan")
    engine_name = ""
    phase2_resume = resumed is not None and resumed["phase"] == "target"
    if schedule is not None and not phase2_resume:
        t0 = time.perf_counter()
        engine = new_engine(schedule.total_steps)
        engine_name = type(engine).__name__
        sampler1 = ScheduleSampler(schedule, cfg.seed)
        start = restore(engine, sampler1) if resumed is not None else 0
        log(f"[trial] phase 1: {schedule.describe()}")
        for step in range(start + 1, schedule.total_steps + 1):
            state["phase1_losses"].append(train_step(engine, sampler1))
            if (cfg.probe_every and step % cfg.probe_every == 0 and step < schedule.total_steps
                    and trainable_targets):
                scores = probe(step)
                path = save(engine, "intermediate", step, sampler1)
                if rank == 0:  # a report with a checkpoint: what PBT needs to act on the mixture
                    report({**scores, "train/phase": 1, "train/step": step, "probe/steps": cfg.probe_steps,
                            "intermediate/loss": statistics.fmean(state["phase1_losses"][-cfg.probe_every:])},
                           checkpoint_dir=str(path))
            elif cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < schedule.total_steps:
                save(engine, "intermediate", step, sampler1)
        losses = state["phase1_losses"]
        times["phase1_s"] = time.perf_counter() - t0 - times.get("probe_s", 0.0)
        log(f"[trial] phase 1 done: {schedule.total_steps} steps, loss {statistics.fmean(losses[:20]):.3f} -> "
            f"{statistics.fmean(losses[-50:]):.3f}")

    # ---- phase 2: English target fine-tuning, zero-shot evaluation ------------------------
    t0 = time.perf_counter()
    target_sampler = MixtureSampler(Mixture({t: 1.0 for t in trainable_targets}), cfg.seed + 2) \
        if trainable_targets else None
    engine = new_engine(cfg.target_steps) if trainable_targets else None
    engine_name = engine_name or (type(engine).__name__ if engine is not None else "")
    start = 0
    if phase2_resume and engine is not None:
        start = restore(engine, target_sampler)
    if state["phase1_losses"]:
        inter_loss = statistics.fmean(state["phase1_losses"][-50:])
    model.train()
    metrics: dict[str, Any] = dict(state["metrics"])
    if engine is None:  # only retrieval targets: nothing to fine-tune
        metrics = {**evaluate_all("dev"), "train/step": 0, "intermediate/loss": inter_loss}
    for step in range(start + 1, cfg.target_steps + 1 if engine is not None else 1):
        assert engine is not None and target_sampler is not None
        state["chunk"].append(train_step(engine, target_sampler))
        state["phase2_losses"].append(state["chunk"][-1])
        if step == min(20, cfg.target_steps):
            state["first_loss"] = statistics.fmean(state["chunk"])
        if step % cfg.eval_every == 0 or step == cfg.target_steps:
            metrics = {
                **evaluate_all("dev"),
                "train/loss": statistics.fmean(state["chunk"]),
                "train/step": step,
                "train/phase": 2,
                "intermediate/loss": inter_loss,
            }
            state["chunk"] = []
            state["metrics"] = metrics
            if step == cfg.target_steps:
                break  # the final report follows, with test scores
            path = save(engine, "target", step, target_sampler)
            if rank == 0:
                report(metrics, checkpoint_dir=str(path))
        elif cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
            save(engine, "target", step, target_sampler)
    times["phase2_s"] = time.perf_counter() - t0 - eval_s
    final = {**metrics, **evaluate_all("test")}
    times["eval_s"] = eval_s
    times["trial_s"] = time.perf_counter() - t_start
    final.update({f"time/{k}": round(v, 3) for k, v in times.items()})
    final["train/first_loss"] = state["first_loss"]
    final[TRIAL_DONE] = 1
    result = {"metrics": final, "engine": engine_name, "model_path": str(model_path),
              "config": cfg.model_dump(), "phase1_mixture": mix.rates,
              "schedule": schedule.describe() if schedule else None, "resumed": resumed is not None,
              "world_size": world_size,
              "train_examples": {t: len(streams[t].data) for t in trainable_targets},
              "curves": {"intermediate": state["phase1_losses"], "target": state["phase2_losses"]}}
    if rank == 0:
        report(final)
        if rt.output_dir:
            out_dir = Path(rt.output_dir)
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / "results.json").write_text(json.dumps(result, indent=2, default=str))
    log(f"[trial] done in {times['trial_s']:.1f}s: zero_shot/avg {final['zero_shot/avg']:.3f} (dev), "
        f"{final['test/zero_shot/avg']:.3f} (test); engine {engine_name}")
    return result
