"""``asha.proxy``: a trial reports its cheap fidelity's score first (ASHA's first rung, Optuna's first
intermediate value), then runs in full; a real search end to end in the heavy test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import TEST_FIDELITY, TEST_TINY, run_cli
from xstilts.search.runner import PROXY, proxy_report
from xstilts.trainer.names import TRIAL_DONE


def test_a_proxy_reports_its_dev_scores_and_is_not_done() -> None:
    final = {"zero_shot/avg": 0.5, "zero_shot/xnli/xa": 0.4, "en/xnli": 0.7, "test/zero_shot/avg": 0.45,
             "test_clean/zero_shot/xnli": 0.3, "time/trial_s": 7.5, "train/step": 10, "train/loss": 1.2,
             "train/phase": 2, TRIAL_DONE: 1, "intermediate/loss": 2.0}
    assert proxy_report(final) == {"zero_shot/avg": 0.5, "zero_shot/xnli/xa": 0.4, "en/xnli": 0.7,
                                   "intermediate/loss": 2.0, PROXY: 1, "proxy/seconds": 7.5}


@pytest.mark.heavy
def test_a_search_with_a_proxy_rung(tiny_home: Path, tmp_path: Path) -> None:
    """4 trials of the default space at test fidelity (40 + 40 steps, dev every 20), each first at 10 + 10
    steps: every trial's first result is its proxy's score, with no checkpoint; a trial ASHA kept
    reports the proxy, then its 2 evaluations; Optuna holds the proxy's score as intermediate value 1."""
    import optuna

    from xstilts.search.ledger import read_ledger
    from xstilts.search.searchers import journal_storage
    from xstilts.spaces import default_space_path

    raw = yaml.safe_load(default_space_path().read_text())
    raw["name"] = "proxy"
    raw["search"].pop("confirm", None)
    raw["search"].update(trials=4, fidelities={"cheap": {"intermediate_steps": 10, "target_steps": 10,
                                                         "eval_max_examples": 20}}, asha={"proxy": "cheap"})
    raw["trial"].update({"tiny": TEST_TINY, **TEST_FIDELITY})
    space = tmp_path / "proxy.yaml"
    space.write_text(yaml.safe_dump(raw))
    uri = f"sqlite:///{tmp_path / 'track.db'}"
    r = run_cli(["search", str(space), "--max-concurrent", "2", "--tracking-uri", uri, "--run-name", "proxy-run"],
                tiny_home, timeout=1200)
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
    assert "ASHA's first rung: each trial first runs fidelity 'cheap' (10 + 10 steps)" in r.stdout

    run_dir = tiny_home / "ray" / "proxy-run"
    trials = read_ledger(run_dir)
    assert len(trials) == 4
    study = optuna.load_study(study_name="proxy-run", storage=journal_storage(tiny_home / "optuna" / "proxy-run.journal"))
    by_number = {t.number: t for t in study.trials}
    for t in trials.values():
        first = t.results[1]
        assert first[PROXY] == 1 and 0 <= first["zero_shot/avg"] <= 1 and first["proxy/seconds"] > 0
        assert 1 not in t.checkpoints  # the proxy's model is not continued: nothing to restore from
        # every report reached the study, the one ASHA stopped the trial on too (Tune hands that one
        # to the searcher's on_trial_complete only)
        assert by_number[t.number].intermediate_values == pytest.approx(
            {i: r["zero_shot/avg"] for i, r in t.results.items() if i < max(t.results) or t.status == "pruned"}), [(x.number, x.state, x.intermediate_values, x.params) for x in study.trials] + [(k, v.number, v.status) for k, v in trials.items()]
        if t.status == "completed":
            assert sorted(t.results) == [1, 2, 3] and t.last[TRIAL_DONE] == 1
            assert PROXY not in t.results[2] and t.results[3]["train/step"] == 40
            # the proxy's seconds are part of the trial's (no timing claim: at this size a process's
            # first engine and imports, which the proxy pays, outweigh the steps)
            assert first["proxy/seconds"] < t.last["time_total_s"]
        else:
            assert t.status == "pruned"
    assert any(t.status == "completed" for t in trials.values())
    lines = [json.loads(x) for x in next(run_dir.glob("t0000-*/result.json")).read_text().splitlines() if x.strip()]
    assert lines[0][PROXY] == 1 and lines[0]["training_iteration"] == 1
