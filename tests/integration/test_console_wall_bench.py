"""`argus bench console` against the running stack, briefly: the wall really fetches its
images through the api-server, and the bench cameras leave no row behind. No timing or CPU
figure is asserted (docs/benchmarks.md records those)."""

from __future__ import annotations

import json

import pytest

from argus.bench import console
from argus.bench.console import bench_cameras
from argus.cli.main import main
from argus.store import DetectionStore


def test_bench_console_fetches_the_walls_images_and_removes_its_rows(stack, cfg, tmp_path, capsys):
    out = tmp_path / "console.json"
    assert main(["bench", "console", "--cameras", "2", "--seconds", "4", "--slice", "2", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert json.loads(capsys.readouterr().out) == result

    assert result["cameras"] == 2 and result["slices"] == 2
    for figures in (result["api_server"], *result["services"].values()):
        assert {"idle_cores", "loaded_cores", "wall_cores", "wall_pct_of_core"} <= set(figures)
    assert result["api_server"]["processes"] >= 1
    requests = result["requests"]
    assert requests["errors"] == 0 and requests["count"] > 0
    assert requests["by_kind"]["live"]["count"] > 0
    frames = requests["by_kind"]["frame"]
    assert frames["count"] > 0 and frames["bytes"] > 0 and frames["errors"] == 0
    assert requests["ms"]["p50"] is not None and requests["ms"]["p95"] is not None
    assert result["feeder"]["error_count"] == 0 and result["feeder"]["live_frames"] > 0
    assert result["feeder"]["live_jpeg_bytes_mean"] > 0 and "cores" in result["client"]
    assert result["rows_deleted"] > 0

    store = DetectionStore.from_config(cfg)
    cameras = bench_cameras(2)
    assert store.latest(cameras) == {}
    assert not set(cameras) & set(store.live_cameras())
    for camera in cameras:
        assert store.frames(camera) == [] and store.search(camera) == []


def test_bench_console_removes_its_rows_when_the_wall_fails(stack, cfg, monkeypatch):
    async def broken_wall(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C while the wall runs, the feeder's rows already written

    monkeypatch.setattr(console, "run_wall", broken_wall)
    with pytest.raises(KeyboardInterrupt):
        console.bench_console(cameras=2, seconds=2, slice_s=2, cfg=cfg)
    store = DetectionStore.from_config(cfg)
    cameras = bench_cameras(2)
    assert store.latest(cameras) == {}
    for camera in cameras:
        assert store.frames(camera) == [] and store.search(camera) == []


def test_the_feeders_cameras_show_frames_per_s_and_latency_on_the_wall(stack, cfg):
    """What the bench's wall polls is what a real camera's tile shows: a frame, its boxes,
    frames/s and latency, read through the api-server."""
    import time

    import httpx

    from argus.stack.airflow import airflow_login

    store = DetectionStore.from_config(cfg)
    cameras = bench_cameras(2)
    feeder = console.WallFeeder(store, cameras)
    feeder.start()
    try:
        time.sleep(3.5)
        user, password = airflow_login(cfg)
        with httpx.Client(timeout=30) as http:
            token = http.post(f"{cfg.airflow_url}/auth/token", json={"username": user, "password": password})
            headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
            plan = console.WallPlan(cameras, f"{cfg.console_url}/live")
            live = http.get(plan.poll_url(), headers=headers).json()["cameras"]
            assert sorted(live) == cameras
            for info in live.values():
                assert info["fps"] and info["latency_ms"] and len(info["detections"]) == 2
            image = http.get(plan.images(live, time.monotonic())[0], headers=headers)
            assert image.status_code == 200 and image.content[:2] == b"\xff\xd8"
    finally:
        feeder.stop()
        console.clean_up(store, cameras)
    assert feeder.errors == [] and store.latest(cameras) == {}
