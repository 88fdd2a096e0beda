"""The frame message on Kafka (schema version 1) and its dead-letter form.

Documented in docs/schema.md, whose table of headers is made from :data:`HEADER_RULES`.
Key = camera id; value = JPEG bytes; headers carry the metadata so that the payload stays a
plain image any tool can open. Every rule a later stage relies on (the row key's 12-digit
sequence number, the camera id's alphabet, a capture time that sorts) is checked here, before
any of those stages runs.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

SCHEMA_VERSION = 1
FRAMES_TOPIC = "argus.frames"
DLQ_TOPIC = "argus.frames.dlq"
#: The largest Kafka message of the frames and dead-letter topics: the broker, the topics,
#: the producers and the Spark source's fetch size are all set to it.
MAX_MESSAGE_BYTES = 16 * 2**20
#: A frame larger than this is refused (room under MAX_MESSAGE_BYTES for headers, and for a
#: dead letter carrying the frame).
MAX_FRAME_BYTES = 12 * 2**20
#: the oldest capture time accepted, 2000-01-01T00:00:00Z: anything older is a camera whose
#: clock was never set
MIN_CAPTURE_TS_MS = 946_684_800_000
#: how far a capture time may be ahead of this machine's clock (camera clocks drift; a day
#: ahead is a clock set wrong, and its rows would sort before every real frame)
MAX_CLOCK_AHEAD_MS = 24 * 3600 * 1000
#: the row key holds the sequence number in 12 digits
MAX_SEQ = 10**12 - 1
#: the largest frame side accepted, in pixels (16K video)
MAX_FRAME_SIDE = 16384
#: camera ids are row-key parts, URL path parts and Kafka keys: a conservative alphabet
CAMERA_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}"
#: registry model names (include/argus/detect/models.yaml)
MODEL_PATTERN = r"[a-z0-9][a-z0-9._-]{0,63}"

H_CAMERA = "camera_id"
H_CAPTURE_TS = "capture_ts_ms"
H_SEQ = "seq"
H_WIDTH = "width"
H_HEIGHT = "height"
H_VERSION = "schema_version"
H_MODEL = "model"

H_DLQ_REASON = "dlq_reason"
H_DLQ_STAGE = "dlq_stage"
H_DLQ_SOURCE = "dlq_source"
H_DLQ_TS = "dlq_ts_ms"


class InvalidMessage(ValueError):
    """A Kafka message that is not a valid frame; ``reason`` goes to the dead-letter topic."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class HeaderRule:
    """What one header of the frame message must hold: the one definition that the
    validator, ingest, the archive job and docs/schema.md's table (:func:`headers_markdown`)
    all use.

    :param name: the header's name.
    :param required: whether a frame must have it.
    :param pattern: the whole value must match this regular expression (ASCII).
    :param meaning: what it is, for the docs.
    :param low: / :param high: the range of an integer value (``high`` may be a function of the clock).
    """

    name: str
    required: bool
    pattern: str
    meaning: str
    low: int | None = None
    high: int | Callable[[], int] | None = None

    def check(self, text: str) -> str | int:
        """The value (an int for integer headers); raises :class:`InvalidMessage` saying why not."""
        if not re.fullmatch(self.pattern, text, flags=re.ASCII):
            shown = text if len(text) <= 40 else text[:40] + "..."
            raise InvalidMessage(f"header {self.name} {shown!r} is not {self.form}")
        if self.low is None:
            return text
        value, high = int(text), self.high() if callable(self.high) else self.high
        if value < self.low or (high is not None and value > high):
            raise InvalidMessage(f"header {self.name} {value} is out of range [{self.low}, {high}]")
        return value

    @property
    def form(self) -> str:
        return _FORMS.get(self.pattern, f"of the form {self.pattern}")


def _latest_capture_ms() -> int:
    return int(time.time() * 1000) + MAX_CLOCK_AHEAD_MS


_DIGITS = {H_CAPTURE_TS: r"[0-9]{12,13}", H_SEQ: r"[0-9]{1,12}", "side": r"[0-9]{1,5}"}
_FORMS = {
    CAMERA_ID_PATTERN: "a camera id (1-128 of A-Z a-z 0-9 . _ : @ -, starting with a letter or digit)",
    _DIGITS[H_CAPTURE_TS]: "12-13 decimal digits", _DIGITS[H_SEQ]: "1-12 decimal digits",
    _DIGITS["side"]: "1-5 decimal digits", str(SCHEMA_VERSION): f"{SCHEMA_VERSION}",
    MODEL_PATTERN: "a model name (1-64 of a-z 0-9 . _ -)",
}
#: The headers of a frame message, in the order FrameMessage writes them.
HEADER_RULES: tuple[HeaderRule, ...] = (
    HeaderRule(H_CAMERA, True, CAMERA_ID_PATTERN,
               "camera id: 1–128 ASCII letters, digits or `. _ : @ -`, starting with a letter or digit; "
               "the message key must be the same id"),
    HeaderRule(H_CAPTURE_TS, True, _DIGITS[H_CAPTURE_TS],
               "capture time, ms since the Unix epoch (UTC), decimal digits: from 2000-01-01 to 24 h ahead of "
               "the processing machine's clock", MIN_CAPTURE_TS_MS, _latest_capture_ms),
    HeaderRule(H_SEQ, True, _DIGITS[H_SEQ],
               f"frame sequence number of the camera, 0 to {MAX_SEQ} (monotonic per camera and stream session)",
               0, MAX_SEQ),
    HeaderRule(H_WIDTH, True, _DIGITS["side"], f"frame width in pixels, 1 to {MAX_FRAME_SIDE}", 1, MAX_FRAME_SIDE),
    HeaderRule(H_HEIGHT, True, _DIGITS["side"], f"frame height in pixels, 1 to {MAX_FRAME_SIDE}", 1, MAX_FRAME_SIDE),
    HeaderRule(H_VERSION, True, str(SCHEMA_VERSION), f"`{SCHEMA_VERSION}`"),
    HeaderRule(H_MODEL, False, MODEL_PATTERN, "registry model to run on this frame, overriding the camera mapping"),
)
RULES = {rule.name: rule for rule in HEADER_RULES}
REQUIRED = tuple(rule.name for rule in HEADER_RULES if rule.required)


def check_camera_id(camera_id: str) -> str:
    """``camera_id`` if it is a valid camera id; raises :class:`InvalidMessage` (a ValueError)."""
    if not isinstance(camera_id, str) or not re.fullmatch(CAMERA_ID_PATTERN, camera_id, flags=re.ASCII):
        raise InvalidMessage(f"camera id {camera_id!r} is not valid: it must be {RULES[H_CAMERA].form}")
    return camera_id


def headers_markdown() -> str:
    """docs/schema.md's table of headers, made from :data:`HEADER_RULES`."""
    lines = ["| header | required | value |", "| --- | --- | --- |"]
    lines += [f"| `{r.name}` | {'yes' if r.required else 'no'} | {r.meaning} |" for r in HEADER_RULES]
    return "\n".join(lines)


Headers = Iterable[tuple[str, bytes | str | None]] | Mapping[str, bytes | str | None] | None


def _header_dict(headers: Headers) -> dict[str, bytes]:
    items = headers.items() if isinstance(headers, Mapping) else (headers or [])
    out: dict[str, bytes] = {}
    for k, v in items:
        if v is None:
            continue
        out[k] = v.encode() if isinstance(v, str) else bytes(v)
    return out


def _frame_headers(headers: Headers) -> dict[str, str]:
    """The frame headers as text, refusing a frame header given twice or not UTF-8."""
    items = list(headers.items() if isinstance(headers, Mapping) else (headers or []))
    out: dict[str, str] = {}
    for name, raw in items:
        if name not in RULES or raw is None:
            continue  # other headers (tracing, a producer's own) are carried along, unread
        if name in out:
            raise InvalidMessage(f"header {name} is given more than once")
        try:
            out[name] = raw if isinstance(raw, str) else bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidMessage(f"header {name} is not UTF-8: {bytes(raw)[:32]!r}") from None
    return out


@dataclass(frozen=True)
class FrameMessage:
    """One camera frame as it travels through Kafka. Built, it is valid: the constructor
    checks every field against :data:`HEADER_RULES` (ingest cannot send what the streaming
    job would refuse)."""

    camera_id: str
    capture_ts_ms: int
    seq: int
    width: int
    height: int
    jpeg: bytes
    model: str | None = None
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        for name, value in self._fields():
            if value is not None:
                RULES[name].check(str(value))

    def _fields(self) -> list[tuple[str, object]]:
        return [(H_CAMERA, self.camera_id), (H_CAPTURE_TS, self.capture_ts_ms), (H_SEQ, self.seq),
                (H_WIDTH, self.width), (H_HEIGHT, self.height), (H_VERSION, self.schema_version),
                (H_MODEL, self.model)]

    @property
    def key(self) -> bytes:
        return self.camera_id.encode()

    def headers(self) -> list[tuple[str, bytes]]:
        return [(name, str(value).encode()) for name, value in self._fields() if value is not None]

    @classmethod
    def from_kafka(cls, key: bytes | None, value: bytes | None, headers: Headers) -> FrameMessage:
        """Parse and validate; raises :class:`InvalidMessage` with the dead-letter reason."""
        h = _frame_headers(headers)
        missing = [name for name in REQUIRED if name not in h]
        if missing:
            raise InvalidMessage(f"missing header(s): {', '.join(missing)}")
        if h[H_VERSION] != str(SCHEMA_VERSION):
            raise InvalidMessage(f"unsupported schema_version {h[H_VERSION][:16]} (this build reads {SCHEMA_VERSION})")
        checked = {name: RULES[name].check(text) for name, text in h.items()}
        camera = checked[H_CAMERA]
        if key is None:
            raise InvalidMessage("no message key (the key must be the camera id)")
        if bytes(key) != camera.encode():
            raise InvalidMessage(f"key {bytes(key)[:64]!r} does not match camera_id header {camera!r}")
        if not value:
            raise InvalidMessage("empty payload")
        if len(value) > MAX_FRAME_BYTES:
            raise InvalidMessage(f"oversized payload: {len(value)} bytes > {MAX_FRAME_BYTES}")
        if value[:2] != b"\xff\xd8":
            raise InvalidMessage("payload is not a JPEG (no SOI marker)")
        return cls(camera, checked[H_CAPTURE_TS], checked[H_SEQ], checked[H_WIDTH], checked[H_HEIGHT],
                   bytes(value), checked.get(H_MODEL), SCHEMA_VERSION)


def dead_letter_headers(headers: Headers, reason: str, stage: str, source: str) -> list[tuple[str, bytes]]:
    """The original headers plus why, where and when the message was rejected."""
    kept = [(k, v) for k, v in _header_dict(headers).items() if not k.startswith("dlq_")]
    return kept + [(H_DLQ_REASON, reason.encode()), (H_DLQ_STAGE, stage.encode()),
                   (H_DLQ_SOURCE, source.encode()), (H_DLQ_TS, str(int(time.time() * 1000)).encode())]
