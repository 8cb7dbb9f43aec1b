"""trainer.model: the tiny XLM-R-shaped encoder, its tokenizer, the multi-task model, masking and the LR schedule."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import XLMRobertaForMaskedLM

from xstilts.trainer.config import TinyModelSpec
from xstilts.trainer.model import (
    SPECIALS,
    ClassificationHead,
    MultiTaskModel,
    ensure_tiny_model,
    load_pretrained,
    lr_lambda,
    mask_tokens,
    pad,
)
from xstilts.trainer.synth import SYNTH_VERSION, SynthBenchmark

SPEC = TinyModelSpec(pretrain_steps=30, pretrain_batch=16)


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[str]]:
    """(home, model folder, log lines of the making call): the tiny model is made once per module."""
    home = tmp_path_factory.mktemp("home")
    logs: list[str] = []
    return home, ensure_tiny_model(home, SPEC, log=logs.append), logs


@pytest.fixture(scope="module")
def loaded(made: Any) -> tuple[Any, Any]:
    return load_pretrained(made[1])


@pytest.fixture
def fresh(made: Any) -> tuple[Any, Any]:
    """A private copy (tests that train must not change the shared one)."""
    torch.manual_seed(0)
    return load_pretrained(made[1])


# --- making and caching the tiny model ----------------------------------------------------------


def test_the_folder_has_tokenizer_weights_and_a_record(made: Any) -> None:
    home, path, logs = made
    assert path.parent == home / "models" and path.name == f"tiny-{SPEC.key()}"
    names = {p.name for p in path.iterdir()}
    assert {"tokenizer.json", "tokenizer_config.json", "config.json", "xstilts_pretrain.json"} <= names
    assert names & {"model.safetensors", "pytorch_model.bin"}
    record = json.loads((path / "xstilts_pretrain.json").read_text())
    assert TinyModelSpec(**record["spec"]) == SPEC
    assert record["params"] > 0
    assert any("pretraining tiny model" in line for line in logs)
    assert logs[-1].startswith("[xstilts] tiny model ready")
    assert not [p for p in path.parent.iterdir() if ".tmp" in p.name]  # renamed into place


def test_the_tokenizer_uses_xlmr_special_ids(loaded: Any) -> None:
    tok, _ = loaded
    assert tok.convert_ids_to_tokens([0, 1, 2, 3]) == ["<s>", "<pad>", "</s>", "<unk>"]
    assert (tok.bos_token_id, tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2, 3)
    assert (tok.cls_token_id, tok.sep_token_id) == (0, 2)
    assert tok.mask_token_id == SPECIALS.index("<mask>") == 4
    assert tok.convert_tokens_to_ids("<mask>") == 4


def test_the_tokenizer_encodes_single_and_pair_like_xlmr(loaded: Any, made: Any) -> None:
    tok, _ = loaded

    bench = SynthBenchmark(made[0] / "data" / f"synth-v{SYNTH_VERSION}-s0")
    r = bench.records("xnli", "test", "xc")[0]
    a, b = r["sentence1"], r["sentence2"]
    ids_a = tok(a, add_special_tokens=False)["input_ids"]
    ids_b = tok(b, add_special_tokens=False)["input_ids"]
    assert len(ids_a) == len(a.split()) and 3 not in ids_a  # word level, every synth word is known
    assert tok(a)["input_ids"] == [0, *ids_a, 2]
    pair = tok(a, b)["input_ids"]
    assert pair == [0, *ids_a, 2, 2, *ids_b, 2]
    assert tok.convert_ids_to_tokens(pair) == ["<s>", *a.split(), "</s>", "</s>", *b.split(), "</s>"]
    assert tok.decode(ids_a) == a
    assert tok("qqqqzz")["input_ids"] == [0, 3, 2]  # an unseen word is <unk>


def test_load_pretrained_gives_an_mlm_shaped_like_the_spec(loaded: Any) -> None:
    tok, mlm = loaded
    assert isinstance(mlm, XLMRobertaForMaskedLM)
    c = mlm.config
    assert (c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.intermediate_size) == (
        SPEC.layers, SPEC.hidden, SPEC.heads, SPEC.ffn_width)
    assert c.vocab_size == len(tok)
    assert c.max_position_embeddings == SPEC.max_len + 2
    assert (c.pad_token_id, c.bos_token_id, c.eos_token_id) == (1, 0, 2)
    assert len(mlm.roberta.encoder.layer) == SPEC.layers


def test_pretraining_moved_the_weights_away_from_init(loaded: Any) -> None:
    _, mlm = loaded
    torch.manual_seed(SPEC.seed)
    init = XLMRobertaForMaskedLM(mlm.config)
    w0 = init.roberta.encoder.layer[0].attention.self.query.weight
    w1 = mlm.roberta.encoder.layer[0].attention.self.query.weight
    assert w0.shape == w1.shape and not torch.allclose(w0, w1)


def test_a_second_call_reuses_the_cache(made: Any) -> None:
    home, path, _ = made
    files = {p.name: p.stat().st_mtime_ns for p in path.iterdir()}
    logs: list[str] = []
    assert ensure_tiny_model(home, SPEC, log=logs.append) == path
    assert logs == []
    assert {p.name: p.stat().st_mtime_ns for p in path.iterdir()} == files


def test_a_new_synth_version_retrains_the_tiny_model(monkeypatch: pytest.MonkeyPatch) -> None:
    import xstilts.trainer.synth as synth

    before = SPEC.key()
    monkeypatch.setattr(synth, "SYNTH_VERSION", synth.SYNTH_VERSION + 1)
    assert SPEC.key() != before


def test_a_new_pretraining_procedure_retrains_the_tiny_model(monkeypatch: pytest.MonkeyPatch) -> None:
    import xstilts.trainer.config as config

    before = SPEC.key()
    monkeypatch.setattr(config, "PRETRAIN_PROCEDURE", config.PRETRAIN_PROCEDURE + 1)
    assert SPEC.key() != before


def test_masked_lm_loss_is_the_models_own_loss_with_the_same_gradients() -> None:
    """The projection at the masked positions only gives the loss ``XLMRobertaForMaskedLM`` computes
    over every position (bit for bit) and its gradients up to float rounding."""
    from transformers import XLMRobertaForMaskedLM

    from xstilts.trainer.model import _tiny_config, masked_lm_loss

    torch.manual_seed(0)
    model = XLMRobertaForMaskedLM(_tiny_config(SPEC, 120)).eval()  # no dropout: two passes, one function
    ids = torch.randint(5, 120, (16, 20), generator=torch.Generator().manual_seed(1))
    ids[:, 0], ids[:, -1], ids[3, 12:] = 0, 2, 1  # <s> ... </s>, one padded row
    attn = (ids != 1).long()
    inp, labels = mask_tokens(ids, ids <= 2, 4, 120, torch.Generator().manual_seed(2))
    ours = masked_lm_loss(model, inp, attn, labels)
    ours.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    theirs = model(input_ids=inp, attention_mask=attn, labels=labels).loss
    theirs.backward()
    assert ours.item() == theirs.item()
    assert grads.keys() == {n for n, p in model.named_parameters() if p.grad is not None}
    for n, p in model.named_parameters():
        if p.grad is not None:
            torch.testing.assert_close(grads[n], p.grad, rtol=1e-4, atol=1e-6, msg=n)


def test_lr_decay_kinds() -> None:
    lin, cos, const = lr_lambda(100, 0.1), lr_lambda(100, 0.1, "cosine"), lr_lambda(100, 0.1, "constant")
    assert lin(4) == cos(4) == const(4) == pytest.approx(0.5)  # the same warmup
    assert const(60) == 1.0 and const(100) == 0.0
    assert cos(55) == pytest.approx(0.5) and cos(30) > lin(30) and cos(80) < lin(80)
    assert cos(100) == 0.0
    with pytest.raises(ValueError, match="unknown LR decay 'step'"):
        lr_lambda(10, 0.1, "step")


def test_the_cache_key_is_the_spec() -> None:
    assert TinyModelSpec(pretrain_steps=30, pretrain_batch=16).key() == SPEC.key()
    assert TinyModelSpec(pretrain_steps=31, pretrain_batch=16).key() != SPEC.key()
    assert TinyModelSpec(pretrain_steps=30, pretrain_batch=16, data_seed=1).key() != SPEC.key()
    with pytest.raises(ValueError, match="layerz"):
        TinyModelSpec(layerz=3)  # type: ignore[call-arg]


# --- MultiTaskModel ------------------------------------------------------------------------------


def batch(tok: Any, made: Any, n: int = 8) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    from xstilts.trainer.synth import SynthBenchmark
    from xstilts.trainer.tasks import NLI_LABELS

    rows = SynthBenchmark(made[0] / "data" / f"synth-v{SYNTH_VERSION}-s0").records("xnli", "train")[:n]
    enc = tok([r["sentence1"] for r in rows], [r["sentence2"] for r in rows])["input_ids"]
    ids, attn = pad(enc, tok.pad_token_id)
    return ids, attn, torch.tensor([NLI_LABELS.index(r["gold_label"]) for r in rows])


def test_pad_right_pads_with_the_pad_id_and_masks_it() -> None:
    ids, attn = pad([[0, 7, 2], [0, 2]], pad_id=1)
    assert ids.tolist() == [[0, 7, 2], [0, 2, 1]]
    assert attn.tolist() == [[1, 1, 1], [1, 1, 0]]
    assert ids.dtype == attn.dtype == torch.long


def test_forward_shapes_for_a_head_and_for_mlm(fresh: Any, made: Any) -> None:
    tok, mlm = fresh
    model = MultiTaskModel(mlm, {"xnli": 3, "sst2": 2}).eval()
    ids, attn, y = batch(tok, made)
    with torch.no_grad():
        loss, logits = model("xnli", ids, attn, y)
        assert logits.shape == (8, 3) and loss is not None and loss.ndim == 0
        none, logits2 = model("sst2", ids, attn)
        assert none is None and logits2.shape == (8, 2)
        labels = torch.full_like(ids, -100)
        labels[:, 1] = ids[:, 1]
        mlm_loss, mlm_logits = model("mlm", ids, attn, labels)
        assert mlm_logits.shape == (8, len(tok))  # one labelled position per row: only those are projected
        assert mlm_loss is not None and torch.isfinite(mlm_loss)
        none_mlm, all_logits = model("mlm", ids, attn)
        assert none_mlm is None and all_logits.shape == (8, ids.shape[1], len(tok))
        assert torch.allclose(all_logits[:, 1], mlm_logits, atol=1e-5)
    with pytest.raises(KeyError):
        model("mnli", ids, attn)


def test_the_encoder_and_lm_head_are_the_pretrained_ones(fresh: Any) -> None:
    _, mlm = fresh
    model = MultiTaskModel(mlm, {"xnli": 3})
    assert model.encoder is mlm.roberta and model.lm_head is mlm.lm_head
    assert isinstance(model.heads["xnli"], ClassificationHead)
    assert model.heads["xnli"].out.out_features == 3


def test_padding_does_not_change_the_prediction(fresh: Any, made: Any) -> None:
    tok, mlm = fresh
    model = MultiTaskModel(mlm, {"xnli": 3}).eval()
    ids, attn, _ = batch(tok, made, n=2)
    with torch.no_grad():
        _, both = model("xnli", ids, attn)
        n = int(attn[0].sum())
        _, alone = model("xnli", ids[:1, :n], attn[:1, :n])
    assert torch.allclose(both[:1], alone, atol=1e-5)


def test_a_classification_head_overfits_one_batch(fresh: Any, made: Any) -> None:
    tok, mlm = fresh
    torch.manual_seed(0)
    model = MultiTaskModel(mlm, {"xnli": 3})
    ids, attn, y = batch(tok, made)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)

    def eval_loss() -> float:
        model.eval()
        with torch.no_grad():
            loss, _ = model("xnli", ids, attn, y)
        model.train()
        assert loss is not None
        return float(loss)

    before = eval_loss()
    for _ in range(60):  # enough for every synth version's batch (v5: 30 left one of 8 wrong)
        loss, _ = model("xnli", ids, attn, y)
        assert loss is not None
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = eval_loss()
    assert after < 0.3 * before, (before, after)
    model.eval()
    with torch.no_grad():
        assert (model("xnli", ids, attn)[1].argmax(-1) == y).all()


# --- masking ---------------------------------------------------------------------------------------


def test_mask_tokens_never_touches_special_tokens_and_masks_15_percent() -> None:
    vocab = 500
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(len(SPECIALS), vocab, (400, 64), generator=g)
    ids[:, 0], ids[:, -1], ids[:, 40:] = 0, 2, 1  # <s> ... </s> and padding
    special = ids <= 2
    inp, labels = mask_tokens(ids, special, mask_id=4, vocab=vocab, gen=torch.Generator().manual_seed(1))

    assert torch.equal(inp[special], ids[special])
    assert (labels[special] == -100).all()
    chosen = labels != -100
    assert torch.equal(labels[chosen], ids[chosen])  # labels are the original ids
    assert torch.equal(inp[~chosen], ids[~chosen])  # unchosen tokens are untouched
    frac = chosen.sum().item() / (~special).sum().item()
    assert frac == pytest.approx(0.15, abs=0.01)

    n = chosen.sum().item()
    masked = (inp == 4) & chosen
    replaced = (inp != 4) & (inp != ids) & chosen
    assert masked.sum().item() / n == pytest.approx(0.8, abs=0.03)
    assert replaced.sum().item() / n == pytest.approx(0.1, abs=0.03)  # (a few randoms hit the same id)
    assert (inp[replaced] >= len(SPECIALS)).all() and (inp < vocab).all()  # random ids are never special
    assert (inp[~chosen] != 4).all()


def test_mask_tokens_is_deterministic_given_the_generator() -> None:
    ids = torch.randint(5, 100, (16, 20), generator=torch.Generator().manual_seed(0))
    special = torch.zeros_like(ids, dtype=torch.bool)
    a = mask_tokens(ids, special, 4, 100, torch.Generator().manual_seed(3))
    b = mask_tokens(ids, special, 4, 100, torch.Generator().manual_seed(3))
    c = mask_tokens(ids, special, 4, 100, torch.Generator().manual_seed(4))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


def test_mask_tokens_respects_prob() -> None:
    ids = torch.randint(5, 100, (200, 50), generator=torch.Generator().manual_seed(0))
    special = torch.zeros_like(ids, dtype=torch.bool)
    _, labels = mask_tokens(ids, special, 4, 100, torch.Generator().manual_seed(0), prob=0.5)
    assert (labels != -100).float().mean().item() == pytest.approx(0.5, abs=0.02)
    _, none = mask_tokens(ids, special, 4, 100, torch.Generator().manual_seed(0), prob=0.0)
    assert (none == -100).all()


# --- LR schedule --------------------------------------------------------------------------------------


def test_lr_lambda_warms_up_then_decays_to_zero() -> None:
    total = 100
    f = lr_lambda(total, 0.1)
    values = [f(s) for s in range(total + 1)]
    assert values[0] == pytest.approx(0.1)
    assert values[9] == pytest.approx(1.0) and max(values) == pytest.approx(1.0)
    assert values[:10] == sorted(values[:10])  # rising
    assert values[9:] == sorted(values[9:], reverse=True)  # falling
    assert values[total] == 0.0 and values[total - 1] > 0.0
    assert values[55] == pytest.approx((total - 55) / (total - 10))
    assert f(total + 10) == 0.0  # never negative


@pytest.mark.parametrize(("total", "frac"), [(1, 0.1), (5, 0.0), (10, 1.0), (3, 0.5)])
def test_lr_lambda_edge_budgets_stay_in_range(total: int, frac: float) -> None:
    f = lr_lambda(total, frac)
    values = [f(s) for s in range(total + 1)]
    assert all(0.0 <= v <= 1.0 for v in values), values
    assert values[-1] == 0.0
    assert f(0) > 0.0


def test_lr_lambda_drives_a_torch_scheduler() -> None:
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.5)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(20, 0.25))
    lrs = []
    for _ in range(20):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.5 / 5) and lrs[4] == pytest.approx(0.5)
    assert opt.param_groups[0]["lr"] == 0.0


def test_a_one_step_pretraining_budget_works(tmp_path: Path) -> None:
    path = ensure_tiny_model(tmp_path, TinyModelSpec(pretrain_steps=1, pretrain_batch=4), log=lambda s: None)
    assert (path / "xstilts_pretrain.json").exists()


def test_making_a_model_logs_only_through_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    logs: list[str] = []
    ensure_tiny_model(tmp_path, TinyModelSpec(pretrain_steps=2, pretrain_batch=2), log=logs.append)
    assert any("generating synth" in line for line in logs)
    assert capsys.readouterr().out == ""
