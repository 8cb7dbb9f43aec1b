"""trainer.corpora: multilingual MLM's monolingual text on real benchmarks, one file per language,
read streaming up to a cap; what is missing named by folder, file and language."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import pytest

from tests.realdata import write_corpora
from xstilts.trainer import corpora
from xstilts.trainer.config import TrialConfig
from xstilts.trainer.corpora import CorpusError, corpus_plan, default_mlm_languages, encode_docs, read_docs

MLM = {"benchmark": "xtreme", "model": "m", "target_tasks": ["xnli"], "eval_languages": ["de"],
       "intermediate": {"mnli": 1.0}, "schedule": "interleaved", "multilingual_share": 0.3}


@pytest.fixture(autouse=True)
def no_env_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XSTILTS_DATA_DIR", raising=False)


def cfg(**kw: Any) -> TrialConfig:
    return TrialConfig(**{**MLM, **kw})


# --- reading ----------------------------------------------------------------------------------------


def test_documents_are_the_non_blank_lines_up_to_the_cap(tmp_path: Path) -> None:
    path = tmp_path / "de.txt"
    path.write_text("  erste Zeile \n\n\nzweite\n \ndritte\nvierte\n", encoding="utf-8")
    assert list(read_docs(path, 10)) == ["erste Zeile", "zweite", "dritte", "vierte"]
    assert list(read_docs(path, 3)) == ["erste Zeile", "zweite", "dritte"]


def test_reading_stops_at_the_cap_and_never_sees_the_rest_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "de.txt"
    path.write_bytes(b"eins\nzwei\n" + b"\xff\xfe not utf-8\n" * 1000)
    assert list(read_docs(path, 2)) == ["eins", "zwei"]  # reading stops at the cap: the bad lines are never decoded
    with pytest.raises(CorpusError, match=f"{path}: line 3 is not UTF-8"):
        list(read_docs(path, 3))


def test_a_gzipped_file_reads_the_same(tmp_path: Path) -> None:
    text = "ein Satz\n\nnoch einer\n"
    (tmp_path / "de.txt").write_text(text, encoding="utf-8")
    with gzip.open(tmp_path / "de.txt.gz", "wt", encoding="utf-8") as f:
        f.write(text)
    assert list(read_docs(tmp_path / "de.txt.gz", 5)) == list(read_docs(tmp_path / "de.txt", 5))
    (tmp_path / "broken.txt.gz").write_bytes(b"not gzip at all\n")
    with pytest.raises(CorpusError, match="broken.txt.gz: cannot be read"):
        list(read_docs(tmp_path / "broken.txt.gz", 5))


def test_a_line_longer_than_the_read_limit_is_cut_and_the_next_one_follows(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(corpora, "LINE_BYTES", 7)
    path = tmp_path / "de.txt"
    path.write_text("kurz\n" + "ä" * 20 + "\nneu\n", encoding="utf-8")  # ä is 2 bytes: a cut inside one
    assert list(read_docs(path, 5)) == ["kurz", "ä" * 3, "neu"]


def test_documents_are_tokenized_a_chunk_at_a_time_into_int32_arrays(monkeypatch: pytest.MonkeyPatch) -> None:
    chunks: list[int] = []

    def tok(texts: list[str], truncation: bool, max_length: int) -> dict[str, list[list[int]]]:
        chunks.append(len(texts))
        return {"input_ids": [[len(w) for w in t.split()][:max_length] for t in texts]}

    monkeypatch.setattr(corpora, "ENCODE_CHUNK", 2)
    ids = encode_docs(tok, iter(["a bb ccc", "dddd", "e", "ff gg hh ii", "j"]), max_len=3)
    assert chunks == [2, 2, 1]
    assert [list(x) for x in ids] == [[1, 2, 3], [4], [1], [2, 2, 2], [1]]
    assert {x.typecode for x in ids} == {"i"}


# --- where the files are, and which languages -------------------------------------------------------


def test_the_default_folder_is_data_dirs_mlm_and_languages_are_the_scored_ones_with_a_file(tmp_path: Path) -> None:
    write_corpora(tmp_path / "data" / "mlm", ("en", "de", "fr"))
    c = cfg(data_dir=str(tmp_path / "data"))
    assert default_mlm_languages(c) == ["en", "de"]  # XNLI scored in en and de: not fr, which has a file
    plan = corpus_plan(c)
    assert plan.folder == tmp_path / "data" / "mlm" and plan.languages == ["en", "de"]
    assert plan.files["de"] == tmp_path / "data" / "mlm" / "de.txt" and not plan.problems() and not plan.notes()


def test_a_scored_language_without_a_file_is_left_out_with_a_note(tmp_path: Path) -> None:
    folder = write_corpora(tmp_path / "cc100", ("en",))
    plan = corpus_plan(cfg(mlm_corpus_dir=str(folder), data_dir=str(tmp_path / "elsewhere")))
    assert plan.languages == ["en"] and not plan.problems()
    assert plan.notes() == [f"mlm corpus {folder}: no file for de (scored languages); MLM uses en "
                            "(list mlm_languages to require a language)"]


def test_a_listed_language_without_a_file_is_a_problem_naming_folder_file_and_language(tmp_path: Path) -> None:
    folder = write_corpora(tmp_path / "cc100", ("en",))
    plan = corpus_plan(cfg(mlm_corpus_dir=str(folder), mlm_languages=["en", "de", "sw"]))
    assert plan.problems() == [f"mlm corpus {folder}: no file de.txt (nor de.txt.gz) for MLM language 'de'",
                               f"mlm corpus {folder}: no file sw.txt (nor sw.txt.gz) for MLM language 'sw'"]


def test_no_folder_is_a_problem_that_says_how_to_give_one(tmp_path: Path) -> None:
    assert "set mlm_corpus_dir" in corpus_plan(cfg()).problems()[0]
    missing = tmp_path / "nothing"
    assert corpus_plan(cfg(mlm_corpus_dir=str(missing))).problems() == [
        f"mlm corpus: folder {missing} does not exist (it should hold one <lang>.txt per MLM language, "
        "one document per line)"]


def test_mlm_languages_are_codes_and_the_corpus_folder_is_for_real_benchmarks() -> None:
    with pytest.raises(ValueError, match="are not language codes"):
        cfg(mlm_languages=["de/../x"])
    with pytest.raises(ValueError, match="unknown language"):
        TrialConfig(mlm_languages=["de"])  # synth's languages are its own
    with pytest.raises(ValueError, match="mlm_corpus_dir: synth's MLM reads synth's own corpora"):
        TrialConfig(mlm_corpus_dir="/data/cc100")
    assert TrialConfig(mlm_languages=["en", "xa"]).mlm_languages == ["en", "xa"]
