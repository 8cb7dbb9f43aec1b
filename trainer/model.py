"""The encoder every trial starts from, and the multi-task model built on it.

``tiny``: an XLM-R-architecture encoder (``XLMRobertaConfig``; 2 layers, 64 wide by
default) with a word-level tokenizer trained by ``tokenizers`` on the synth corpora, MLM-
pretrained once on all languages (sampled with temperature) and cached under
``$XSTILTS_HOME/models/``. Any other name or path is loaded with ``from_pretrained`` (an
XLM-R-compatible checkpoint such as ``xlm-roberta-base`` or a local folder).
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .config import TinyModelSpec

__all__ = [
    "ensure_tiny_model", "load_pretrained", "MultiTaskModel", "ClassificationHead",
    "MultipleChoiceHead", "SpanHead", "masked_lm_loss", "TokenHead", "make_head", "ModelNotFoundError", "local_model_folder",
]

SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # XLM-R's ids 0..3; <mask> follows


def _train_tokenizer(texts: list[str], out: Path) -> Any:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.train_from_iterator(texts, trainers.WordLevelTrainer(special_tokens=SPECIALS, min_frequency=1))
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", 0), ("</s>", 2)],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>",
        unk_token="<unk>", pad_token="<pad>", mask_token="<mask>", model_max_length=512,
    )
    fast.save_pretrained(out)
    return fast


def mask_tokens(input_ids: torch.Tensor, special: torch.Tensor, mask_id: int, vocab: int,
                gen: torch.Generator, prob: float = 0.15) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking (80% <mask>, 10% random, 10% kept) of ``prob`` of the non-special tokens."""
    labels = input_ids.clone()
    chosen = (torch.rand(input_ids.shape, generator=gen) < prob) & ~special
    labels[~chosen] = -100
    ids = input_ids.clone()
    r = torch.rand(input_ids.shape, generator=gen)
    ids[chosen & (r < 0.8)] = mask_id
    rnd = chosen & (r >= 0.8) & (r < 0.9)
    ids[rnd] = torch.randint(len(SPECIALS), vocab, (int(rnd.sum()),), generator=gen)
    return ids, labels


def ensure_tiny_model(home: Path, spec: TinyModelSpec | None = None, *,
                      log: Callable[[str], None] = print) -> Path:
    """Make (once) and return the folder of the tokenizer + MLM-pretrained tiny model."""
    spec = spec or TinyModelSpec()
    out = spec.folder(home)
    if spec.is_cached(home):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_name(out.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one maker; concurrent trials wait, then reuse it
        if not (out / "xstilts_pretrain.json").exists():
            for stale in out.parent.glob(out.name + ".tmp*"):  # left by a crashed maker
                shutil.rmtree(stale, ignore_errors=True)
            _pretrain(home, spec, out, log)
    return out


def _pretrain(home: Path, spec: TinyModelSpec, out: Path, log: Callable[[str], None]) -> None:
    from transformers import XLMRobertaForMaskedLM

    from .data import synth_benchmark

    bench = synth_benchmark(str(home), spec.data_seed, log)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    t0 = time.perf_counter()
    corpora = {lang: bench.corpus(lang) for lang in bench.languages}
    seqs = _sentence_pairs(corpora)
    tok = _train_tokenizer([t for docs in corpora.values() for t in docs], tmp)
    torch.manual_seed(spec.seed)
    model = XLMRobertaForMaskedLM(_tiny_config(spec, len(tok)))
    n_params = sum(p.numel() for p in model.parameters())
    log(f"[xstilts] pretraining tiny model ({spec.layers}x{spec.hidden}, {n_params / 1e3:.0f}k params, "
        f"vocab {len(tok)}) for {spec.pretrain_steps} MLM steps at batch {spec.pretrain_batch} -> {out}")
    _mlm_pretrain(model, tok, seqs, spec, log, t0)
    model.save_pretrained(tmp)
    (tmp / "xstilts_pretrain.json").write_text(json.dumps(
        {"spec": spec.model_dump(), "params": n_params, "seconds": round(time.perf_counter() - t0, 1)}, indent=2))
    tmp.rename(out)
    log(f"[xstilts] tiny model ready in {time.perf_counter() - t0:.0f}s")


def _sentence_pairs(corpora: dict[str, list[str]]) -> dict[str, list[str]]:
    """Pretraining sequences per language: pairs of consecutive sentences of one document."""
    seqs: dict[str, list[str]] = {}
    for lang, docs in corpora.items():
        pairs = []
        for d in docs:
            s = d.split(" . ")
            pairs += [" . ".join(s[i : i + 2]) for i in range(0, len(s), 2)]
        seqs[lang] = pairs
    return seqs


def _tiny_config(spec: TinyModelSpec, vocab: int) -> Any:
    """The tiny model's ``XLMRobertaConfig``: XLM-R's architecture and special ids at ``spec``'s size."""
    from transformers import XLMRobertaConfig

    return XLMRobertaConfig(
        vocab_size=vocab, hidden_size=spec.hidden, num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads, intermediate_size=spec.ffn_width,
        max_position_embeddings=spec.max_len + 2, type_vocab_size=1,
        pad_token_id=1, bos_token_id=0, eos_token_id=2,
        hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
    )


def _mlm_pretrain(model: Any, tok: Any, seqs: dict[str, list[str]], spec: TinyModelSpec,
                  log: Callable[[str], None], t0: float) -> None:
    """``spec.pretrain_steps`` MLM steps (AdamW, warmup + linear decay) on batches whose languages
    are sampled with temperature: q_l ∝ n_l^(1/T)."""
    langs = sorted(seqs)
    w = [len(seqs[lang]) ** (1.0 / spec.pretrain_temperature) for lang in langs]
    rng = random.Random(spec.seed)
    gen = torch.Generator().manual_seed(spec.seed)
    encoded = {lang: tok(seqs[lang], truncation=True, max_length=spec.max_len)["input_ids"] for lang in langs}
    opt = torch.optim.AdamW(model.parameters(), lr=spec.pretrain_lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(spec.pretrain_steps, 0.05))
    model.train()
    every = max(1, spec.pretrain_steps // 20)
    running = 0.0
    for step in range(spec.pretrain_steps):
        batch_langs = rng.choices(langs, weights=w, k=spec.pretrain_batch)
        rows = [rng.choice(encoded[lang]) for lang in batch_langs]
        ids, attn = pad(rows, pad_id=1)
        inp, labels = mask_tokens(ids, ids <= 2, tok.mask_token_id, len(tok), gen)
        loss = masked_lm_loss(model, inp, attn, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        running += loss.item()  # note: a sync point; cheap on CPU
        if (step + 1) % every == 0:
            el = time.perf_counter() - t0
            eta = el / (step + 1) * (spec.pretrain_steps - step - 1)
            log(f"[xstilts]   pretrain step {step + 1}/{spec.pretrain_steps}  mlm loss {running / every:.3f}  "
                f"{el:.0f}s elapsed, ~{eta:.0f}s left")
            running = 0.0


def masked_lm_loss(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   labels: torch.Tensor) -> torch.Tensor:
    """The MLM loss of an ``XLMRobertaForMaskedLM`` with the vocabulary projection at the masked
    positions only (15 % of the tokens; ``labels`` is -100 elsewhere), not at every position as
    ``model(..., labels=...)`` does: the same loss (bit for bit) and the same gradients up to float
    rounding, and pretraining runs ~1.2x as fast (the projection was a quarter of a step)."""
    h = model.roberta(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    chosen = labels != -100
    return torch.nn.functional.cross_entropy(model.lm_head(h[chosen]), labels[chosen])


def pad(rows: list[list[int]], pad_id: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    n = max(len(r) for r in rows)
    ids = torch.full((len(rows), n), pad_id, dtype=torch.long)
    attn = torch.zeros((len(rows), n), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        attn[i, : len(r)] = 1
    return ids, attn


class ModelNotFoundError(FileNotFoundError):
    """A ``model:`` that names a local folder which does not exist (one line, not the hub's error chain)."""


def local_model_folder(name: str | Path) -> Path | None:
    """The folder ``name`` names, or None for a hub name (``xlm-roberta-base``, ``org/model``): a
    path that exists, is absolute, starts with ``.`` or ``~``, or has more than one ``/``."""
    text = str(name)
    p = Path(text).expanduser()
    if p.exists() or p.is_absolute() or text.startswith((".", "~")) or text.count("/") > 1:
        return p
    return None


def load_pretrained(name_or_path: str | Path) -> tuple[Any, Any]:
    """(tokenizer, XLMRobertaForMaskedLM) from a local folder or a hub name; a local folder that does
    not exist is a ``ModelNotFoundError`` naming it."""
    from transformers import AutoTokenizer, XLMRobertaForMaskedLM

    folder = local_model_folder(name_or_path)
    if folder is not None and not folder.is_dir():
        raise ModelNotFoundError(f"model: {folder} is not a folder (no such checkpoint); give a local folder with "
                                 "config.json and the tokenizer files, or a hub name such as xlm-roberta-base")
    tok = AutoTokenizer.from_pretrained(str(name_or_path))
    mlm = XLMRobertaForMaskedLM.from_pretrained(str(name_or_path))
    return tok, mlm


class ClassificationHead(nn.Module):
    """RoBERTa's sentence head: dense + tanh on the first token, then a projection."""

    def __init__(self, hidden: int, num_labels: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, num_labels)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        x = self.dropout(h[:, 0])
        return self.out(self.dropout(torch.tanh(self.dense(x))))


class MultipleChoiceHead(nn.Module):
    """One score per choice: RoBERTa's sentence head with a single output, over (B*C) sequences."""

    def __init__(self, hidden: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.head = ClassificationHead(hidden, 1, dropout)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.head(h).squeeze(-1)


class SpanHead(nn.Module):
    """Extractive QA: a start and an end logit per token."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.out = nn.Linear(hidden, 2)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.out(h)


class TokenHead(nn.Module):
    """Token classification: a tag distribution per token."""

    def __init__(self, hidden: int, num_labels: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, num_labels)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.out(self.dropout(h))


def make_head(family: str, hidden: int, num_labels: int) -> nn.Module | None:
    if family in ("pair_cls", "single_cls"):
        return ClassificationHead(hidden, num_labels)
    if family == "multiple_choice":
        return MultipleChoiceHead(hidden)
    if family == "qa":
        return SpanHead(hidden)
    if family == "token_cls":
        return TokenHead(hidden, num_labels)
    if family == "retrieval":
        return None  # no training: mean-pooled hidden states of a middle layer
    raise ValueError(f"unknown task family {family!r}")


class MultiTaskModel(nn.Module):
    """A shared encoder, one head per task, and the pretrained MLM head for multilingual batches.

    ``heads`` maps task -> number of labels; ``families`` maps task -> family (default
    ``pair_cls``, the sentence head). ``forward(task, input_ids, attention_mask, labels)``
    returns ``(loss or None, logits)`` for every family, with family-shaped tensors:

    * ``pair_cls``/``single_cls``: ids (B, L), labels (B,), logits (B, C)
    * ``multiple_choice``: ids (B, C, L), labels (B,), logits (B, C)
    * ``qa``: ids (B, L), labels (B, 2) start/end token, logits (B, L, 2) (padding masked)
    * ``token_cls``/``mlm``: ids (B, L), labels (B, L) with -100 ignored, logits (B, L, C); ``mlm``
      with labels returns the logits of the labelled positions only, (K, V)
    """

    def __init__(self, mlm: Any, heads: dict[str, int], families: dict[str, str] | None = None) -> None:
        super().__init__()
        self.encoder = mlm.roberta
        self.lm_head = mlm.lm_head
        hidden = mlm.config.hidden_size
        self.families = {t: (families or {}).get(t, "pair_cls") for t in heads}
        made = {t: make_head(self.families[t], hidden, n) for t, n in heads.items()}
        self.heads = nn.ModuleDict({t: h for t, h in made.items() if h is not None})

    def add_head(self, task: str, family: str, num_labels: int) -> nn.Module | None:
        """A new head for ``task`` (none for retrieval), initialised from torch's global RNG and put
        on the encoder's device; returned."""
        self.families[task] = family
        head = make_head(family, self.encoder.config.hidden_size, num_labels)
        if head is not None:
            self.heads[task] = head.to(next(self.encoder.parameters()).device)
        return head

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, layer: int | None = None) -> torch.Tensor:
        """Mean-pooled hidden states of ``layer`` (default: the middle layer, as XTREME's retrieval)."""
        from .metrics import mean_pool

        n = self.encoder.config.num_hidden_layers
        k = (n + 1) // 2 if layer is None else layer
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        return mean_pool(out.hidden_states[k], attention_mask)

    def forward(self, task: str, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                labels: torch.Tensor | None = None) -> tuple[torch.Tensor | None, torch.Tensor]:
        ce = nn.functional.cross_entropy
        family = "mlm" if task == "mlm" else self.families.get(task, "pair_cls")
        if family == "multiple_choice":
            b, c, n = input_ids.shape
            h = self.encoder(input_ids=input_ids.view(b * c, n),
                             attention_mask=attention_mask.view(b * c, n)).last_hidden_state
            logits = self.heads[task](h).view(b, c)
            return (None if labels is None else ce(logits, labels)), logits
        h = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if family == "mlm" and labels is not None:
            # training: only the masked ~15 % of positions carry a label, so the vocabulary projection
            # (the largest matrix of a small model) runs on those alone; the loss is the same
            picked = labels != -100
            logits = self.lm_head(h[picked])
            return ce(logits, labels[picked]), logits
        if family in ("mlm", "token_cls"):
            logits = self.lm_head(h) if family == "mlm" else self.heads[task](h)
            loss = None if labels is None else ce(logits.view(-1, logits.size(-1)), labels.view(-1), ignore_index=-100)
            return loss, logits
        if family == "qa":
            logits = self.heads[task](h).masked_fill(attention_mask.unsqueeze(-1) == 0, -1e4)
            loss = None if labels is None else (ce(logits[..., 0], labels[:, 0]) + ce(logits[..., 1], labels[:, 1])) / 2
            return loss, logits
        logits = self.heads[task](h)
        loss = None if labels is None else ce(logits, labels)
        return loss, logits


class lr_lambda:  # noqa: N801 - a function in use; a class so that LambdaLR can save its state
    """Linear warmup then decay to zero: ``linear`` (BERT / XLM-R fine-tuning), ``cosine``, or
    ``constant`` (no decay)."""

    def __init__(self, total: int, warmup_frac: float = 0.1, decay: str = "linear") -> None:
        if decay not in ("linear", "cosine", "constant"):
            raise ValueError(f"unknown LR decay {decay!r}; known: linear, cosine, constant")
        self.total, self.decay = total, decay
        self.warm = max(1, math.ceil(total * warmup_frac))

    def __call__(self, s: int) -> float:
        if s + 1 < self.warm:
            return (s + 1) / self.warm
        if self.decay == "constant":
            return 1.0 if s < self.total else 0.0
        frac = max(0.0, (self.total - s) / max(1, self.total - self.warm))
        if self.decay == "cosine":
            frac = 0.5 * (1.0 - math.cos(math.pi * min(1.0, frac)))
        return min((s + 1) / self.warm, frac)
