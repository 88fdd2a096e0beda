"""Frames through the real Kafka broker with confluent-kafka."""

from __future__ import annotations

import os

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from argus.live.message import MAX_MESSAGE_BYTES


def test_frames_round_trip_through_kafka(stack, cfg, unique):
    topic = f"test.frames.{unique}"
    admin = AdminClient({"bootstrap.servers": cfg.kafka_bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1,
                                  config={"max.message.bytes": str(MAX_MESSAGE_BYTES)})])[topic].result(30)

    # a few small frames and one large one (above Kafka's stock 1 MB limit): the broker's
    # defaults must be sized for video frames
    frames = [(f"cam-{i % 3}", os.urandom(50_000)) for i in range(30)] + [("cam-big", os.urandom(3 * 2**20))]
    delivered, errors = [], []
    producer = Producer({"bootstrap.servers": cfg.kafka_bootstrap, "message.max.bytes": MAX_MESSAGE_BYTES,
                         "enable.idempotence": True, "acks": "all"})
    for seq, (camera, jpeg) in enumerate(frames):
        producer.produce(topic, key=camera, value=jpeg,
                         headers={"camera_id": camera, "seq": str(seq), "schema_version": "1"},
                         on_delivery=lambda e, m: (errors if e else delivered).append(e or m))
    assert producer.flush(60) == 0
    assert not errors
    assert len(delivered) == len(frames)

    consumer = Consumer({"bootstrap.servers": cfg.kafka_bootstrap, "group.id": f"test-{unique}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    got = {}
    try:
        for _ in range(120):
            msg = consumer.poll(1.0)
            if msg is None or msg.error():
                if len(got) == len(frames):
                    break
                continue
            headers = dict(msg.headers())
            got[int(headers["seq"])] = (msg.key().decode(), msg.value(), headers)
            if len(got) == len(frames):
                break
    finally:
        consumer.close()
    assert sorted(got) == list(range(len(frames)))
    for seq, (camera, jpeg) in enumerate(frames):
        key, value, headers = got[seq]
        assert key == camera and value == jpeg
        assert headers["camera_id"] == camera.encode()


def test_the_monitor_counts_a_windows_dead_letters_per_camera_from_the_topic(stack, cfg, unique):
    """Letters written by a plain producer in the documented format (original headers plus
    dlq_reason / dlq_stage): only those sent in the window count, each for its camera."""
    import time

    from argus.live.deadletters import UNKNOWN_CAMERA, count_dead_letters

    topic = f"test.dlq.{unique}"
    admin = AdminClient({"bootstrap.servers": cfg.kafka_bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result(30)
    producer = Producer({"bootstrap.servers": cfg.kafka_bootstrap})

    def letter(key, reason, stage="decode", camera=None):
        headers = [("dlq_reason", reason.encode()), ("dlq_stage", stage.encode())]
        if camera:
            headers.append(("camera_id", camera.encode()))
        producer.produce(topic, key=key, value=b"", headers=headers)

    letter(b"gate-1", "empty payload")  # before the window
    assert producer.flush(30) == 0
    time.sleep(1.5)
    since = int(time.time() * 1000)
    for size in (3_000_001, 4_000_000):
        letter(b"gate-1", f"oversized payload: {size} bytes > 3000000")
    letter(b"gate-1", "model failed", stage="detect")
    letter(b"bad#key", "key does not match", camera="gate-2")
    letter(None, "no message key")
    assert producer.flush(30) == 0
    time.sleep(0.2)
    counts = count_dead_letters(cfg.kafka_bootstrap, since, int(time.time() * 1000) + 1000,
                                topics=[topic, f"test.dlq.absent.{unique}"])
    assert counts.read == 5 and not counts.truncated
    assert counts.for_camera("gate-1") == {"count": 3, "reasons": [
        {"reason": "decode: oversized payload: # bytes > #", "count": 2}, {"reason": "detect: model failed", "count": 1}]}
    assert counts.for_camera("gate-2")["count"] == 1 and counts.for_camera(UNKNOWN_CAMERA)["count"] == 1
    # a window that ended before them: nothing; max_letters bounds a flood
    assert count_dead_letters(cfg.kafka_bootstrap, since - 60_000, since - 30_000, topics=[topic]).read == 0
    capped = count_dead_letters(cfg.kafka_bootstrap, 0, since + 60_000, topics=[topic], max_letters=2)
    assert capped.read == 2 and capped.truncated
