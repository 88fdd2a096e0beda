"""Run a generator ahead of its consumer on a thread.

Decoding a segment reads the archive over WebHDFS and decodes H.264; the detector then
waits for each frame unless the reading runs ahead. :func:`read_ahead` iterates the source
on a thread into a bounded queue, so the waits for the network overlap the model's work,
and re-raises in the consumer whatever the source raised (with its own type).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


class _Raised:
    def __init__(self, exc: BaseException):
        self.exc = exc


def read_ahead(source: Iterable[T], depth: int = 16) -> Iterator[T]:
    """The items of ``source`` in order, produced up to ``depth`` items ahead on a thread.

    Stopping early (``break``, an exception in the consumer, closing the generator) stops the
    thread at its next item and closes ``source``.
    """
    items: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def produce() -> None:
        iterator = iter(source)
        try:
            for item in iterator:
                while not stop.is_set():
                    try:
                        items.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            items.put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            items.put(_Raised(exc))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="argus-read-ahead", daemon=True)
    thread.start()
    try:
        while (item := items.get()) is not _DONE:
            if isinstance(item, _Raised):
                raise item.exc
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                items.get_nowait()
            except queue.Empty:
                thread.join(0.05)


__all__ = ["read_ahead"]
