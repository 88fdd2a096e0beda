"""The time-major index (``detections_by_time``) and the search's merge: pure parts, no services."""

from __future__ import annotations

import random

import pytest

from argus.detect import Detection
from argus.store import FrameResult, schema
from argus.store.detections import (StoredDetection, index_cells, index_filter, merge_newest,
                                    newest_first, parse_index_row, result_rows, scan_chunk, search_filter, _parse)


def stored(cam: str, ts: int, seq: int = 0, index: int = 0) -> StoredDetection:
    return StoredDetection(cam, ts, seq, index, 0, "person", 0.9, (0.0, 0.0, 1.0, 1.0), "m", "live")


def test_a_bucket_is_newest_first_across_its_cameras_then_camera_seq_index():
    cams = [c for c in (f"cam-{i}" for i in range(200)) if schema.salt(c) == "03"][:4]
    detections = [stored(cam, ts, seq, index) for cam in cams for ts, seq in ((1_000, 1), (5_000, 2), (5_000, 3))
                  for index in (0, 1)]
    keys = {schema.time_major_key(d.camera_id, d.capture_ts_ms, d.seq, d.index): d for d in detections}
    assert [keys[k] for k in sorted(keys)] == sorted(detections, key=newest_first)
    assert all(k.startswith(schema.bucket_prefix(3)) for k in keys)


def test_camera_ids_that_prefix_each_other_keep_the_key_order_and_the_result_order_alike():
    # "#" sorts below every character a camera id may hold, so "cam" < "cam-b" in keys as in str
    short = next(f"cam{i}" for i in range(1000) if schema.salt(f"cam{i}") == schema.salt(f"cam{i}-b"))
    a, b = stored(short, 7_000), stored(f"{short}-b", 7_000)
    ka, kb = (schema.time_major_key(d.camera_id, d.capture_ts_ms, 0, 0) for d in (a, b))
    assert ka < kb and newest_first(a) < newest_first(b)


def test_time_major_keys_round_trip_and_are_salted_like_the_camera():
    key = schema.time_major_key("gate-7", 1_795_690_000_123, 42, 3)
    assert schema.parse_time_major_key(key) == ("gate-7", 1_795_690_000_123, 42, 3)
    assert key.startswith(schema.salt("gate-7").encode() + b"#")
    assert key == schema.time_major_key("gate-7", 1_795_690_000_123, 42, 3)  # only the frame decides
    with pytest.raises(ValueError, match="camera id"):
        schema.time_major_key("a#b", 1, 1, 0)


def test_bucket_time_range_covers_exactly_the_inclusive_interval_for_every_camera():
    cams = [c for c in (f"cam-{i}" for i in range(100)) if schema.salt(c) == "0a"]
    start, stop = schema.bucket_time_range(10, 1_000, 2_000)
    inside = [schema.time_major_key(c, ts, 0, 0) for c in cams for ts in (1_000, 1_500, 2_000)]
    outside = [schema.time_major_key(c, ts, 0, 0) for c in cams for ts in (999, 2_001)]
    assert all(start <= k < stop for k in inside)
    assert not any(start <= k < stop for k in outside)
    start, stop = schema.bucket_time_range(10, None, None)
    assert all(start <= k < stop for k in inside + outside)
    with pytest.raises(ValueError, match="salt bucket"):
        schema.bucket_prefix(schema.SALT_BUCKETS)


def test_every_detection_is_written_twice_and_both_rows_read_back_the_same():
    result = FrameResult("gate-7", 1_795_690_000_123, 42, 640, 480, "ssdlite-person", [
        Detection(0, "person", 0.91234, (0.1, 0.2, 0.3, 0.4)), Detection(2, "a|b car", 0.5, (0.5, 0.5, 0.9, 0.8))],
        crops=[b"\xff\xd8jpeg", None])
    rows = result_rows(result, 123)
    assert [t for t, _, _ in rows] == ["detections", "detections_by_time"] * 2 + ["frames"]
    for (_, _, cells), (_, key, index) in zip(rows[0:4:2], rows[1:4:2]):
        assert set(index) == {b"d:v"}  # one cell: no crop, no copy of what the key holds
        assert parse_index_row(key, index) == _parse(cells)
    assert index_cells(result, result.detections[0]) == {b"d:v": b"0.9123|0|0.10000,0.20000,0.30000,0.40000|live|"
                                                               b"ssdlite-person|person"}


def test_merge_takes_the_newest_of_newest_first_streams_and_reads_no_further():
    rng = random.Random(3)
    everything = sorted({stored(f"cam-{rng.randrange(9)}", rng.randrange(10_000), rng.randrange(3), rng.randrange(2))
                         for _ in range(500)}, key=newest_first)
    streams = [[d for d in everything if schema.salt(d.camera_id) == s] for s in {schema.salt(d.camera_id)
                                                                                   for d in everything}]
    read = []

    def reading(stream):
        for d in stream:
            read.append(d)
            yield d

    assert merge_newest([reading(s) for s in streams], 40) == everything[:40]
    assert len(read) <= 40 + len(streams)
    assert merge_newest([iter(s) for s in streams], 10_000) == everything
    assert merge_newest([iter(s) for s in streams], 0) == []


def test_a_scans_chunk_is_a_bit_over_its_share_and_never_over_the_limit():
    assert scan_chunk(51, 1) == 51  # one camera: the whole page in one round trip
    assert scan_chunk(51, 16) == 4  # the floor: a few rows cost no more than one
    assert scan_chunk(5001, 16) == 344
    assert scan_chunk(2, 16) == 2
    assert scan_chunk(1, 0) == 1


def test_the_index_filter_compares_the_score_as_bytes_and_the_class_as_the_last_field():
    import re

    assert index_filter() is None
    assert index_filter(min_score=0.9) == "SingleColumnValueFilter('d', 'v', >=, 'binary:0.9000', true, true)"
    values = [b"0.9000|0|b|live|m|car", b"0.8999|0|b|live|m|car", b"1.0000|0|b|live|m|car", b"0.95|0|b|live|m|car"]
    assert [v >= b"0.9000" for v in values] == [True, False, True, True]  # what HBase's binary comparator does
    filt = index_filter(["car", "x|car", "o'b"])
    regex = re.search(r"regexstring:(.*)', true", filt).group(1).replace("''", "'")
    python = regex.replace(r"\Q", "").replace(r"\E", "")  # Java's quoting of these names: the names themselves
    python = python.replace("x|car", r"x\|car")
    matches = [bool(re.search(python, v)) for v in ("0.9|2|b|live|m|car", "0.9|2|b|live|m|scar", "0.9|2|b|live|m|x|car",
                                                     "0.9|2|b|live|m|o'b", "0.9|2|b|live|m|bus", "0.9|2|b|live|car|bus")]
    assert matches == [True, False, True, True, False, False]


def test_the_search_filter_is_class_and_score_only_time_is_in_the_key_ranges():
    assert search_filter() is None
    assert search_filter(min_score=0.5) == "SingleColumnValueFilter('d', 'score', >=, 'binary:0.5000', true, true)"
    both = search_filter(["car", "o'brien"], 0.25)
    assert "'binary:0.2500'" in both and "'binary:car'" in both and "'binary:o''brien'" in both and " OR " in both
