"""Every task family passes one contract: shapes, loss falls on a tiny batch, metric in range,
save/load round trip. Plus the XTREME metrics against known values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from tests.conftest import TEST_TINY
from xstilts.trainer.config import TinyModelSpec
from xstilts.trainer.data import load_records, synth_benchmark
from xstilts.trainer.families import collate, encode, evaluate, predict_spans
from xstilts.trainer.metrics import (
    bucc_f1,
    normalize_answer,
    seqeval_f1,
    squad_em_f1,
    squad_score,
    tatoeba_accuracy,
)
from xstilts.trainer.model import MultiTaskModel, ensure_tiny_model, load_pretrained, mask_tokens, pad
from xstilts.trainer.tasks import FAMILIES, INTERMEDIATE_TASKS, TARGET_TASKS, TASKS

# one representative task per family (every task is read by test_every_task_encodes_and_scores)
REPRESENTATIVE = {"pair_cls": "xnli", "single_cls": "sst2", "multiple_choice": "hellaswag", "qa": "squad",
                  "token_cls": "panx", "retrieval": "tatoeba", "mlm": "mlm"}
TRAINABLE = [f for f in REPRESENTATIVE if f != "retrieval"]


@pytest.fixture(scope="module")
def tok_path(tiny_home: Path) -> tuple[Any, Path]:
    path = ensure_tiny_model(tiny_home, TinyModelSpec(**TEST_TINY), log=lambda s: None)
    return load_pretrained(path)[0], path


def fresh_model(path: Path) -> MultiTaskModel:
    torch.manual_seed(0)
    _, mlm = load_pretrained(path)
    return MultiTaskModel(mlm, {t: i.num_labels for t, i in TASKS.items()}, {t: i.family for t, i in TASKS.items()})


def batch_of(family: str, tok: Any, home: Path, n: int = 8) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    if family == "mlm":
        docs = synth_benchmark(str(home)).corpus("xb")[:n]
        ids, attn = pad(tok(docs, truncation=True, max_length=64)["input_ids"], tok.pad_token_id)
        inp, labels = mask_tokens(ids, ids <= 2, tok.mask_token_id, len(tok), torch.Generator().manual_seed(0))
        return inp, attn, labels
    info = TASKS[REPRESENTATIVE[family]]
    split = "dev" if info.family == "retrieval" else "train"
    enc = encode(info, tok, load_records("synth", info.name, split, "xa" if split == "dev" else "en",
                                         home=str(home))[:n], 64)
    return collate(info.family, enc.ids, enc.labels, tok.pad_token_id)


def test_every_family_has_a_representative() -> None:
    assert set(FAMILIES) | {"mlm"} == set(REPRESENTATIVE)
    assert {TASKS[t].family for t in REPRESENTATIVE.values() if t != "mlm"} == set(FAMILIES)
    assert len(INTERMEDIATE_TASKS) == 9 and len(TARGET_TASKS) == 9


@pytest.mark.parametrize("family", list(REPRESENTATIVE))
def test_contract_shapes(family: str, tok_path: Any, tiny_home: Path) -> None:
    tok, path = tok_path
    model = fresh_model(path).eval()
    task = REPRESENTATIVE[family]
    x, attn, y = batch_of(family, tok, tiny_home)
    b = x.shape[0]
    if family == "retrieval":
        e = model.embed(x, attn)
        assert e.shape == (b, model.encoder.config.hidden_size)
        assert y is None and task not in model.heads  # no head, no training
        return
    loss, logits = model(task, x, attn, y)
    assert loss is not None and loss.ndim == 0 and torch.isfinite(loss)
    n = TASKS[task].num_labels if task != "mlm" else len(tok)
    expected = {"pair_cls": (b, n), "single_cls": (b, n), "multiple_choice": (b, x.shape[1]),
                "qa": (b, x.shape[1], 2), "token_cls": (b, x.shape[1], n), "mlm": (b, x.shape[1], n)}[family]
    no_loss, all_logits = model(task, x, attn)
    assert no_loss is None and tuple(all_logits.shape) == expected
    if family == "mlm":  # trained on the masked positions only: their logits, and the full loss
        assert y is not None
        assert tuple(logits.shape) == (int((y != -100).sum()), n)
        full = torch.nn.functional.cross_entropy(all_logits.reshape(-1, n), y.reshape(-1), ignore_index=-100)
        assert torch.allclose(loss, full, atol=1e-5)
    else:
        assert tuple(logits.shape) == expected


@pytest.mark.parametrize("family", TRAINABLE)
def test_contract_loss_falls_on_a_tiny_batch(family: str, tok_path: Any, tiny_home: Path) -> None:
    tok, path = tok_path
    model = fresh_model(path)
    task = REPRESENTATIVE[family]
    x, attn, y = batch_of(family, tok, tiny_home)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)

    def loss_now() -> float:
        model.eval()
        with torch.no_grad():
            loss = model(task, x, attn, y)[0]
        model.train()
        assert loss is not None
        return float(loss)

    before = loss_now()
    for _ in range(25):
        loss = model(task, x, attn, y)[0]
        assert loss is not None
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = loss_now()
    assert after < 0.6 * before, (family, before, after)


@pytest.mark.parametrize("task", list(TASKS))
def test_every_task_encodes_and_scores_in_range(task: str, tok_path: Any, tiny_home: Path) -> None:
    tok, path = tok_path
    info = TASKS[task]
    model = fresh_model(path).eval()
    lang = "xc" if info.role == "target" else "en"
    rows = load_records("synth", task, "dev", lang, home=str(tiny_home))[:40]
    enc = encode(info, tok, rows, 64)
    assert len(enc) == len(rows)
    score = evaluate(model, info, enc, tok.pad_token_id)
    assert 0.0 <= score <= 1.0
    if info.family == "qa":  # every synth answer survives truncation and maps back to its text
        for (s, e), m in zip(enc.labels, enc.meta, strict=True):
            assert s > 0 and m["context"][m["offsets"][s][0] : m["offsets"][e][1]] == m["answers"][0]
    if info.family == "token_cls":
        for lab, m in zip(enc.labels, enc.meta, strict=True):
            assert [lab[k] for k in sorted(m["first"].values())] == m["gold"]


@pytest.mark.parametrize("family", list(REPRESENTATIVE))
def test_contract_save_load_round_trip(family: str, tok_path: Any, tiny_home: Path, tmp_path: Path) -> None:
    tok, path = tok_path
    model = fresh_model(path)
    task = REPRESENTATIVE[family]
    for p in model.parameters():  # move away from the checkpoint, so loading has to do something
        p.data.add_(0.01 * torch.randn_like(p))
    torch.save(model.state_dict(), tmp_path / "m.pt")
    other = fresh_model(path)
    other.load_state_dict(torch.load(tmp_path / "m.pt"))
    model.eval()
    other.eval()
    x, attn, y = batch_of(family, tok, tiny_home)
    with torch.no_grad():
        if family == "retrieval":
            assert torch.equal(model.embed(x, attn), other.embed(x, attn))
        else:
            assert torch.equal(model(task, x, attn, y)[1], other(task, x, attn, y)[1])


def test_a_trained_family_beats_chance(tok_path: Any, tiny_home: Path) -> None:
    """QA end to end on the synth analogue: a few steps of training lift (EM+F1)/2 clearly."""
    tok, path = tok_path
    model = fresh_model(path)
    info = TASKS["squad"]
    train = encode(info, tok, load_records("synth", "squad", "train", home=str(tiny_home))[:256], 64)
    dev = encode(info, tok, load_records("synth", "squad", "dev", home=str(tiny_home))[:60], 64)
    model.eval()
    before = evaluate(model, info, dev, tok.pad_token_id)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    torch.manual_seed(0)
    for step in range(120):
        i = (step * 16) % 256
        x, attn, y = collate("qa", train.ids[i : i + 16], train.labels[i : i + 16], tok.pad_token_id)
        loss = model("squad", x, attn, y)[0]
        assert loss is not None
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    after = evaluate(model, info, dev, tok.pad_token_id)
    assert after > before + 0.2, (before, after)


# --- metrics against known values ------------------------------------------------------------


def test_squad_normalisation_and_scores() -> None:
    assert normalize_answer("The  Normans!") == "normans"
    assert normalize_answer("an Apple, a day") == "apple day"
    em, f1 = squad_em_f1(["the Normans", "Denmark and Norway", "x"], [["Normans"], ["Norway"], ["y", "z"]])
    assert em == pytest.approx(1 / 3)
    assert f1 == pytest.approx((1.0 + 2 * (1 / 3) * 1 / (1 / 3 + 1) + 0.0) / 3)
    assert squad_score(["the Normans"], [["Normans"]]) == 1.0
    assert squad_score(["Denmark and Norway"], [["Norway"]]) == pytest.approx((0 + 0.5) / 2)


def test_seqeval_f1_known_values() -> None:
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    assert seqeval_f1(gold, gold) == 1.0
    pred = [["B-PER", "O", "O", "B-LOC"], ["B-ORG", "O"]]  # PER truncated: 2 of 3 right, 2 of 3 found
    assert seqeval_f1(pred, gold) == pytest.approx(2 / 3)
    pred2 = [["B-PER", "I-PER", "O", "O"], ["O", "O"]]  # precision 1, recall 1/3
    assert seqeval_f1(pred2, gold) == pytest.approx(2 * 1 * (1 / 3) / (1 + 1 / 3))


def test_retrieval_metrics_on_constructed_embeddings() -> None:
    g = torch.Generator().manual_seed(0)
    tgt = torch.randn(50, 16, generator=g)
    src = tgt + 0.01 * torch.randn(50, 16, generator=g)
    assert tatoeba_accuracy(src, tgt) == 1.0
    f1, t = bucc_f1(src, tgt)
    assert f1 == 1.0 and t > 0.9
    shuffled = src[torch.randperm(50, generator=g)]
    assert tatoeba_accuracy(shuffled, tgt) < 0.2
    assert bucc_f1(src, tgt, threshold=2.0)[0] == 0.0  # nothing kept above a cosine of 2


def test_predict_spans_respects_context_order_and_length() -> None:
    start = torch.tensor([9.0, 0.0, 1.0, 0.0, 5.0, 0.0])
    end = torch.tensor([9.0, 0.0, 0.0, 3.0, 0.0, 1.0])
    offsets: list[Any] = [None, (0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]  # token 0 is not context
    assert predict_spans(start, end, offsets) == (4, 5)  # end before start (3 < 4) is not allowed
    assert predict_spans(start, end, offsets, max_tokens=1) == (3, 3) or predict_spans(
        start, end, offsets, max_tokens=1)[0] == predict_spans(start, end, offsets, max_tokens=1)[1]
