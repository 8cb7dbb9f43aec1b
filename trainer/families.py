"""Task families: how examples become tensors, and how a family's predictions are scored.

Every family answers the same three questions, so the trainer never branches on a task:

* ``encode(info, tok, rows, max_len) -> Encoded``: records (HF schema) -> token ids + labels,
  plus what evaluation needs (QA offsets and gold answers, tagging word positions);
* ``collate(family, items, pad_id) -> (input_ids, attention_mask, labels)``;
* ``evaluate(model, info, enc, pad_id, ...) -> float``: the task's metric in [0, 1].

The model side (one head per task) lives in ``model.MultiTaskModel``; its forward takes
``(task, input_ids, attention_mask, labels)`` for every family, with family-shaped tensors:
multiple choice (B, C, L); QA labels (B, 2) start/end token; tagging labels (B, L).
Retrieval is never trained: ``evaluate`` mean-pools a middle layer (``model.embed``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from .metrics import accuracy, bucc_f1, seqeval_f1, squad_score, tatoeba_accuracy
from .model import MultiTaskModel, pad
from .tasks import TaskInfo

__all__ = ["Encoded", "encode", "collate", "evaluate", "predict_spans", "MAX_ANSWER_TOKENS"]

MAX_ANSWER_TOKENS = 30  # longest predicted answer span, in tokens (SQuAD's default)


@dataclass
class Encoded:
    """One split of one task, encoded. ``items[i]`` is ``(ids, label)`` in the family's shapes."""

    family: str
    ids: list[Any]  # list[int] per example; list[list[int]] for multiple choice; (src, tgt) for retrieval
    labels: list[Any]  # int; (start, end) for qa; list[int] per token for token_cls; None for retrieval
    meta: list[dict[str, Any]] = field(default_factory=list)  # evaluation-only data

    def __len__(self) -> int:
        return len(self.ids)


def encode(info: TaskInfo, tok: Any, rows: list[dict[str, Any]], max_len: int) -> Encoded:
    ex = [info.example(r) for r in rows]
    fam = info.family
    if fam in ("pair_cls", "single_cls"):
        a = [e[0] for e in ex]
        b = [e[1] for e in ex] if fam == "pair_cls" else None
        enc = tok(a, b, truncation=True, max_length=max_len)
        return Encoded(fam, enc["input_ids"], [e[2] for e in ex])
    if fam == "multiple_choice":
        ids = []
        for ctx, choices, _ in ex:
            enc = tok([ctx] * len(choices), list(choices), truncation=True, max_length=max_len)
            ids.append(enc["input_ids"])
        return Encoded(fam, ids, [e[2] for e in ex])
    if fam == "qa":
        return _encode_qa(tok, ex, max_len)
    if fam == "token_cls":
        return _encode_tags(tok, ex, max_len)
    if fam == "retrieval":
        src = tok([e[0] for e in ex], truncation=True, max_length=max_len)["input_ids"]
        tgt = tok([e[1] for e in ex], truncation=True, max_length=max_len)["input_ids"]
        return Encoded(fam, list(zip(src, tgt, strict=True)), [None] * len(ex))
    raise ValueError(f"unknown task family {fam!r}")


def _encode_qa(tok: Any, ex: list[Any], max_len: int) -> Encoded:
    enc = tok([e[0] for e in ex], [e[1] for e in ex], truncation="only_second", max_length=max_len,
              return_offsets_mapping=True)
    ids, labels, meta = [], [], []
    for i, (_, context, texts, starts) in enumerate(ex):
        seq = enc.sequence_ids(i)
        offsets = [o if s == 1 else None for o, s in zip(enc["offset_mapping"][i], seq, strict=True)]
        start_tok = end_tok = 0  # the answer was truncated away: point at <s>, as HF does
        if texts:
            a0, a1 = starts[0], starts[0] + len(texts[0])
            inside = [k for k, o in enumerate(offsets) if o is not None and o[0] < a1 and o[1] > a0]
            if inside:
                start_tok, end_tok = inside[0], inside[-1]
        ids.append(enc["input_ids"][i])
        labels.append((start_tok, end_tok))
        meta.append({"offsets": offsets, "context": context, "answers": texts})
    return Encoded("qa", ids, labels, meta)


def _encode_tags(tok: Any, ex: list[Any], max_len: int) -> Encoded:
    enc = tok([e[0] for e in ex], is_split_into_words=True, truncation=True, max_length=max_len)
    ids, labels, meta = [], [], []
    for i, (words, tags) in enumerate(ex):
        word_ids = enc.word_ids(i)
        lab, first = [], {}
        prev = None
        for k, w in enumerate(word_ids):
            if w is None or w == prev:
                lab.append(-100)  # specials and continuation pieces: no label (XTREME labels the first piece)
            else:
                lab.append(int(tags[w]))
                first[w] = k
            prev = w
        ids.append(enc["input_ids"][i])
        labels.append(lab)
        meta.append({"first": first, "gold": list(tags), "n_words": len(words)})
    return Encoded("token_cls", ids, labels, meta)


def collate(family: str, ids: list[Any], labels: list[Any], pad_id: int
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(input_ids, attention_mask, labels) for a batch of one family."""
    if family == "multiple_choice":
        n_choices = len(ids[0])
        flat = [c for choices in ids for c in choices]
        x, attn = pad(flat, pad_id)
        shape = (len(ids), n_choices, x.shape[1])
        return x.view(shape), attn.view(shape), torch.tensor(labels)
    if family == "retrieval":  # (source, target) pairs: the sources (embed the targets the same way)
        x, attn = pad([src for src, _ in ids], pad_id)
        return x, attn, None
    x, attn = pad(ids, pad_id)
    if family == "token_cls":
        y = torch.full(x.shape, -100, dtype=torch.long)
        for i, lab in enumerate(labels):
            y[i, : len(lab)] = torch.tensor(lab, dtype=torch.long)
        return x, attn, y
    return x, attn, torch.tensor(labels, dtype=torch.long)


def predict_spans(start: torch.Tensor, end: torch.Tensor, offsets: list[Any],
                  max_tokens: int = MAX_ANSWER_TOKENS) -> tuple[int, int]:
    """The context span (s, e) with s <= e < s + max_tokens maximising start[s] + end[e]."""
    ctx = torch.tensor([o is not None for o in offsets] + [False] * (len(start) - len(offsets)))
    neg = torch.finfo(start.dtype).min / 4
    s = start.masked_fill(~ctx, neg)
    e = end.masked_fill(~ctx, neg)
    score = s[:, None] + e[None, :]
    n = len(start)
    band = torch.ones(n, n, dtype=torch.bool).triu() & ~torch.ones(n, n, dtype=torch.bool).triu(max_tokens)
    score = score.masked_fill(~band, float("-inf"))
    best = int(score.argmax())
    return best // n, best % n


@torch.no_grad()
def _logits(model: MultiTaskModel, task: str, enc: Encoded, pad_id: int, batch: int) -> list[torch.Tensor]:
    out = []
    for i in range(0, len(enc), batch):
        x, attn, _ = collate(enc.family, enc.ids[i : i + batch], enc.labels[i : i + batch], pad_id)
        _, logits = model(task, x, attn)
        out += list(logits)
    return out


@torch.no_grad()
def embed(model: MultiTaskModel, ids: list[list[int]], pad_id: int, layer: int | None, batch: int = 256
          ) -> torch.Tensor:
    parts = []
    for i in range(0, len(ids), batch):
        x, attn = pad(ids[i : i + batch], pad_id)
        parts.append(model.embed(x, attn, layer))
    return torch.cat(parts)


def evaluate(model: MultiTaskModel, info: TaskInfo, enc: Encoded, pad_id: int, *, batch: int = 256,
             layer: int | None = None, state: dict[str, Any] | None = None) -> float:
    """The task's metric on ``enc`` (model in eval mode is the caller's business).

    ``state`` carries what one evaluation hands the next: the BUCC threshold chosen on dev
    (``state["bucc_threshold"]``) is applied when ``state["split"] == "test"``.
    """
    if len(enc) == 0:
        return float("nan")
    fam = info.family
    if fam == "retrieval":
        src = embed(model, [s for s, _ in enc.ids], pad_id, layer)
        tgt = embed(model, [t for _, t in enc.ids], pad_id, layer)
        if info.metric == "bucc_f1":
            st = state if state is not None else {}
            threshold = st.get("bucc_threshold") if st.get("split") == "test" else None
            f1, used = bucc_f1(src, tgt, threshold)
            st["bucc_threshold"] = used
            return f1
        return tatoeba_accuracy(src, tgt)
    logits = _logits(model, info.name, enc, pad_id, batch)
    if fam in ("pair_cls", "single_cls", "multiple_choice"):
        return accuracy([int(x.argmax(-1)) for x in logits], enc.labels)
    if fam == "qa":
        preds, golds = [], []
        for lg, m in zip(logits, enc.meta, strict=True):
            s, e = predict_spans(lg[:, 0], lg[:, 1], m["offsets"])
            o_s, o_e = m["offsets"][s], m["offsets"][e]
            preds.append(m["context"][o_s[0] : o_e[1]] if o_s is not None and o_e is not None else "")
            golds.append(m["answers"] or [""])
        return squad_score(preds, golds)
    if fam == "token_cls":
        names = info.label_names
        pred_tags, gold_tags = [], []
        for lg, m in zip(logits, enc.meta, strict=True):
            best = lg.argmax(-1).tolist()
            pred = [names[best[m["first"][w]]] if w in m["first"] else "O" for w in range(m["n_words"])]
            pred_tags.append(_chunked(pred, info))
            gold_tags.append(_chunked([names[t] for t in m["gold"]], info))
        return seqeval_f1(pred_tags, gold_tags)
    raise ValueError(f"unknown task family {fam!r}")


def _chunked(tags: list[str], info: TaskInfo) -> list[str]:
    """seqeval reads B-/I- chunks. NER tags already are; a POS or CCG tag is a one-token chunk
    ("NOUN" -> "B-NOUN"), so seqeval's F1 is the token-level micro F1 over tags."""
    if any(n.startswith(("B-", "I-")) for n in info.label_names):
        return tags
    return [f"B-{t}" for t in tags]
