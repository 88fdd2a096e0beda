"""Camera workers decoding real H.264 clips (made by the simulator) into a recording sink."""

from __future__ import annotations

import threading

import pytest

from argus.media.codec import decode_jpeg
from argus.live.cameras import CameraSpec, load_cameras
from argus.live.ingest import CameraWorker
from argus.live.message import FrameMessage
from argus.live.simulate import CLIP_FPS, CLIP_SECONDS, ensure_clips


class RecordingSink:
    """Stands in for Kafka: keeps what would have been produced."""

    def __init__(self):
        self.messages: list[FrameMessage] = []

    def send(self, msg, stats):
        self.messages.append(msg)
        stats.sent += 1
        stats.delivered += 1


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return ensure_clips(tmp_path_factory.mktemp("clips"), 1)[0]


def run_worker(spec) -> tuple[CameraWorker, RecordingSink]:
    sink = RecordingSink()
    worker = CameraWorker(spec, sink, threading.Event())
    worker.run()
    return worker, sink


def test_frames_are_taken_at_the_decoding_rate(clip):
    worker, sink = run_worker(CameraSpec(id="cam-a", url=str(clip), rate_hz=2.0, model="ssdlite-person"))
    assert len(sink.messages) == CLIP_SECONDS * 2
    assert [m.seq for m in sink.messages] == list(range(CLIP_SECONDS * 2))
    first = sink.messages[0]
    assert (first.camera_id, first.model, first.width, first.height) == ("cam-a", "ssdlite-person", 640, 480)
    assert decode_jpeg(first.jpeg).shape == (480, 640, 3)
    assert FrameMessage.from_kafka(first.key, first.jpeg, first.headers()) == first


def test_low_rates_decode_keyframes_only(clip):
    worker, sink = run_worker(CameraSpec(id="cam-b", url=str(clip), rate_hz=0.5))
    assert len(sink.messages) == CLIP_SECONDS // 2
    # after the first GOP only keyframes (1 per second here) are decoded
    assert worker.stats.decoded < CLIP_FPS * 2 + CLIP_SECONDS


def test_an_unreachable_source_is_retried_with_backoff(tmp_path):
    stop = threading.Event()
    worker = CameraWorker(CameraSpec(id="cam-c", url=str(tmp_path / "missing.mp4")), RecordingSink(), stop)
    worker.start()
    threading.Timer(1.5, stop.set).start()
    worker.join(10)
    assert not worker.is_alive()
    assert worker.stats.reconnects >= 1 and "missing.mp4" in worker.stats.last_error


def test_camera_registry_is_validated(tmp_path):
    good = tmp_path / "cameras.yaml"
    good.write_text("cameras:\n  - {id: gate-1, url: rtsp://10.0.0.5/stream1, rate_hz: 4, latitude: 48.1, longitude: 2.3}\n")
    (cam,) = load_cameras(good)
    assert cam.rate_hz == 4 and cam.latitude == 48.1 and cam.url == "rtsp://10.0.0.5/stream1"
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "cameras.yaml").write_text("cameras:\n  - {id: lobby, url: clips/lobby.mp4}\n")
    (cam,) = load_cameras(tmp_path / "conf" / "cameras.yaml")
    assert cam.url == str(tmp_path / "conf" / "clips" / "lobby.mp4")  # files are relative to the registry
    bad = tmp_path / "bad.yaml"
    bad.write_text("cameras:\n  - {id: gate-1, url: x, rate_hz: 0}\n")
    with pytest.raises(ValueError, match="rate_hz"):
        load_cameras(bad)
    bad.write_text("cameras:\n  - {id: 'a#b', url: x}\n")
    with pytest.raises(ValueError, match="camera id"):
        load_cameras(bad)
    bad.write_text("cameras:\n  - {id: a, url: x, colour: red}\n")
    with pytest.raises(ValueError, match="colour"):
        load_cameras(bad)


def test_a_cameras_table_row_holds_what_is_set_as_text():
    from argus.live.cameras import camera_row

    row = camera_row(CameraSpec(id="gate-1", url="rtsp://cam/1", rate_hz=4, latitude=51.5, longitude=-0.12))
    assert row == {"url": "rtsp://cam/1", "rate_hz": "4", "latitude": "51.5", "longitude": "-0.12"}
