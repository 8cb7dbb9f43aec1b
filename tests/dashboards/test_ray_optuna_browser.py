"""In a real browser (Debian's chromium driven by Playwright, no browser download): the Ray
dashboard of a running search names its trial actors and its job, and optuna-dashboard
(``xstilts ui --optuna``) shows the search's study, each trial with its name, mixture and MLflow
run id. Heavy: a 3-trial search whose trials last long enough to be watched live.

Opt-in: when ``XSTILTS_DOCS_SCREENSHOTS`` names a folder, the test saves ``ray-actors.png`` there,
the README's picture of the Actors page (``docs/img``)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from mlflow.tracking import MlflowClient

from tests.dashboards.test_dashboards_e2e import CHROMIUM_FLAGS, DOCS_SCREENSHOTS, PNG, _chromium
from tests.search.helpers import start_cli, wait_for, write_space
from xstilts.trainer.ports import free_port

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.slow, pytest.mark.heavy]

DOCS_RAY_ACTORS = "ray-actors.png"
TRIAL_NAME = re.compile(r"t000\d-(sequential|interleaved)\S*")
# long enough trials (several evaluations) for the browser to find them running on a busy machine
WATCHED = {"intermediate_steps": 300, "target_steps": 300, "eval_every": 100}


@dataclass
class WatchedSearch:
    home: Path
    uri: str
    run_name: str
    log: str
    actors_seen: list[str]  # trial names the Actors page showed while the search ran
    job_listed: bool  # the Jobs page listed the job under the run's name
    shots: Path
    children: list = field(default_factory=list)  # MLflow child runs


@pytest.fixture(scope="module")
def watched_search(tiny_home: Path, tmp_path_factory: pytest.TempPathFactory) -> WatchedSearch:
    chromium = _chromium()
    pytest.importorskip("playwright.sync_api", reason="playwright (a dev dependency) is not installed")
    tmp = tmp_path_factory.mktemp("ray_watch")
    space = write_space(tmp, "watch", trial=WATCHED, search={"trials": 3, "max_concurrent": 2})
    uri, log = f"sqlite:///{tmp / 'track.db'}", tmp / "search.log"
    proc = start_cli(["search", str(space), "--tracking-uri", uri], tiny_home, log)
    try:
        text = wait_for(lambda: _started(log), 900, "the search to start its trials", proc, log)
        url = re.search(r"\[xstilts\] Ray dashboard: (http://\S+)", text).group(1)  # type: ignore[union-attr]
        run_name = re.search(r"\[xstilts\] search (\S+): \d+ trials", text).group(1)  # type: ignore[union-attr]
        seen, listed = _watch_ray_dashboard(url, _ray_token(), run_name, chromium, tmp)
        assert proc.wait(timeout=1800) == 0, log.read_text()[-4000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("watch")
    children = client.search_runs([exp.experiment_id], filter_string="tags.`xstilts.kind` = 'trial'")
    return WatchedSearch(tiny_home, uri, run_name, log.read_text(), seen, listed, tmp, children)


def _started(log: Path) -> str | None:
    """The search's output once it printed the dashboard's URL and its own name (trials start next)."""
    text = log.read_text(errors="replace")
    return text if "[xstilts] Ray dashboard: " in text and re.search(r"\[xstilts\] search \S+: \d+ trials", text) \
        else None


def _ray_token() -> str:
    """What the search tells a person to paste: ``ray get-auth-token`` (the CLI beside this Python)."""
    ray = Path(sys.executable).parent / "ray"
    r = subprocess.run([str(ray), "get-auth-token"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip().splitlines()[-1].strip()


def _watch_ray_dashboard(url: str, token: str, run_name: str, chromium: str, out: Path) -> tuple[list[str], bool]:
    """Log in with the token, then read the Actors page (until a trial actor shows its trial's name)
    and the Jobs page; screenshots in ``out`` (and the README's in $XSTILTS_DOCS_SCREENSHOTS)."""
    from playwright import sync_api

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 800})
            page.goto(url, timeout=120_000)
            _log_in(page, token)
            page.goto(f"{url}/#/actors")
            cell = page.get_by_text(TRIAL_NAME).first
            cell.wait_for(timeout=600_000)  # the actors page refreshes itself while trials start
            page.wait_for_timeout(2000)
            seen = sorted({m.group(0) for m in TRIAL_NAME.finditer(page.locator("body").inner_text())})
            page.screenshot(path=str(out / "ray-actors.png"), full_page=True)
            docs = os.environ.get(DOCS_SCREENSHOTS)
            if docs:
                Path(docs).mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(Path(docs) / DOCS_RAY_ACTORS))
            page.goto(f"{url}/#/jobs")
            job = page.get_by_text(run_name, exact=True).first
            job.wait_for(timeout=120_000)
            page.screenshot(path=str(out / "ray-jobs.png"), full_page=True)
            return seen, job.is_visible()
        finally:
            browser.close()


def _log_in(page: Page, token: str) -> None:
    """The dashboard's "Authentication Token Required" form, when token authentication is on."""
    field = page.get_by_placeholder("Enter your authentication token")
    try:
        field.first.wait_for(timeout=60_000)
    except Exception:  # token authentication is off (RAY_AUTH_MODE=disabled): no form
        return
    field.first.fill(token)
    page.get_by_role("button", name="Submit").click()
    field.first.wait_for(state="hidden", timeout=60_000)


def test_ray_dashboard_names_trial_actors_and_the_job_during_a_search(watched_search: WatchedSearch) -> None:
    s = watched_search
    names = {c.info.run_name for c in s.children}
    assert s.actors_seen and set(s.actors_seen) <= names, (s.actors_seen, names)
    assert s.job_listed
    assert (s.shots / "ray-actors.png").read_bytes().startswith(PNG)
    if os.environ.get("RAY_AUTH_MODE", "token").lower() == "token":
        assert "paste what `ray get-auth-token` prints" in s.log


def test_optuna_dashboard_shows_the_study_trials_with_their_attributes(watched_search: WatchedSearch) -> None:
    from playwright import sync_api

    s, chromium = watched_search, _chromium()
    port, log = free_port(), s.shots / "optuna-ui.log"
    proc = start_cli(["ui", "--optuna", s.run_name, "--port", str(port)], s.home, log)
    try:
        text = wait_for(lambda: re.search(r"optuna-dashboard over \S+: (http://\S+/studies/\d+)", log.read_text()),
                        120, "optuna-dashboard's URL", proc, log)
        study_url = text.group(1)
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
            try:
                page = browser.new_page(viewport={"width": 1500, "height": 900})
                by_number = {int(c.data.tags["xstilts.trial_number"]): c for c in s.children}
                for number, child in sorted(by_number.items()):
                    page.goto(f"{study_url}/trials?numbers={number}", timeout=120_000)
                    page.get_by_text(f"trial_name {child.info.run_name}").first.wait_for(timeout=60_000)
                    body = page.locator("body").inner_text()
                    assert f"mlflow_run_id {child.info.run_id}" in body
                    assert re.search(r'mixture \{"(mnli|sst2)": [01]\.\d+', body) and "_u." not in body
                    state = {"completed": "Complete", "pruned": "Pruned"}[child.data.tags["xstilts.status"]]
                    assert state in body
                page.screenshot(path=str(s.shots / "optuna-trials.png"), full_page=True)
            finally:
                browser.close()
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)
    assert proc.returncode == 0 and "stopping optuna-dashboard" in log.read_text()
