"""Offsets a micro-batch planned to read but could not: records deleted by retention or by
hand before the query reached them.

Spark's Kafka source runs with ``failOnDataLoss=false`` so that a lost range does not stop
every camera; it then skips the range with a log line only. Each task reports which offsets it
read per partition (:func:`argus.live.pipeline.tally`), the driver keeps them per batch
(:class:`SkipDetector`), and once the batch's progress gives the planned range, the difference
is what was skipped: logged, written to the status row, alerted by the supervisor.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PartitionRead:
    """What a batch read of one partition: the lowest and highest offset and how many."""

    first: int
    last: int
    count: int

    def merge(self, other: PartitionRead) -> PartitionRead:
        return PartitionRead(min(self.first, other.first), max(self.last, other.last), self.count + other.count)


def offsets_json(value) -> dict[str, dict[str, int]]:
    """A Kafka source's offsets in a progress: ``{topic: {partition: offset}}`` (JSON or text)."""
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


def skipped_ranges(start, end, read: Mapping[int, PartitionRead]) -> list[dict[str, Any]]:
    """What a batch planned (``start`` .. ``end``, a Kafka source's offsets JSON of its
    progress, end exclusive) but did not read: one entry per partition, with its missing
    ranges (inclusive) and how many offsets they hold."""
    start, end = offsets_json(start), offsets_json(end)
    out = []
    for topic, partitions in end.items():
        if not isinstance(partitions, dict):
            continue
        for partition, stop in sorted(partitions.items(), key=lambda kv: int(kv[0])):
            begin = start.get(topic, {}).get(partition) if isinstance(start.get(topic), dict) else None
            if begin is None or begin < 0 or stop <= begin:  # a new partition, or nothing planned
                continue
            got = read.get(int(partition))
            expected = stop - begin
            if got is not None and got.count >= expected:
                continue
            if got is None:
                ranges = [(begin, stop - 1)]
            else:
                ranges = [r for r in ((begin, got.first - 1), (got.last + 1, stop - 1)) if r[0] <= r[1]]
            missing = expected - (got.count if got else 0)
            out.append({"topic": topic, "partition": int(partition), "ranges": [list(r) for r in ranges],
                        "missing": missing, "planned": [begin, stop - 1]})
    return out


def describe(entries: Iterable[dict[str, Any]]) -> str:
    """``topic/partition [a-b], ...`` for messages and alerts."""
    parts = []
    for e in entries:
        ranges = ", ".join(f"{a}-{b}" for a, b in e["ranges"]) or f"{e['missing']} offsets inside {e['planned']}"
        parts.append(f"{e['topic']}/{e['partition']} [{ranges}] ({e['missing']} offsets)")
    return "; ".join(parts)


class SkipDetector:
    """Driver side: the offsets each batch read (from its tasks' tallies), checked against the
    batch's planned range when its progress arrives."""

    def __init__(self, keep: int = 32):
        self._reads: dict[int, dict[int, PartitionRead]] = {}
        self._keep = keep
        self._lock = threading.Lock()

    def record(self, batch_id: int, reads: Iterable[tuple[int, PartitionRead]]) -> None:
        merged: dict[int, PartitionRead] = {}
        for partition, read in reads:
            merged[partition] = merged[partition].merge(read) if partition in merged else read
        with self._lock:
            self._reads[batch_id] = merged
            for old in sorted(self._reads)[:-self._keep]:
                del self._reads[old]

    def check(self, progress: dict[str, Any]) -> list[dict[str, Any]]:
        """The skipped ranges of the batch ``progress`` reports (empty if none, or if that batch
        ran no tasks of ours, as a batch without input does)."""
        with self._lock:
            reads = self._reads.pop(progress.get("batchId"), None)
        if reads is None:
            return []
        out = []
        for source in progress.get("sources") or []:
            out += skipped_ranges(source.get("startOffset"), source.get("endOffset"), reads)
        return out
