"""Creating Argus's Kafka topics with the settings frames need."""

from __future__ import annotations

from confluent_kafka.admin import AdminClient, NewTopic

from argus.live.message import DLQ_TOPIC, FRAMES_TOPIC, MAX_MESSAGE_BYTES

FRAME_TOPIC_CONFIG = {
    # the broker stamps each frame on arrival: the "in Kafka" stage of the latency breakdown
    "message.timestamp.type": "LogAppendTime",
    "max.message.bytes": str(MAX_MESSAGE_BYTES),
    "retention.ms": str(72 * 3600 * 1000),
}
DLQ_TOPIC_CONFIG = {"max.message.bytes": str(MAX_MESSAGE_BYTES), "retention.ms": str(14 * 86400 * 1000)}


def ensure_topic(bootstrap: str, topic: str, partitions: int = 6, config: dict[str, str] | None = None) -> bool:
    """Create one topic if missing; whether it was created."""
    return bool(_create(AdminClient({"bootstrap.servers": bootstrap}), [NewTopic(topic, partitions, 1, config=config or {})]))


def _create(admin: AdminClient, wanted: list[NewTopic]) -> list[str]:
    existing = set(admin.list_topics(timeout=15).topics)
    new = [t for t in wanted if t.topic not in existing]
    if new:
        for topic, future in admin.create_topics(new).items():
            try:
                future.result(30)
            except Exception as exc:  # created concurrently by another process: fine
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise
    return [t.topic for t in new]


def ensure_topics(bootstrap: str, frames_topic: str = FRAMES_TOPIC, dlq_topic: str = DLQ_TOPIC,
                  partitions: int = 6) -> list[str]:
    """Create the frames and dead-letter topics if missing; returns those created."""
    return _create(AdminClient({"bootstrap.servers": bootstrap}),
                   [NewTopic(frames_topic, partitions, 1, config=FRAME_TOPIC_CONFIG),
                    NewTopic(dlq_topic, 1, 1, config=DLQ_TOPIC_CONFIG)])
