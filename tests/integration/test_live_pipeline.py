"""The live pipeline on the real stack: Kafka -> Spark Structured Streaming -> HBase + DLQ.

Frames come from three simulated cameras on two models, mixed with broken messages; the
streaming job runs two tasks per micro-batch, is killed with SIGKILL mid-run and restarted
from its checkpoint.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time

import pytest
from confluent_kafka import Producer
from store_checks import assert_one_detection_row_per_detection
from stream_checks import TcpRelay, dead_letters, wait_while_running

from argus.bench.live import driver_lines
from argus.endpoints import Endpoints
from argus.media.codec import encode_jpeg
from argus.media.images import sample_frames
from argus.live.cameras import CameraSpec
from argus.live.ingest import CameraWorker
from argus.live.message import MAX_MESSAGE_BYTES, FrameMessage
from argus.live.simulate import ensure_clips
from argus.live.launcher import StreamJob, StreamJobSpec
from argus.store import DetectionStore
from argus.live.topics import ensure_topics

RATE_HZ = 5.0  # 8-second clips -> 40 frames per camera


class ProducerSink:
    def __init__(self, producer, topic):
        self.producer, self.topic = producer, topic

    def send(self, msg, stats):
        self.producer.produce(self.topic, key=msg.key, value=msg.jpeg, headers=msg.headers())
        self.producer.poll(0)
        stats.sent += 1


def bad_messages(camera: str) -> list[tuple[bytes | None, bytes, list, str]]:
    """(key, value, headers, expected reason fragment) of messages the DLQ must receive."""
    good = FrameMessage(camera, int(time.time() * 1000), 10_000, 64, 48, encode_jpeg(sample_frames(1, (48, 64))[0]))
    h = good.headers()
    without = lambda name: [x for x in h if x[0] != name]  # noqa: E731
    replace = lambda name, v: [(k, v if k == name else b) for k, b in h]  # noqa: E731
    return [
        (good.key, good.jpeg[: len(good.jpeg) // 3], h, "corrupt JPEG"),
        (good.key, b"", h, "empty payload"),
        (good.key, b"\xff\xd8" + os.urandom(13 * 2**20), h, "oversized payload"),
        (good.key, b"<html>not an image</html>", h, "not a JPEG"),
        (good.key, good.jpeg, without("capture_ts_ms"), "missing header(s): capture_ts_ms"),
        (good.key, good.jpeg, [], "missing header(s): camera_id"),
        (good.key, good.jpeg, replace("schema_version", b"7"), "unsupported schema_version 7"),
        (good.key, good.jpeg, replace("width", b"wide"), "header width 'wide' is not 1-5 decimal digits"),
        (b"someone-else", good.jpeg, h, "does not match camera_id"),
        (good.key, good.jpeg, replace("width", b"640"), "decoded 64x48 but headers say 640x48"),
    ]


def start_job(cfg, topic, dlq, checkpoint, camera_models, log_path, endpoints) -> StreamJob:
    # two 1-core tasks per micro-batch: each range is split per task and coalesced, and two
    # Python workers write and dead-letter at once (the default single 2-core task runs in
    # the demo's test, a single 1-core task in the supervisor's)
    spec = StreamJobSpec(topic=topic, dlq_topic=dlq, checkpoint=checkpoint, camera_models=camera_models,
                         query_name=f"it_{topic.replace('.', '_')}", batch_size=4, max_offsets_per_trigger=30,
                         task_cpus=1)
    assert spec.task_slots == 2
    return StreamJob(spec, cfg, log_path, endpoints=endpoints).start()


def stored(store: DetectionStore, cameras) -> int:
    return sum(len(store.frames(c)) for c in cameras)


@pytest.mark.timeout(900)
def test_every_frame_is_stored_or_dead_lettered_across_a_driver_kill(stack, cfg, unique, tmp_path):
    topic, dlq = f"it.frames.{unique}", f"it.frames.{unique}.dlq"
    ensure_topics(cfg.kafka_bootstrap, topic, dlq, partitions=3)
    cameras = [f"it-{unique}-{i}" for i in range(3)]
    camera_models = {cameras[0]: "ssdlite-person", f"it-{unique}-*": "blazeface"}

    # valid frames: three simulated cameras, decoded from H.264 clips of real photos
    producer = Producer({"bootstrap.servers": cfg.kafka_bootstrap, "message.max.bytes": MAX_MESSAGE_BYTES,
                         "enable.idempotence": True})
    clips = ensure_clips(cfg.cache_dir / "simulator")
    workers = [CameraWorker(CameraSpec(id=cam, url=str(clips[i]), rate_hz=RATE_HZ), ProducerSink(producer, topic),
                            threading.Event()) for i, cam in enumerate(cameras)]
    for w in workers:
        w.run()
    valid = sum(w.stats.sent for w in workers)
    assert valid == 3 * 40
    bad = bad_messages(cameras[1])
    for key, value, headers, _ in bad:
        producer.produce(topic, key=key, value=value, headers=headers)
    assert producer.flush(60) == 0

    store = DetectionStore.from_config(cfg)
    store.ensure_tables()
    checkpoint = f"{cfg.hdfs_uri}/argus/tests/{unique}/checkpoint"
    log_path = tmp_path / "stream.log"
    # each service at an address of its own: Kafka's bootstrap and HBase's two Thrift servers
    # reached only through relays on 127.0.0.3 and 127.0.0.2, HDFS where it is
    local = Endpoints.from_config(cfg)
    relays = {"kafka": TcpRelay("127.0.0.3", ("127.0.0.1", cfg.port("kafka"))),
              "thrift": TcpRelay("127.0.0.2", (local.hbase_host, local.hbase_port)),
              "thrift2": TcpRelay("127.0.0.2", (local.hbase_admin_host, local.hbase_admin_port))}
    endpoints = dataclasses.replace(local, kafka_bootstrap=relays["kafka"].address, hbase_host="127.0.0.2",
                                    hbase_port=relays["thrift"].port, hbase_admin_host="127.0.0.2",
                                    hbase_admin_port=relays["thrift2"].port)
    job = start_job(cfg, topic, dlq, checkpoint, camera_models, log_path, endpoints)
    try:
        # let it store part of the backlog, then kill the driver without warning
        wait_while_running(lambda: stored(store, cameras) >= 30, job, 420)
        job.kill()
        partial = stored(store, cameras)
        assert partial < valid, "the job finished before it could be killed; make batches smaller"

        job = start_job(cfg, topic, dlq, checkpoint, camera_models, log_path, endpoints)
        wait_while_running(lambda: stored(store, cameras) >= valid, job, 480)
        time.sleep(5)  # a few more triggers: nothing more may appear
        assert job.alive, "the query stopped"
    finally:
        job.kill()
        for relay in relays.values():
            relay.close()
    # the job found each service where its endpoint said: Kafka (source, dead letters), the
    # Thrift server (detections) and the Thrift2 server (lease and status)
    assert all(relay.connections > 0 for relay in relays.values()), {n: r.connections for n, r in relays.items()}

    # the micro-batches did run as two tasks
    batches = driver_lines(log_path.read_text(), "ARGUS_BATCH")
    assert max(b["tasks"] for b in batches) == 2, batches

    # no frame lost, none stored twice
    assert stored(store, cameras) == valid
    per_camera = {cam: store.frames(cam) for cam in cameras}
    assert {cam: len(rows) for cam, rows in per_camera.items()} == {cam: 40 for cam in cameras}
    assert_one_detection_row_per_detection(store, per_camera)
    # each camera ran its model; the person camera found its person; all stages were stamped
    assert {r["f:model"] for r in per_camera[cameras[0]]} == {"ssdlite-person"}
    assert {r["f:model"] for r in per_camera[cameras[2]]} == {"blazeface"}
    assert len(store.search(camera=cameras[0], classes=["person"], min_score=0.5, limit=1000)) >= 20
    for r in per_camera[cameras[0]]:
        stamps = [int(r[f"t:{s}"]) for s in ("captured", "kafka", "read", "detected", "written")]
        assert stamps == sorted(stamps), r

    # every bad message is in the DLQ with its reason (a replayed batch may repeat one)
    dead = dead_letters(cfg, dlq, len(bad))
    reasons = [m["dlq_reason"].decode() for m in dead]
    for _, _, _, fragment in bad:
        assert any(fragment in r for r in reasons), f"no dead letter for {fragment!r}: {reasons}"
    assert all(m["dlq_source"].decode().startswith(f"{topic}/") for m in dead)
