"""The step the live and the archive flows share: one detector call for a batch of decoded
frames, and the :class:`~argus.store.detections.FrameResult` of each (what HBase stores).

Each flow says where its frames come from (a Kafka record, a segment of an archived
recording) in a :class:`PendingFrame`; what a result holds, and when ``detected`` is
stamped, is decided here only.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from argus.store.detections import FrameResult


@dataclass
class PendingFrame:
    """A decoded frame waiting for its detections.

    :param rgb: the frame, HxWx3 uint8 (its size is the result's width and height).
    :param source: ``live`` or ``archive``.
    :param stages: stage -> ms since the epoch so far (``captured``, ``kafka``, ``read``).
    """

    rgb: np.ndarray
    camera_id: str
    capture_ts_ms: int
    seq: int
    source: str
    stages: dict[str, int] = field(default_factory=dict)
    kafka_partition: int | None = None
    kafka_offset: int | None = None


def detect_batch(detector, model: str, frames: Sequence[PendingFrame]) -> list[FrameResult]:
    """Detect ``frames`` in one call of ``detector`` (anything with ``detect(list of RGB)``)
    and make their results, stamped ``detected`` (each keeps its frame as ``image`` for the
    writer's crops and live frame). Raises what the model raises, and
    RuntimeError if it answers for a different number of frames: the caller decides whether
    that fails one record (live) or one segment (archive)."""
    found = detector.detect([f.rgb for f in frames])
    if len(found) != len(frames):
        raise RuntimeError(f"the model returned {len(found)} results for {len(frames)} frame(s)")
    detected_ms = int(time.time() * 1000)
    return [FrameResult(camera_id=f.camera_id, capture_ts_ms=f.capture_ts_ms, seq=f.seq, width=f.rgb.shape[1],
                        height=f.rgb.shape[0], model=model, detections=dets, source=f.source,
                        stages={**f.stages, "detected": detected_ms}, kafka_partition=f.kafka_partition,
                        kafka_offset=f.kafka_offset, image=f.rgb)
            for f, dets in zip(frames, found)]


__all__ = ["PendingFrame", "detect_batch"]
