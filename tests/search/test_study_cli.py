"""``xstilts study``'s command line without running a trial: its help, and every mistake it
refuses before Ray starts (exit 2, the message naming the file and the key, nothing written).

The help and the unknown from_search arm (the last refusal, after the tracking store is read) run
the real console entry point in a subprocess; the other refusals call ``main`` in this process
(``call_cli``), where a subprocess only added ~9 s of start-up and imports to each. A whole study
runs as a subprocess in test_study_e2e."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.conftest import call_cli, run_cli

QUESTION = Path(__file__).resolve().parents[2] / "studies" / "question.yaml"


def _study(tmp_path: Path, **arms: dict) -> Path:
    raw = {"name": "bad", "reference": "seq", "seeds": 5,
           "trial": {"benchmark": "synth", "model": "tiny", "target_tasks": ["xnli"]},
           "arms": {"seq": {"schedule": "sequential", "intermediate": {"mnli": 1.0}}, **arms}}
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(raw, sort_keys=False))
    return p


def test_study_help_lists_its_options(tmp_path: Path) -> None:
    r = run_cli(["study", "--help"], tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    for opt in ("--name", "--tracking-uri", "--ray-address", "--json", "--resume", "--seeds", "--steps", "--set",
                "--storage", "--max-concurrent"):
        assert opt in r.stdout, opt
    top = run_cli(["--help"], tmp_path, timeout=120)
    assert top.returncode == 0 and "study" in top.stdout


def test_a_bad_study_file_names_the_file_and_the_key_and_starts_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    bad = _study(tmp_path, inter={"schedule": "interleaved", "intermediate": {"mnli": 1.0}, "multilingual_shar": 0.3})
    r = call_cli(["study", str(bad)], home)
    assert r.returncode == 2, (r.stdout[-2000:], r.stderr[-2000:])
    assert str(bad) in r.stderr and "arms.inter.multilingual_shar" in r.stderr and "unknown key" in r.stderr
    assert list(home.iterdir()) == []  # no Ray folder, no tracking store

    r = call_cli(["study", str(QUESTION), "--set", "learning_rat=0.1"], home)
    assert r.returncode == 2 and "learning_rat" in r.stderr, r.stderr[-2000:]
    r = call_cli(["study", str(QUESTION), "--seeds", "17"], home)
    assert r.returncode == 2 and "--seeds 17" in r.stderr and "16 seeds" in r.stderr, r.stderr[-2000:]


def test_study_refuses_a_missing_file_a_resume_with_overrides_and_an_unknown_run(tmp_path: Path) -> None:
    r = call_cli(["study"], tmp_path)
    assert r.returncode == 2 and "needs a study file" in r.stderr
    r = call_cli(["study", str(QUESTION), "--resume", "question"], tmp_path)
    assert r.returncode == 2 and "--resume continues a study as it was started" in r.stderr
    r = call_cli(["study", "--resume", "nosuch", "--storage", str(tmp_path / "ray")], tmp_path)
    assert r.returncode == 2 and "no study run 'nosuch'" in r.stderr, r.stderr[-2000:]
    r = call_cli(["study", str(tmp_path / "missing.yaml")], tmp_path)
    assert r.returncode == 2 and "missing.yaml" in r.stderr, r.stderr[-2000:]


def test_a_from_search_arm_of_an_unknown_search_names_the_arm(tmp_path: Path) -> None:
    study = _study(tmp_path, tuned={"from_search": "nosuch", "where": {"schedule": "interleaved"}})
    uri = f"sqlite:///{tmp_path / 'track.db'}"
    r = run_cli(["study", str(study), "--tracking-uri", uri, "--storage", str(tmp_path / "ray")], tmp_path,
                timeout=300)
    assert r.returncode == 2, (r.stdout[-2000:], r.stderr[-2000:])
    assert "arms.tuned.from_search" in r.stderr and "nosuch" in r.stderr
    assert not (tmp_path / "ray").exists() or not any((tmp_path / "ray").iterdir())  # no trial started
