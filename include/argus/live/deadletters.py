"""Reading the dead-letter topic back: how many frames of each camera were rejected in a
window, and why (the console's monitor).

Each topic is read from the first offset at or after the window's start
(``offsets_for_times`` on the broker's timestamps, which are when the letter was sent) up to
its end, by a consumer of no group: nothing is committed, and the pipeline's own reading
is not touched.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from argus.live.message import DLQ_TOPIC, H_CAMERA, H_DLQ_REASON, H_DLQ_STAGE, check_camera_id

#: a window's letters read at most (a flood of bad frames must not stall the page)
MAX_LETTERS = 20_000
#: a letter whose key and camera header are no camera id
UNKNOWN_CAMERA = "(no camera id)"
_DIGITS = re.compile(r"\d+")


@dataclass
class DeadLetterCounts:
    """Dead letters of one window: per camera, how many and their commonest reasons."""

    since_ms: int
    until_ms: int
    cameras: dict[str, Counter] = field(default_factory=dict)  # camera -> reason kind -> letters
    read: int = 0
    #: the window held more than :data:`MAX_LETTERS`: counts are a lower bound
    truncated: bool = False

    def add(self, camera: str, reason: str) -> None:
        self.cameras.setdefault(camera, Counter())[reason] += 1
        self.read += 1

    def for_camera(self, camera: str, reasons: int = 3) -> dict[str, Any]:
        found = self.cameras.get(camera, Counter())
        return {"count": sum(found.values()), "reasons": [{"reason": r, "count": n} for r, n in found.most_common(reasons)]}

    def to_dict(self) -> dict[str, Any]:
        return {"since_ms": self.since_ms, "until_ms": self.until_ms, "read": self.read, "truncated": self.truncated,
                "cameras": {cam: self.for_camera(cam) for cam in sorted(self.cameras)}}


def letter_camera(key: bytes | None, headers: list[tuple[str, bytes]] | None) -> str:
    """Whose frame a letter was: its key, else its ``camera_id`` header, if either is a camera id."""
    found = dict(headers or [])
    for raw in (key, found.get(H_CAMERA)):
        if not raw:
            continue
        try:
            return check_camera_id(bytes(raw).decode())
        except (ValueError, UnicodeDecodeError):
            continue
    return UNKNOWN_CAMERA


def reason_kind(headers: list[tuple[str, bytes]] | None) -> str:
    """A letter's reason with its numbers blanked, prefixed by its stage, so that the same
    fault on different frames counts as one kind (``decode: oversized payload: # bytes > #``)."""
    found = dict(headers or [])
    reason = (found.get(H_DLQ_REASON) or b"").decode("utf-8", "replace")
    stage = (found.get(H_DLQ_STAGE) or b"").decode("utf-8", "replace")
    kind = _DIGITS.sub("#", reason)[:120] or "no reason given"
    return f"{stage}: {kind}" if stage else kind


def count_dead_letters(bootstrap: str, since_ms: int, until_ms: int, *, topics: Sequence[str] = (DLQ_TOPIC,),
                       max_letters: int = MAX_LETTERS, timeout_s: float = 5.0) -> DeadLetterCounts:
    """The letters sent to ``topics`` in [since, until], counted per camera and reason kind.

    :param bootstrap: Kafka's bootstrap servers.
    :param topics: dead-letter topics (one missing is no letter).
    :param max_letters: read at most this many (``truncated`` says so).
    :param timeout_s: give up on the broker after this long (raises ``KafkaException``).
    """
    from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

    counts = DeadLetterCounts(since_ms, until_ms)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"argus-monitor-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False, "enable.partition.eof": True,
                         "socket.timeout.ms": int(timeout_s * 1000), "session.timeout.ms": 10_000})
    try:
        wanted = []
        for topic in dict.fromkeys(topics):
            meta = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
            if meta is not None and meta.error is None:
                wanted += [TopicPartition(topic, p, since_ms) for p in sorted(meta.partitions)]
        if not wanted:
            return counts
        starts = consumer.offsets_for_times(wanted, timeout=timeout_s)
        ends = {(p.topic, p.partition): consumer.get_watermark_offsets(p, timeout=timeout_s)[1] for p in wanted}
        todo = [tp for tp in starts if 0 <= tp.offset < ends[(tp.topic, tp.partition)]]
        if not todo:
            return counts
        consumer.assign(todo)
        open_partitions = {(tp.topic, tp.partition) for tp in todo}
        while open_partitions and counts.read < max_letters:
            msg = consumer.poll(timeout_s)
            if msg is None:
                raise KafkaException(f"no answer from {bootstrap} reading {topic} within {timeout_s:g}s")
            where = (msg.topic(), msg.partition())
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    open_partitions.discard(where)
                    continue
                raise KafkaException(msg.error())
            if msg.offset() + 1 >= ends[where]:
                open_partitions.discard(where)
            _, ts = msg.timestamp()
            if ts > until_ms:
                open_partitions.discard(where)
                continue
            counts.add(letter_camera(msg.key(), msg.headers()), reason_kind(msg.headers()))
        counts.truncated = bool(open_partitions)
    finally:
        consumer.close()
    return counts
