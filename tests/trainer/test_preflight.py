"""trainer.preflight: what a trial will read, found missing or broken before it trains (real-schema data)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.realdata import N_ROWS, write_real_data, write_rows
from xstilts.trainer.config import TinyModelSpec, TrialConfig
from xstilts.trainer.engine import (
    DEEPSPEED_CPU_OP,
    clear_stale_op_lock,
    deepspeed_op_file,
    ensure_deepspeed_op,
    start_deepspeed_op_build,
    wait_deepspeed_op,
)
from xstilts.trainer.preflight import (
    DETAILED,
    Need,
    Preflight,
    check_data,
    check_home,
    check_model,
    data_needs,
    preflight_trials,
)

REAL = {"benchmark": "xtreme", "model": "xlm-roberta-base", "target_tasks": ["xnli"], "eval_languages": ["de"],
        "intermediate": {"mnli": 1.0}}


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # never the hub: the local folder or nothing
    monkeypatch.delenv("XSTILTS_DATA_DIR", raising=False)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_real_data(tmp_path / "data")


def real(data: Path, **kw: Any) -> TrialConfig:
    return TrialConfig(**{**REAL, "data_dir": str(data), **kw})


# --- what a trial reads ---------------------------------------------------------------------------


def test_needs_cover_intermediate_target_train_every_eval_language_and_translate_train() -> None:
    cfg = TrialConfig(benchmark="xtreme", model="m", target_tasks=["pawsx", "tatoeba"],
                      intermediate={"mnli": 1.0, "sst2": 0.0}, translate_train_languages=["de"])
    needs = set(data_needs(cfg)) | set(data_needs(TrialConfig(benchmark="xtreme", model="m", target_tasks=["udpos"])))
    assert Need("mnli", "train", "en") in needs and Need("sst2", "train", "en") not in needs  # ratio 0: never drawn
    assert Need("pawsx", "train", "en") in needs and Need("pawsx", "translate_train", "de") in needs
    assert {n.lang for n in needs if n.task == "pawsx" and n.split == "test"} == {"de", "en", "es", "fr", "ja", "ko",
                                                                                  "zh"}
    assert not [n for n in needs if n.task == "tatoeba" and (n.split == "train" or n.lang == "en")]  # retrieval
    assert Need("udpos", "test", "th") in needs and Need("udpos", "dev", "th") not in needs  # no Thai dev set


def test_synth_needs_add_the_mlm_corpora_and_the_clean_test_sets() -> None:
    cfg = TrialConfig(intermediate={"mnli": 1.0}, schedule="interleaved", multilingual_share=0.3, eval_clean=True)
    needs = set(data_needs(cfg))
    assert {n.lang for n in needs if n.task == "corpus"} == {"en", "xa", "xb", "xc", "xd", "xe", "xz"}
    assert Need("xnli", "test_clean", "xa") in needs and Need("xnli", "test_clean", "en") not in needs
    assert not [n for n in data_needs(TrialConfig(intermediate={"mnli": 1.0})) if n.task == "corpus"]


# --- the data, read and checked record by record --------------------------------------------------


def test_real_schema_data_passes(data: Path, tmp_path: Path) -> None:
    out = check_data([real(data, target_tasks=["xnli", "pawsx", "xquad", "udpos", "tatoeba"],
                           eval_languages=["de"])], tmp_path)
    assert out.ok, out.text()
    assert "records read and schema-checked" in out.checked[0]


def _break(data: Path, rel: str, row: int, change: Any) -> Path:
    path = data / rel
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[row] = change(rows[row])
    return write_rows(path, rows)


@pytest.mark.parametrize(("break_it", "needles"), [
    (lambda d: _break(d, "google/xtreme/XNLI/test.jsonl", 50, lambda r: {**r, "gold_label": "neutrall"}),
     ["xnli test de:", "line 51: field 'gold_label' 'neutrall' is not a label; allowed: 'entailment'"]),
    (lambda d: _break(d, "google/xtreme/XNLI/validation.jsonl", 60, lambda r: {k: v for k, v in r.items()
                                                                                 if k != "sentence2"}),
     ["xnli dev de:", "line 61: field 'sentence2' missing"]),
    (lambda d: (d / "google/xtreme/XNLI/test.jsonl").write_text(
        (d / "google/xtreme/XNLI/test.jsonl").read_text()[:-40] + "\n"),
     ["xnli test de:", "line 144: not valid JSON"]),
    (lambda d: _break(d, "nyu-mll/glue/mnli/train.jsonl", 3, lambda r: {**r, "label": 3}),
     ["data mnli train en; xnli train en:", "line 4: field 'label' 3 is not a label id; allowed: 0 (entailment)"]),
    (lambda d: (d / "google/xtreme/XNLI/test.jsonl").write_text(
        "".join(line + "\n" for line in (d / "google/xtreme/XNLI/test.jsonl").read_text().splitlines()
                if '"de"' not in line)),
     ["data xnli test de:", "no rows for task 'xnli', split 'test', language 'de'"]),
    (lambda d: (d / "google/xtreme/XNLI/test.jsonl").unlink(),
     ["data xnli test de:", "no data for task 'xnli' (language 'de')", "split 'test'"]),
], ids=["unknown-label", "missing-field", "truncated-line", "label-out-of-range", "language-without-rows",
        "missing-test-split"])
def test_bad_data_is_found_before_training(data: Path, tmp_path: Path, break_it: Any, needles: list[str]) -> None:
    path_before = sorted(data.rglob("*.jsonl"))
    break_it(data)
    out = check_data([real(data)], tmp_path)
    text = out.text()
    assert not out.ok and "nothing was trained" in text
    for needle in needles:
        assert needle in text, (needle, text)
    assert sorted(data.rglob("*.jsonl")) == path_before or "missing" in text or "no data" in text


def test_every_problem_is_reported_at_once(data: Path, tmp_path: Path) -> None:
    _break(data, "google/xtreme/XNLI/test.jsonl", 50, lambda r: {**r, "gold_label": "neutrall"})
    (data / "google/xtreme/PAWS-X.de/validation.jsonl").unlink()
    out = check_data([real(data, target_tasks=["xnli", "pawsx"])], tmp_path)
    assert len(out.problems) == 2, out.problems
    assert out.problems[0].startswith("data xnli test en; xnli test de: invalid xnli records")  # one file, both
    assert out.problems[1].startswith("data pawsx dev de: no data for task 'pawsx'")


def test_unset_eval_languages_asks_for_every_language_of_the_task(data: Path, tmp_path: Path) -> None:
    out = check_data([real(data, eval_languages=None)], tmp_path)
    missing = {p.split(":")[0] for p in out.problems}
    assert "data xnli test sw" in missing and "data xnli dev ar" in missing and len(missing) == 2 * 12
    assert "data xnli test de" not in missing  # the languages the folder has are fine


def test_synth_not_generated_yet_is_a_note_and_nothing_is_generated(tmp_path: Path) -> None:
    out = check_data([TrialConfig(intermediate={"mnli": 1.0})], tmp_path)
    assert out.ok and "synth (seed 0) is not generated yet" in out.notes[0]
    assert not (tmp_path / "data").exists()


def test_multilingual_mlm_on_real_data_reads_every_corpus_file(data: Path, tmp_path: Path) -> None:
    interleaved = real(data, schedule="interleaved", multilingual_share=0.3)
    annealed = real(data, schedule="annealed", multilingual_share_start=0.5, multilingual_share=0.1)
    out = check_data([interleaved, annealed], tmp_path)  # the same files, read once
    assert out.ok, out.problems
    assert f"mlm corpora: 2 file(s), {2 * N_ROWS} documents read as UTF-8 (up to mlm_max_docs each)" in out.checked
    assert not [c for c in check_data([real(data)], tmp_path).checked if "mlm" in c]  # sequential: no MLM


def test_every_corpus_problem_is_one_line_naming_folder_file_and_language(data: Path, tmp_path: Path) -> None:
    mlm = data / "mlm"
    (mlm / "de.txt").write_bytes((mlm / "de.txt").read_bytes()[:60] + b"\xe4 \xff\n")
    (mlm / "en.txt").write_text("\n \n", encoding="utf-8")
    out = check_data([real(data, schedule="interleaved", multilingual_share=0.3, mlm_languages=["en", "de", "fr"])],
                     tmp_path)
    assert out.problems == [f"mlm corpus {mlm}: no file fr.txt (nor fr.txt.gz) for MLM language 'fr'",
                            f"mlm corpus {mlm / 'en.txt'}: empty (no non-blank line) for MLM language 'en'",
                            f"mlm corpus {mlm / 'de.txt'}: line 3 is not UTF-8 (byte 16: invalid continuation "
                            "byte) (MLM language 'de')"]


def test_real_mlm_without_a_corpus_folder_says_where_it_was_looked_for(data: Path, tmp_path: Path) -> None:
    out = check_data([real(data, schedule="interleaved", multilingual_share=0.3,
                           mlm_corpus_dir=str(tmp_path / "cc100"))], tmp_path)
    assert out.problems == [f"mlm corpus: folder {tmp_path / 'cc100'} does not exist (it should hold one <lang>.txt "
                            "per MLM language, one document per line)"]


def test_long_reports_show_the_first_problems_in_full() -> None:
    out = Preflight(problems=[f"problem {i}\n  detail {i}" for i in range(DETAILED + 2)])
    text = out.text()
    assert f"detail {DETAILED - 1}" in text and f"detail {DETAILED}" not in text and f"problem {DETAILED + 1}" in text


# --- the model, the home, DeepSpeed's op ------------------------------------------------------------


def test_a_missing_model_folder_is_one_line_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "checkpoints" / "xlmr"
    out = check_model([TrialConfig(benchmark="xtreme", model=str(missing))], tmp_path)
    (problem,) = out.problems
    assert problem.startswith(f"model: {missing} is not a folder") and "\n" not in problem
    assert "Repo id" not in problem


def test_a_folder_without_a_tokenizer_says_it_does_not_load(tmp_path: Path) -> None:
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "config.json").write_text("{}")
    out = check_model([TrialConfig(benchmark="xtreme", model=str(tmp_path / "ckpt"))], tmp_path)
    assert len(out.problems) == 1 and "its config or tokenizer does not load" in out.problems[0]


def test_tiny_not_pretrained_yet_is_a_note(tmp_path: Path) -> None:
    out = check_model([TrialConfig(tiny=TinyModelSpec(pretrain_steps=7))], tmp_path)
    assert out.ok and "will be pretrained (7 MLM steps)" in out.notes[0]
    assert not (tmp_path / "models").exists()


@pytest.mark.slow
def test_a_cached_tiny_model_loads(tiny_home: Path) -> None:
    from tests.conftest import TEST_TINY

    out = check_model([TrialConfig(tiny=TinyModelSpec(**TEST_TINY))], tiny_home)
    assert out.ok and out.checked == ["model tiny: config and tokenizer load (" +
                                      str(TinyModelSpec(**TEST_TINY).folder(tiny_home)) + ")"]


def test_home_that_cannot_be_written(tmp_path: Path) -> None:
    assert check_home(tmp_path).ok
    ro = Path("/sys/kernel")  # read-only even for root (a chmod would not stop root)
    if not ro.is_dir():
        pytest.skip("no read-only folder to try")
    (problem,) = check_home(ro).problems
    assert problem.startswith("the home folder /sys/kernel is not writable")


def test_the_deepspeed_op_is_found_where_torch_extensions_dir_points() -> None:
    so = deepspeed_op_file()
    assert so is not None and so.name == f"{DEEPSPEED_CPU_OP}.so"
    if so.exists():  # the shared test build: nothing to do, and it says where
        assert ensure_deepspeed_op(log=lambda s: None) == f"{DEEPSPEED_CPU_OP} built ({so})"


def test_a_built_op_starts_no_background_build() -> None:
    so = deepspeed_op_file()
    if so is None or not so.exists():
        pytest.skip("the shared test build of the op is not there yet")
    assert start_deepspeed_op_build(log=lambda s: None) == f"{DEEPSPEED_CPU_OP} built ({so})"
    assert wait_deepspeed_op() is None  # nothing was started: nothing to wait for


def test_no_compiler_refuses_the_background_build_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "ext"))
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-c++"))
    (tmp_path / "home").mkdir()  # synth and the tiny model not made yet: notes, no problem
    out = preflight_trials([TrialConfig(tiny=TinyModelSpec(pretrain_steps=7))], tmp_path / "home",
                           log=lambda s: None, op_background=True)
    (problem,) = out.problems
    assert problem == (f"DeepSpeed's CPU op {DEEPSPEED_CPU_OP} cannot be built into {tmp_path / 'ext' / DEEPSPEED_CPU_OP}: "
                       f"a C++ compiler ({tmp_path / 'no-such-c++'}) not found on PATH")
    assert wait_deepspeed_op() is None


def test_a_background_build_that_fails_says_why_when_waited_for(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A real build in its own process, with a compiler that fails: the start returns at once, the
    wait raises the build's one-line reason, and the build left no lock behind."""
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "ext"))
    monkeypatch.setenv("CXX", "/bin/false")
    started = start_deepspeed_op_build(log=lambda s: None)
    assert started.startswith(f"{DEEPSPEED_CPU_OP} building in the background (pid "), started
    with pytest.raises(RuntimeError, match=f"^DeepSpeed's CPU op {DEEPSPEED_CPU_OP} could not be built into ") as e:
        wait_deepspeed_op(log=lambda s: None)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "ext" / DEEPSPEED_CPU_OP / "lock").exists()
    assert wait_deepspeed_op() is None  # waited for once


@pytest.mark.slow
def test_the_background_build_builds_the_op(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real build (~1 min of g++) in its own process into an empty folder: started at once,
    then waited for; the op is there and loads, and no lock is left."""
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "ext"))
    so = deepspeed_op_file()
    assert so is not None and not so.exists()
    started = start_deepspeed_op_build(log=lambda s: None)
    assert started.startswith(f"{DEEPSPEED_CPU_OP} building in the background (pid "), started
    done = wait_deepspeed_op(log=lambda s: None)
    assert done is not None and done.startswith(f"{DEEPSPEED_CPU_OP} built in the background (")
    assert so.exists() and not (so.parent / "lock").exists()
    assert ensure_deepspeed_op(log=lambda s: None) == f"{DEEPSPEED_CPU_OP} built ({so})"


def test_a_stale_build_lock_is_removed_a_fresh_one_kept(tmp_path: Path) -> None:
    """torch waits forever on the lock a killed build left; one older than a build takes goes."""
    import os
    import time

    lock = tmp_path / "lock"
    lock.write_text("")
    assert clear_stale_op_lock(tmp_path) is None and lock.exists()  # a build may be running
    old = time.time() - 3600
    os.utime(lock, (old, old))
    said = clear_stale_op_lock(tmp_path)
    assert said is not None and said.startswith(f"removed a stale build lock {lock} (60 min old")
    assert not lock.exists() and clear_stale_op_lock(tmp_path) is None


def test_preflight_trials_runs_every_check(data: Path, tmp_path: Path) -> None:
    out = preflight_trials([real(data, model=str(tmp_path / "nope"))], tmp_path, log=lambda s: None)
    assert [p.split(":")[0] for p in out.problems] == ["model"]
    assert [c.split(":")[0] for c in out.checked][:2] == [f"home {tmp_path}", "data"]
    assert out.seconds > 0


def test_a_refused_run_does_not_wait_for_deepspeeds_op_build(data: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Bad data and no op built yet: the refusal comes at once, with a note, and nothing is compiled
    (``bench faults`` measured 40 s of compiling before a one-line data refusal)."""
    from xstilts.trainer.preflight import preflight_trials

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "ext"))
    _break(data, "google/xtreme/XNLI/test.jsonl", 50, lambda r: {**r, "gold_label": "neutrall"})
    (tmp_path / "home").mkdir()
    logs: list[str] = []
    out = preflight_trials([real(data)], tmp_path / "home", log=logs.append)
    assert not out.ok and any("not built yet" in n for n in out.notes), out.notes
    assert logs == [] and not list((tmp_path / "ext").rglob("*.so"))  # nothing compiled
