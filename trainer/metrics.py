"""XTREME metrics as pure functions: accuracy, SQuAD EM/F1, seqeval F1, BUCC F1, Tatoeba accuracy.

Scores are fractions in [0, 1] (XTREME reports percentages; 2 points = 0.02 here).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

import torch

__all__ = [
    "accuracy",
    "normalize_answer",
    "squad_em_f1",
    "squad_score",
    "seqeval_f1",
    "bucc_f1",
    "tatoeba_accuracy",
    "mean_pool",
]


def accuracy(pred: Sequence[int], gold: Sequence[int]) -> float:
    return sum(int(p == g) for p, g in zip(pred, gold, strict=True)) / max(1, len(gold))


def normalize_answer(s: str) -> str:
    """SQuAD v1.1's normalisation: lower case, no punctuation, no articles, single spaces."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def _f1(pred: str, gold: str) -> float:
    p, g = normalize_answer(pred).split(), normalize_answer(gold).split()
    common = Counter(p) & Counter(g)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


def squad_em_f1(preds: Sequence[str], golds: Sequence[Sequence[str]]) -> tuple[float, float]:
    """(exact match, F1), each the mean over questions of the max over gold answers (SQuAD v1.1)."""
    if not golds:
        return 0.0, 0.0
    em = f1 = 0.0
    for p, gs in zip(preds, golds, strict=True):
        em += max(float(normalize_answer(p) == normalize_answer(g)) for g in gs)
        f1 += max(_f1(p, g) for g in gs)
    return em / len(golds), f1 / len(golds)


def squad_score(preds: Sequence[str], golds: Sequence[Sequence[str]]) -> float:
    """The QA score this project reports: (EM + F1) / 2."""
    em, f1 = squad_em_f1(preds, golds)
    return (em + f1) / 2


def seqeval_f1(pred: list[list[str]], gold: list[list[str]]) -> float:
    """Entity-level micro F1, computed by ``seqeval`` (default IOB2-tolerant mode, as XTREME)."""
    from seqeval.metrics import f1_score

    return float(f1_score(gold, pred))


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of the hidden states over the non-padding positions: (B, L, H) -> (B, H)."""
    m = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)


def _cosine(src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
    a = torch.nn.functional.normalize(src.float(), dim=-1)
    b = torch.nn.functional.normalize(tgt.float(), dim=-1)
    return a @ b.T


def tatoeba_accuracy(src: torch.Tensor, tgt: torch.Tensor) -> float:
    """Share of sources whose nearest target (cosine) is their own translation (row i <-> row i)."""
    sim = _cosine(src, tgt)
    return float((sim.argmax(1) == torch.arange(len(src))).float().mean())


def bucc_f1(src: torch.Tensor, tgt: torch.Tensor, threshold: float | None = None) -> tuple[float, float]:
    """BUCC-style mining F1 and the threshold used.

    Each source proposes its nearest target; a proposal is kept when its cosine is at least the
    threshold. Gold pairs are row i <-> row i. Precision = correct kept / kept, recall = correct
    kept / gold. With ``threshold=None`` the threshold that maximises F1 is chosen (XTREME picks
    it on the development set and applies it to the test set).
    """
    sim = _cosine(src, tgt)
    score, nn = sim.max(1)
    correct = nn == torch.arange(len(src))
    n_gold = len(src)

    def f1_at(t: float) -> float:
        kept = score >= t
        k = int(kept.sum())
        c = int((kept & correct).sum())
        if k == 0 or c == 0:
            return 0.0
        p, r = c / k, c / n_gold
        return 2 * p * r / (p + r)

    if threshold is None:
        candidates = sorted(set(score.tolist()))
        best = max(candidates, key=f1_at) if candidates else 0.0
        return f1_at(best), float(best)
    return f1_at(threshold), float(threshold)
