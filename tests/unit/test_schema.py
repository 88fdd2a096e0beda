"""Frame messages and HBase row keys: pure functions, no services."""

from __future__ import annotations

import pytest

from argus.schema import SCHEMA_VERSION, FrameMessage, InvalidMessage, dead_letter_headers
from argus.store import schema

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 100


def frame(**kw) -> FrameMessage:
    base = dict(camera_id="cam-7", capture_ts_ms=1_795_690_000_123, seq=42, width=640, height=480, jpeg=JPEG)
    return FrameMessage(**{**base, **kw})


def test_frame_message_round_trips_through_kafka_fields():
    msg = frame(model="ssdlite-person")
    back = FrameMessage.from_kafka(msg.key, msg.jpeg, msg.headers())
    assert back == msg and back.schema_version == SCHEMA_VERSION
    assert dict(msg.headers())["schema_version"] == b"1"


@pytest.mark.parametrize("mutate, reason", [
    (lambda k, v, h: (k, v, [x for x in h if x[0] != "seq"]), "missing header(s): seq"),
    (lambda k, v, h: (k, v, [(n, b"x" if n == "width" else b) for n, b in h]), "width is not an integer"),
    (lambda k, v, h: (k, v, [(n, b"9" if n == "schema_version" else b) for n, b in h]), "unsupported schema_version 9"),
    (lambda k, v, h: (b"other-cam", v, h), "does not match camera_id"),
    (lambda k, v, h: (k, b"", h), "empty payload"),
    (lambda k, v, h: (k, b"GIF89a...", h), "not a JPEG"),
    (lambda k, v, h: (k, b"\xff\xd8" + bytes(13 * 2**20), h), "oversized payload"),
    (lambda k, v, h: (k, v, [(n, b"0" if n == "height" else b) for n, b in h]), "bad frame size 640x0"),
    (lambda k, v, h: (k, v, None), "missing header(s): camera_id"),
])
def test_invalid_messages_say_why(mutate, reason):
    msg = frame()
    key, value, headers = mutate(msg.key, msg.jpeg, msg.headers())
    with pytest.raises(InvalidMessage) as info:
        FrameMessage.from_kafka(key, value, headers)
    assert reason in info.value.reason


def test_dead_letter_keeps_the_original_headers_and_adds_why():
    hs = dict(dead_letter_headers(frame().headers(), "corrupt JPEG: truncated", "decode", "argus.frames/2/77"))
    assert hs["camera_id"] == b"cam-7" and hs["dlq_reason"] == b"corrupt JPEG: truncated"
    assert hs["dlq_stage"] == b"decode" and hs["dlq_source"] == b"argus.frames/2/77" and int(hs["dlq_ts_ms"]) > 0


def test_row_keys_sort_newest_first_within_a_camera():
    older = schema.frame_key("cam-1", 1_000_000, 5)
    newer = schema.frame_key("cam-1", 2_000_000, 6)
    assert newer < older
    assert schema.detection_key("cam-1", 2_000_000, 6, 0) > newer  # detections follow their frame
    assert older.startswith(schema.camera_prefix("cam-1"))


def test_keys_are_deterministic_and_salted_across_buckets():
    assert schema.frame_key("cam-1", 123, 1) == schema.frame_key("cam-1", 123, 1)
    salts = {schema.salt(f"cam-{i}") for i in range(1000)}
    assert salts == {f"{i:02x}" for i in range(schema.SALT_BUCKETS)}


def test_time_range_covers_exactly_the_inclusive_interval():
    start, stop = schema.time_range("cam-1", 1_000, 2_000)
    inside = [schema.frame_key("cam-1", ts, 0) for ts in (1_000, 1_500, 2_000)]
    outside = [schema.frame_key("cam-1", ts, 0) for ts in (999, 2_001)] + [schema.frame_key("cam-2", 1_500, 0)]
    assert all(start <= k < stop for k in inside)
    assert not any(start <= k < stop for k in outside)
    start, stop = schema.time_range("cam-1", 0, None)
    assert start <= schema.frame_key("cam-1", 5, 0) < stop


@pytest.mark.parametrize("bad", ["", "a#b", "x" * 200])
def test_camera_ids_that_would_break_keys_are_refused(bad):
    with pytest.raises(ValueError, match="camera id"):
        schema.camera_prefix(bad)
