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
    frames += [[("person", 0.2, walk(i))] for i in range(5, 8)]  # behind a car: low scores
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


# ---- the simulator's ground scenes ----

def test_a_ground_scene_writes_clips_a_registry_and_truth_that_agree(tmp_path):
    """Two small cameras watching two walkers: each clip has every frame, the registry's
    mappings calibrate to millimetres, and each box the truth gives stands, through its
    camera's mapping, where the truth says the person is."""
    import av

    from argus.live.cameras import load_cameras
    from argus.live.scenes import Scene, VirtualCamera, Walker, make_scene, read_truth
    from argus.track.ground import calibration_report, to_metres

    cams = (VirtualCamera("a", -12, -12, 5.0, 45, 20.0, size=(120, 160)),
            VirtualCamera("b", 12, -12, 5.0, 315, 20.0, size=(120, 160)))
    walkers = (Walker(0, ((-6, -4), (6, -4), (6, 4), (-6, 4))), Walker(1, ((-5, 6), (5, -6)), 1.5))
    registry = make_scene(tmp_path, Scene(cams, walkers), seconds=2.0, fps=5)
    for cam in cams:
        with av.open(str(tmp_path / f"{cam.id}.mp4")) as clip:
            frames = [f for f in clip.decode(video=0)]
        assert len(frames) == 10 and (frames[0].height, frames[0].width) == cam.size
    cameras = {c.id: c for c in load_cameras(registry)}
    assert cameras["a"].heading_deg == 45 and len(cameras["a"].ground) == 9
    assert all(row["ok"] and row["rms_error_m"] < 0.01 for row in calibration_report(cameras.values()))
    truth = read_truth(tmp_path)
    assert [t["t_ms"] for t in truth] == [0, 200, 400, 600, 800, 1000, 1200, 1400, 1600, 1800]
    checked = 0
    for moment in truth:
        for obj in moment["objects"]:
            for cam_id, box in obj["views"].items():
                if box is None or box[3] >= 0.999 or box[0] <= 0.001 or box[2] >= 0.999:
                    continue  # clipped at the frame's edge: its foot point is not the person's
                lat, lon = cameras[cam_id].ground_mapping().to_wgs84((box[0] + box[2]) / 2, box[3])
                east, north = to_metres(lat, lon, obj["latitude"], obj["longitude"])
                # the box was rounded to whole pixels when drawn: a pixel is ~0.1-0.3 m out there
                assert math.hypot(east, north) < 0.6, (cam_id, obj, box)
                checked += 1
    assert checked >= 20
    # both cameras see walker 0 at some moment: the views overlap, as association needs
    assert any(all(obj["views"][c] for c in ("a", "b")) for m in truth for obj in m["objects"] if obj["id"] == 0)
    moved = [math.dist((truth[i]["objects"][0]["east"], truth[i]["objects"][0]["north"]),
                       (truth[i + 1]["objects"][0]["east"], truth[i + 1]["objects"][0]["north"])) for i in range(9)]
    assert all(abs(m - 1.3 * 0.2) < 0.01 for m in moved)  # 1.3 m/s, 0.2 s apart (no corner in between)


def test_argus_scene_refuses_a_plaza_of_more_corners_than_it_has(tmp_path, capsys):
    from argus.cli.main import main

    assert main(["scene", str(tmp_path / "s"), "--cameras", "5"]) == 2
    assert "--cameras must be 1 to 4" in capsys.readouterr().err and not (tmp_path / "s").exists()


# ---- tracking as a stream (the per-camera step of the stateful query) ----

def test_track_camera_resumes_from_its_state_and_passes_over_a_replayed_batch():
    from argus.track.stream import frame_message, track_camera

    frames = [json.loads(frame_message("gate-1", 1000 + 500 * i, i, "centernet-coco", [
        ("person", 0.9, box(0.1 + 0.03 * i, 0.5)), ("car", 0.8, box(0.8 - 0.02 * i, 0.7, 0.2, 0.12))]))
        for i in range(12)]
    whole, _ = track_camera("gate-1", frames, None)
    first, state = track_camera("gate-1", reversed(frames[:6]), None)  # a batch's frames in any order
    replay, state = track_camera("gate-1", frames[3:6], state)  # part of it again: nothing new
    rest, state = track_camera("gate-1", frames[6:], state)
    assert replay == [] and first + rest == whole
    ids = {(r["class_name"], r["track_id"]) for r in whole}
    assert ids == {("person", 1), ("car", 2)} and len(whole) == 2 * 11  # each confirmed from its second frame
    assert whole[0] == {"camera_id": "gate-1", "capture_ts_ms": 1500, "seq": 1, "index": 0, "track_id": 1,
                        "class_name": "person", "score": 0.9, "box": "0.09000,0.35000,0.17000,0.65000"}
    assert len(json.loads(state)["seen"]) == 12
