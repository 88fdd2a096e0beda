"""argus bench console's pure parts: the live wall's request plan (what live.js and a browser
ask for), the feeder's frames, and the CPU arithmetic. The real run needs the stack
(tests/integration/test_console_wall_bench.py)."""

from __future__ import annotations

import asyncio

import pytest

from argus.bench import console
from argus.cli.main import build_parser
from argus.live.launcher import StreamJobSpec
from argus.store import schema

PAGE = "http://api.test/argus/live"


def _live(ts: dict[str, int]) -> dict:
    return {cam: {"capture_ts_ms": t, "image": f"api/live/{cam}/frame.jpg?ts={t}"} for cam, t in ts.items()}


def test_the_poll_asks_for_each_tiles_camera_once_in_tile_order():
    plan = console.WallPlan(["cam-b", "", "cam-a", "cam-b"], PAGE)
    assert plan.poll_url() == "http://api.test/argus/api/live?camera=cam-b&camera=cam-a"
    assert console.WallPlan(["", ""], PAGE).poll_url() is None  # an empty wall asks nothing


def test_an_image_is_fetched_when_its_tiles_capture_time_changes_and_not_while_cached():
    plan = console.WallPlan(["cam-a", "cam-b"], PAGE)
    first = plan.images(_live({"cam-a": 1000, "cam-b": 2000}), now=0.0)
    assert first == ["http://api.test/argus/api/live/cam-a/frame.jpg?ts=1000",
                     "http://api.test/argus/api/live/cam-b/frame.jpg?ts=2000"]
    for url in first:
        plan.fetched(url, "private, max-age=60", now=0.0)
    # same capture times: the tiles keep their images, nothing is asked
    assert plan.images(_live({"cam-a": 1000, "cam-b": 2000}), now=1.0) == []
    # cam-a has a new frame: only its image
    assert plan.images(_live({"cam-a": 3000, "cam-b": 2000}), now=2.0) == [
        "http://api.test/argus/api/live/cam-a/frame.jpg?ts=3000"]
    # a camera without a frame: live.js empties the tile and keeps its shown time, so the
    # same frame coming back is not asked for again
    assert plan.images(_live({"cam-a": 3000}), now=3.0) == []
    assert plan.images(_live({"cam-a": 3000, "cam-b": 2000}), now=4.0) == []
    assert plan.shown == {0: 3000, 1: 2000}
    # a URL seen again (another tile picks the camera) comes from the cache within max-age
    plan.tiles.append("cam-b")
    assert plan.images(_live({"cam-a": 3000, "cam-b": 2000}), now=5.0) == []
    assert plan.shown[2] == 2000
    # past max-age the cache no longer answers
    plan.shown.pop(2)
    assert plan.images(_live({"cam-a": 3000, "cam-b": 2000}), now=61.0) == [
        "http://api.test/argus/api/live/cam-b/frame.jpg?ts=2000"]


def test_two_tiles_of_one_camera_fetch_its_image_once():
    plan = console.WallPlan(["cam-a", "cam-a"], PAGE)
    assert plan.images(_live({"cam-a": 1000}), now=0.0) == ["http://api.test/argus/api/live/cam-a/frame.jpg?ts=1000"]
    assert plan.shown == {0: 1000, 1: 1000}


@pytest.mark.parametrize("header, seconds", [("private, max-age=60", 60.0), ("max-age=5", 5.0), (None, 0.0),
                                             ("no-cache", 0.0), ("no-store, max-age=60", 0.0)])
def test_cache_max_age(header, seconds):
    assert console.cache_max_age(header) == seconds


def test_an_image_without_max_age_is_not_cached():
    plan = console.WallPlan(["cam-a"], PAGE)
    url = plan.images(_live({"cam-a": 1000}), now=0.0)[0]
    plan.fetched(url, None, now=0.0)
    assert plan.cached_until == {}


def test_cpu_spent_counts_growth_and_new_processes_and_not_a_reused_pid():
    before = {(10, 1.0): 5.0, (11, 2.0): 1.0}
    after = {(10, 1.0): 5.5, (11, 2.0): 1.25, (12, 3.0): 0.5, (11, 9.0): 0.1}  # pid 11 reused: another process
    assert console.cpu_spent(before, after) == pytest.approx(0.5 + 0.25 + 0.5 + 0.1)


def test_wall_cost_is_loaded_minus_idle_cores():
    cost = console.wall_cost(idle=[(0.5, 10.0), (0.7, 10.0)], loaded=[(1.5, 10.0), (1.3, 10.2)])
    assert cost["idle_cores"] == pytest.approx(0.06)
    assert cost["loaded_cores"] == pytest.approx(2.8 / 20.2, abs=1e-4)
    assert cost["wall_cores"] == pytest.approx(2.8 / 20.2 - 0.06, abs=1e-4)
    assert cost["wall_pct_of_core"] == pytest.approx(100 * (2.8 / 20.2 - 0.06), abs=0.01)


def test_request_summary_counts_errors_bytes_and_kinds():
    requests = [console.Request("live", 200, 100, 10.0), console.Request("frame", 200, 1000, 20.0),
                console.Request("frame", 500, 50, 30.0), console.Request("frame", 0, 0, 40.0)]
    summary = console.request_summary(requests, seconds=2.0)
    assert summary["count"] == 4 and summary["per_s"] == 2.0 and summary["errors"] == 2
    assert summary["bytes_per_s"] == 575.0
    assert summary["ms"]["p50"] == 25.0
    assert summary["by_kind"]["live"]["count"] == 1 and summary["by_kind"]["frame"]["errors"] == 2


def test_slices_cover_the_seconds():
    assert console.slice_plan(60, 10) == [10] * 6
    assert console.slice_plan(25, 10) == [10, 10, 5]
    assert console.slice_plan(3, 10) == [3]
    with pytest.raises(ValueError):
        console.slice_plan(0, 10)


def test_run_wall_refreshes_once_a_second_and_fetches_changed_images(monkeypatch):
    """The client's loop against a fake server whose camera gets a new frame every poll."""
    frames = iter(range(1000, 10**6, 1000))

    class Response:
        def __init__(self, url):
            self.status_code = 200
            self.headers = {"cache-control": "private, max-age=60"}
            self.url = url
            if "frame.jpg" in url:
                self.content, self._json = b"\xff\xd8jpeg", None
            else:
                ts = next(frames)
                self._json = {"cameras": _live({"cam-a": ts})}
                self.content = b"{}"

        def json(self):
            return self._json

    class Http:
        urls: list[str] = []

        async def get(self, url, headers):
            self.urls.append(url)
            return Response(url)

    monkeypatch.setattr(console, "REFRESH_S", 0.01)
    http = Http()
    log = asyncio.run(console.run_wall(http, console.WallPlan(["cam-a"], PAGE), {}, seconds=0.03))
    assert [r.kind for r in log].count("live") == 3 and [r.kind for r in log].count("frame") == 3
    assert all(r.status == 200 for r in log)


def test_the_feeder_writes_rate_frames_per_camera_a_second_the_newest_with_an_image():
    feeder = console.WallFeeder.__new__(console.WallFeeder)  # no store, no photos: only the frames' plan
    feeder.cameras, feeder.rate_hz = console.bench_cameras(2), 3.0
    import numpy as np

    feeder.photos = [np.zeros((480, 640, 3), np.uint8)]
    results = feeder.frame_results(tick=4, now_ms=1_800_000_000_000)
    assert [r.camera_id for r in results] == ["bench-wall-00"] * 3 + ["bench-wall-01"] * 3
    assert [r.seq for r in results[:3]] == [12, 13, 14]
    assert [r.image is not None for r in results[:3]] == [False, False, True]
    captured = [r.capture_ts_ms for r in results[:3]]
    assert captured == sorted(captured) and captured[-1] < 1_800_000_000_000
    assert all(r.stages["captured"] <= r.stages["kafka"] <= r.stages["read"] <= r.stages["detected"]
               for r in results)
    for camera in console.bench_cameras(2):
        schema.check_camera_id(camera)


def test_the_cli_defaults_to_16_cameras_for_60_s_at_the_jobs_live_view_width():
    args = build_parser().parse_args(["bench", "console", "--json", "out.json"])
    assert (args.cameras, args.seconds, args.json) == (16, 60.0, "out.json")
    assert args.live_view_px == StreamJobSpec.__dataclass_fields__["live_view_px"].default


def test_clean_up_takes_a_killed_runs_leftovers_too_and_tries_again_while_hbase_times_out(monkeypatch):
    calls = []

    def delete(store, cameras):
        calls.append(list(cameras))
        if len(calls) == 1:
            raise TimeoutError("timed out")
        return 7

    monkeypatch.setattr(console, "delete_camera_rows", delete)
    monkeypatch.setattr(console, "leftover_cameras", lambda store: ["bench-wall-00", "bench-wall-05"])
    assert console.clean_up(None, ["bench-wall-00", "bench-wall-01"], pause_s=0) == 7
    assert calls == [["bench-wall-00", "bench-wall-01", "bench-wall-05"]] * 2
    monkeypatch.setattr(console, "delete_camera_rows", lambda store, cameras: (_ for _ in ()).throw(TimeoutError()))
    with pytest.raises(TimeoutError):
        console.clean_up(None, ["bench-wall-00"], attempts=2, pause_s=0)


def test_without_a_running_stack_the_cli_says_so_in_one_line(monkeypatch, tmp_path, capsys):
    from argus.cli.main import main

    monkeypatch.setenv("ARGUS_STATE_DIR", str(tmp_path))  # a state dir no stack runs from
    assert main(["bench", "console", "--cameras", "2", "--seconds", "2"]) == 2
    out = capsys.readouterr()
    assert "not running: airflow-api-server" in out.err and "Traceback" not in out.err + out.out
