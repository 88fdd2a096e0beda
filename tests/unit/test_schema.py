"""Frame messages and HBase row keys: pure functions, no services."""

from __future__ import annotations

import pytest

from argus.live.message import SCHEMA_VERSION, FrameMessage, InvalidMessage, dead_letter_headers
from argus.store import schema

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 100


def frame(**kw) -> FrameMessage:
    base = dict(camera_id="cam-7", capture_ts_ms=1_795_690_000_123, seq=42, width=640, height=480, jpeg=JPEG,
                model="ssdlite-person")
    return FrameMessage(**{**base, **kw})


def test_frame_message_round_trips_through_kafka_fields():
    msg = frame(model="ssdlite-person")
    back = FrameMessage.from_kafka(msg.key, msg.jpeg, msg.headers())
    assert back == msg and back.schema_version == SCHEMA_VERSION
    assert dict(msg.headers())["schema_version"] == b"1"


@pytest.mark.parametrize("mutate, reason", [
    (lambda k, v, h: (k, v, [x for x in h if x[0] != "seq"]), "missing header(s): seq"),
    (lambda k, v, h: (k, v, [(n, b"x" if n == "width" else b) for n, b in h]), "header width 'x' is not 1-5 decimal digits"),
    (lambda k, v, h: (k, v, [(n, b"9" if n == "schema_version" else b) for n, b in h]), "unsupported schema_version 9"),
    (lambda k, v, h: (b"other-cam", v, h), "does not match camera_id"),
    (lambda k, v, h: (k, b"", h), "empty payload"),
    (lambda k, v, h: (k, b"GIF89a...", h), "not a JPEG"),
    (lambda k, v, h: (k, b"\xff\xd8" + bytes(13 * 2**20), h), "oversized payload"),
    (lambda k, v, h: (k, v, [(n, b"0" if n == "height" else b) for n, b in h]), "header height 0 is out of range [1, 16384]"),
    (lambda k, v, h: (k, v, None), "missing header(s): camera_id"),
    (lambda k, v, h: (None, v, h), "no message key"),
    (lambda k, v, h: (b"cam#7", v, [(n, b"cam#7" if n == "camera_id" else b) for n, b in h]), "is not a camera id"),
    (lambda k, v, h: (k, v, [(n, b"-5" if n == "seq" else b) for n, b in h]), "header seq '-5' is not 1-12 decimal digits"),
    (lambda k, v, h: (k, v, [(n, b"1" * 13 if n == "seq" else b) for n, b in h]), "is not 1-12 decimal digits"),
    (lambda k, v, h: (k, v, [(n, b"0000000000005" if n == "capture_ts_ms" else b) for n, b in h]), "out of range"),
    (lambda k, v, h: (k, v, [(n, b"9999999999999" if n == "capture_ts_ms" else b) for n, b in h]), "out of range"),
    (lambda k, v, h: (k, v, [*h, ("seq", b"43")]), "header seq is given more than once"),
    (lambda k, v, h: (k, v, [(n, b"\xff\xfe" if n == "model" else b) for n, b in h]), "header model is not UTF-8"),
    (lambda k, v, h: (k, v, [(n, b" 42" if n == "seq" else b) for n, b in h]), "is not 1-12 decimal digits"),
    (lambda k, v, h: (k, v, [(n, b"4_2" if n == "seq" else b) for n, b in h]), "is not 1-12 decimal digits"),
    (lambda k, v, h: (k, v, [(n, b"99999" if n == "width" else b) for n, b in h]), "out of range [1, 16384]"),
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


@pytest.mark.parametrize("bad", ["", "a#b", "x" * 129, "-lead", "a b", "caméra", "<script>", "a/b", "x\n"])
def test_camera_ids_that_would_break_keys_are_refused(bad):
    with pytest.raises(ValueError, match="camera id"):
        schema.camera_prefix(bad)
    with pytest.raises(InvalidMessage):  # ingest cannot build a message that the job would refuse
        frame(camera_id=bad)


def test_every_field_is_checked_when_a_message_is_built():
    for bad in (dict(seq=-1), dict(seq=10**12), dict(width=0), dict(height=20_000), dict(capture_ts_ms=5),
                dict(model="Bad Model"), dict(schema_version=2)):
        with pytest.raises(InvalidMessage):
            frame(**bad)
    assert frame(width=1, height=1).width == 1  # a 1x1 frame is a frame


def test_the_docs_table_of_headers_is_made_from_the_rules():
    from pathlib import Path

    from argus.live.message import headers_markdown

    doc = (Path(__file__).resolve().parents[2] / "docs" / "schema.md").read_text()
    assert headers_markdown() in doc
