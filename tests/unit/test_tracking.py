"""The per-camera tracker (argus.track.bytetrack) on scripted motion, and cameras placed on
the ground (argus.track.ground, argus cameras calibrate)."""

import json
import math

import numpy as np
import pytest
import yaml

from argus.track.bytetrack import CameraTracker, TrackerSettings, iou_matrix
from argus.track.ground import GroundMapping, GroundMappingError, GroundPoint, foot_point, to_degrees

STEP_MS = 500  # cameras are decoded at 2 Hz


def box(cx, cy, w=0.08, h=0.3):
    return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


def run(tracker, frames, start_ms=0):
    """Track ``frames`` (each a list of (class, score, box)); each frame's track ids."""
    return [[t.track_id for t in tracker.update(start_ms + i * STEP_MS, dets)] for i, dets in enumerate(frames)]


def test_two_people_crossing_keep_their_ids():
    frames = [[("person", 0.9, box(0.1 + 0.04 * i, 0.5)), ("person", 0.85, box(0.9 - 0.04 * i, 0.53))]
              for i in range(21)]
    ids = run(CameraTracker(), frames)
    assert ids[0] == [None, None]  # not confirmed yet
    first = ids[1]
    assert None not in first and first[0] != first[1]
    assert all(frame == first for frame in ids[1:]), ids  # through the crossing at frame 10


def test_a_half_hidden_person_keeps_the_id_through_low_scores_and_a_short_gap():
    walk = lambda i: box(0.2 + 0.02 * i, 0.5)  # noqa: E731
    frames = [[("person", 0.9, walk(i))] for i in range(5)]
    frames += [[("person", 0.3, walk(i))] for i in range(5, 8)]  # behind a car: low scores
    frames += [[] for _ in range(8, 12)]  # gone for 2 s
    frames += [[("person", 0.9, walk(i))] for i in range(12, 15)]
    ids = run(CameraTracker(), frames)
    person = ids[1][0]
    assert [f[0] for f in ids[5:8]] == [person] * 3  # the low-score boxes were the same person
    assert [f[0] for f in ids[12:]] == [person] * 3  # and the prediction carried it over the gap


def test_a_track_lost_longer_than_its_lifetime_is_a_new_object_and_one_frame_noise_none():
    tracker = CameraTracker(TrackerSettings(max_lost_s=2.0))
    frames = [[("car", 0.9, box(0.5, 0.5, 0.2, 0.1))] for _ in range(3)] + [[] for _ in range(6)]
    frames += [[("car", 0.9, box(0.5, 0.5, 0.2, 0.1))] for _ in range(2)]
    frames += [[("car", 0.9, box(0.5, 0.5, 0.2, 0.1)), ("dog", 0.95, box(0.1, 0.9, 0.05, 0.05))]]
    ids = run(tracker, frames)
    assert ids[1][0] == 1 and ids[10][0] == 2 and ids[11] == [2, None]  # 3 s unseen > 2 s: a new car
    assert all(t.class_name == "car" for t in tracker.tracks if t.hits > 1)


def test_classes_do_not_share_a_track():
    frames = [[("person", 0.9, box(0.5, 0.5)), ("bicycle", 0.9, box(0.5, 0.52))] for _ in range(4)]
    ids = run(CameraTracker(), frames)
    assert ids[3][0] != ids[3][1] and ids[1] == ids[3]


def test_the_state_resumes_the_same_tracks():
    """What the streaming job does between micro-batches: the state written as JSON and read
    back gives the same ids as a tracker that never stopped."""
    frames = [[("person", 0.9, box(0.1 + 0.03 * i, 0.5)), ("car", 0.7, box(0.8 - 0.02 * i, 0.7, 0.2, 0.12))]
              for i in range(20)]
    whole = run(CameraTracker(), frames)
    first = CameraTracker()
    head = run(first, frames[:8])
    resumed = CameraTracker.from_state(json.loads(json.dumps(first.state())))
    tail = run(resumed, frames[8:], start_ms=8 * STEP_MS)
    assert head + tail == whole and resumed.next_id == 3


def test_iou_matrix():
    a = np.array([[0, 0, 1, 1], [0, 0, 0.5, 0.5]])
    b = np.array([[0, 0, 1, 1], [2, 2, 3, 3]])
    assert np.allclose(iou_matrix(a, b), [[1, 0], [0.25, 0]]) and iou_matrix(a, b[:0]).shape == (2, 0)


# ---- the ground ----

LAT0, LON0 = 48.8500, 2.3500
#: a camera looking down a street: image (x, y) -> metres (east, north)
TRUE_H = np.array([[20.0, -4.0, -8.0], [0.5, -30.0, 40.0], [0.02, -0.9, 1.0]])


def project(h, x, y):
    e, n, w = h @ np.array([x, y, 1.0])
    return e / w, n / w


def points(xys, h=TRUE_H):
    return [GroundPoint(x, y, *to_degrees(*project(h, x, y), LAT0, LON0)) for x, y in xys]


def test_a_mapping_fitted_on_points_puts_other_image_points_where_they_are():
    mapping = GroundMapping.fit(points([(0.1, 0.9), (0.9, 0.9), (0.8, 0.5), (0.2, 0.5), (0.5, 0.7)]))
    assert mapping.rms_error_m < 1e-3
    for x, y in ((0.3, 0.6), (0.7, 0.85), (0.5, 0.55)):
        lat, lon = mapping.to_wgs84(x, y)
        east, north = project(TRUE_H, x, y)
        want = to_degrees(east, north, LAT0, LON0)
        metres = math.dist((lat * 111_320, lon * 111_320 * math.cos(math.radians(LAT0))),
                           (want[0] * 111_320, want[1] * 111_320 * math.cos(math.radians(LAT0))))
        assert metres < 0.01
    assert foot_point((0.2, 0.1, 0.4, 0.8)) == (pytest.approx(0.3), 0.8)


@pytest.mark.parametrize("pts, why", [
    ([(0.1, 0.9), (0.9, 0.9), (0.8, 0.5)], "needs 4"),
    ([(0.1, 0.1), (0.2, 0.2), (0.3, 0.3), (0.4, 0.4)], "on a line"),
    ([(0.1, 0.9), (0.9, 0.9), (0.8, 0.5), (120, 300)], "normalised"),
])
def test_unusable_mappings_are_refused_with_the_reason(pts, why):
    with pytest.raises(GroundMappingError, match=why):
        GroundMapping.fit(points(pts) if why != "normalised" else
                          [*points(pts[:3]), GroundPoint(120, 300, LAT0, LON0)])


def test_argus_cameras_calibrate_reports_each_mapping_and_fails_on_a_bad_point(tmp_path, capsys):
    from argus.cli.main import main

    good = [{"x": p.x, "y": p.y, "latitude": p.latitude, "longitude": p.longitude}
            for p in points([(0.1, 0.9), (0.9, 0.9), (0.8, 0.5), (0.2, 0.5), (0.5, 0.7)])]
    bad = [dict(p) for p in good]
    bad[4]["latitude"] += 10 / 111_320  # a point picked 10 m off
    registry = tmp_path / "cameras.yaml"
    registry.write_text(yaml.safe_dump({"cameras": [
        {"id": "street", "url": "rtsp://x/1", "heading_deg": 350, "ground": good},
        {"id": "yard", "url": "rtsp://x/2", "ground": bad},
        {"id": "lobby", "url": "rtsp://x/3"}]}))
    assert main(["cameras", "calibrate", "--cameras", str(registry), "--camera", "street", "--json"]) == 0
    (street,) = json.loads(capsys.readouterr().out)
    assert street["ok"] and street["points"] == 5 and street["rms_error_m"] < 1e-3
    assert main(["cameras", "calibrate", "--cameras", str(registry), "--json"]) == 2
    rows = {r["camera"]: r for r in json.loads(capsys.readouterr().out)}
    assert not rows["yard"]["ok"] and "check the points" in rows["yard"]["verdict"] and max(rows["yard"]["errors_m"]) > 2
    assert rows["lobby"]["ok"] and rows["lobby"]["verdict"].startswith("no mapping")
    registry.write_text(yaml.safe_dump({"cameras": [{"id": "x", "url": "rtsp://x", "ground": [{"x": 0.1}] * 4}]}))
    assert main(["cameras", "calibrate", "--cameras", str(registry)]) == 2
    assert "needs numbers x, y, latitude, longitude" in capsys.readouterr().out
