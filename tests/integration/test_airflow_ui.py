"""The Airflow UI in a real browser: log in, find the Argus DAGs, open a finished run.

Drives Debian's Chromium (``scripts/ensure-chromium`` installs it) through Playwright and
takes the screenshots that ``docs/ui.md`` shows: into the test's temporary folder, or over
``docs/screenshots/`` when asked for (``pytest --update-screenshots``), so that a test run
leaves the tracked files alone.
"""

from __future__ import annotations

import json
import os
import re
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from confluent_kafka import Producer

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


@pytest.fixture
def shots(request, cfg, tmp_path) -> Path:
    """Where the screenshots go: docs/screenshots/ with ``--update-screenshots``, else a temporary folder."""
    folder = cfg.root / "docs" / "screenshots" if request.config.getoption("--update-screenshots") \
        else tmp_path / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_ui_login_dag_list_and_a_successful_run(page: Page, smoke_run, cfg, shots, tmp_path):
    with _screenshot_on_failure(page, tmp_path / "failure.png"):
        _walk_through_the_ui(page, cfg, shots, *smoke_run)


def _walk_through_the_ui(page: Page, cfg, shots: Path, run_id: str, argus_dags: list[str]) -> None:
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


# ---- the Argus console, on a running pipeline ---------------------------------------------

CONSOLE_SHOTS = ("console-live.png", "console-search.png", "console-cameras.png", "console-map.png")


@pytest.fixture
def console_pipeline(stack, cfg, unique, tmp_path):
    """A streaming job (person detector) over two cameras fed 2 frames/s each by a plain
    producer, with frames stored; yields (cameras, store, spec), stops both afterwards."""
    from stream_checks import LiveFeed, one_partition_job

    from argus.live.launcher import StreamJob
    from argus.store import DetectionStore

    cameras = [f"console-{unique}-{i}" for i in range(2)]
    topic, spec = one_partition_job(cfg, "console", unique, camera_models={"*": "ssdlite-person"},
                                    max_offsets_per_trigger=8, trigger_seconds=0.5, tracking=True)
    store = DetectionStore.from_config(cfg)
    store.ensure_tables()
    feed = LiveFeed(cfg, topic, cameras, rate_hz=2.0, size=(240, 320))
    job = StreamJob(spec, cfg, tmp_path / "stream.log").start()
    try:
        # until the job has caught up with the feed (it starts with the frames sent while it started)
        deadline = time.monotonic() + 300
        while not all(row["capture_ts_ms"] > time.time() * 1000 - 5000 for row in store.latest(cameras).values()) \
                or len(store.latest(cameras)) < len(cameras):
            assert job.alive, job.log_tail()
            assert time.monotonic() < deadline, f"no recent live frame of {cameras} after 300 s:\n{job.log_tail()}"
            time.sleep(2)
        yield cameras, store, spec
    finally:
        feed.stop_event.set()
        job.kill()


def _console_login(page: Page, cfg) -> None:
    user, password = airflow_login(cfg)
    page.goto(f"{cfg.airflow_url}/auth/login/")
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(rf"^{re.escape(cfg.airflow_url)}/(?!auth/)"))


def _forget_camera(store, camera: str) -> None:
    with store.table("cameras") as table:
        table.delete(camera.encode())


def test_console_pages_on_a_running_pipeline(page: Page, console_pipeline, cfg, shots, tmp_path, request):
    """The issue's checks: the live wall's tiles load and change within 5 s; a search for
    person shows rows with loaded crops; the monitor has a row of numbers per camera; giving a
    camera another model on the cameras page makes its next detections carry the new model in
    HBase."""
    cameras, store, spec = console_pipeline
    with _screenshot_on_failure(page, tmp_path / "failure.png"):
        _console_login(page, cfg)
        # the Argus pages (and the DOE reports) are in Airflow's navigation: Plugins > Argus > Argus Live, ...
        page.goto(cfg.airflow_url)
        page.get_by_role("button", name="Plugins").click()
        page.get_by_role("menuitem", name="Argus", exact=True).hover()
        for title in ("Argus Live", "Argus Search", "Argus Monitor", "Argus Cameras", "Argus DOE sweeps"):
            expect(page.get_by_role("menuitem", name=title)).to_be_visible(timeout=UI_TIMEOUT_MS)

        # live wall: a 2x2 grid with our two cameras in its first tiles
        page.goto(f"{cfg.console_url}/live")
        page.select_option("#preset", "2x2")
        for i, camera in enumerate(cameras):
            page.locator(".tile select").nth(i).select_option(camera)
        tiles = [page.locator(".tile").nth(i) for i in range(len(cameras))]
        for tile in tiles:
            expect(tile.locator(".facts")).to_contain_text(re.compile(r"\d+\.\d frames/s · latency \d+ ms"),
                                                           timeout=UI_TIMEOUT_MS)
            page.wait_for_function("img => img.complete && img.naturalWidth > 0",
                                   arg=tile.locator("img").element_handle(), timeout=UI_TIMEOUT_MS)
        first = tiles[0].locator("img").get_attribute("src")
        page.wait_for_function("([img, src]) => img.getAttribute('src') !== src",
                               arg=[tiles[0].locator("img").element_handle(), first], timeout=5_000)
        expect(tiles[0].locator(".box").first).to_contain_text("person", timeout=UI_TIMEOUT_MS)
        page.screenshot(path=shots / "console-live.png")
        # the layout is the user's: a reload shows the same cameras
        page.reload()
        expect(page.locator(".tile select").first).to_have_value(cameras[0], timeout=UI_TIMEOUT_MS)

        # search: person detections with their crops, newest first
        page.goto(f"{cfg.console_url}/search?camera={cameras[0]}&cls=person&min_score=0.3")
        rows = page.locator("#results tr.result")
        expect(rows.first).to_be_visible(timeout=UI_TIMEOUT_MS)
        crop = rows.first.locator("img.crop")
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=crop.element_handle(),
                               timeout=UI_TIMEOUT_MS)
        assert rows.count() >= 3
        page.screenshot(path=shots / "console-search.png")  # the crops of the first screen (lazy below)
        rows.first.get_by_role("link", name=re.compile(r"^frame ")).click()
        expect(page.locator(".frame .box").first).to_contain_text("person", timeout=UI_TIMEOUT_MS)

        # monitor: a row per camera with its rate, its dead letters and each stage's percentiles
        # (ms); the running query with its executors; the services; GPUs; two plots. Two frames of
        # the first camera that are no JPEG (a plain producer, the documented headers) are its
        # dead letters.
        bad = Producer({"bootstrap.servers": cfg.kafka_bootstrap})
        for seq in (10**9, 10**9 + 1):
            bad.produce(spec.topic, key=cameras[0], value=b"not a jpeg", headers=[
                ("camera_id", cameras[0].encode()), ("capture_ts_ms", str(int(time.time() * 1000)).encode()),
                ("seq", str(seq).encode()), ("width", b"320"), ("height", b"240"), ("schema_version", b"1")])
        assert bad.flush(30) == 0
        deadline = time.monotonic() + 60
        while True:
            page.goto(f"{cfg.console_url}/monitor?window_s=120&refresh_s=0")
            letters = page.locator(f"#monitor tr.camera[data-camera='{cameras[0]}'] td").nth(3)
            if letters.inner_text() == "2":
                break
            assert time.monotonic() < deadline, f"the monitor shows {letters.inner_text()!r} dead letters, not 2"
            time.sleep(2)
        assert "payload is not a JPEG" in letters.get_attribute("title")
        for camera in cameras:
            cells = page.locator(f"#monitor tr.camera[data-camera='{camera}'] td")
            expect(cells.nth(2)).to_have_text(re.compile(r"^\d+\.\d\d$"), timeout=UI_TIMEOUT_MS)  # frames/s
            numbers = [cells.nth(i).inner_text() for i in range(1, cells.count())]
            assert int(numbers[0]) > 0 and all(re.fullmatch(r"\d+(\.\d+)?", n) for n in numbers), numbers
        query = page.locator("#streams tr", has_text=spec.query_name)
        expect(query).to_contain_text("running", timeout=UI_TIMEOUT_MS)
        batch_ms = query.locator("td").nth(6).inner_text()
        assert re.fullmatch(r"\d+", batch_ms), batch_ms  # the last micro-batch's duration
        executors = page.locator(f"[id='executors-{spec.query_name}'] tr")
        expect(executors.nth(1)).to_contain_text("driver", timeout=UI_TIMEOUT_MS)
        assert executors.count() >= 3, "the driver and at least one executor"
        api_server = page.locator("#services tr", has_text="airflow-api-server").locator("td")
        assert re.fullmatch(r"\d+(\.\d)?", api_server.nth(2).inner_text())  # CPU: the second look has one
        assert int(api_server.nth(3).inner_text()) > 50  # MiB
        gpus = page.locator("#gpus tr")
        assert gpus.count() > 1 or "no nvidia-smi on this host" in page.content()
        for plot in page.locator("img.plot").all():
            page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=plot.element_handle())
        assert page.locator("img.plot").count() == 2
        page.screenshot(path=shots / "console-monitor.png", full_page=True)

        # map: the first camera, placed by hand (coordinates, heading, a ground mapping), is a
        # point with the ground it sees and its tracks (the job tracks), on the offline base
        # map served by the console
        from argus.track.ground import to_degrees

        lat0, lon0 = 48.8505, 2.3495
        ground = [{"x": x, "y": y, **dict(zip(("latitude", "longitude"), to_degrees(e, n, lat0, lon0)))}
                  for x, y, e, n in ((0.1, 0.95, -3, 2), (0.9, 0.95, 3, 2), (0.8, 0.5, 8, 25), (0.2, 0.5, -8, 25))]
        store.put_camera(cameras[0], latitude=lat0, longitude=lon0, heading_deg=0, ground=json.dumps(ground))
        request.addfinalizer(lambda: _forget_camera(store, cameras[0]))  # registered cameras are always shown
        page.goto(f"{cfg.console_url}/map")
        deadline = time.monotonic() + 120
        while True:  # the tracking query stores the camera's tracks (the API says when they are there)
            found = page.evaluate("async (cam) => (await (await fetch('api/tracks.geojson?camera=' + "
                                  "encodeURIComponent(cam))).json()).features.length", cameras[0])
            if found:
                break
            assert time.monotonic() < deadline, "no track of the camera in api/tracks.geojson after 120 s"
            time.sleep(3)
        page.goto(f"{cfg.console_url}/map?camera={cameras[0]}")  # the map draws the last hour's tracks
        expect(page.locator("#map")).to_have_attribute("data-tracks", re.compile(r"^[1-9]\d*$"), timeout=UI_TIMEOUT_MS)
        # a still person's track is one point on the ground: drawn, though of no length
        assert page.locator("path.argus-track").count() >= 1
        expect(page.locator("#map")).to_have_attribute("data-cameras", re.compile(r"^[1-9]\d*$"), timeout=UI_TIMEOUT_MS)
        # the focused camera's view and point (Leaflet leaves those out of view as "M0 0")
        expect(page.locator("path.argus-view:not([d='M0 0'])").first).to_be_visible(timeout=UI_TIMEOUT_MS)
        expect(page.locator("path.argus-camera:not([d='M0 0'])").first).to_be_visible(timeout=UI_TIMEOUT_MS)
        land = page.locator(".leaflet-overlay-pane path:not(.argus-view):not(.argus-camera):not(.argus-track)")
        assert land.count() >= 1, "the offline base map's land is drawn"
        assert not page.locator("#status").inner_text()
        page.screenshot(path=shots / "console-map.png")

        # cameras: give the second camera BlazeFace; its next frames are detected with it
        page.goto(f"{cfg.console_url}/cameras")
        row = page.locator(f"#cameras tr[data-camera='{cameras[1]}']")
        changed_at = int(time.time() * 1000)
        row.locator("select.model").select_option("blazeface")
        expect(page.locator(f"#cameras tr[data-camera='{cameras[1]}'] td.muted")).to_contain_text(
            "admin", timeout=UI_TIMEOUT_MS)
        page.screenshot(path=shots / "console-cameras.png", full_page=True)
    deadline = time.monotonic() + 60
    while True:
        newer = [r for r in store.frames(cameras[1], since=changed_at) if r.get("f:model") == "blazeface"]
        if newer:
            break
        assert time.monotonic() < deadline, "no frame detected with the new model within 60 s"
        time.sleep(2)
    print(f"[console] first BlazeFace frame captured {(int(newer[-1]['t:captured']) - changed_at) / 1000:.1f}s "
          "after the change", flush=True)
    assert {r.get("f:model") for r in store.frames(cameras[0], since=changed_at)} <= {"ssdlite-person"}
