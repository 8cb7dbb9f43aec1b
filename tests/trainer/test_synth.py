"""trainer.synth: the offline XTREME-shaped benchmark is deterministic, well-formed and transfers by design."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from xstilts.trainer.data import load_records
from xstilts.trainer.hub import DataNotFoundError
from xstilts.trainer.records import RecordError
from xstilts.trainer.synth import (
    LANGUAGES,
    SYNTH_VERSION,
    SynthSizes,
    World,
    ensure_synth,
    generate,
)
from xstilts.trainer.synth.nli import XNLI_TWO_CLAUSE
from xstilts.trainer.tasks import NLI_LABELS, TASKS

CODES = [s.code for s in LANGUAGES]
SHARING = [s.code for s in LANGUAGES if not s.control]  # the languages that share anchors with English
SPEC = {s.code: s for s in LANGUAGES}
SMALL = SynthSizes(corpus_docs_en=200, train=50, dev=20, test=20)
NUMBERS = {str(n) for n in range(2, 20)}
FUNCTION_EN = {"the", "with", "of"}


# Each default-size generation costs ~13 s of CI time: the module generates in memory once
# (``generated``) and on disk once (``on_disk``), and the tests share the two.


@pytest.fixture(scope="module")
def generated() -> tuple[dict[str, Any], float]:
    """The default-size benchmark for seed 0, in memory, and the CPU seconds its generation took."""
    import time

    t0 = time.process_time()  # its own CPU time: the wall time on a shared machine measures the others
    out = generate(0)
    return out, time.process_time() - t0


@pytest.fixture(scope="module")
def data(generated: tuple[dict[str, Any], float]) -> dict[str, Any]:
    """The default-size benchmark for seed 0, in memory (the same that ``ensure_synth`` writes)."""
    return generated[0]


@pytest.fixture(scope="module")
def on_disk(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, list[str]]:
    """(home, SynthBenchmark, log lines of the first, generating, call). The home holds the folder
    of an older synth version before that call (test_an_older_synth_version_on_disk_is_not_reused)."""
    home = tmp_path_factory.mktemp("home")
    old = home / "data" / f"synth-v{SYNTH_VERSION - 1}-s0"
    old.mkdir(parents=True)
    (old / "manifest.json").write_text(json.dumps({"version": SYNTH_VERSION - 1, "languages": []}))
    logs: list[str] = []
    return home, ensure_synth(home, log=logs.append), logs


def vocab(texts: list[str]) -> Counter[str]:
    return Counter(w for t in texts for w in t.split())


def corpus_vocab(data: dict[str, Any], lang: str) -> Counter[str]:
    return vocab([d["text"] for d in data["corpus"][lang]])


def has_not(sentence: str) -> bool:
    return "not" in sentence.split()


# --- determinism ------------------------------------------------------------------------


def test_same_seed_gives_identical_benchmark() -> None:
    a, b = generate(7, SMALL), generate(7, SMALL)
    assert a == b
    assert a["tasks"]["xnli"]["test"]["xc"]  # not trivially equal because empty


def test_different_seed_gives_different_benchmark() -> None:
    a, b = generate(7, SMALL), generate(8, SMALL)
    assert a["corpus"]["en"] != b["corpus"]["en"]
    assert a["tasks"]["xnli"]["test"]["xa"] != b["tasks"]["xnli"]["test"]["xa"]
    assert a["tasks"]["mnli"]["train"]["en"] != b["tasks"]["mnli"]["train"]["en"]
    # the world differs, not only the sampling: English content words change
    words_a = set(corpus_vocab(a, "en")) - NUMBERS - FUNCTION_EN
    words_b = set(corpus_vocab(b, "en")) - NUMBERS - FUNCTION_EN
    assert len(words_a & words_b) < len(words_a) / 2


def test_sizes_are_honoured() -> None:
    d = generate(3, SMALL)
    assert len(d["tasks"]["mnli"]["train"]["en"]) == 50
    assert len(d["tasks"]["xnli"]["train"]["en"]) == 50 // 12  # the target's English train is small on purpose
    assert len(d["tasks"]["sst2"]["validation"]["en"]) == 20
    assert {lang: len(v) for lang, v in d["tasks"]["xnli"]["test"].items()} == dict.fromkeys(CODES, 20)
    # 200 topic documents + 15% that use the question and entity words (questions, places ...)
    assert len(d["corpus"]["en"]) == 200 + 30
    assert min(len(v) for v in d["corpus"].values()) == 20 + 10  # floors: 20 documents, 10 more


# --- XNLI covers every language, in parallel ----------------------------------------------


@pytest.mark.parametrize("split", ["validation", "test"])
def test_xnli_eval_splits_cover_every_language_equally(data: dict[str, Any], split: str) -> None:
    by_lang = data["tasks"]["xnli"][split]
    assert list(by_lang) == CODES
    assert len({len(rows) for rows in by_lang.values()}) == 1
    assert len(by_lang["en"]) == {"validation": SynthSizes().dev, "test": SynthSizes().test}[split]
    for lang, rows in by_lang.items():
        assert {r["language"] for r in rows} == {lang}


def test_xnli_translate_train_is_every_non_english_language(data: dict[str, Any]) -> None:
    tt = data["tasks"]["xnli"]["translate_train"]
    assert sorted(tt) == sorted(c for c in CODES if c != "en")
    for lang, rows in tt.items():
        assert len(rows) == SynthSizes().train
        assert {r["language"] for r in rows} == {lang}


def test_xnli_languages_render_the_same_latent_pairs(data: dict[str, Any]) -> None:
    """Parallel data: the same label and the same subject (a shared name) at every index."""
    test = data["tasks"]["xnli"]["test"]
    for i, en in enumerate(test["en"]):
        assert test["xz"][i]["gold_label"] == en["gold_label"]  # the control too, in its own forms
        for lang in SHARING:
            r = test[lang][i]
            assert r["gold_label"] == en["gold_label"]
            assert r["sentence1"].split()[0] == en["sentence1"].split()[0]
            assert has_not(r["sentence1"]) == has_not(en["sentence1"])
            assert has_not(r["sentence2"]) == has_not(en["sentence2"])


# --- exact Hugging Face schemas ----------------------------------------------------------

SCHEMA_CASES = [
    ("xnli", "train"), ("xnli", "validation"), ("xnli", "test"), ("xnli", "translate_train"),
    ("mnli", "train"), ("mnli", "validation_matched"), ("sst2", "train"), ("sst2", "validation"),
]  # fmt: skip


@pytest.mark.parametrize(("task", "split"), SCHEMA_CASES)
def test_records_carry_exactly_the_hf_schema(data: dict[str, Any], task: str, split: str) -> None:
    fields = list(TASKS[task].schema.fields)
    for lang, rows in data["tasks"][task][split].items():
        assert rows, (task, split, lang)
        for r in rows:
            assert list(r) == fields, (task, split, lang, r)
            if task == "xnli":
                assert r["gold_label"] in NLI_LABELS
                assert r["language"] == lang
                assert isinstance(r["sentence1"], str) and isinstance(r["sentence2"], str)
            else:
                assert type(r["label"]) is int and type(r["idx"]) is int
                assert 0 <= r["label"] < (3 if task == "mnli" else 2)


@pytest.mark.parametrize(("task", "split"), [("mnli", "train"), ("sst2", "train"), ("sst2", "validation")])
def test_glue_idx_is_a_unique_running_index(data: dict[str, Any], task: str, split: str) -> None:
    idx = [r["idx"] for r in data["tasks"][task][split]["en"]]
    assert idx == list(range(len(idx)))


def test_mnli_dev_idx_do_not_collide_with_train(data: dict[str, Any]) -> None:
    train = {r["idx"] for r in data["tasks"]["mnli"]["train"]["en"]}
    dev = [r["idx"] for r in data["tasks"]["mnli"]["validation_matched"]["en"]]
    assert len(set(dev)) == len(dev) and not train & set(dev)


@pytest.mark.parametrize(("task", "split"), SCHEMA_CASES)
def test_task_registry_reads_every_synth_record(data: dict[str, Any], task: str, split: str) -> None:
    info = TASKS[task]
    for rows in data["tasks"][task][split].values():
        for r in rows[:200]:
            a, b, y = info.example(r)
            assert isinstance(a, str) and a
            assert (b is None) == (info.family == "single_cls")
            assert 0 <= y < info.num_labels


# --- languages: overlap, imbalance, anchors ---------------------------------------------


def test_measured_overlap_is_close_to_the_spec(data: dict[str, Any]) -> None:
    ov = data["overlap"]
    assert set(ov) == set(CODES)
    for s in LANGUAGES:
        # shares are kept per (class, topic) stratum and rounded there: 0.5 -> 0.476, 0.3 -> 0.333
        assert ov[s.code] == pytest.approx(s.overlap, abs=0.035), s.code
    assert ov["en"] == 1.0
    assert ov["xz"] == 0.0
    assert SPEC["xz"].control and not any(s.control for s in LANGUAGES if s.code != "xz")
    assert SPEC["xz"].order == "sov"  # not even the word order is shared


def test_corpus_sizes_are_imbalanced_in_the_spec_order(data: dict[str, Any]) -> None:
    n = {lang: len(docs) for lang, docs in data["corpus"].items()}
    assert set(n) == set(CODES)
    for a in LANGUAGES:
        for b in LANGUAGES:
            if a.corpus_size > b.corpus_size:
                assert n[a.code] > n[b.code], (a.code, b.code, n)
            elif a.corpus_size == b.corpus_size:
                assert n[a.code] == n[b.code], (a.code, b.code, n)
    assert n["en"] / n["xa"] == pytest.approx(SPEC["en"].corpus_size / SPEC["xa"].corpus_size, rel=0.01)
    assert n["en"] >= 50 * n["xe"]  # imbalanced enough for language temperature to matter


def test_names_numbers_and_not_are_shared_by_every_language_but_the_control(data: dict[str, Any]) -> None:
    en = corpus_vocab(data, "en")
    names_en = {w for w in en if w[0].isupper()}
    assert len(names_en) >= 10
    assert NUMBERS <= set(en)
    for lang in SHARING:
        v = corpus_vocab(data, lang)
        names = {w for w in v if w[0].isupper()}
        assert names and names <= names_en, lang
        assert {w for w in v if w.isdigit()} <= NUMBERS and any(w.isdigit() for w in v), lang
        assert v["not"] > 0, lang


def test_and_is_a_shared_anchor(data: dict[str, Any]) -> None:
    for lang in SHARING:
        assert corpus_vocab(data, lang)["and"] > 0, lang


def test_control_language_shares_nothing_with_english(data: dict[str, Any]) -> None:
    """A true negative control: not a content word, not a name, number, "not" or "and" (only ".")."""
    en, xz = set(corpus_vocab(data, "en")), set(corpus_vocab(data, "xz"))
    assert en & xz == {"."}
    assert not FUNCTION_EN & xz
    for task, split, fields in (("xnli", "test", ("sentence1", "sentence2")), ("pawsx", "test", ("sentence1",)),
                                ("xquad", "validation", ("context", "question"))):
        rows = data["tasks"][task][split]
        words_en = {x for r in rows["en"] for f in fields for x in r[f].split()}
        words_xz = {x for r in rows["xz"] for f in fields for x in r[f].split()}
        assert words_en & words_xz <= {"."}, task
    xq = data["tasks"]["xquad"]["validation"]["xz"]
    assert all(r["answers"]["text"][0] in r["context"].split() for r in xq)  # answers in the control's forms


def test_distance_from_english_grows_down_the_language_list() -> None:
    """Overlap and corpus size never increase along the non-control languages, and the SOV language
    comes last: distance from English is graded on every axis at once."""
    langs = [s for s in LANGUAGES if s.code != "en" and not s.control]
    assert [s.overlap for s in langs] == sorted((s.overlap for s in langs), reverse=True)
    assert [s.corpus_size for s in langs] == sorted((s.corpus_size for s in langs), reverse=True)
    orders = [s.order for s in langs]
    assert "sov" in orders and orders == sorted(orders, key=lambda o: o == "sov")
    svo = [s.other_order for s in langs if s.order == "svo"]
    assert svo == sorted(svo) and svo[0] == 0.0 and svo[-1] > 0  # a freer word order, farther out


def test_overlapping_languages_share_content_words_with_english(data: dict[str, Any]) -> None:
    en = set(corpus_vocab(data, "en"))
    content_en = {w for w in en if not w[0].isupper() and w not in NUMBERS | FUNCTION_EN | {"not", "and", "."}}
    share = {lang: len(content_en & set(corpus_vocab(data, lang))) / len(content_en) for lang in ("xa", "xb", "xz")}
    assert share["xa"] == pytest.approx(SPEC["xa"].overlap, abs=0.07)  # (the denominator has question words)
    assert share["xb"] == pytest.approx(SPEC["xb"].overlap, abs=0.07)
    assert share["xa"] > share["xb"] > 0
    assert share["xz"] == 0.0


def test_sov_languages_put_the_verb_last_and_farther_languages_scramble_more_clauses(data: dict[str, Any]) -> None:
    """In xe (SOV) the verb is the last word of a plain clause, in xa (SVO) second; xb-xd are SVO
    with a share of SOV clauses that grows with their distance from English (``other_order``)."""
    d = data
    w = World(0)
    share = {}
    for lang in ("xa", "xb", "xc", "xd", "xe"):
        verbs = {v for ws in w.lexicon[lang]["verb"] for v in ws}
        last = 0
        for r in d["tasks"]["xnli"]["test"][lang]:
            words = [x for x in r["sentence2"].split() if x != "not"]  # hypotheses have no tail
            assert words[1] in verbs or words[-1] in verbs, (lang, r["sentence2"])
            last += words[-1] in verbs
        share[lang] = last / len(d["tasks"]["xnli"]["test"][lang])
    assert share["xa"] == 0.0 and share["xe"] == 1.0
    for lang in ("xb", "xc", "xd"):
        assert share[lang] == pytest.approx(SPEC[lang].other_order, abs=0.04), (lang, share)
    assert share["xb"] < share["xc"] < share["xd"]


# --- labels --------------------------------------------------------------------------------


def test_labels_are_roughly_balanced(data: dict[str, Any]) -> None:
    t = data["tasks"]
    for rows, key, k in (
        (t["mnli"]["train"]["en"], "label", 3),
        (t["xnli"]["translate_train"]["xa"], "gold_label", 3),
        (t["xnli"]["test"]["en"], "gold_label", 3),
        (t["sst2"]["train"]["en"], "label", 2),
    ):
        counts = Counter(r[key] for r in rows)
        assert len(counts) == k
        for c in counts.values():
            assert c / len(rows) == pytest.approx(1 / k, abs=0.06), counts


def test_nli_rule_polarity_decides_entailment_and_contradiction(data: dict[str, Any]) -> None:
    t = data["tasks"]
    pairs = [(r["premise"], r["hypothesis"], NLI_LABELS[r["label"]]) for r in t["mnli"]["train"]["en"]]
    w = World(0)
    two_clause = 0
    for lang in SHARING:  # "not" is an anchor: the rule is visible in every language that shares it
        joint = f" {w.anchor_form(lang, 'and')} "
        for r in t["xnli"]["test"][lang]:
            clauses = r["sentence1"].split(joint)
            subject = r["sentence2"].split()[0]
            if len(clauses) == 2:  # XNLI_TWO_CLAUSE: the pair's clause is the one about the same name
                two_clause += 1
                assert [c.split()[0] == subject for c in clauses].count(True) == 1, r
            own = next(c for c in clauses if c.split()[0] == subject)
            pairs.append((own, r["sentence2"], r["gold_label"]))
    n_xnli = sum(len(t["xnli"]["test"][lang]) for lang in SHARING)
    assert abs(two_clause / n_xnli - XNLI_TWO_CLAUSE) < 0.05, two_clause / n_xnli
    seen = Counter()
    for p, h, y in pairs:
        assert p.split()[0] == h.split()[0], (p, h)  # the hypothesis speaks about the premise's subject
        if y == "entailment":
            assert has_not(p) == has_not(h), (p, h)
        elif y == "contradiction":
            assert has_not(p) != has_not(h), (p, h)
        seen[(y, has_not(p) == has_not(h))] += 1
    assert seen[("neutral", True)] and seen[("neutral", False)]  # neutral is not decided by polarity


def test_nli_rule_topic_decides_neutral_and_sst2_follows_polarity(data: dict[str, Any]) -> None:
    w = World(0)  # the world generate(0) renders
    en = w.lexicon["en"]
    verb_topic = {v: t for t, ws in enumerate(en["verb"]) for v in ws}
    polarity = {a: w.polarity[t][i] for t, ws in enumerate(en["adj"]) for i, a in enumerate(ws)}
    for r in data["tasks"]["mnli"]["train"]["en"]:
        tp = verb_topic[next(x for x in r["premise"].split() if x in verb_topic)]
        th = verb_topic[next(x for x in r["hypothesis"].split() if x in verb_topic)]
        assert (tp != th) == (NLI_LABELS[r["label"]] == "neutral"), r
    for r in data["tasks"]["sst2"]["train"]["en"]:
        adj = next(x for x in r["sentence"].split() if x in polarity)
        assert r["label"] == int(polarity[adj] != has_not(r["sentence"])), r


# --- on disk: cache, manifest, loader, errors ---------------------------------------------


def test_ensure_synth_writes_a_manifest_and_the_generated_records(on_disk: Any, data: dict[str, Any]) -> None:
    home, bench, logs = on_disk
    root = home / "data" / f"synth-v{SYNTH_VERSION}-s0"
    assert bench.root == root
    assert logs and "generating synth" in logs[0]
    m = bench.manifest
    assert (m["version"], m["seed"]) == (SYNTH_VERSION, 0)
    assert m["overlap"] == data["overlap"]
    assert bench.languages == CODES
    assert bench.control_languages == ["xz"]
    assert bench.records("xnli", "test", "xc") == data["tasks"]["xnli"]["test"]["xc"]
    assert bench.records("mnli", "validation_matched") == data["tasks"]["mnli"]["validation_matched"]["en"]
    assert bench.corpus("xe") == [d["text"] for d in data["corpus"]["xe"]]
    assert not list(root.parent.glob("*.tmp*"))  # the temporary folder was renamed, not left behind


def test_ensure_synth_reuses_the_cache(on_disk: Any) -> None:
    home, bench, _ = on_disk
    manifest = bench.root / "manifest.json"
    records = bench.path("xnli", "test", "en")
    before = (manifest.stat().st_mtime_ns, records.stat().st_mtime_ns)
    logs: list[str] = []
    again = ensure_synth(home, log=logs.append)
    assert logs == []
    assert again.root == bench.root
    assert (manifest.stat().st_mtime_ns, records.stat().st_mtime_ns) == before


def test_a_manifest_marks_a_finished_cache(tmp_path: Path) -> None:
    # a hand-made cache entry is trusted as is: only the manifest marks a finished benchmark
    root = tmp_path / "data" / f"synth-v{SYNTH_VERSION}-s5"
    root.mkdir(parents=True)
    (root / "manifest.json").write_text('{"languages": [{"code": "en", "control": false}]}')
    logs: list[str] = []
    b = ensure_synth(tmp_path, seed=5, log=logs.append)
    assert b.root == root and b.languages == ["en"] and logs == []


def test_missing_split_raises_data_not_found_naming_the_path(on_disk: Any) -> None:
    _, bench, _ = on_disk
    with pytest.raises(DataNotFoundError) as info:
        bench.records("xnli", "train", "xa")  # zero-shot: English train only
    msg = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    assert str(bench.root / "xnli" / "train.xa.jsonl") in msg
    assert "xnli/test.xa.jsonl" in msg and "mnli/train.en.jsonl" in msg  # what is there instead
    assert "corpus/" not in msg
    with pytest.raises(DataNotFoundError, match=re.escape(str(bench.root / "nope" / "train.en.jsonl"))):
        bench.records("nope", "train")


def test_every_generated_file_reads_back_through_its_schema(on_disk: Any) -> None:
    _, bench, _ = on_disk
    n = 0
    for f in sorted(bench.root.glob("*/*.jsonl")):
        split, lang, _ = f.name.split(".")
        n += len(bench.records(f.parent.name, split, lang))  # each record checked as it is read
    assert n > 150_000


def test_a_bad_synth_row_names_file_line_field_and_the_allowed_values(tmp_path: Path) -> None:
    root = tmp_path / "data" / f"synth-v{SYNTH_VERSION}-s7"
    (root / "xnli").mkdir(parents=True)
    (root / "manifest.json").write_text('{"languages": [{"code": "en", "control": false}]}')
    good = '{"language": "xa", "sentence1": "a b", "sentence2": "a", "gold_label": "neutral"}'
    (root / "xnli" / "test.xa.jsonl").write_text("\n".join([good, good.replace("neutral", "neutrall"),
                                                            good[:30]]) + "\n")
    (root / "xnli" / "test.xb.jsonl").write_text("")
    bench = ensure_synth(tmp_path, seed=7)
    with pytest.raises(RecordError) as info:
        bench.records("xnli", "test", "xa")
    msg = str(info.value)
    assert str(root / "xnli" / "test.xa.jsonl") in msg and "(2 problems)" in msg, msg
    assert "line 2: field 'gold_label' 'neutrall' is not a label; allowed: 'entailment'" in msg, msg
    assert "line 3: not valid JSON" in msg, msg
    with pytest.raises(RecordError, match="no rows for task 'xnli', split 'test', language 'xb'"):
        bench.records("xnli", "test", "xb")


def test_load_records_maps_our_split_names_to_the_datasets(on_disk: Any, data: dict[str, Any]) -> None:
    home, _, _ = on_disk
    t = data["tasks"]
    assert load_records("synth", "xnli", "dev", "xb", home=str(home)) == t["xnli"]["validation"]["xb"]
    assert load_records("synth", "mnli", "dev", home=str(home)) == t["mnli"]["validation_matched"]["en"]
    assert load_records("synth", "xnli", "translate_train", "xd", home=str(home)) == t["xnli"]["translate_train"]["xd"]
    with pytest.raises(DataNotFoundError, match="'mnli' has no 'test' split"):
        load_records("synth", "mnli", "test", home=str(home))
    with pytest.raises(ValueError, match="unknown task 'qnli'; known tasks: anli, bucc, ccg, .*, xnli, xquad$"):
        load_records("synth", "qnli", "train", home=str(home))
    with pytest.raises(ValueError, match="unknown benchmark 'glue'"):
        load_records("glue", "mnli", "train", home=str(home))


# --- the tasks beyond xnli, mnli and sst2: schemas, parallel eval sets, tagging, retrieval ---------

HF_FIELDS = {t: list(TASKS[t].schema.fields) for t in TASKS}  # XQuAD without a title, as google/xtreme's


@pytest.mark.parametrize("task", sorted(set(TASKS) - {"xnli", "mnli", "sst2"}))
def test_other_tasks_carry_the_hf_schema_in_every_split(data: dict[str, Any], task: str) -> None:
    info = TASKS[task]
    splits = data["tasks"][task]
    assert set(info.splits.values()) - {"train"} <= set(splits), (task, list(splits))
    for split, by_lang in splits.items():
        want = CODES if info.role == "target" and split != "train" else ["en"]
        if info.family == "retrieval" or split in ("translate_train", "test_clean"):
            want = [c for c in CODES if c != "en"]  # each language paired with English
        assert list(by_lang) == want, (task, split)
        for rows in by_lang.values():
            assert rows
            for r in rows[:50]:
                assert list(r) == HF_FIELDS[task], (task, split, r)
                assert not info.schema.for_split(split).problems(r), (task, split, r)
                info.example(r)  # the registry reads every record


def test_target_eval_sets_are_parallel_across_languages(data: dict[str, Any]) -> None:
    t = data["tasks"]
    for task, split, key in (("pawsx", "test", "label"), ("udpos", "test", "pos_tags"), ("panx", "test", "ner_tags")):
        en = [r[key] for r in t[task][split]["en"]]
        assert [r[key] for r in t[task][split]["xa"]] == en, task  # SVO: the very same labels
        same = (lambda v: sorted(v) if isinstance(v, list) else v)  # noqa: E731 - SOV reorders the tags
        for lang in ("xd", "xz"):  # some (xd) or all (xz) clauses SOV
            assert [same(r[key]) for r in t[task][split][lang]] == [same(x) for x in en], (task, lang)
    xq = t["xquad"]["validation"]
    assert [r["answers"]["text"] for r in xq["en"]] == [r["answers"]["text"] for r in xq["xc"]]  # names, numbers
    assert [len(r["answers"]["text"][0]) > 0 for r in xq["xz"]] == [True] * len(xq["xz"])
    for lang in CODES:
        for r in xq[lang][:100]:
            s, a = r["answers"]["answer_start"][0], r["answers"]["text"][0]
            assert r["context"][s : s + len(a)] == a


def test_tagging_labels_follow_the_word_classes(data: dict[str, Any]) -> None:
    from xstilts.trainer.tasks import PANX_TAGS, UPOS

    for r in data["tasks"]["udpos"]["test"]["xc"][:200]:
        for tok, tag in zip(r["tokens"], r["pos_tags"], strict=True):
            if tok.isdigit():
                assert UPOS[tag] == "NUM"
            if UPOS[tag] == "NUM":
                assert tok.isdigit()
            if tok == "not":
                assert UPOS[tag] == "PART"
    seen = Counter()
    for r in data["tasks"]["panx"]["train"]["en"]:
        tags = [PANX_TAGS[t] for t in r["ner_tags"]]
        for prev, cur in zip(["O", *tags], tags, strict=False):
            if cur.startswith("I-"):
                assert prev[2:] == cur[2:], tags  # an I- continues its own entity
            seen[cur] += 1
    assert all(seen[t] > 0 for t in PANX_TAGS)


def test_retrieval_pairs_share_names_and_numbers(data: dict[str, Any]) -> None:
    for r in data["tasks"]["tatoeba"]["validation"]["xb"][:200]:  # (not the control: it shares none)
        anchors = lambda s: [w for w in s.split() if w[0].isupper() or w.isdigit()]  # noqa: E731
        assert anchors(r["source_sentence"]) == anchors(r["target_sentence"])
        assert (r["source_lang"], r["target_lang"]) == ("xb", "en")


def test_generation_stays_fast(generated: tuple[dict[str, Any], float]) -> None:
    _, cpu_seconds = generated  # the CPU time of the default-size generate(0) the module shares
    assert cpu_seconds < 30  # about 7 s


# --- clean test items, translate-train for more targets -----------------------------------


@pytest.mark.parametrize("task", ["xnli", "pawsx"])
def test_clean_test_items_use_no_english_content_word(data: dict[str, Any], task: str) -> None:
    from xstilts.trainer.synth import english_content_words

    shared = english_content_words(World(0))
    clean = data["tasks"][task]["test_clean"]
    assert list(clean) == [c for c in CODES if c != "en"]
    fields = ("sentence1", "sentence2")
    for lang, rows in clean.items():
        assert len(rows) == SynthSizes().test, lang
        assert not any(x in shared for r in rows for f in fields for x in r[f].split()), lang
        key = "gold_label" if task == "xnli" else "label"
        assert len({r[key] for r in rows}) == (3 if task == "xnli" else 2)  # every label occurs
    # the ordinary test items of an overlapping language do use English content words
    assert any(x in shared for r in data["tasks"][task]["test"]["xa"] for x in r["sentence1"].split())


@pytest.mark.parametrize(("task", "n"), [("xnli", 4000), ("pawsx", 4000), ("xquad", 2000), ("mlqa", 2000),
                                         ("tydiqa", 1000)])
def test_translate_train_exists_for_every_non_english_language(data: dict[str, Any], task: str, n: int) -> None:
    tt = data["tasks"][task]["translate_train"]
    assert sorted(tt) == sorted(c for c in CODES if c != "en")
    assert {len(rows) for rows in tt.values()} == {n}
    assert TASKS[task].splits["translate_train"] == "translate_train"
    for rows in tt.values():
        for r in rows[:20]:
            TASKS[task].example(r)


def test_translate_train_is_the_english_train_rendered_in_each_language(data: dict[str, Any]) -> None:
    en = data["tasks"]["pawsx"]["train"]["en"]
    xa = data["tasks"]["pawsx"]["translate_train"]["xa"]
    assert [r["label"] for r in xa] == [r["label"] for r in en]
    assert xa[0]["sentence1"] != en[0]["sentence1"]


def test_shared_words_are_nested_and_spread_over_every_topic() -> None:
    """A farther language shares a subset of what a nearer one shares, and every language with
    overlap shares words in every topic (so type and token overlap agree)."""
    w = World(0)
    en = w.lexicon["en"]

    def shared(lang: str) -> set[tuple[str, int, int]]:
        lex = w.lexicon[lang]
        return {(k, t, i) for k in ("noun", "verb", "adj") for t, ws in enumerate(en[k])
                for i, x in enumerate(ws) if lex[k][t][i] == x}

    langs = [s.code for s in LANGUAGES if s.code != "en"]
    for near, far in zip(langs, langs[1:], strict=False):
        assert shared(far) <= shared(near), (near, far)
    for lang in ("xa", "xb", "xc", "xd"):
        assert {t for _, t, _ in shared(lang)} == set(range(4)), lang
    assert shared("xz") == set()


# --- what makes the targets depend on the language --------------------------------------


def _topic_of(w: World) -> dict[str, tuple[str, int]]:
    """English content word -> (class, topic)."""
    en = w.lexicon["en"]
    return {x: (k, t) for k in ("noun", "verb", "adj") for t, ws in enumerate(en[k]) for x in ws}


@pytest.mark.parametrize(("task", "split", "n_clauses"), [("xquad", "validation", 3), ("mlqa", "test", 4),
                                                           ("tydiqa", "validation", 3), ("squad", "train", 3)])
def test_qa_answers_have_a_candidate_of_their_type_in_every_clause(data: dict[str, Any], task: str, split: str,
                                                                   n_clauses: int) -> None:
    """Every clause has a name and a number: the answer's type never gives it away, nor its position."""
    kinds: Counter[tuple[bool, int]] = Counter()
    for r in data["tasks"][task][split]["en"][:300]:
        clauses = [c.split() for c in r["context"].rstrip(" .").split(" . ")]
        assert len(clauses) == n_clauses
        answer = r["answers"]["text"][0]
        names = [c[0] for c in clauses]
        numbers = [x for c in clauses for x in c if x.isdigit()]
        assert len(set(names)) == len(set(numbers)) == n_clauses, r["context"]
        assert answer in names or answer in numbers
        kinds[(answer.isdigit(), [answer in c for c in clauses].index(True))] += 1
    assert {pos for _, pos in kinds} == set(range(n_clauses))  # the answer is in any clause
    assert {is_number for is_number, _ in kinds} == {True, False}


@pytest.mark.parametrize(("task", "split"), [("squad", "train"), ("xquad", "validation"), ("mlqa", "test"),
                                           ("tydiqa", "validation")])
def test_qa_answers_are_the_one_person_whom_only_the_verbs_tell(data: dict[str, Any], task: str, split: str) -> None:
    """Exactly one clause's subject is a person, the answer's (its name, or its number for "many");
    every other subject is an organisation. The subjects are entity forms of every kind, so only a
    clause's verb tells: a person's verb is of a person topic, an organisation's of an organisation
    topic, except the verb that takes either (~30 % of clauses), which tells nothing. No content word
    of the question occurs in the context; they are words of the answer clause's topic."""
    from xstilts.trainer.synth.qa import EITHER_SHARE
    from xstilts.trainer.synth.world import EITHER_VERB, SUBJECT_KINDS

    w = World(0)
    verb_of = {v: (t, i) for t, vs in enumerate(w.lexicon["en"]["verb"]) for i, v in enumerate(vs)}
    topic_of = _topic_of(w)
    forms = set(w.entity_forms)
    either = clauses_seen = 0
    kinds_of_subject: set[str] = set()
    for r in data["tasks"][task][split]["en"][:300]:
        clauses = [c.split() for c in r["context"].rstrip(" .").split(" . ")]
        answer, q = r["answers"]["text"][0], r["question"].split()
        target = next(i for i, c in enumerate(clauses) if answer in c)
        assert (answer == clauses[target][0]) == (q[0] == "who") and answer.isdigit() == (q[0] == "many"), r
        verbs = [verb_of[next(x for x in c if x in verb_of)] for c in clauses]  # (topic, index) per clause
        for i, (c, (topic, index)) in enumerate(zip(clauses, verbs, strict=True)):
            assert c[0] in forms
            kinds_of_subject |= {k for k, group in (("name", w.names), ("place", w.places), ("org", w.orgs))
                                 if c[0] in group}
            clauses_seen += 1
            if index == EITHER_VERB:
                either += 1
            else:
                assert (SUBJECT_KINDS[topic] == "person") == (i == target), r
        q_words = [x for x in q if x in topic_of]
        assert q_words and not set(q_words) & set(r["context"].split()), r
        assert {topic_of[x][1] for x in q_words} == {verbs[target][0]}, r
    assert kinds_of_subject == {"name", "place", "org"}
    assert either / clauses_seen == pytest.approx(EITHER_SHARE, abs=0.05)


def test_qa_question_words_are_anchors_so_only_content_words_depend_on_the_language(data: dict[str, Any]) -> None:
    """What a question asks for ("who": a name, "many": a number) is shared by every language but
    the control, as names and numbers are; the words that pick the clause are content words."""
    for task, split in (("xquad", "validation"), ("mlqa", "test"), ("tydiqa", "validation")):
        rows = data["tasks"][task][split]
        first = {lang: Counter(r["question"].split()[0] for r in rows[lang]) for lang in CODES}
        for lang in SHARING:
            assert set(first[lang]) == {"who", "many"}, (task, lang)
            assert first[lang] == first["en"], (task, lang)  # parallel: the same kinds of question
        assert not set(first["xz"]) & {"who", "many"} and len(first["xz"]) == 2, task


def test_xquad_records_have_no_title_like_google_xtreme(data: dict[str, Any]) -> None:
    qa = data["tasks"]
    assert all("title" not in r for rows in qa["xquad"]["validation"].values() for r in rows)
    assert all("title" not in r for rows in qa["xquad"]["translate_train"].values() for r in rows)
    for task, split in (("squad", "train"), ("mlqa", "test"), ("tydiqa", "validation")):
        assert all("title" in r for r in qa[task][split]["en"]), task


def test_pawsx_pairs_share_their_words_and_differ_in_order(data: dict[str, Any]) -> None:
    """PAWS: the two sentences have the same words (the second may drop the adjective); a
    non-paraphrase swaps the object and the companion noun, so only which word fills which role
    tells the label: the object is then a noun of a companion topic, except in the pairs (about
    ``_SAME_KIND``) whose companion is an object noun too, where only the word order tells."""
    from xstilts.trainer.synth.paraphrase import _COMPANION_TOPICS, _OBJECT_TOPICS, _SAME_KIND

    topic_of = _topic_of(World(0))
    rows = data["tasks"]["pawsx"]["train"]["en"]
    same_kind = 0
    for r in rows:
        a, b = r["sentence1"].split(), r["sentence2"].split()
        assert set(b) <= set(a) and len(a) - len(b) in (0, 1), r
        adj = [x for x in a if topic_of.get(x, ("",))[0] == "adj"]
        a, b = [x for x in a if x not in adj], [x for x in b if x not in adj]
        assert (a == b) == (r["label"] == "1"), r
        nouns = [x for x in a if topic_of.get(x, ("",))[0] == "noun"]  # the object, then the companion
        assert topic_of[nouns[0]][1] in _OBJECT_TOPICS and nouns[0] != nouns[1], r
        same_kind += topic_of[nouns[1]][1] not in _COMPANION_TOPICS  # (then in an object topic)
        if r["label"] == "0":
            assert [x for x in b if x in nouns] == nouns[::-1], r  # the two nouns swapped, nothing else
            assert [x for x, y in zip(a, b, strict=True) if x != y] == nouns, r
    assert Counter(r["label"] for r in rows)["0"] == pytest.approx(len(rows) / 2, rel=0.1)
    assert same_kind / len(rows) == pytest.approx(_SAME_KIND, abs=0.03)


def test_udpos_words_after_the_determiner_are_adjectives_or_nouns_by_what_they_are(data: dict[str, Any]) -> None:
    """The slot after "the" holds an ADJ in some sentences and a NOUN in others (a compound's first
    noun), so its tag is the word's class, not its position; each word keeps its class's tag."""
    from xstilts.trainer.tasks import UPOS

    topic_of = _topic_of(World(0))
    after_det: Counter[str] = Counter()
    for r in data["tasks"]["udpos"]["train"]["en"]:
        tags = [UPOS[t] for t in r["pos_tags"]]
        for i, (tok, tag) in enumerate(zip(r["tokens"], tags, strict=True)):
            if tok in topic_of and topic_of[tok][0] != "noun":  # (a noun used as a modifier may be ADJ)
                assert tag == {"verb": "VERB", "adj": "ADJ"}[topic_of[tok][0]], (tok, tag)
            if i and tags[i - 1] == "DET" and i + 1 < len(tags) and tags[i + 1] in ("NOUN", "ADJ"):
                after_det[tag] += 1  # a modified noun: the word after "the" is a modifier
    assert after_det["ADJ"] > 200 and after_det["NOUN"] > 200


def test_udpos_nouns_used_as_modifiers_are_tagged_either_way(data: dict[str, Any]) -> None:
    """The ambiguity that keeps English off the ceiling: a noun before another noun or an adjective
    is NOUN in about half its uses and ADJ in the rest; a head noun is always NOUN."""
    from xstilts.trainer.tasks import UPOS

    nouns = {x for ws in World(0).lexicon["en"]["noun"] for x in ws}
    modifier: Counter[str] = Counter()
    for r in data["tasks"]["udpos"]["train"]["en"]:
        tags = [UPOS[t] for t in r["pos_tags"]]
        for i, tok in enumerate(r["tokens"][:-1]):
            if tok in nouns:
                if tags[i + 1] in ("NOUN", "ADJ") and r["tokens"][i + 1] != ".":
                    modifier[tags[i]] += 1
                else:
                    assert tags[i] == "NOUN", r
    assert modifier["ADJ"] == pytest.approx(modifier["NOUN"], rel=0.15) and modifier["ADJ"] > 500


def test_panx_entity_forms_are_ambiguous_and_the_topic_decides_person_or_organisation(
        data: dict[str, Any]) -> None:
    """One entity form is a person here, an organisation or a place there; a subject's type is its
    clause topic's (``SUBJECT_KINDS``), except after the verb that takes either (``EITHER_VERB``)."""
    from xstilts.trainer.synth.world import EITHER_VERB, SUBJECT_KINDS
    from xstilts.trainer.tasks import PANX_TAGS

    en = World(0).lexicon["en"]
    verb_of = {v: (t, i) for t, ws in enumerate(en["verb"]) for i, v in enumerate(ws)}
    types: dict[str, set[str]] = {}
    either: Counter[str] = Counter()
    for r in data["tasks"]["panx"]["train"]["en"]:
        tags = [PANX_TAGS[t] for t in r["ner_tags"]]
        for tok, tag in zip(r["tokens"], tags, strict=True):
            if tag != "O":
                types.setdefault(tok, set()).add(tag[2:])
        for i, tok in enumerate(r["tokens"]):
            if tok in verb_of:  # SVO: the subject ends right before the verb (or before "not")
                subject = tags[i - 1 - (r["tokens"][i - 1] == "not")][2:]
                topic, verb = verb_of[tok]
                if verb == EITHER_VERB:
                    either[subject] += 1
                else:
                    assert subject == {"person": "PER", "org": "ORG"}[SUBJECT_KINDS[topic]], r
    assert sum(len(t) == 3 for t in types.values()) >= 20  # most forms take all three types
    assert either["PER"] > 50 and either["ORG"] > 50


def test_an_older_synth_version_on_disk_is_not_reused(on_disk: Any) -> None:
    """The cache folder is named by the version: data of an older one is left alone, not read
    (``on_disk``'s home held an older version's folder when ensure_synth generated)."""
    home, bench, logs = on_disk
    old = home / "data" / f"synth-v{SYNTH_VERSION - 1}-s0"
    assert logs and "generating synth" in logs[0]  # not taken for a cache
    assert bench.root.name == f"synth-v{SYNTH_VERSION}-s0"
    assert bench.manifest["version"] == SYNTH_VERSION and bench.languages == CODES
    assert [p.name for p in old.iterdir()] == ["manifest.json"]  # left alone
    assert json.loads((old / "manifest.json").read_text()) == {"version": SYNTH_VERSION - 1, "languages": []}
