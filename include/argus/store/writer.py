"""Writes to HBase off the detection thread.

A detector that waits for each batch's HBase round trip leaves its core idle for that long;
:class:`BackgroundWriter` takes the batches in order on its own thread (a bounded queue, so
a slow HBase still holds the producer back) and reports the first error when closed.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence

from argus.store.detections import FrameResult


class BackgroundWriter:
    """Writes :class:`FrameResult` batches with ``store.write`` on a thread, in order.

    :param store: a :class:`~argus.store.DetectionStore` (or anything with its ``write``).
    :param depth: batches queued at most before :meth:`put` blocks.
    :param stamp: stamp ``t:written`` with the time of each write (else the rows' own, or the store's).
    :param prepare: called with each batch on the writer's thread before it is written (the
        crops and live frames: :class:`~argus.store.crops.ImageMaker`); the decoded frames
        the results carry are let go after it either way.
    """

    def __init__(self, store, depth: int = 8, stamp: bool = True, prepare: Callable[[list[FrameResult]], None] | None = None):
        self.store, self.stamp, self.prepare = store, stamp, prepare
        #: (results, written_ms) of each write that succeeded, in order
        self.written: list[tuple[list[FrameResult], int | None]] = []
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="argus-hbase-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (results := self._queue.get()) is not None:
            if self._error is not None:
                continue  # keep draining so that put() never blocks; close() raises
            try:
                if self.prepare is not None:
                    self.prepare(results)
                for r in results:
                    r.image = None  # the summary keeps the results until the task ends
                written_ms = int(time.time() * 1000) if self.stamp else None
                self.store.write(results, written_ms=written_ms)
                self.written.append((results, written_ms))
            except BaseException as exc:  # noqa: BLE001 - re-raised by close()
                self._error = exc

    def put(self, results: Sequence[FrameResult]) -> None:
        """Queue one batch (nothing for an empty one)."""
        if results:
            self._queue.put(list(results))

    def close(self) -> None:
        """Wait for every queued batch; raise the first write error, if any."""
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error


__all__ = ["BackgroundWriter"]
