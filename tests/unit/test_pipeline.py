"""The live pipeline's per-partition logic, without Spark, Kafka or HBase."""

from __future__ import annotations

import numpy as np
import pytest

from argus.media.codec import encode_jpeg
from argus.detect import Detection
from argus.live.pipeline import (DeadLetter, KafkaRecord, PipelineConfig, detect, prepare_one, process_stream, summary_rows,
                            tally)
from argus.endpoints import Endpoints
from argus.live.launcher import StreamJobSpec
from argus.live.message import FrameMessage

KNOWN = {"centernet-coco", "ssdlite-person", "blazeface"}
ENDPOINTS = Endpoints(kafka_bootstrap="k:9092", hbase_host="hbase", hbase_admin_host="hbase", hdfs_uri="hdfs://nn:8020",
                      webhdfs_url="http://nn:9870", spark_master="local[2]")


def pipeline_cfg(**settings) -> PipelineConfig:
    """The executors' config of a job spec with these settings."""
    return PipelineConfig.of(StreamJobSpec(**settings), ENDPOINTS)


def record(msg: FrameMessage | None = None, *, key=None, value=None, headers=None, offset=0) -> KafkaRecord:
    if msg is not None:
        key, value, headers = msg.key, msg.jpeg, msg.headers()
    return KafkaRecord(key, value, headers or [], "argus.frames", 0, offset, 1_000)


def frame_msg(camera="cam-1", seq=0, w=64, h=48, model=None, jpeg=None) -> FrameMessage:
    jpeg = jpeg if jpeg is not None else encode_jpeg(np.full((h, w, 3), 120, np.uint8))
    return FrameMessage(camera, 1_795_000_000_000 + seq, seq, w, h, jpeg, model)


def prepare(records, cfg, known):
    """Each record through prepare_one: (frames to detect, dead letters)."""
    items = [prepare_one(rec, cfg, known) for rec in records]
    return [i for i in items if not isinstance(i, DeadLetter)], [i for i in items if isinstance(i, DeadLetter)]


class FakeDetector:
    def __init__(self, model):
        self.model = model

    def detect(self, frames):
        return [[Detection(0, "person", 0.9, (0.1, 0.1, 0.2, 0.2))] for _ in frames]


def test_cameras_route_to_their_models_with_overrides():
    cfg = pipeline_cfg(camera_models={"gate-1": "ssdlite-person", "lobby-*": "blazeface"})
    assert cfg.model_for("gate-1", None) == "ssdlite-person"
    assert cfg.model_for("lobby-3", None) == "blazeface"
    assert cfg.model_for("street", None) == "centernet-coco"
    assert cfg.model_for("gate-1", "centernet-coco") == "centernet-coco"


def test_every_bad_record_gets_a_reason_and_good_ones_go_on():
    good = frame_msg(seq=1)
    truncated = frame_msg(seq=2, jpeg=good.jpeg[: len(good.jpeg) // 2])
    wrong_size = frame_msg(seq=3, w=32, h=24, jpeg=good.jpeg)
    unknown_model = frame_msg(seq=4, model="no-such-model")
    records = [record(good), record(truncated), record(wrong_size), record(unknown_model),
               record(key=b"cam-1", value=b"\xff\xd8", headers=[("camera_id", b"cam-1")]),
               record(key=b"cam-1", value=b"", headers=good.headers()),
               record(key=b"cam-1", value=b"PNG...", headers=good.headers())]
    ready, dead = prepare(records, pipeline_cfg(), KNOWN)
    assert [r.frame.seq for r in ready] == [1]
    reasons = [(d.stage, d.reason) for d in dead]
    assert reasons[0][0] == "decode" and reasons[0][1].startswith("corrupt JPEG")
    assert reasons[1] == ("decode", "decoded 64x48 but headers say 32x24")
    assert reasons[2] == ("validate", "unknown model 'no-such-model'")
    assert reasons[3][1].startswith("missing header(s): capture_ts_ms")
    assert reasons[4][1] == "empty payload"
    assert "not a JPEG" in reasons[5][1]


def test_detection_groups_by_model_and_stamps_the_stages():
    cfg = pipeline_cfg(camera_models={"b": "blazeface"})
    msgs = [frame_msg(camera="a", seq=0), frame_msg(camera="b", seq=1), frame_msg(camera="a", seq=2)]
    ready, _ = prepare([record(m, offset=i) for i, m in enumerate(msgs)], cfg, KNOWN)
    calls = []

    def detector_for(model):
        calls.append(model)
        return FakeDetector(model)

    results, dead = detect(ready, cfg, read_ms=5_000, detector_for=detector_for)
    assert sorted(calls) == ["blazeface", "centernet-coco"] and dead == []
    assert {(r.camera_id, r.model) for r in results} == {("a", "centernet-coco"), ("b", "blazeface")}
    r = results[0]
    assert r.stages["captured"] == r.capture_ts_ms and r.stages["kafka"] == 1_000 and r.stages["read"] == 5_000
    assert r.stages["detected"] >= 5_000 and r.kafka_offset in (0, 2)


def test_a_failing_model_parks_its_frames_in_the_dlq():
    class Broken:
        def detect(self, frames):
            raise RuntimeError("CUDA out of memory")

    ready, _ = prepare([record(frame_msg())], pipeline_cfg(), KNOWN)
    results, dead = detect(ready, pipeline_cfg(), 0, lambda m: Broken())
    assert results == [] and dead[0].stage == "detect" and "CUDA out of memory" in dead[0].reason
    rows = summary_rows(results, dead, None)
    assert rows[0]["status"] == "dead_letter" and rows[0]["reason"].startswith("detect: detection failed")


class MemoryStore:
    """Stands in for DetectionStore: keeps what was written, optionally fails."""

    def __init__(self, fail: bool = False):
        self.writes, self.fail = [], fail

    def write(self, results, written_ms=None):
        if self.fail:
            raise ConnectionError("HBase Thrift server unreachable")
        self.writes.append((list(results), written_ms))
        return len(results)


class CountingDetector(FakeDetector):
    sizes: list = []

    def detect(self, frames):
        CountingDetector.sizes.append((self.model, len(frames)))
        return super().detect(frames)


def test_stream_processing_accounts_for_every_record_in_full_batches():
    cfg = pipeline_cfg(camera_models={"b": "blazeface"}, batch_size=4)
    good = [frame_msg(camera="a" if i % 3 else "b", seq=i) for i in range(20)]
    bad = record(frame_msg(camera="a", seq=99, jpeg=good[0].jpeg[: len(good[0].jpeg) // 2]), offset=99)
    records = [record(m, offset=i) for i, m in enumerate(good)]
    chunks = [records[:7], records[7:13] + [bad], records[13:]]
    store, letters = MemoryStore(), []
    CountingDetector.sizes = []
    rows = process_stream(iter(chunks), cfg, detector_for=CountingDetector, store=store,
                          dead_letters=letters.extend, known_models=KNOWN)
    stored = [r for r in rows if r["status"] == "stored"]
    assert sorted(r["seq"] for r in stored) == list(range(20))
    assert [(d.record.offset, d.stage) for d in letters] == [(99, "decode")]
    assert [r["offset"] for r in rows if r["status"] == "dead_letter"] == [99]
    # 13 frames of camera a and 7 of b: full batches of 4 as they fill, the rest at the end
    assert sorted(CountingDetector.sizes) == sorted([("centernet-coco", 4)] * 3 + [("centernet-coco", 1)]
                                                    + [("blazeface", 4), ("blazeface", 3)])
    assert sum(len(w) for w, _ in store.writes) == 20 and all(stamp for _, stamp in store.writes)
    assert all(r["written_ms"] >= r["detected_ms"] >= r["read_ms"] for r in stored)


def test_a_failed_hbase_write_fails_the_task_so_spark_retries_it():
    store = MemoryStore(fail=True)
    with pytest.raises(ConnectionError, match="unreachable"):
        process_stream([[record(frame_msg(seq=i), offset=i) for i in range(10)]], pipeline_cfg(batch_size=4),
                       detector_for=FakeDetector, store=store, dead_letters=lambda d: None, known_models=KNOWN)


def test_tally_counts_records_and_detections_per_status():
    rows = [{"status": "stored", "detections": 2, "partition": 0, "offset": 7},
            {"status": "stored", "detections": 0, "partition": 1, "offset": 3},
            {"status": "dead_letter", "detections": 0, "partition": 0, "offset": 5}]
    assert sorted(tally(rows), key=lambda t: (t["status"], t.get("partition", 0))) == [
        {"status": "dead_letter", "n": 1, "detections": 0},
        {"status": "read", "n": 2, "detections": 0, "partition": 0, "first": 5, "last": 7},
        {"status": "read", "n": 1, "detections": 0, "partition": 1, "first": 3, "last": 3},
        {"status": "stored", "n": 2, "detections": 2}]


class PickyDetector(FakeDetector):
    """Fails a whole batch whenever it holds a frame brighter than 200: a model that chokes
    on one crafted input."""

    calls: list = []

    def detect(self, frames):
        PickyDetector.calls.append(len(frames))
        if any(f.mean() > 200 for f in frames):
            raise FloatingPointError("NaN in the model's output")
        return super().detect(frames)


def test_a_frame_the_model_fails_on_is_dead_lettered_and_its_batch_goes_on():
    cfg = pipeline_cfg(batch_size=4)
    msgs = [frame_msg(seq=i) for i in range(8)]
    msgs[5] = frame_msg(seq=5, jpeg=encode_jpeg(np.full((48, 64, 3), 250, np.uint8)))
    store, letters = MemoryStore(), []
    PickyDetector.calls = []
    rows = process_stream([[record(m, offset=i) for i, m in enumerate(msgs)]], cfg, detector_for=PickyDetector,
                          store=store, dead_letters=letters.extend, known_models=KNOWN)
    assert sorted(r["seq"] for r in rows if r["status"] == "stored") == [0, 1, 2, 3, 4, 6, 7]
    assert [(d.record.offset, d.stage) for d in letters] == [(5, "detect")]
    assert "FloatingPointError: NaN in the model's output" in letters[0].reason
    # the failed batch of 4 was tried whole once, then frame by frame
    assert PickyDetector.calls == [4, 4, 1, 1, 1, 1]


def test_an_unexpected_error_for_one_record_is_that_records_dead_letter(monkeypatch):
    import argus.live.pipeline as pipeline

    real = pipeline.decode_jpeg

    def decode(jpeg):
        if len(jpeg) == len(odd.jpeg):
            raise MemoryError("decompression bomb")
        return real(jpeg)

    odd = frame_msg(seq=3, jpeg=encode_jpeg(np.random.default_rng(0).integers(0, 255, (48, 64, 3), np.uint8)))
    monkeypatch.setattr(pipeline, "decode_jpeg", decode)
    letters, store = [], MemoryStore()
    rows = process_stream([[record(frame_msg(seq=1)), record(odd, offset=3)]], pipeline_cfg(),
                          detector_for=FakeDetector, store=store, dead_letters=letters.extend, known_models=KNOWN)
    assert [(d.record.offset, d.stage, d.reason) for d in letters] == [(3, "decode", "MemoryError: decompression bomb")]
    assert [r["seq"] for r in rows if r["status"] == "stored"] == [1]


def test_a_frame_whose_rows_cannot_be_built_is_dead_lettered_not_written(monkeypatch):
    import argus.live.pipeline as pipeline
    from argus.store.detections import result_rows

    def rows(result):
        if result.seq == 2:
            raise ValueError("capture timestamp is not in milliseconds since the epoch")
        return result_rows(result)

    monkeypatch.setattr(pipeline, "result_rows", rows)
    letters, store = [], MemoryStore()
    process_stream([[record(frame_msg(seq=i), offset=i) for i in range(4)]], pipeline_cfg(),
                   detector_for=FakeDetector, store=store, dead_letters=letters.extend, known_models=KNOWN)
    assert [(d.record.offset, d.stage) for d in letters] == [(2, "store")]
    assert sorted(r.seq for w, _ in store.writes for r in w) == [0, 1, 3]


class RefusingProducer:
    """A Kafka producer that refuses values over 100 bytes the way the broker does."""

    def __init__(self):
        self.sent, self._pending = [], []

    def produce(self, topic, key, value, headers, on_delivery):
        from confluent_kafka import KafkaError, KafkaException

        if len(value) > 100:
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
        self.sent.append((key, value, dict(headers)))

    def flush(self, timeout):
        return 0


def test_a_dead_letter_kafka_refuses_is_sent_without_its_payload():
    from argus.live.pipeline import send_dead_letters

    big = record(key=b"cam-1", value=b"\xff\xd8" + bytes(500), headers=frame_msg().headers(), offset=7)
    small = record(key=b"cam-1", value=b"PNG", headers=frame_msg().headers(), offset=8)
    producer = RefusingProducer()
    send_dead_letters([DeadLetter(big, "corrupt JPEG", "decode"), DeadLetter(small, "not a JPEG", "validate")],
                      pipeline_cfg(), producer=producer)
    by_source = {h["dlq_source"]: (v, h["dlq_reason"].decode()) for _, v, h in producer.sent}
    assert by_source[b"argus.frames/0/8"] == (b"PNG", "not a JPEG")
    value, reason = by_source[b"argus.frames/0/7"]
    assert value == b"" and reason.startswith("corrupt JPEG (payload of 502 bytes and the original headers not kept")


def test_a_model_given_in_the_console_wins_over_the_header_and_the_mapping():
    cfg = pipeline_cfg(camera_models={"gate-*": "ssdlite-person"})
    assert cfg.model_for("gate-1", "centernet-coco", {"gate-1": "blazeface"}) == "blazeface"
    assert cfg.model_for("gate-2", "centernet-coco", {"gate-1": "blazeface"}) == "centernet-coco"
    assert cfg.model_for("gate-2", None, {}) == "ssdlite-person"
    ready = prepare_one(record(frame_msg(camera="gate-1")), cfg, KNOWN, {"gate-1": "blazeface"})
    assert ready.model == "blazeface"
    unknown = prepare_one(record(frame_msg(camera="gate-1")), cfg, KNOWN, {"gate-1": "gone-model"})
    assert isinstance(unknown, DeadLetter) and unknown.reason == "unknown model 'gone-model'"


def test_given_models_are_reread_after_their_ttl_and_kept_while_hbase_is_down():
    from argus.live.pipeline import AssignedModels

    now, answers = [0.0], [{"a": "blazeface"}, ConnectionError("Thrift down"), {"a": "centernet-coco"}]

    def read():
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    models = AssignedModels(read, ttl_s=5, clock=lambda: now[0])
    assert models.get() == {"a": "blazeface"}
    now[0] = 4.9
    assert models.get() == {"a": "blazeface"} and len(answers) == 2  # not re-read yet
    now[0] = 5.0
    assert models.get() == {"a": "blazeface"}  # HBase down: the last mapping stays
    now[0] = 10.0
    assert models.get() == {"a": "centernet-coco"}


def test_stored_frames_carry_crops_and_one_live_frame_per_camera(monkeypatch):
    from argus.store.detections import result_rows

    monkeypatch.setattr("argus.live.pipeline._images", {})
    cfg = pipeline_cfg(batch_size=4, crop_px=32, live_view_px=40)
    records = [record(frame_msg(camera="a", seq=i), offset=i) for i in range(4)]
    store = MemoryStore()
    process_stream([records], cfg, detector_for=FakeDetector, store=store, dead_letters=lambda d: None,
                   known_models=KNOWN)
    [(results, _)] = store.writes
    assert all(r.image is None for r in results)  # the decoded frames are let go once written
    assert all(len(r.crops) == 1 and r.crops[0][:2] == b"\xff\xd8" for r in results)
    live = [r for r in results if r.thumbnail]
    assert [r.seq for r in live] == [3]  # the newest of the batch
    from argus.media.codec import decode_jpeg

    assert decode_jpeg(live[0].thumbnail).shape[1] == 40 and decode_jpeg(results[0].crops[0]).shape[0] <= 32
    tables = [table for table, _, _ in result_rows(live[0], 123)]
    assert tables.count("live") == 1
    # a second batch within the second makes no live frame: at most one a second per camera
    store2 = MemoryStore()
    process_stream([[record(frame_msg(camera="a", seq=9), offset=9)]], cfg, detector_for=FakeDetector, store=store2,
                   dead_letters=lambda d: None, known_models=KNOWN)
    assert not store2.writes[0][0][0].thumbnail


def test_stored_frames_go_to_the_tracker_topic_keyed_by_camera_and_an_undelivered_one_fails_the_batch():
    import json

    from argus.live.pipeline import send_to_tracker
    from argus.store import FrameResult

    class Producer:
        def __init__(self, fail=False):
            self.sent, self.fail, self.callbacks = [], fail, []

        def produce(self, topic, key, value, on_delivery):
            self.sent.append((topic, key, json.loads(value)))
            self.callbacks.append(on_delivery)

        def poll(self, _):
            return 0

        def flush(self, _):
            for cb in self.callbacks:
                cb("broker down" if self.fail else None, None)
            return 0

    cfg = pipeline_cfg(topic="cams", tracking=True)
    assert cfg.tracking_topic == "cams.detections" and pipeline_cfg(topic="cams").tracking_topic is None
    results = [FrameResult("cam-1", 1_000, 3, 64, 48, "ssdlite-person", [Detection(0, "person", 0.9, (0.1, 0.1, 0.2, 0.2))])]
    producer = Producer()
    send_to_tracker(results, cfg, producer)
    ((topic, key, message),) = producer.sent
    assert (topic, key) == ("cams.detections", b"cam-1") and message["seq"] == 3
    assert message["detections"] == [{"class_name": "person", "score": 0.9, "box": [0.1, 0.1, 0.2, 0.2]}]
    with pytest.raises(RuntimeError, match="not delivered to the tracker's topic cams.detections"):
        send_to_tracker(results, cfg, Producer(fail=True))
