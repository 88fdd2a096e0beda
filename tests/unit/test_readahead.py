"""argus.archive.readahead and argus.store.writer: order kept, errors surfaced where they belong."""

from __future__ import annotations

import threading
import time

import pytest

from argus.archive.readahead import read_ahead
from argus.store.detections import FrameResult
from argus.store.writer import BackgroundWriter


def test_items_arrive_in_order_and_the_source_runs_ahead():
    produced = []

    def source():
        for i in range(50):
            produced.append(i)
            yield i

    seen = []
    for item in read_ahead(source(), depth=4):
        if item == 0:
            time.sleep(0.2)  # the consumer is slow: the source fills the queue meanwhile
            assert len(produced) >= 4
        seen.append(item)
    assert seen == list(range(50))


def test_an_error_in_the_source_is_raised_in_the_consumer_with_its_type():
    class ArchiveGone(OSError):
        pass

    def source():
        yield 1
        raise ArchiveGone("hdfs: file truncated")

    got = []
    with pytest.raises(ArchiveGone, match="truncated"):
        for item in read_ahead(source()):
            got.append(item)
    assert got == [1]


def test_stopping_early_stops_the_thread_and_closes_the_source():
    closed = threading.Event()

    def source():
        try:
            for i in range(10_000):
                yield i
        finally:
            closed.set()

    for item in read_ahead(source(), depth=2):
        if item == 3:
            break
    assert closed.wait(2)
    assert not [t for t in threading.enumerate() if t.name == "argus-read-ahead"]


class SlowStore:
    def __init__(self, fail_on=None):
        self.batches, self.fail_on = [], fail_on

    def write(self, results, written_ms=None):
        time.sleep(0.01)
        if self.fail_on is not None and len(self.batches) == self.fail_on:
            raise ConnectionError("thrift: connection reset")
        self.batches.append((results, written_ms))


def _result(seq: int) -> FrameResult:
    return FrameResult("cam", 1_700_000_000_000 + seq, seq, 4, 4, "m", [], image=object())


def _seqs(batches) -> list[list[int]]:
    return [[r.seq for r in results] for results, _ in batches]


def test_the_writer_keeps_batch_order_and_stamps_each_write():
    store = SlowStore()
    prepared = []
    writer = BackgroundWriter(store, depth=2, prepare=lambda results: prepared.extend(r.seq for r in results))
    for i in range(10):
        writer.put([_result(i)])
    writer.put([])
    writer.close()
    assert _seqs(store.batches) == [[i] for i in range(10)] and prepared == list(range(10))
    assert all(stamp for _, stamp in store.batches) and writer.written == store.batches
    # the decoded frames are let go once written: a task's summary keeps its results
    assert all(r.image is None for results, _ in store.batches for r in results)


def test_a_write_error_is_raised_by_close_and_later_batches_are_not_written():
    store = SlowStore(fail_on=3)
    writer = BackgroundWriter(store, depth=2, stamp=False)
    for i in range(10):
        writer.put([_result(i)])
    with pytest.raises(ConnectionError, match="reset"):
        writer.close()
    assert _seqs(store.batches) == [[0], [1], [2]] and store.batches[0][1] is None
