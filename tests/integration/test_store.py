"""DetectionStore against the real HBase: tables, idempotent writes, search."""

from __future__ import annotations

import happybase
import pytest

from argus.detect import Detection
from argus.store import DetectionStore, FrameResult
from argus.store.admin import HBaseAdmin
from argus.store.schema import SALT_BUCKETS


@pytest.fixture(scope="module")
def store(stack, cfg):
    store = DetectionStore.from_config(cfg)
    store.ensure_tables()
    return store


def test_tables_are_presplit_with_ttls(store, cfg):
    assert store.ensure_tables() == []  # idempotent
    with HBaseAdmin(cfg.host, cfg.port("hbase_thrift2")) as admin:
        assert admin.region_count("argus:detections") == SALT_BUCKETS
        families = admin.describe("argus:detections")
        assert set(families) == {"d", "c"} and families["d"]["ttl_s"] == 90 * 86400
        assert admin.describe("argus:frames")["t"]["ttl_s"] == 30 * 86400


def test_writes_are_idempotent_and_search_is_newest_first(store, cfg, unique):
    cam, other = f"cam-{unique}", f"cam-{unique}-b"
    t0 = 1_790_000_000_000
    person = Detection(0, "person", 0.91, (0.1, 0.2, 0.3, 0.4))
    car = Detection(2, "car", 0.55, (0.5, 0.5, 0.9, 0.8))
    results = [FrameResult(cam, t0 + i * 500, i, 640, 480, "centernet-coco", [person, car] if i % 2 else [person],
                           stages={"captured": t0 + i * 500, "read": t0 + i * 500 + 40}) for i in range(10)]
    results.append(FrameResult(other, t0 + 1000, 0, 320, 240, "ssdlite-person", [person]))
    store.write(results)
    store.write(results)  # a replayed micro-batch

    conn = happybase.Connection(cfg.host, cfg.port("hbase_thrift"))
    try:
        rows = [k for k, _ in conn.table("argus:detections").scan(filter=f"SingleColumnValueFilter('d','cam',=,'binary:{cam}',true,true)")]
    finally:
        conn.close()
    assert len(rows) == 15  # 10 persons + 5 cars, written twice, stored once

    found = store.search(camera=cam, classes=["person"], since=t0 + 1000, until=t0 + 3000)
    assert [d.capture_ts_ms - t0 for d in found] == [3000, 2500, 2000, 1500, 1000]
    assert all(d.class_name == "person" and d.camera_id == cam for d in found)
    assert found[0].box == pytest.approx((0.1, 0.2, 0.3, 0.4)) and found[0].score == pytest.approx(0.91)

    assert [d.class_name for d in store.search(camera=cam, min_score=0.6)] == ["person"] * 10
    assert len(store.search(camera=cam, limit=3)) == 3
    across = store.search(since=t0 + 1000, until=t0 + 1000, classes=["person"])
    assert {d.camera_id for d in across} >= {cam, other}

    frames = store.frames(cam)
    assert len(frames) == 10 and frames[0]["f:n"] == "2"  # newest: seq 9, person + car
    assert "t:written" in frames[0]
    assert int(frames[0]["t:read"]) - int(frames[0]["t:captured"]) == 40


def test_argus_search_finds_one_cameras_persons_in_a_time_range_newest_first(store, cfg, unique):
    import json
    import subprocess
    import sys

    cam = f"search-{unique}"
    t0 = 1_791_000_000_000
    person, cat = Detection(0, "person", 0.8, (0.1, 0.1, 0.4, 0.9)), Detection(15, "cat", 0.7, (0.5, 0.5, 0.7, 0.7))
    store.write([FrameResult(cam, t0 + i * 1000, i, 640, 480, "centernet-coco", [person, cat]) for i in range(6)])
    out = subprocess.run([sys.executable, "-m", "argus.cli", "search", "--camera", cam, "--classes", "person",
                          "--since", str(t0 + 1000), "--until", str(t0 + 4000), "--json"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout)
    assert [d["seq"] for d in found] == [4, 3, 2, 1]
    assert {d["class_name"] for d in found} == {"person"} and {d["camera_id"] for d in found} == {cam}


def test_argus_cameras_import_records_the_registry_and_list_shows_it(store, cfg, unique, tmp_path):
    import json
    import subprocess
    import sys

    def argus(*args):
        out = subprocess.run([sys.executable, "-m", "argus.cli", "cameras", *args], capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout

    registry = tmp_path / "cameras.yaml"
    cam = f"gate-{unique}"
    for model in ("blazeface", "ssdlite-person"):  # imported twice: one row, the newer values
        registry.write_text(f"cameras:\n  - {{id: {cam}, url: rtsp://10.0.0.7/s1, rate_hz: 4, latitude: 51.5007, "
                            f"longitude: -0.1246, model: {model}}}\n")
        assert "1 camera(s)" in argus("import", "--cameras", str(registry))
    listed = json.loads(argus("list", "--json"))
    assert listed[cam] == {"url": "rtsp://10.0.0.7/s1", "rate_hz": "4", "latitude": "51.5007",
                           "longitude": "-0.1246", "model": "ssdlite-person"}
    assert cam in argus("list")


def test_tracked_detections_carry_their_track_and_each_track_its_path(store, cfg, unique):
    """What the stream tracker writes: d:tid on each tracked detection, and one tracks row per
    track whose p: cells are its sightings in time order; writing the same rows again (a
    replayed batch) changes nothing."""
    from argus.track.stream import frame_message, track_camera

    import json

    cam = f"trk-{unique}"
    t0 = 1_790_000_000_000
    results = [FrameResult(cam, t0 + 500 * i, i, 640, 480, "centernet-coco", [
        Detection(0, "person", 0.9, (0.1 + 0.02 * i, 0.3, 0.18 + 0.02 * i, 0.7)),
        Detection(2, "car", 0.8, (0.6, 0.6, 0.8, 0.7))]) for i in range(6)]
    store.write(results)
    messages = [json.loads(frame_message(r.camera_id, r.capture_ts_ms, r.seq, r.model,
                                         [(d.class_name, d.score, d.box) for d in r.detections])) for r in results]
    rows, _ = track_camera(cam, messages, None)
    assert store.write_tracks(rows) == 10 and store.write_tracks(rows) == 10
    frame = store.frame(cam, t0 + 2500, 5)
    assert sorted(d["track_id"] for d in frame["detections"]) == [1, 2]
    assert store.frame(cam, t0, 0)["detections"][0]["track_id"] is None  # not confirmed on its first sighting
    tracks = {t["track_id"]: t for t in store.tracks(cam)}
    assert set(tracks) == {1, 2} and tracks[1]["class_name"] == "person"
    assert (tracks[1]["first_ms"], tracks[1]["last_ms"]) == (t0 + 500, t0 + 2500)
    assert [p[1] for p in tracks[1]["path"]] == [1, 2, 3, 4, 5] and tracks[2]["path"][0][3] == (0.6, 0.6, 0.8, 0.7)
