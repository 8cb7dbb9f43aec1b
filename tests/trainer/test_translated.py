"""Translated intermediate-task data: synth's renderings, the real-data loader, the trial config,
the language rates and the sampler that draws them (unit tests: no training)."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from xstilts.trainer.config import TrialConfig, TrialRuntime
from xstilts.trainer.data import task_languages
from xstilts.trainer.hub import DataNotFoundError, load_hub
from xstilts.trainer.mixture import Mixture, MixtureSampler, language_rates
from xstilts.trainer.preflight import Need, data_needs
from xstilts.trainer.records import RecordError
from xstilts.trainer.synth import LANGUAGES, SynthBenchmark, SynthSizes, generate
from xstilts.trainer.synth.store import _write
from xstilts.trainer.synth.translated import TRANSLATED_SHARE
from xstilts.trainer.tasks import TASKS, TRANSLATED_TASKS

SMALL = SynthSizes(corpus_docs_en=200, train=80, dev=20, test=20)
NON_EN = [s.code for s in LANGUAGES if s.code != "en"]


@pytest.fixture(scope="module")
def small() -> dict[str, Any]:
    return generate(0, SMALL)


def _label(task: str, r: dict[str, Any]) -> Any:
    """What a translation must keep: the label (QA: the answer's place among the clauses)."""
    ex = TASKS[task].example(r)
    return ex[2] if TASKS[task].family != "qa" else (r["id"], r["context"].count(" . "))


# --- synth renders them ----------------------------------------------------------------------------


def test_every_intermediate_task_but_ccg_is_translated_into_every_other_language(small: dict[str, Any]) -> None:
    assert set(TRANSLATED_TASKS) == set(small["translated"]) == {t for t, i in TASKS.items()
                                                                   if i.role == "intermediate"} - {"ccg"}
    assert "translate_train" not in small["tasks"]["ccg"]
    for task in TRANSLATED_TASKS:
        tt = small["tasks"][task]["translate_train"]
        assert list(tt) == NON_EN == small["translated"][task]["languages"], task
        n = SMALL.train // (2 if task == "squad" else TRANSLATED_SHARE)
        assert {len(rows) for rows in tt.values()} == {n} == {small["translated"][task]["records"]}, task


@pytest.mark.parametrize("task", TRANSLATED_TASKS)
def test_translations_are_the_english_train_items_in_the_english_schema(small: dict[str, Any], task: str) -> None:
    info = TASKS[task]
    en = small["tasks"][task][info.splits["train"]]["en"]
    for lang, rows in small["tasks"][task]["translate_train"].items():
        for r, e in zip(rows, en, strict=False):
            assert list(r) == list(e), (task, lang)  # the same fields, in the same order
            assert not info.schema.problems(r), (task, lang, r)
            assert _label(task, r) == _label(task, e), (task, lang)
        assert [r != e for r, e in zip(rows, en, strict=False)].count(True) > len(rows) // 2  # another language


def test_translations_are_deterministic_and_leave_the_rest_of_synth_alone(small: dict[str, Any]) -> None:
    again = generate(0, SMALL)
    assert again["tasks"] == small["tasks"] and again["translated"] == small["translated"]
    other = generate(1, SMALL)
    assert other["tasks"]["mnli"]["translate_train"]["xa"] != small["tasks"]["mnli"]["translate_train"]["xa"]


def test_the_manifest_lists_the_translations_and_their_files_read_back(small: dict[str, Any], tmp_path: Path) -> None:
    _write(tmp_path, small, 0, time.perf_counter())
    bench = SynthBenchmark(tmp_path)
    assert bench.translated == small["translated"]
    rows = bench.records("hellaswag", "translate_train", "xe")
    assert rows == small["tasks"]["hellaswag"]["translate_train"]["xe"]
    assert task_languages("synth", "mnli", "translate_train") == tuple(NON_EN)
    assert task_languages("synth", "ccg", "translate_train") == ()


# --- the trial config --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"intermediate_languages": ["en", "xq"]}, "intermediate_languages: unknown language(s) ['xq']; allowed: en, xa"),
        ({"intermediate_languages": {"mnlx": ["en", "xa"]}}, "intermediate_languages.mnlx: unknown intermediate task"),
        ({"intermediate_languages": {"mnli": ["en", "de"]}}, "intermediate_languages.mnli: unknown language(s) ['de']"),
        ({"intermediate_languages": {"ccg": ["en", "xa"]}}, "intermediate_languages.ccg: ccg has no translated data"),
        ({"intermediate": {"ccg": 1.0}, "intermediate_languages": ["en", "xa"]},
         "intermediate_languages: ccg has no translated data"),
        ({"intermediate_languages": []}, "give at least one language"),
        ({"intermediate_languages": ["en", "xa", "xa"]}, "repeats a language"),
        ({"intermediate_languages": ["en", "xa"], "intermediate_language_sampling": "cubic"}, "'uniform' or 'temperature'"),
    ],
)
def test_unknown_languages_and_tasks_are_refused_naming_the_key(kw: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValidationError) as info:
        TrialConfig(**{"intermediate": {"mnli": 1.0}, **kw})
    (err,) = info.value.errors()
    assert err["loc"][0] in kw and needle in err["msg"], err


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"translated_share": 0.5}, "no intermediate task is drawn in a language but English"),
        ({"intermediate_languages": {"mnli": ["xa", "xb"]}, "translated_share": 0.5},
         "leaves 0.5 of mnli's examples to English, which intermediate_languages lists not for mnli"),
        ({"intermediate_languages": ["en", "xa"], "translated_share": 1.5}, "less than or equal to 1"),
    ],
)
def test_a_translated_share_needs_translations_and_english(kw: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValidationError) as info:
        TrialConfig(intermediate={"mnli": 1.0}, **kw)
    (err,) = info.value.errors()
    assert err["loc"] == ("translated_share",) and needle in err["msg"], err


def test_languages_by_list_by_task_or_as_a_searchable_string() -> None:
    assert TrialConfig().intermediate_languages_of("mnli") == ["en"]
    c = TrialConfig(intermediate={"mnli": 1.0, "squad": 1.0}, intermediate_languages="en+xa+xb")
    assert c.intermediate_languages == ["en", "xa", "xb"] and c.intermediate_languages_of("squad") == ["en", "xa", "xb"]
    d = TrialConfig(intermediate={"mnli": 1.0, "ccg": 1.0}, intermediate_languages={"mnli": ["xa"]}, translated_share=1)
    assert d.intermediate_languages_of("mnli") == ["xa"] and d.intermediate_languages_of("ccg") == ["en"]
    # it composes with every schedule: MLM and translations together
    TrialConfig(intermediate={"mnli": 1.0}, schedule="interleaved", multilingual_share=0.3,
                intermediate_languages=["en", "xa"], translated_share=0.4)


def test_on_xtreme_translations_are_any_xtreme_language_and_read_locally() -> None:
    xt = {"benchmark": "xtreme", "model": "xlm-roberta-base", "intermediate": {"mnli": 1.0}}
    c = TrialConfig(**xt, intermediate_languages={"mnli": ["en", "de", "sw"]}, translated_share=0.5)
    assert [n for n in data_needs(c) if n.task == "mnli"] == [Need("mnli", "train", "en"),
                                                               Need("mnli", "translate_train", "de"),
                                                               Need("mnli", "translate_train", "sw")]
    with pytest.raises(ValidationError, match="unknown language"):
        TrialConfig(**xt, intermediate_languages={"mnli": ["en", "xa"]})
    assert "de" in task_languages("xtreme", "mnli", "translate_train")
    assert task_languages("xtreme", "xnli", "translate_train") == ()  # targets: the hub's translate-train only


# --- the rates over a task's languages and the sampler that draws them --------------------------------


def test_language_rates_uniform_temperature_and_a_translated_share() -> None:
    n = {"en": 4000, "xa": 1000, "xb": 250}
    assert language_rates(n, "uniform") == pytest.approx({"en": 1 / 3, "xa": 1 / 3, "xb": 1 / 3})
    assert language_rates(n, "temperature", 1.0) == pytest.approx({"en": 4000 / 5250, "xa": 1000 / 5250,
                                                                   "xb": 250 / 5250})
    # T = 2: q ∝ √n, and √4000 : √1000 : √250 = 4 : 2 : 1
    assert language_rates(n, "temperature", 2.0) == pytest.approx({"en": 4 / 7, "xa": 2 / 7, "xb": 1 / 7})
    assert language_rates(n, "uniform", translated_share=0.4) == pytest.approx({"en": 0.6, "xa": 0.2, "xb": 0.2})
    assert language_rates(n, "temperature", 1.0, 0.5) == pytest.approx({"en": 0.5, "xa": 0.4, "xb": 0.1})
    assert language_rates(n, "uniform", translated_share=0.0) == {"en": 1.0}
    assert language_rates(n, "uniform", translated_share=1.0) == pytest.approx({"xa": 0.5, "xb": 0.5})
    assert language_rates({"en": 10}, "uniform", translated_share=0.5) == {"en": 1.0}


@pytest.mark.parametrize(("rule", "share"), [("uniform", None), ("uniform", 0.3), ("temperature", 0.6)])
def test_the_trial_draws_each_language_at_its_rate(rule: str, share: float | None) -> None:
    """The trainer's own draw (``TrialRecipe._task_stream``): frequencies within 4 standard errors."""
    from xstilts.trainer.trial import TrialRecipe

    cfg = TrialConfig(intermediate={"mnli": 1.0}, intermediate_languages=["en", "xa", "xb"],
                      intermediate_language_sampling=rule, translated_share=share, language_temperature=2.0)
    recipe = TrialRecipe(cfg, TrialRuntime(), None, lambda s: None, checkpoint_root=Path("unused"))
    q = language_rates({"en": 4000, "xa": 1000, "xb": 1000}, rule, cfg.language_temperature, share)
    recipe.task_languages["mnli"] = q
    recipe.task_lang_samplers["mnli"] = MixtureSampler(Mixture(q), "0-languages-mnli")
    draws = 20_000
    seen = Counter(recipe._task_stream("mnli") for _ in range(draws))
    assert set(seen) == {"mnli", "mnli.xa", "mnli.xb"}
    for lang, rate in q.items():
        got = seen["mnli" if lang == "en" else f"mnli.{lang}"] / draws
        assert abs(got - rate) < 4 * (rate * (1 - rate) / draws) ** 0.5, (lang, got, rate)


# --- real data: a local folder, one file per language or one with a language column --------------------


MNLI = [{"premise": "Er schläft.", "hypothesis": "Er ist wach.", "label": 2, "idx": 0},
        {"premise": "Sie liest.", "hypothesis": "Sie liest ein Buch.", "label": 1, "idx": 1}]


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_one_file_per_language_in_the_tasks_schema(tmp_path: Path) -> None:
    _jsonl(tmp_path / "nyu-mll/glue/mnli/translate_train.de.jsonl", MNLI)
    assert load_hub("mnli", "translate_train", "de", data_dir=tmp_path) == MNLI
    with pytest.raises(DataNotFoundError) as info:
        load_hub("mnli", "translate_train", "fr", data_dir=tmp_path)
    assert "translate_train.fr.jsonl" in str(info.value) and "'language' column" in str(info.value)


def test_one_file_of_every_language_with_a_language_column(tmp_path: Path) -> None:
    rows = [{**MNLI[0], "language": "de"}, {**MNLI[1], "language": "sw"}, {**MNLI[1], "language": "de"}]
    folder = tmp_path / "glue/mnli"  # the legacy folder name is accepted too
    folder.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), folder / "translate_train-00000-of-00001.parquet")
    assert load_hub("mnli", "translate_train", "de", data_dir=tmp_path) == [rows[0], rows[2]]
    assert load_hub("mnli", "translate_train", "sw", data_dir=tmp_path) == [rows[1]]
    with pytest.raises(RecordError, match="no rows for task 'mnli', split 'translate_train', language 'fr'"):
        load_hub("mnli", "translate_train", "fr", data_dir=tmp_path)


def test_bad_translated_rows_name_file_line_field_and_value(tmp_path: Path) -> None:
    every = _jsonl(tmp_path / "nyu-mll/glue/mnli/translate_train.jsonl",
                   [{**MNLI[0], "language": "de"}, MNLI[1], {**MNLI[0], "language": "de", "label": 7}])
    with pytest.raises(RecordError) as info:
        load_hub("mnli", "translate_train", "de", data_dir=tmp_path)
    msg = str(info.value)
    assert str(every) in msg and "line 2: field 'language' missing" in msg
    assert "line 3: field 'label' 7 is not a label id; allowed: 0 (entailment)" in msg
    one = _jsonl(tmp_path / "nyu-mll/glue/mnli/translate_train.sw.jsonl", [MNLI[0], {**MNLI[1], "language": "de"}])
    with pytest.raises(RecordError) as info:
        load_hub("mnli", "translate_train", "sw", data_dir=tmp_path)
    assert str(one) in str(info.value) and "line 2: field 'language' 'de' is not 'sw'" in str(info.value)


def test_translations_without_a_local_folder_say_where_to_put_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XSTILTS_DATA_DIR", raising=False)
    with pytest.raises(DataNotFoundError, match="read from a local folder only.*nyu-mll/glue/mnli/translate_train.de"):
        load_hub("mnli", "translate_train", "de")
    with pytest.raises(ValueError, match="no translations into 'xa'"):
        load_hub("mnli", "translate_train", "xa")


# --- searched: spaces/interleave.yaml and mixtures.yaml, trial names, params -------------------------------------------


@pytest.mark.parametrize("space", ["interleave.yaml", "mixtures.yaml"])
def test_the_shipped_spaces_search_a_translated_share_only_with_translations(space: str) -> None:
    from xstilts.search.runner import trial_name
    from xstilts.spaces import load_space, point_to_optuna, to_trial_config, trial_params, with_constants

    spec = load_space(Path(__file__).parents[2] / "spaces" / space)
    langs = "en+xa+xb+xc+xd+xe"
    point = {"schedule": "sequential", "intermediate_tasks": "mnli+squad", "intermediate_languages": langs,
             "translated_share": 0.4}
    config = with_constants(spec, point_to_optuna(spec, point), number=3)
    tc = to_trial_config(spec, config)
    assert tc.intermediate_languages == langs.split("+") and tc.translated_share == 0.4
    assert trial_params(spec, config)["translated_share"] == 0.4
    assert trial_name(config, 3) == "t0003-sequential-tr0.40-mnli+squad"
    english = with_constants(spec, point_to_optuna(spec, {k: v for k, v in point.items() if k != "translated_share"}
                                                   | {"intermediate_languages": "en"}), number=4)
    assert "translated_share" not in english and trial_name(english, 4) == "t0004-sequential-mnli+squad"
    assert to_trial_config(spec, english).intermediate_languages == ["en"]
    assert trial_params(spec, english)["translated_share"] is None  # inactive: no translation drawn


# --- a trial with translated data, interrupted and resumed (slow: trains) ------------------------------


@pytest.mark.slow
def test_a_resumed_trial_with_translations_ends_as_an_uninterrupted_one(tiny_home: Path, tmp_path: Path) -> None:
    """Killed (its report raises) right after the phase-1 checkpoint at step 10, then run again on the
    same output folder: it resumes there, the language sampler included, and ends bit-identical."""
    from tests.conftest import TEST_TINY
    from xstilts.trainer.trial import run_trial

    cfg = TrialConfig(tiny=TEST_TINY, batch_size=8, eval_max_examples=10, eval_languages=["en", "xa"],
                      intermediate={"mnli": 1.0}, intermediate_languages=["en", "xa", "xb"], translated_share=0.5,
                      intermediate_steps=20, target_steps=5, eval_every=5, probe_every=10, probe_steps=1)

    def run(out: Path, crash: bool = False) -> dict[str, Any]:
        def report(metrics: dict[str, Any], checkpoint_dir: str | None = None) -> None:
            if crash:
                raise RuntimeError("killed")

        rt = TrialRuntime(home=str(tiny_home), threads=1, output_dir=str(out))
        return run_trial(cfg, report, runtime=rt, log=lambda s: None)

    ref = run(tmp_path / "ref")
    assert ref["intermediate_languages"] == {"mnli": pytest.approx({"en": 0.5, "xa": 0.25, "xb": 0.25})}
    with pytest.raises(RuntimeError, match="killed"):
        run(tmp_path / "resumed", crash=True)
    got = run(tmp_path / "resumed")
    assert got["resumed"] and not ref["resumed"]
    strip = lambda m: {k: v for k, v in m.items() if not k.startswith("time/")}  # noqa: E731
    assert strip(got["metrics"]) == strip(ref["metrics"]) and got["curves"] == ref["curves"]
