"""The console app without the api-server: what its routes answer and that pages escape.
The store is a small stand-in with DetectionStore's read methods (the integration test
reads a real HBase)."""

import pytest

from argus.store.detections import StoredDetection

NOW = 1_795_000_000_000
STAGES = ("captured", "kafka", "read", "detected", "written")


class ConsoleStore:
    """Stands in for DetectionStore: cameras, latest frames, detections, user settings."""

    def __init__(self, cameras, streaming=()):
        self.rows = {cam: dict(fields) for cam, fields in cameras.items()}
        self.streaming = set(streaming) | set(cameras)
        self.settings, self.assigned = {}, []
        self.detections = [StoredDetection("gate-1", NOW - 1000 * i, i, 0, 0, "person", 0.9 - i / 100,
                                           (0.1, 0.2, 0.3, 0.6), "ssdlite-person", "live") for i in range(120)]

    def cameras(self):
        return {cam: dict(fields) for cam, fields in sorted(self.rows.items())}

    def live_cameras(self):
        return sorted(self.streaming)

    def assign_model(self, camera, model, by):
        self.rows.setdefault(camera, {}).update(assigned_model=model, assigned_by=by, assigned_at_ms=str(NOW))
        self.assigned.append((camera, model, by))

    def latest(self, cameras=None):
        return {cam: {"camera_id": cam, "capture_ts_ms": NOW, "seq": 7, "model": "blazeface", "width": 64,
                      "height": 48, "detections": [{"class_name": "face", "score": 0.8, "box": [0.1, 0.1, 0.5, 0.5]}]}
                for cam in (cameras or self.rows) if cam in self.rows}

    def latest_jpeg(self, camera):
        return b"\xff\xd8jpeg" if camera in self.rows else None

    def recent_rate(self, camera, since_ms):
        return 2.0, 340.0

    def stage_times(self, camera, since_ms, until_ms):
        """gate-1: 120 frames over the last minute, 10 ms per stage (40 in all), the newest
        two 100 ms per stage; the others nothing."""
        self.windows = getattr(self, "windows", []) + [(until_ms - since_ms) // 1000]
        if camera != "gate-1":
            return []
        rows = []
        for i in range(120):
            step = 100 if i < 2 else 10
            at = until_ms - 500 * i - 1
            rows.append({stage: at + step * k for k, stage in enumerate(STAGES)})
        return rows

    def tracks(self, camera):
        if camera != "gate-1":
            return []
        return [{"track_id": 4, "class_name": "person", "first_ms": NOW - 1000, "last_ms": NOW,
                 "path": [(NOW - 1000, 1, 0, (0.4, 0.5, 0.5, 0.95)), (NOW, 2, 0, (0.45, 0.4, 0.55, 0.5))]}]

    def user_setting(self, user, name):
        return self.settings.get((user, name))

    def put_user_setting(self, user, name, value):
        self.settings[(user, name)] = value

    def search_cameras(self, cameras=None, since=None, until=None, classes=None, min_score=0.0, limit=100):
        found = [d for d in self.detections if (not cameras or d.camera_id in cameras)
                 and (classes is None or d.class_name in classes) and d.score >= min_score
                 and (since is None or d.capture_ts_ms >= since) and (until is None or d.capture_ts_ms <= until)]
        return found[:limit]

    def crop(self, camera, ts, seq, index):
        return b"\xff\xd8crop" if any(d.capture_ts_ms == ts and d.seq == seq for d in self.detections) else None

    def frame(self, camera, ts, seq):
        dets = [d for d in self.detections if d.camera_id == camera and d.capture_ts_ms == ts and d.seq == seq]
        if not dets:
            return None
        return {"camera_id": camera, "capture_ts_ms": ts, "seq": seq, "width": 640, "height": 480,
                "model": "ssdlite-person", "stages": {"captured": ts, "written": ts + 400},
                "detections": [d.to_dict() for d in dets]}


ROWS = {"gate-1": {"url": "rtsp://10.0.0.5/stream", "rate_hz": "2.0", "latitude": "48.85", "longitude": "2.35",
                   "model": "ssdlite-person"},
        "lobby": {"url": "<img src=x onerror=alert(2)>", "model": "<script>alert(1)</script>"}}
MODELS = ["blazeface", "centernet-coco", "ssdlite-person"]


class MonitorFakes:
    """Stands in for MonitorSources: dead letters of gate-1 and of a camera that never got a
    frame stored, one running query with two executors, one service, a failing nvidia-smi."""

    def dead_letters(self, since_ms, until_ms, topics):
        from argus.live.deadletters import DeadLetterCounts

        assert topics == ["argus.frames.dlq", "cams.dlq"]  # the default, and the running query's

        counts = DeadLetterCounts(since_ms, until_ms)
        for camera, reason in (("gate-1", "decode: payload is not a JPEG"), ("gate-1", "decode: payload is not a JPEG"),
                               ("gate-1", "detect: model failed"), ("<b>ghost</b>", "decode: empty payload")):
            counts.add(camera, reason)
        return counts

    def streams(self):
        import time

        from argus.supervision.status import Lease, StreamStatus

        now = int(time.time() * 1000)
        lease = Lease(owner="o", host="h1", pid=42, pid_start=1, acquired_ms=now - 60_000, heartbeat_ms=now - 2000,
                      ttl_ms=15_000, app_id="app-7", ui_url="http://127.0.0.1:4040")
        recent = [{"ms": now - 3000 * i, "duration_ms": 400 + 100 * i, "rows": 12, "lag": i} for i in (3, 2, 1)]
        old = Lease(owner="p", host="h1", pid=41, pid_start=1, acquired_ms=now - 86_400_000,
                    heartbeat_ms=now - 86_000_000, ttl_ms=15_000, released=True)
        return [StreamStatus(query="argus_stream_detect", lease=lease, state={"state": "running"}, recent=recent,
                             job={"dlq_topic": "cams.dlq"}, isolated={"total": 2},
                             starts=[{"ms": now - 7 * 86_400_000}, {"ms": now - 20_000}]),
                StreamStatus(query="yesterdays_test", lease=old, state={"state": "stopped"})]

    def executors(self, ui_url, app_id):
        assert (ui_url, app_id) == ("http://127.0.0.1:4040", "app-7")
        return [{"id": "driver", "hostPort": "127.0.0.1:40000", "isActive": True, "totalCores": 0, "activeTasks": 0,
                 "completedTasks": 0, "failedTasks": 0, "totalDuration": 0, "memoryUsed": 0, "maxMemory": 2**29},
                {"id": "0", "hostPort": "127.0.0.1:40001", "isActive": True, "totalCores": 2, "activeTasks": 1,
                 "completedTasks": 310, "failedTasks": 1, "totalDuration": 93_000, "memoryUsed": 2**20,
                 "maxMemory": 2**29}]

    def services(self):
        return [{"service": "kafka", "group": "kafka", "pid": 10, "cpu_pct": 3.5, "rss_mb": 455.2, "processes": 1}]

    def gpus(self):
        raise RuntimeError("nvidia-smi failed: <boom>")


@pytest.fixture
def store():
    return ConsoleStore(ROWS, streaming=["dock-7"])


@pytest.fixture
def client(store):
    from fastapi.testclient import TestClient

    from argus_airflow.console import create_app

    return TestClient(create_app(lambda: store, authorize=False, models=lambda: MODELS, monitor_sources=MonitorFakes()))


def test_the_cameras_api_lists_the_table_with_coordinates(client):
    cameras = client.get("/api/cameras").json()["cameras"]
    gate = next(c for c in cameras if c["id"] == "gate-1")
    assert (gate["latitude"], gate["longitude"], gate["model"]) == ("48.85", "2.35", "ssdlite-person")
    assert client.get("/api/cameras/gate-1").json()["url"] == "rtsp://10.0.0.5/stream"
    assert gate["registered"] is True


def test_a_camera_that_streams_without_a_table_row_is_listed_and_can_get_a_model(client):
    dock = next(c for c in client.get("/api/cameras").json()["cameras"] if c["id"] == "dock-7")
    assert dock["registered"] is False and dock["url"] is None
    resp = client.put("/api/cameras/dock-7/model", json={"model": "blazeface"})
    assert resp.status_code == 200 and resp.json()["assigned_model"] == "blazeface"
    assert "dock-7" in client.get("/cameras").text


def test_an_unknown_camera_is_404_and_a_malformed_id_422_with_the_reason(client):
    missing = client.get("/api/cameras/gate-9")
    assert missing.status_code == 404 and "no camera 'gate-9': neither in argus:cameras nor streaming" \
        in missing.json()["detail"]
    for bad in ("a%23b", "%3Cscript%3Ealert(1)"):
        resp = client.get(f"/api/cameras/{bad}")
        assert resp.status_code == 422 and "is not valid" in resp.json()["detail"]
    assert client.get("/api/live?camera=%3Cscript%3E").status_code == 422


def test_pages_escape_what_they_show(client):
    page = client.get("/cameras")
    assert page.status_code == 200 and "gate-1" in page.text and "48.85" in page.text
    assert "<script>alert(1)" not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "<img src=x" not in page.text
    index = client.get("/").text
    assert "href='live'" in index and "href='search'" in index  # relative: works behind a proxy path


def test_a_camera_gets_another_model_and_who_changed_it_is_recorded(client, store):
    resp = client.put("/api/cameras/gate-1/model", json={"model": "blazeface"})
    assert resp.status_code == 200 and resp.json()["assigned_model"] == "blazeface"
    assert store.assigned == [("gate-1", "blazeface", "anonymous")]
    assert resp.json()["assigned_by"] == "anonymous" and resp.json()["assigned_at_ms"] == NOW
    unknown = client.put("/api/cameras/gate-1/model", json={"model": "yolo-v99"})
    assert unknown.status_code == 422 and "unknown model 'yolo-v99'" in unknown.json()["detail"]
    assert client.put("/api/cameras/gate-9/model", json={"model": "blazeface"}).status_code == 404
    assert "2026" in client.get("/cameras").text or "anonymous" in client.get("/cameras").text


def test_the_live_api_gives_each_camera_its_newest_frame_rate_and_latency(client):
    live = client.get("/api/live?camera=gate-1&camera=lobby").json()["cameras"]
    assert set(live) == {"gate-1", "lobby"}
    assert live["gate-1"]["fps"] == 2.0 and live["gate-1"]["latency_ms"] == 340.0
    assert live["gate-1"]["detections"][0]["class_name"] == "face"
    image = client.get(live["gate-1"]["image"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
    assert client.get("/api/live/gate-9/frame.jpg").status_code == 404
    assert "live.js" in client.get("/live").text


def test_the_layout_is_saved_per_user_and_checked(client, store):
    assert client.get("/api/layout").json() == {"cols": 2, "rows": 2, "tiles": []}
    saved = client.put("/api/layout", json={"cols": 4, "rows": 3, "tiles": ["gate-1", "", "lobby"]})
    assert saved.status_code == 200
    assert store.settings[("anonymous", "layout")] == {"cols": 4, "rows": 3, "tiles": ["gate-1", "", "lobby"]}
    assert client.get("/api/layout").json()["cols"] == 4
    assert client.put("/api/layout", json={"cols": 9, "rows": 1, "tiles": []}).status_code == 422
    assert client.put("/api/layout", json={"cols": 1, "rows": 1, "tiles": ["a#b"]}).status_code == 422


def test_search_pages_newest_first_and_refuses_bad_input_with_the_reason(client):
    first = client.get("/api/search?camera=gate-1&cls=person&limit=50").json()
    assert len(first["results"]) == 50 and first["more"]
    ts = [r["capture_ts_ms"] for r in first["results"]]
    assert ts == sorted(ts, reverse=True)
    second = client.get("/api/search?camera=gate-1&cls=person&limit=50&page=1").json()
    assert len(second["results"]) == 41 and not second["more"]  # 91 with a score >= 0
    assert second["results"][0]["capture_ts_ms"] < ts[-1]
    crop = client.get(first["results"][0]["crop"])
    assert crop.status_code == 200 and crop.headers["content-type"] == "image/jpeg"
    reversed_range = client.get(f"/api/search?since_ms={NOW}&until_ms={NOW - 1}")
    assert reversed_range.status_code == 422 and "reversed" in reversed_range.json()["detail"]
    assert client.get("/api/search?limit=201").status_code == 422
    assert client.get("/api/search?min_score=2").status_code == 422
    assert client.get("/api/search?camera=x%23y").status_code == 422


def test_the_search_page_shows_crops_links_frames_and_errors(client):
    page = client.get("/search?camera=gate-1&cls=person&min_score=0.5")
    assert page.status_code == 200 and page.text.count("class='result'") == 41
    assert "api/crops/gate-1/" in page.text and "href='frame/gate-1/" in page.text and "older" in page.text
    bad = client.get("/search?since=2026-12-04T10:00&until=2026-12-04T09:00")
    assert bad.status_code == 422 and "reversed" in bad.text
    junk = client.get("/search?since=yesterday")
    assert junk.status_code == 422 and "is not a time" in junk.text
    frame_link = page.text.split("href='frame/")[1].split("'")[0]
    frame = client.get(f"/frame/{frame_link}")
    assert frame.status_code == 200 and "../../../api/crops/gate-1/" in frame.text and "person 0.9" in frame.text
    assert client.get(f"/frame/gate-1/{NOW}/999").status_code == 404


def test_every_route_needs_an_airflow_login(airflow_home, store):
    from fastapi.testclient import TestClient

    from argus_airflow.console import create_app

    client = TestClient(create_app(lambda: store))
    for path in ("/", "/cameras", "/live", "/search", "/api/cameras", "/api/cameras/gate-1", "/api/live",
                 "/api/layout", "/api/search", "/api/openapi.json", "/static/live.js", f"/frame/gate-1/{NOW}/0",
                 "/monitor", "/api/monitor", "/map", "/api/map/cameras", "/vendor/leaflet/leaflet.js", "/api/tracks.geojson"):
        assert client.get(path).status_code == 401, path
    assert client.put("/api/cameras/gate-1/model", json={"model": "blazeface"}).status_code == 401
    assert not store.assigned


def test_the_monitor_gives_each_camera_its_rate_dead_letters_and_stage_percentiles_over_the_window(client, store):
    data = client.get("/api/monitor", params={"window_s": 60}).json()
    assert data["window_s"] == 60 and store.windows[-1] == 60
    by_id = {c["id"]: c for c in data["cameras"]}
    # with frames first, then by id; a camera known only from its dead letters is a row too, a
    # registered one without frames as well; one that only streamed earlier is only named
    assert [c["id"] for c in data["cameras"]] == ["gate-1", "<b>ghost</b>", "lobby"] and data["quiet"] == ["dock-7"]
    gate = by_id["gate-1"]
    assert gate["frames"] == 120 and gate["fps"] == 2.0
    assert gate["stages"]["captured->kafka"] == {"p50": 10.0, "p99": 82.9}
    assert gate["stages"]["captured->written"] == {"p50": 40.0, "p99": 331.6}  # linear between ranks 117 and 118
    assert gate["dead_letters"] == {"count": 3, "reasons": [{"reason": "decode: payload is not a JPEG", "count": 2},
                                                            {"reason": "detect: model failed", "count": 1}]}
    assert by_id["lobby"]["dead_letters"]["count"] == 0
    assert data["dead_letters"] == {"topics": ["argus.frames.dlq", "cams.dlq"], "read": 4, "truncated": False}
    # the series: 30 buckets of 2 s, gate-1's two frames a second in each
    assert len(data["series"]["start_ms"]) == 30 and data["series"]["step_ms"] == 2000
    assert data["series"]["fps"]["gate-1"][5] == 2.0 and data["series"]["total_fps"][5] == 2.0
    assert data["series"]["p50_ms"][5] == 40.0 and data["series"]["fps"]["lobby"] == [0.0] * 30
    assert "nothing in the window: dock-7" in client.get("/monitor").text
    for bad in ("4", "3601", "x"):
        resp = client.get("/api/monitor", params={"window_s": bad})
        assert resp.status_code == 422


def test_the_monitor_shows_the_streaming_job_its_executors_and_the_hosts_and_one_broken_source_alone(client):
    data = client.get("/api/monitor", params={"window_s": 60}).json()
    (stream,) = data["streams"]["rows"]  # yesterday's stopped query is only named
    assert data["streams"]["idle"] == ["yesterdays_test"]
    assert stream["running"] and stream["driver"] == "pid 42 on h1" and stream["heartbeat_age_s"] >= 2
    # the batches of the window only (the oldest is 9 s old), the restart of 20 s ago only
    assert stream["batches"] == 3 and stream["batch_ms"] == {"last": 500, "median": 600.0, "max": 700}
    assert stream["restarts"] == 1 and stream["lag"] == 1 and stream["isolated"] == 2
    assert [x["id"] for x in data["executors"]["argus_stream_detect"]["rows"]] == ["driver", "0"]
    assert data["services"]["rows"][0]["cpu_pct"] == 3.5
    assert data["gpus"] == {"rows": None, "error": "RuntimeError: nvidia-smi failed: <boom>"}
    page = client.get("/monitor", params={"window_s": "60"}).text
    assert "<tr class='camera' data-camera='gate-1'><td>gate-1</td><td class='num'>120</td><td class='num'>2.00</td>" in page
    assert "title='2 × decode: payload is not a JPEG; 1 × detect: model failed'>3</td>" in page
    assert "data-camera='&lt;b&gt;ghost&lt;/b&gt;'" in page and "<b>ghost" not in page
    assert "captured → written ms" in page and "http-equiv='refresh'" in page
    assert "<td>argus_stream_detect</td><td>running</td><td>running</td><td>pid 42 on h1</td>" in page
    assert "<td>0</td><td>127.0.0.1:40001</td><td>yes</td><td class=num>2</td><td class=num>1</td>" in page
    assert "<td>kafka</td><td class=num>10</td><td class=num>3.5</td><td class=num>455</td>" in page
    assert "unavailable: RuntimeError: nvidia-smi failed: &lt;boom&gt;" in page
    assert "idle in the window: yesterdays_test" in page and "dead letters sent to argus.frames.dlq, cams.dlq in" in page
    assert page.count("<img class='plot'") == 2 and "data:image/png;base64,iVBOR" in page
    wrong = client.get("/monitor", params={"window_s": "<b>9999</b>"})
    assert wrong.status_code == 422 and "&lt;b&gt;9999&lt;/b&gt;" in wrong.text and "<b>9999" not in wrong.text


def test_a_monitor_without_kafka_shows_the_frames_and_says_why_dead_letters_are_missing(store):
    from fastapi.testclient import TestClient

    from argus_airflow.console import create_app

    class NoKafka(MonitorFakes):
        def dead_letters(self, since_ms, until_ms, topics):
            raise OSError("no answer from 127.0.0.1:9092")

    client = TestClient(create_app(lambda: store, authorize=False, models=lambda: MODELS, monitor_sources=NoKafka()))
    data = client.get("/api/monitor").json()
    assert data["dead_letters"] == {"topics": ["argus.frames.dlq", "cams.dlq"], "error": "OSError: no answer from 127.0.0.1:9092"}
    assert data["cameras"][0]["frames"] == 120 and data["cameras"][0]["dead_letters"] is None
    page = client.get("/monitor").text
    assert "dead letters unavailable: OSError: no answer from 127.0.0.1:9092" in page


def test_percentiles_are_linear_between_ranks():
    from argus.store.latency import percentile

    assert percentile([], 50) is None and percentile([7], 99) == 7
    assert percentile([4, 1, 3, 2], 50) == 2.5 and percentile(list(range(101)), 99) == 99


def test_the_openapi_document_lists_the_json_routes(client):
    paths = client.get("/api/openapi.json").json()["paths"]
    assert {"/api/cameras", "/api/cameras/{camera}", "/api/cameras/{camera}/model", "/api/live", "/api/search",
            "/api/layout", "/api/frames/{camera}/{ts}/{seq}", "/api/monitor"} <= set(paths)
    assert "/cameras" not in paths and "/live" not in paths


def test_the_map_gives_each_camera_its_point_and_the_ground_it_sees(store, client):
    import json

    from argus.track.ground import to_degrees

    lat0, lon0 = 48.85, 2.35
    corners = [(0.1, 0.95, 0, 0), (0.9, 0.95, 8, 0), (0.8, 0.5, 8, 20), (0.2, 0.5, 0, 20)]  # x, y, east, north
    ground = [{"x": x, "y": y, **dict(zip(("latitude", "longitude"), to_degrees(e, n, lat0, lon0)))}
              for x, y, e, n in corners]
    store.rows["gate-1"].update(latitude=str(lat0), longitude=str(lon0), heading_deg="0", ground=json.dumps(ground))
    store.rows["lobby"].update(latitude="48.86", longitude="2.36", heading_deg="90")
    store.rows["dock"] = {"latitude": "48.87", "longitude": "2.37", "ground": json.dumps(ground[:3])}
    features = client.get("/api/map/cameras").json()["features"]
    by = {(f["properties"]["camera"], f["properties"]["kind"]): f for f in features}
    assert by[("gate-1", "camera")]["geometry"] == {"type": "Point", "coordinates": [lon0, lat0]}
    view = by[("gate-1", "view")]
    assert view["properties"]["view"] == "mapping"
    ring = view["geometry"]["coordinates"][0]
    assert ring[0] == ring[-1] and len(ring) == 17
    norths = [(lat - lat0) * 111_195 for _, lat in ring]
    # from the mapping's top row (20 m north) down to the frame's bottom edge, a little nearer
    # than its lowest points (y 0.95, 0 m)
    assert abs(max(norths) - 20) < 0.5 and -3 < min(norths) < 0
    assert by[("lobby", "view")]["properties"]["view"] == "heading"
    assert by[("dock", "camera")]["properties"]["mapping_error"].startswith("3 point(s)")
    assert ("dock", "view") not in by  # no usable mapping and no heading: no view drawn
    assert ("dock-7", "camera") not in by  # streams, but nobody said where it is

    # gate-1's track on the ground: each sighting's foot point through its mapping
    (track,) = client.get("/api/tracks.geojson").json()["features"]
    assert track["properties"] == {"kind": "track", "camera": "gate-1", "track_id": 4, "class_name": "person",
                                   "first_ms": NOW - 1000, "last_ms": NOW, "sightings": 2}
    (lon1, lat1), (lon2, lat2) = track["geometry"]["coordinates"]
    assert (lat1 - lat0) * 111_195 < (lat2 - lat0) * 111_195  # the second foot point is higher up: farther north
    assert client.get("/api/tracks.geojson", params={"since_ms": NOW}).json()["features"][0]["properties"]["sightings"] == 1
    assert client.get("/api/tracks.geojson", params={"camera": "lobby"}).json()["features"] == []
    assert client.get("/api/tracks.geojson", params={"since_ms": NOW, "until_ms": NOW - 1}).status_code == 422
    assert client.get("/api/tracks.geojson", params={"camera": "a#b"}).status_code == 422


def test_the_map_page_loads_leaflet_from_the_console_and_escapes_the_tile_setting(client, monkeypatch):
    page = client.get("/map").text
    assert "<script src='vendor/leaflet/leaflet.js' defer></script>" in page and "static/map.js" in page
    assert "data-tiles" not in page and "Offline base map" in page
    monkeypatch.setenv("ARGUS_MAP_TILES", "https://t.example/{z}/{x}/{y}.png?k='><script>")
    page = client.get("/map").text
    assert "data-tiles='https://t.example/{z}/{x}/{y}.png?k=&#x27;&gt;&lt;script&gt;'" in page and "'><script>" not in page
    assert client.get("/vendor/leaflet/../../../etc/passwd").status_code == 404
    assert client.get("/vendor/leaflet/not-ours.js").status_code == 404
