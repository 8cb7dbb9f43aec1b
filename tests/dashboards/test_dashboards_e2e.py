"""End to end: a real 2-trial search (Ray Tune + Optuna + ASHA + DeepSpeed on the tiny model) with
its confirm phase (the best trial again on 2 fresh seeds), then what a person looks at — trial
artifacts, the parent summary and the recommendation read back from MLflow, ``xstilts report`` /
``xstilts status`` as commands, and the MLflow UI in a real browser (Debian's chromium driven by
Playwright; no browser download).

Opt-in: when ``XSTILTS_DOCS_SCREENSHOTS`` names a folder, the browser test also saves there
``mlflow-runs-table.png`` and ``report.png``, the pictures of the runs table and the report in the
README (``docs/img``)."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.conftest import TEST_FIDELITY, RealSearch, run_cli

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.slow

PNG = b"\x89PNG\r\n\x1a\n"
# A folder named by this variable receives the README's screenshot of the runs table (unset: none is taken).
DOCS_SCREENSHOTS = "XSTILTS_DOCS_SCREENSHOTS"
DOCS_RUNS_TABLE = "mlflow-runs-table.png"
DOCS_REPORT = "report.png"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]


def test_trials_have_artifacts_system_metrics_and_the_parent_a_summary(real_search: RealSearch,
                                                                         tmp_path: Path) -> None:
    s = real_search
    client = MlflowClient(s.uri)
    assert len(s.children) == 2
    assert "[xstilts] trial t000" in s.stdout  # live progress lines while the search runs
    for c in s.children:
        rid = c.info.run_id
        assert c.info.artifact_uri.startswith((Path(s.uri[len("sqlite:///"):]).parent / "mlartifacts").as_uri())
        doc = yaml.safe_load(Path(client.download_artifacts(rid, "config/trial_config.yaml", str(tmp_path))).read_text())
        tc = doc["trial_config"]
        assert tc["schedule"] == c.data.params["schedule"] and tc["target_steps"] == TEST_FIDELITY["target_steps"]
        chosen = {t: float(c.data.params[f"ratio.{t}"]) for t in ("mnli", "sst2") if c.data.params[f"tasks.{t}"] == "1"}
        assert tc["intermediate"] == pytest.approx(chosen, rel=1e-3)  # params to 4 digits, the config in full
        plots = {f.path for f in client.list_artifacts(rid, "plots")}
        assert plots == {"plots/mixture_schedule.png", "plots/zero_shot_by_language.png"}
        for f in plots:
            assert Path(client.download_artifacts(rid, f, str(tmp_path))).read_bytes().startswith(PNG)
        # the trial ran on this host, so the driver sampled its worker process
        rss = client.get_metric_history(rid, "system/trial_process_rss_megabytes")
        assert rss and all(h.value > 50 for h in rss)  # a torch process
        assert 0 < c.data.metrics["system/system_memory_usage_percentage"] <= 100
    parent = client.get_run(s.parent_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["xstilts.best_run_id"] in {c.info.run_id for c in s.children}
    names = {f.path for f in client.list_artifacts(s.parent_id)}
    assert {"leaderboard.json", "summary", "optuna"} <= names
    summary = {f.path for f in client.list_artifacts(s.parent_id, "summary")}
    assert {"summary/best_so_far.png", "summary/task_language_heatmap.png", "summary/best_mixture_schedule.png",
            "summary/best_zero_shot_by_language.png"} <= summary
    assert [f.path for f in client.list_artifacts(s.parent_id, "optuna")] == [f"optuna/{s.run_name}.journal"]


def test_the_confirm_phase_retrains_the_best_trial_on_fresh_seeds_and_recommends_it(real_search: RealSearch,
                                                                                     tmp_path: Path) -> None:
    """The confirm phase read back from the store: one child per fresh seed under the same parent, tagged
    with its phase, candidate and seed; the parent's recommended/<metric> is their mean ± SE, confirm.json
    has every seed's score; the console labels the recommendation and the raw best."""
    import json
    import math
    import statistics

    from xstilts.search.ledger import CONFIRM_LEDGER, read_ledger

    s = real_search
    client = MlflowClient(s.uri)
    completed = [c for c in s.children if c.data.tags["xstilts.status"] == "completed"]
    best = max(completed, key=lambda c: c.data.metrics["zero_shot/avg"])
    assert len(s.confirm) == 2
    seeds = sorted(int(c.data.tags["xstilts.seed"]) for c in s.confirm)
    assert seeds[0] >= 1 and len(set(seeds)) == 2  # fresh: the search's trials trained with seed 0
    for c in s.confirm:
        tags, params = c.data.tags, c.data.params
        assert tags["xstilts.confirm_of"] == best.info.run_name and tags["xstilts.status"] == "completed"
        assert c.info.run_name == f"{best.info.run_name}-confirm-s{tags['xstilts.seed']}"
        assert params["seed"] == tags["xstilts.seed"] and params["confirm_of"] == best.info.run_name
        for key in ("schedule", "learning_rate", "intermediate_tasks", "target_steps"):  # the candidate's config
            assert params[key] == best.data.params[key], key
        assert 0.0 <= c.data.metrics["zero_shot/avg"] <= 1.0
    values = [c.data.metrics["zero_shot/avg"] for c in s.confirm]
    parent = client.get_run(s.parent_id)
    m = parent.data.metrics
    assert m["recommended/zero_shot/avg"] == pytest.approx(statistics.fmean(values), abs=1e-9)
    assert m["recommended/zero_shot/avg_se"] == pytest.approx(statistics.stdev(values) / math.sqrt(2), abs=1e-9)
    assert m["recommended/seeds"] == 2 and m["confirm/failed"] == 0 and m["confirm/seconds"] > 0
    assert parent.data.tags["xstilts.recommended_trial"] == best.info.run_name
    assert parent.data.params["confirm.top_k"] == "1" and parent.data.params["confirm.seeds"] == "2"
    doc = json.loads(Path(client.download_artifacts(s.parent_id, "confirm/confirm.json", str(tmp_path))).read_text())
    assert doc["recommended"]["trial"] == best.info.run_name and doc["seeds"] == seeds
    (cand,) = doc["candidates"]
    assert cand["search_value"] == pytest.approx(best.data.metrics["zero_shot/avg"])
    assert sorted(x["value"] for x in cand["seeds"]) == pytest.approx(sorted(values))
    # the confirm ledger: each confirm trial started once; the console's summary
    ledger = read_ledger(s.home / "ray" / s.run_name, CONFIRM_LEDGER)
    assert sorted(ledger) == sorted(c.info.run_name for c in s.confirm)
    assert all(t.starts == 1 and t.status == "completed" for t in ledger.values())
    assert f"recommended: {best.info.run_name}  zero_shot/avg {m['recommended/zero_shot/avg']:.4f} ± " in s.stdout
    assert "raw best of the search (one training seed, likely lucky): t000" in s.stdout


def test_the_parent_run_tells_the_answer(real_search: RealSearch) -> None:
    """Times with the preparation, best/* only scores, the winner's config readable, the experiment
    as model training, the trials' params to 4 digits, a pruned trial killed."""
    from xstilts.dashboards.mlflow_view import is_score

    s = real_search
    client = MlflowClient(s.uri)
    parent = client.get_run(s.parent_id)
    m = parent.data.metrics
    assert m["search/prep_seconds"] > 0 and m["search/seconds"] >= m["search/prep_seconds"] + m["search/fit_seconds"]
    # the parent started with the command: its duration holds the preparation
    assert parent.info.end_time - parent.info.start_time >= 1000 * (m["search/prep_seconds"] + m["search/fit_seconds"])
    best = [k for k in m if k.startswith("best/")]
    assert "best/zero_shot/avg" in best and "best/test/zero_shot/avg" in best
    assert all(is_score(k[len("best/"):]) for k in best), best  # no best/train/phase, best/ray/...
    config = json.loads(parent.data.tags["best_config"])
    assert config["schedule"] in ("sequential", "interleaved", "annealed") and "_u.ratios.mnli" not in config
    note = parent.data.tags["mlflow.note.content"]
    assert f"runs/{parent.data.tags['xstilts.best_run_id']}?workflowType=machine_learning)**" in note
    assert client.get_experiment(s.experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"
    for c in s.children:
        for k, v in c.data.params.items():
            if re.fullmatch(r"-?\d+\.\d+(e-?\d+)?", v):
                assert float(v) == float(f"{float(v):.4g}"), (k, v)  # floats to 4 significant digits
        killed = c.info.status == "KILLED"
        assert killed == (c.data.tags["xstilts.status"] == "pruned")
        assert killed == ("xstilts.stopped_at" in c.data.tags)


def test_report_and_status_commands(real_search: RealSearch, tmp_path: Path) -> None:
    s = real_search
    out = tmp_path / "report.html"
    r = run_cli(["report", s.run_name, "--tracking-uri", s.uri, "--output", str(out)], s.home)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().splitlines()[-1] == str(out)
    text = out.read_text()
    assert "<script" not in text and not re.search(r"""(src|href)=["']?(https?:)?//""", text)
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(images) >= 4 and all(base64.b64decode(i).startswith(PNG) for i in images)
    for c in s.children:
        assert c.info.run_name in text
    for c in s.confirm:  # the recommendation's table: a column per fresh seed, each seed's score
        assert f"<th class=\"\">seed {c.data.tags['xstilts.seed']}</th>" in text
        assert f"{c.data.metrics['zero_shot/avg']:.4f}" in text
    assert "Recommendation (confirmed on fresh seeds)" in text and "Best trial (raw: one training seed)" in text
    assert [f.path for f in MlflowClient(s.uri).list_artifacts(s.parent_id, "report")] == ["report/report.html"]

    assert re.search(r"min in all: \d+\.\d min preparation \(checks, data, pretraining, Ray\)", text)

    r = run_cli(["status", "dash", "--tracking-uri", s.uri], s.home)  # by experiment name: its latest search
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"search {s.run_name} (experiment 'dash'): finished" in r.stdout
    assert re.search(r"; took \d+\.\d min \(\d+\.\d min preparation\)", r.stdout)
    assert re.search(r"trials: 0 running, \d completed, \d pruned, 0 failed \(2 of 2 planned\)", r.stdout)
    assert "best so far: zero_shot/avg = 0." in r.stdout
    assert "confirm: 2 of 2 retrainings of the top 1 on fresh seeds completed, 0 running, 0 failed" in r.stdout
    assert re.search(r"recommended: t000\d\S* +zero_shot/avg 0\.\d{4} ± 0\.\d{4} over 2 fresh seeds", r.stdout)
    best = MlflowClient(s.uri).get_run(s.parent_id).data.tags["xstilts.best_trial_name"]
    assert re.search(rf"^\* {re.escape(best)} +completed", r.stdout, re.M)  # best first, starred
    r = run_cli(["status", "nothing-like-this", "--tracking-uri", s.uri], s.home)
    assert r.returncode == 1 and "no search run or experiment named" in r.stderr


def _chromium() -> str:
    path = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if path is None:
        pytest.skip("Debian's chromium is not installed (`make install` installs it with apt-get; "
                    "never `playwright install`)")
    return path


def test_mlflow_ui_opens_on_the_answer_in_a_real_browser(real_search: RealSearch, tmp_path: Path) -> None:
    """The link `xstilts ui` prints opens the trials ranked by the objective, the searched params and
    the objective as columns; the parent's description links the winner; the leaderboard's columns are
    filled in MLflow's artifact view; a trial's run page lists its params and metrics."""
    chromium = _chromium()
    pytest.importorskip("playwright.sync_api", reason="playwright (a dev dependency) is not installed")
    s = real_search
    docs = Path(os.environ[DOCS_SCREENSHOTS]) if os.environ.get(DOCS_SCREENSHOTS) else None
    report = tmp_path / "report.html"
    if docs is not None:
        r = run_cli(["report", s.run_name, "--tracking-uri", s.uri, "--output", str(report)], s.home)
        assert r.returncode == 0, r.stderr[-3000:]
    check_mlflow_ui(s.uri, s.experiment_id, s.parent_id, s.children, tmp_path, chromium, docs=docs,
                    report=report if docs is not None else None)
    assert (tmp_path / "mlflow-runs.png").read_bytes().startswith(PNG)
    if docs is not None:
        assert (docs / DOCS_RUNS_TABLE).read_bytes().startswith(PNG) and (docs / DOCS_REPORT).read_bytes().startswith(PNG)


def check_mlflow_ui(uri: str, experiment_id: str, parent_id: str, children: list, out: Path, chromium: str,
                    docs: Path | None = None, report: Path | None = None) -> None:
    """Start ``mlflow server`` on the store, follow the links a person is given in chromium and assert
    what they show; with ``docs``, also save the README's pictures there (the runs table, and
    ``report``, an HTML report, as rendered)."""
    from playwright import sync_api

    from xstilts.dashboards.ui import search_link, start_mlflow_server, stop_server, wait_healthy
    from xstilts.trainer.ports import free_port

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    link, _ = search_link(uri, url)  # what `xstilts ui` prints (and opens)
    assert link is not None
    proc = start_mlflow_server(uri, port=port)
    try:
        wait_healthy(url, proc)
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
            try:
                page = browser.new_page(viewport={"width": 2200, "height": 900})
                _check_runs_view(page, link, children)
                page.screenshot(path=str(out / "mlflow-runs.png"), full_page=True)
                if docs is not None:
                    _save_runs_table(page, children, docs / DOCS_RUNS_TABLE)
                _check_parent_links_the_winner(page, url, experiment_id, parent_id, children)
                _check_leaderboard_table(page, url, experiment_id, parent_id)
                _check_run_page(page, url, experiment_id, children[0], out)
                if report is not None and docs is not None:
                    _save_report(page, report, docs / DOCS_REPORT)
            finally:
                browser.close()
    finally:
        stop_server(proc)
    assert proc.poll() is not None


def _check_runs_view(page: Page, link: str, children: list) -> None:
    """The saved view: the model-training table of the search's trials, best first, no clicks needed."""
    page.goto(link)
    rows = [page.locator(f'[role=row][row-id="{c.info.run_id}"]').first for c in children]
    for row in rows:
        row.wait_for(timeout=60_000)
    assert page.get_by_text("You're viewing a shared view").count() == 1  # the saved view, applied
    assert page.get_by_role("button", name="Model training").count() or "Model training" in page.content()
    _close_assistant(page)
    params = ["ratio.mnli", "ratio.sst2", "schedule", "learning_rate"]
    for key in ["metrics.`zero_shot/avg`", "metrics.`test/zero_shot/avg`", "tags.`xstilts.status`",
                *(f"params.`{p}`" for p in params)]:
        header = page.locator(f'[role=columnheader][col-id="{key}"]')
        assert header.count() == 1, f"column {key} not shown"
    ranked = sorted(children, key=lambda c: -c.data.metrics.get("zero_shot/avg", float("-inf")))
    tops = [page.locator(f'[role=row][row-id="{c.info.run_id}"]').first.bounding_box() for c in ranked]
    assert [b["y"] for b in tops if b] == sorted(b["y"] for b in tops if b), "trials not best first"
    for c in children:
        # ag-grid splits a row between its pinned and scrolling parts: same row-id, two rows
        row = page.locator(f'[role=row][row-id="{c.info.run_id}"]')
        assert c.info.run_name in row.first.inner_text()
        for p in params:
            assert row.locator(f'[col-id="params.`{p}`"]').inner_text().strip() == c.data.params[p], p
        shown = row.locator('[col-id="metrics.`zero_shot/avg`"]').inner_text().strip()
        assert float(shown) == pytest.approx(c.data.metrics["zero_shot/avg"], abs=0.006)
        status = c.data.tags["xstilts.status"]  # pruned: "pruned" here, and MLflow's own status "Killed"
        assert row.locator('[col-id="tags.`xstilts.status`"]').inner_text().strip() == status


def _close_assistant(page: Page) -> None:
    close = page.get_by_role("button", name="Close", exact=True)  # the assistant side panel
    if close.count():
        close.first.click()


def _check_parent_links_the_winner(page: Page, url: str, experiment_id: str, parent_id: str, children: list) -> None:
    """The parent run's description names the best trial as a link that leads to its run page."""
    page.goto(f"{url}/#/experiments/{experiment_id}/runs/{parent_id}?workflowType=machine_learning")
    winner = max((c for c in children if c.data.tags["xstilts.status"] == "completed"),
                 key=lambda c: c.data.metrics["zero_shot/avg"])
    link = page.locator(f'a[href*="runs/{winner.info.run_id}"]').filter(has_text=winner.info.run_name).first
    link.wait_for(timeout=30_000)
    href = link.get_attribute("href")  # (a collapsed description's gradient covers the link from clicks)
    assert href and href.startswith("#/experiments/")
    page.goto(f"{url}/{href}")
    page.get_by_text("ratio.mnli", exact=True).first.wait_for(timeout=30_000)
    assert winner.info.run_name in page.locator("body").inner_text()


def _check_leaderboard_table(page: Page, url: str, experiment_id: str, parent_id: str) -> None:
    """``leaderboard.json`` in MLflow's artifact table view: every key column has a value in each row."""
    page.set_viewport_size({"width": 4000, "height": 900})  # the table view hides columns past the window
    page.goto(f"{url}/#/experiments/{experiment_id}/runs/{parent_id}/artifacts/leaderboard.json"
              "?workflowType=machine_learning")
    page.locator("[role=columnheader]").filter(has_text=re.compile(r"^ratio_mnli$")).first.wait_for(timeout=30_000)
    names = [h.strip() for h in page.locator("[role=columnheader]").all_inner_texts()]
    rows = [[c.strip() for c in r.locator("[role=cell],[role=gridcell]").all_inner_texts()]
            for r in page.locator("[role=row]").all()]
    rows = [r for r in rows if r]
    assert rows, "no rows in MLflow's table view"
    for row in rows:
        filled = dict(zip(names, row, strict=False))
        for col in ("trial", "status", "zero_shot/avg", "ratio_mnli", "ratio_sst2", "schedule", "learning_rate"):
            assert filled.get(col), f"column {col} empty in MLflow's table view: {filled}"
    page.set_viewport_size({"width": 2200, "height": 900})


def _check_run_page(page: Page, url: str, experiment_id: str, run: Any, out: Path) -> None:
    """A child's run page lists its params and metrics too."""
    page.goto(f"{url}/#/experiments/{experiment_id}/runs/{run.info.run_id}")
    page.get_by_text(run.info.run_name).first.wait_for(timeout=30_000)
    for key in ("ratio.mnli", "schedule", "zero_shot/avg"):
        page.get_by_text(key, exact=True).first.wait_for(timeout=15_000)
    assert run.data.params["schedule"] in page.locator("body").inner_text()
    page.screenshot(path=str(out / "mlflow-run.png"), full_page=True)


def _save_runs_table(page: Page, children: list, path: Path) -> None:
    """The README's picture of the runs table as the link opens it, cut below the last trial."""
    rows = [page.locator(f'[role=row][row-id="{c.info.run_id}"]').first for c in children]
    bottom = max(b["y"] + b["height"] for b in (r.bounding_box() for r in rows) if b)
    page.mouse.move(0, 0)  # no hover highlight in the picture
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), clip={"x": 0, "y": 0, "width": 2200, "height": bottom + 40})


def _save_report(page: Page, report: Path, path: Path) -> None:
    """The README's picture of the report: its top (overview, best trial, per-language table), 1200 px wide."""
    page.set_viewport_size({"width": 1300, "height": 1000})
    page.goto(report.as_uri())
    page.locator("#per-language").wait_for(timeout=15_000)
    page.screenshot(path=str(path), clip={"x": 0, "y": 0, "width": 1300, "height": 1400}, full_page=True)
