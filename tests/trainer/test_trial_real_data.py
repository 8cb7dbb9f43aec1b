"""Real trials on real-schema data (a local data folder, a locally made XLM-R-shaped checkpoint):
every language of a task is scored by default, and a failed test phase loses nothing."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TEST_TINY
from tests.realdata import PAWSX_LANGUAGES, write_real_data
from xstilts.trainer.config import TinyModelSpec, TrialConfig, TrialRuntime
from xstilts.trainer.hub import DataNotFoundError
from xstilts.trainer.names import OBJECTIVE, TRIAL_DONE, TRIAL_PARTIAL
from xstilts.trainer.trial import run_trial

pytestmark = pytest.mark.slow

SHORT = {"intermediate_steps": 6, "target_steps": 8, "eval_every": 4, "batch_size": 8, "eval_max_examples": 16}


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def real_trial(tiny_home: Path, data: Path, out: Path | None = None, reports: list[dict[str, Any]] | None = None,
               **kw: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    reports = [] if reports is None else reports
    cfg = TrialConfig(benchmark="xtreme", model=str(TinyModelSpec(**TEST_TINY).folder(tiny_home)),
                      data_dir=str(data), target_tasks=["pawsx"], intermediate={"mnli": 1.0}, **{**SHORT, **kw})
    runtime = TrialRuntime(home=str(tiny_home), threads=1, output_dir=str(out) if out else None)
    result = run_trial(cfg, lambda m, checkpoint_dir=None: reports.append(dict(m)), runtime=runtime,
                       log=lambda s: None)
    return result, reports


def test_unset_eval_languages_scores_every_language_of_the_task(tiny_home: Path, tmp_path: Path) -> None:
    result, _ = real_trial(tiny_home, write_real_data(tmp_path / "data"))
    m = result["metrics"]
    scored = {k.rsplit("/", 1)[1] for k in m if k.startswith("zero_shot/pawsx/")}
    assert scored == set(PAWSX_LANGUAGES) - {"en"}  # not English alone, as before
    assert {k.rsplit("/", 1)[1] for k in m if k.startswith("test/zero_shot/pawsx/")} == scored
    assert "en/pawsx" in m and math.isfinite(m[OBJECTIVE]) and math.isfinite(m["test/zero_shot/avg"])
    assert m[OBJECTIVE] == pytest.approx(sum(m[f"zero_shot/pawsx/{lang}"] for lang in scored) / len(scored))


def test_a_failed_test_phase_keeps_and_reports_the_dev_results(tiny_home: Path, tmp_path: Path) -> None:
    data = write_real_data(tmp_path / "data")
    (data / "google/xtreme/PAWS-X.de/test.jsonl").unlink()  # gone after the checks, before the test phase
    out, reports = tmp_path / "out", []
    with pytest.raises(DataNotFoundError, match="no data for task 'pawsx' \\(language 'de'\\)"):
        real_trial(tiny_home, data, out, reports, eval_languages=["de"])
    assert reports[-1][TRIAL_PARTIAL] == 1 and OBJECTIVE in reports[-1]  # reported before the trial failed
    saved = json.loads((out / "results.json").read_text())
    assert saved["partial"] is True and saved["error"].startswith("the test phase failed: DataNotFoundError")
    m = saved["metrics"]
    assert m[TRIAL_PARTIAL] == 1 and TRIAL_DONE not in m and not [k for k in m if k.startswith("test/")]
    assert 0.0 <= m[OBJECTIVE] <= 1.0 and "zero_shot/pawsx/de" in m and m["train/step"] == SHORT["target_steps"]


def test_interleaved_mlm_trains_on_the_corpus_files(tiny_home: Path, tmp_path: Path) -> None:
    """Multilingual MLM on real data: <data_dir>/mlm/<lang>.txt, the first mlm_max_docs documents of
    each scored language (en, de), sampled by temperature over the documents held."""
    logs: list[str] = []
    cfg = TrialConfig(benchmark="xtreme", model=str(TinyModelSpec(**TEST_TINY).folder(tiny_home)),
                      data_dir=str(write_real_data(tmp_path / "data")), target_tasks=["pawsx"],
                      eval_languages=["de"], intermediate={"mnli": 1.0}, schedule="interleaved",
                      multilingual_share=0.5, language_temperature=2.0, mlm_max_docs=12, **SHORT)
    result = run_trial(cfg, runtime=TrialRuntime(home=str(tiny_home), threads=1), log=logs.append)
    assert result["mlm_docs"] == {"en": 12, "de": 12}  # capped: the files have 48 each
    assert result["mlm_languages"] == pytest.approx({"en": 0.5, "de": 0.5})
    assert "[trial] MLM: en 0.500 (12 docs), de 0.500 (12 docs)" in logs
    curve = result["curves"]["intermediate"]
    assert len(curve) == SHORT["intermediate_steps"] and all(math.isfinite(x) for x in curve)
    assert max(curve) > 2.5 > min(curve)  # MLM steps (a vocabulary-wide loss) among MNLI's (3 classes)
