"""The Airflow UI in a real browser: log in, find the Argus DAGs, open a finished run.

Drives Debian's Chromium (``scripts/ensure-chromium`` installs it) through Playwright and
saves the screenshots that ``docs/ui.md`` shows, so they always match the running version.
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from argus.airflow_client import AirflowClient
from argus.stack.airflow import airflow_login

CHROMIUM = Path(os.environ.get("ARGUS_CHROMIUM", "/usr/bin/chromium"))
# Chromium's background services (updates, sync, field trials, QUIC probes) reach for the
# network, which is closed on the build machines; with them off it only talks to 127.0.0.1.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
VIEWPORT = {"width": 1440, "height": 900}
# the React UI renders after its API calls; on 2 cores shared with Spark that can take a while
UI_TIMEOUT_MS = 60_000
SMOKE_DAG = "argus_smoke"


@pytest.fixture(scope="module")
def smoke_run(stack, cfg) -> tuple[str, list[str]]:
    """A finished, successful ``argus_smoke`` run and the Argus DAG ids Airflow knows.

    :return: (run id, sorted ``argus_*`` DAG ids)
    """
    login = airflow_login(cfg)
    assert login, "the stack made no Airflow admin login"
    client = AirflowClient(cfg.airflow_url, *login)
    try:
        client.wait_for_dag(SMOKE_DAG, timeout=240)
        run_id = client.trigger(SMOKE_DAG)["dag_run_id"]
        finished = client.wait_for_run(SMOKE_DAG, run_id, timeout=300)
        assert finished["state"] == "success", client.task_instances(SMOKE_DAG, run_id)
        resp = client.request("GET", "/dags", params={"dag_id_pattern": "argus_", "limit": 100})
        resp.raise_for_status()
        dag_ids = sorted(d["dag_id"] for d in resp.json()["dags"] if d["dag_id"].startswith("argus_"))
    finally:
        client.close()
    return run_id, dag_ids


@pytest.fixture(scope="module")
def browser() -> Browser:
    """Debian's Chromium under Playwright; a missing install fails the test, it is not skipped."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(f"Chromium not found at {CHROMIUM}: run scripts/ensure-chromium "
                    "(installs Debian's chromium package) or set ARGUS_CHROMIUM", pytrace=False)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Browser) -> Page:
    """A fresh page (no stored session) in a fixed-size window."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(UI_TIMEOUT_MS)
    try:
        yield page
    finally:
        context.close()


@contextmanager
def _screenshot_on_failure(page: Page, path: Path):
    """Keep what the browser showed when a step failed: the UI renders asynchronously."""
    try:
        yield
    except Exception:
        page.screenshot(path=path, full_page=True)
        print(f"[ui] failed at {page.url}; screenshot: {path}")
        raise


def _settle(page: Page) -> None:
    """Wait until the UI's API calls are answered, so screenshots show data, not spinners."""
    page.wait_for_load_state("networkidle", timeout=UI_TIMEOUT_MS)


def test_ui_login_dag_list_and_a_successful_run(page: Page, smoke_run, cfg, tmp_path):
    with _screenshot_on_failure(page, tmp_path / "failure.png"):
        _walk_through_the_ui(page, cfg, *smoke_run)


def _walk_through_the_ui(page: Page, cfg, run_id: str, argus_dags: list[str]) -> None:
    shots = cfg.root / "docs" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    user, password = airflow_login(cfg)

    # the UI asks for a login first (simple auth manager)
    page.goto(cfg.airflow_url)
    page.wait_for_url("**/auth/login**")
    expect(page.get_by_role("heading", name="Sign into Airflow")).to_be_visible(timeout=UI_TIMEOUT_MS)
    _settle(page)
    page.screenshot(path=shots / "airflow-login.png")
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(rf"^{re.escape(cfg.airflow_url)}/(?!auth/)"))

    # the DAG list shows every Argus DAG
    page.get_by_role("link", name="Dags", exact=True).first.click()
    page.wait_for_url("**/dags")
    assert SMOKE_DAG in argus_dags, argus_dags
    for dag_id in argus_dags:
        expect(page.get_by_role("link", name=dag_id, exact=True),
               f"{dag_id} missing from the DAG list").to_be_visible(timeout=UI_TIMEOUT_MS)
    _settle(page)
    page.screenshot(path=shots / "airflow-dags.png", full_page=True)

    # the smoke DAG, then our run from its grid
    page.get_by_role("link", name=SMOKE_DAG, exact=True).click()
    page.wait_for_url(f"**/dags/{SMOKE_DAG}")
    page.locator(f'a[href^="/dags/{SMOKE_DAG}/runs/{run_id}"]').first.click()
    page.wait_for_url(re.compile(re.escape(f"/dags/{SMOKE_DAG}/runs/{run_id}")))
    heading = page.get_by_role("heading", name=run_id, exact=True)
    expect(heading).to_be_visible(timeout=UI_TIMEOUT_MS)
    # the badge next to the run's title, then the run's one task instance
    expect(heading.locator("xpath=..").get_by_test_id("state-badge")).to_have_text("Success", timeout=UI_TIMEOUT_MS)
    task_row = page.get_by_role("row").filter(has=page.get_by_role("link", name="hbase_round_trip", exact=True))
    expect(task_row).to_contain_text("Success", timeout=UI_TIMEOUT_MS)
    _settle(page)
    page.screenshot(path=shots / "airflow-run.png")

    # the same run as a graph: the task node carries its state
    page.get_by_role("button", name="Show Graph").click()
    node = page.locator(".react-flow__node").filter(has_text="hbase_round_trip")
    expect(node).to_contain_text("success", timeout=UI_TIMEOUT_MS)
    _settle(page)
    page.screenshot(path=shots / "airflow-run-graph.png")
