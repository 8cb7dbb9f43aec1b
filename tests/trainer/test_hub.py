"""trainer.hub: real-schema records round-trip through the local hub layout; misses explain themselves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from xstilts.trainer.hub import HUB_TASKS, TATOEBA_LANGUAGES, UDPOS_LANGUAGES, DataNotFoundError, load_hub

QA = {
    "id": "q1",
    "title": "Normandy",
    "context": "The Normans gave their name to Normandy.",
    "question": "Who gave their name to Normandy?",
    "answers": {"answer_start": [0], "text": ["The Normans"]},
}

# task -> (local folder under data_dir, file name, split asked for, language, records in the real schema)
CASES: dict[str, tuple[str, str, str, str, list[dict[str, Any]]]] = {
    "xnli": ("google/xtreme/XNLI", "test-00000-of-00001.parquet", "test", "de", [
        {"language": "de", "sentence1": "Er schläft.", "sentence2": "Er ist wach.", "gold_label": "contradiction"},
    ]),
    "pawsx": ("google/xtreme/PAWS-X.fr", "validation-00000-of-00001.parquet", "dev", "fr", [
        {"sentence1": "Il est parti.", "sentence2": "Il est parti hier.", "label": "0"},
    ]),
    "panx": ("google/xtreme/PAN-X.sw", "train-00000-of-00001.parquet", "train", "sw", [
        {"tokens": ["Juma", "yuko", "Nairobi"], "ner_tags": [1, 0, 5], "langs": ["sw", "sw", "sw"]},
    ]),
    "udpos": ("google/xtreme/udpos.German", "train-00000-of-00001.parquet", "train", "de", [
        {"tokens": ["Das", "Haus"], "pos_tags": [5, 7]},
    ]),
    "xquad": ("google/xtreme/XQuAD.el", "validation-00000-of-00001.parquet", "test", "el",
              [{k: v for k, v in QA.items() if k != "title"}]),  # google/xtreme's XQuAD has no title
    "tatoeba": ("google/xtreme/tatoeba.deu", "validation.parquet", "test", "de", [
        {"source_sentence": "Ich bin müde.", "target_sentence": "I am tired.", "source_lang": "deu",
         "target_lang": "eng"},
    ]),
    "bucc": ("xtreme/bucc18.fr", "test.jsonl", "test", "fr", [
        {"source_sentence": "Bonjour.", "target_sentence": "Hello.", "source_lang": "fr", "target_lang": "en"},
    ]),
    "mnli": ("nyu-mll/glue/mnli", "validation_matched-00000-of-00001.parquet", "dev", "en", [
        {"premise": "A man sleeps.", "hypothesis": "A man is awake.", "label": 2, "idx": 0},
    ]),
    "sst2": ("glue/sst2", "train.json", "train", "en", [
        {"sentence": "a fine film", "label": 1, "idx": 0},
        {"sentence": "not a fine film", "label": 0, "idx": 1},
    ]),
    "anli": ("facebook/anli/plain_text", "dev_r3-00000-of-00001.parquet", "dev", "en", [
        {"uid": "u1", "premise": "P.", "hypothesis": "H.", "label": 1, "reason": "because"},
    ]),
    "squad": ("rajpurkar/squad/plain_text", "train/0000.parquet", "train", "en", [QA]),
    "hellaswag": ("Rowan/hellaswag/data", "validation-00000-of-00001.parquet", "validation", "en", [
        {"ind": 24, "activity_label": "Roof shingle removal", "ctx_a": "A man is on a roof.",
         "ctx_b": "he", "ctx": "A man is on a roof. he", "endings": ["a", "b", "c", "d"],
         "source_id": "activitynet~v_-JhWjGDPHMY", "split": "val", "split_type": "indomain", "label": "3"},
    ]),
    "commonsenseqa": ("commonsense_qa", "train.jsonl", "train", "en", [
        {"id": "c1", "question": "Where is a fox?", "question_concept": "fox",
         "choices": {"label": ["A", "B"], "text": ["forest", "sea"]}, "answerKey": "A"},
    ]),
    "cosmosqa": ("allenai/cosmos_qa/data", "test-00000-of-00001.parquet", "test", "en", [
        {"id": "k1", "context": "C.", "question": "Q?", "answer0": "a", "answer1": "b", "answer2": "c",
         "answer3": "d", "label": -1},
    ]),
}  # fmt: skip


def write(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Write records the way the hub (parquet) or a person (json/jsonl) would."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        path.write_text(json.dumps(rows))
    return path


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No hub, no stray data dir, and a private datasets cache."""
    import datasets

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("XSTILTS_DATA_DIR", raising=False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    datasets.disable_progress_bars()


@pytest.mark.parametrize("task", sorted(CASES))
def test_local_records_round_trip(task: str, tmp_path: Path) -> None:
    folder, name, split, lang, rows = CASES[task]
    write(tmp_path / "data" / folder / name, rows)
    got = load_hub(task, split, lang, data_dir=tmp_path / "data")
    assert got == rows
    assert list(got[0]) == list(HUB_TASKS[task].fields)


def test_xnli_keeps_only_the_requested_language(tmp_path: Path) -> None:
    rows = [{"language": lang, "sentence1": f"p-{lang}", "sentence2": f"h-{lang}", "gold_label": "neutral"}
            for lang in ("en", "de", "sw", "de")]
    write(tmp_path / "google/xtreme/XNLI/validation-00000-of-00001.parquet", rows)
    got = load_hub("xnli", "validation", "de", data_dir=tmp_path)
    assert [r["sentence1"] for r in got] == ["p-de", "p-de"]
    assert load_hub("xnli", "dev", "sw", data_dir=tmp_path) == [rows[2]]


def test_tydiqa_filters_by_the_id_language_prefix(tmp_path: Path) -> None:
    rows = [{**QA, "id": f"{name}-{i}"} for i, name in enumerate(("english", "finnish", "english", "telugu"))]
    write(tmp_path / "google/xtreme/tydiqa/validation-00000-of-00001.parquet", rows)
    assert [r["id"] for r in load_hub("tydiqa", "test", "en", data_dir=tmp_path)] == ["english-0", "english-2"]
    assert [r["id"] for r in load_hub("tydiqa", "validation", "fi", data_dir=tmp_path)] == ["finnish-1"]


def test_zero_shot_english_train_comes_from_the_intermediate_dataset(tmp_path: Path) -> None:
    mnli = CASES["mnli"][4]
    write(tmp_path / "glue/mnli/train-00000-of-00001.parquet", mnli)
    write(tmp_path / "squad/plain_text/train.jsonl", [QA])
    assert load_hub("xnli", "train", data_dir=tmp_path) == mnli  # glue/mnli schema, documented
    assert load_hub("xquad", "train", data_dir=tmp_path) == [QA]
    with pytest.raises(ValueError, match="zero-shot"):
        load_hub("xnli", "train", "de", data_dir=tmp_path)


def test_data_dir_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    rows = CASES["sst2"][4]
    write(tmp_path / "nyu-mll/glue/sst2/validation.parquet", rows)
    monkeypatch.setenv("XSTILTS_DATA_DIR", str(tmp_path))
    assert load_hub("sst2", "dev") == rows


def test_language_code_maps() -> None:
    assert HUB_TASKS["udpos"].config_for("de") == "udpos.German"
    assert HUB_TASKS["tatoeba"].config_for("zh") == "tatoeba.cmn"
    assert HUB_TASKS["mlqa"].config_for("hi") == "MLQA.hi.hi"
    assert len(UDPOS_LANGUAGES) == 33 and len(TATOEBA_LANGUAGES) == 35
    assert set(UDPOS_LANGUAGES) == set(HUB_TASKS["udpos"].languages)


def test_missing_dataset_names_what_was_looked_for(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError) as info:
        load_hub("pawsx", "test", "de", data_dir=tmp_path)
    msg = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    for part in ("google/xtreme", "PAWS-X.de", "'test'", str(tmp_path / "google/xtreme/PAWS-X.de"),
                 "test-*.parquet",
                 "datasets.load_dataset('google/xtreme', 'PAWS-X.de', split='test')", "--benchmark synth"):
        assert part in msg, (part, msg)
    assert msg.rstrip().endswith("use `--benchmark synth`.")


def test_missing_panx_says_it_needs_a_manual_download(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="(?s)PAN-X.de.*manual.*AmazonPhotos.zip.*--benchmark synth"):
        load_hub("panx", "train", "de", data_dir=tmp_path)


def test_missing_without_data_dir_says_how_to_give_one() -> None:
    with pytest.raises(DataNotFoundError, match="(?s)nyu-mll/glue.*'mnli'.*'validation_matched'.*XSTILTS_DATA_DIR"):
        load_hub("mnli", "dev")


@pytest.mark.parametrize(
    ("task", "split", "lang", "needle"),
    [
        ("xnlii", "test", "en", "unknown task 'xnlii'; allowed: xnli, pawsx"),
        ("xnli", "test", "xx", "no language 'xx'; allowed: ar, bg"),
        ("mnli", "test", "de", "no language 'de'; allowed: en"),
        ("bucc", "test", "en", "allowed: de, fr, ru, zh"),
        ("xquad", "dev", "de", "no split 'dev'; allowed: test, train, validation"),
    ],
)
def test_unknown_task_language_or_split(task: str, split: str, lang: str, needle: str) -> None:
    with pytest.raises(ValueError) as info:
        load_hub(task, split, lang)
    assert needle in str(info.value)
    assert not isinstance(info.value, DataNotFoundError)


def test_ccg_reads_a_local_ccgbank_conversion_and_explains_the_licence(tmp_path: Path) -> None:
    rows = [{"tokens": ["Pierre", "sleeps"], "ccg_tags": [0, 4]}]
    write(tmp_path / "ccgbank" / "train.jsonl", rows)
    assert load_hub("ccg", "train", data_dir=tmp_path) == rows
    with pytest.raises(DataNotFoundError, match="(?s)CCGbank.*LDC2005T13"):
        load_hub("ccg", "dev", data_dir=tmp_path)


def test_load_records_asks_the_hub_for_the_datasets_own_split_names(tmp_path: Path) -> None:
    from xstilts.trainer.data import load_records

    write(tmp_path / "google/xtreme/XQuAD.de/validation-00000-of-00001.parquet", [QA])
    write(tmp_path / "rajpurkar/squad/plain_text/train.jsonl", [QA])
    for split in ("dev", "test"):  # XQuAD has one split: "validation"
        assert load_records("xtreme", "xquad", split, "de", home=str(tmp_path), data_dir=str(tmp_path)) == [QA]
    assert load_records("xtreme", "xquad", "train", home=str(tmp_path), data_dir=str(tmp_path)) == [QA]
