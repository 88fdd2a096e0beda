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
