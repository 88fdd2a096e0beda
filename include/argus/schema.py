"""The frame message on Kafka (schema version 1) and its dead-letter form.

Documented in docs/schema.md. Key = camera id; value = JPEG bytes; headers carry the
metadata so that the payload stays a plain image any tool can open.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

SCHEMA_VERSION = 1
FRAMES_TOPIC = "argus.frames"
DLQ_TOPIC = "argus.frames.dlq"
#: A frame larger than this is refused (broker and producer limits are 16 MiB).
MAX_FRAME_BYTES = 12 * 2**20

H_CAMERA = "camera_id"
H_CAPTURE_TS = "capture_ts_ms"
H_SEQ = "seq"
H_WIDTH = "width"
H_HEIGHT = "height"
H_VERSION = "schema_version"
H_MODEL = "model"
REQUIRED = (H_CAMERA, H_CAPTURE_TS, H_SEQ, H_WIDTH, H_HEIGHT, H_VERSION)

H_DLQ_REASON = "dlq_reason"
H_DLQ_STAGE = "dlq_stage"
H_DLQ_SOURCE = "dlq_source"
H_DLQ_TS = "dlq_ts_ms"


class InvalidMessage(ValueError):
    """A Kafka message that is not a valid frame; ``reason`` goes to the dead-letter topic."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


Headers = Iterable[tuple[str, bytes | str | None]] | Mapping[str, bytes | str | None] | None


def _header_dict(headers: Headers) -> dict[str, bytes]:
    items = headers.items() if isinstance(headers, Mapping) else (headers or [])
    out: dict[str, bytes] = {}
    for k, v in items:
        if v is None:
            continue
        out[k] = v.encode() if isinstance(v, str) else bytes(v)
    return out


@dataclass(frozen=True)
class FrameMessage:
    """One camera frame as it travels through Kafka."""

    camera_id: str
    capture_ts_ms: int
    seq: int
    width: int
    height: int
    jpeg: bytes
    model: str | None = None
    schema_version: int = SCHEMA_VERSION

    @property
    def key(self) -> bytes:
        return self.camera_id.encode()

    def headers(self) -> list[tuple[str, bytes]]:
        hs = [(H_CAMERA, self.camera_id), (H_CAPTURE_TS, str(self.capture_ts_ms)), (H_SEQ, str(self.seq)),
              (H_WIDTH, str(self.width)), (H_HEIGHT, str(self.height)), (H_VERSION, str(self.schema_version))]
        if self.model:
            hs.append((H_MODEL, self.model))
        return [(k, v.encode()) for k, v in hs]

    @classmethod
    def from_kafka(cls, key: bytes | None, value: bytes | None, headers: Headers) -> FrameMessage:
        """Parse and validate; raises :class:`InvalidMessage` with the dead-letter reason."""
        h = _header_dict(headers)
        missing = [name for name in REQUIRED if name not in h]
        if missing:
            raise InvalidMessage(f"missing header(s): {', '.join(missing)}")
        version = _int(h, H_VERSION)
        if version != SCHEMA_VERSION:
            raise InvalidMessage(f"unsupported schema_version {version} (this build reads {SCHEMA_VERSION})")
        camera = h[H_CAMERA].decode(errors="replace").strip()
        if not camera:
            raise InvalidMessage("empty camera_id header")
        if key is not None and key.decode(errors="replace") != camera:
            raise InvalidMessage(f"key {key[:64]!r} does not match camera_id header {camera!r}")
        width, height = _int(h, H_WIDTH), _int(h, H_HEIGHT)
        if width <= 0 or height <= 0:
            raise InvalidMessage(f"bad frame size {width}x{height}")
        if not value:
            raise InvalidMessage("empty payload")
        if len(value) > MAX_FRAME_BYTES:
            raise InvalidMessage(f"oversized payload: {len(value)} bytes > {MAX_FRAME_BYTES}")
        if value[:2] != b"\xff\xd8":
            raise InvalidMessage("payload is not a JPEG (no SOI marker)")
        model = h[H_MODEL].decode() if h.get(H_MODEL) else None
        return cls(camera, _int(h, H_CAPTURE_TS), _int(h, H_SEQ), width, height, bytes(value), model, version)


def _int(h: dict[str, bytes], name: str) -> int:
    try:
        return int(h[name])
    except ValueError:
        raise InvalidMessage(f"header {name} is not an integer: {h[name][:32]!r}") from None


def dead_letter_headers(headers: Headers, reason: str, stage: str, source: str) -> list[tuple[str, bytes]]:
    """The original headers plus why, where and when the message was rejected."""
    kept = [(k, v) for k, v in _header_dict(headers).items() if not k.startswith("dlq_")]
    return kept + [(H_DLQ_REASON, reason.encode()), (H_DLQ_STAGE, stage.encode()),
                   (H_DLQ_SOURCE, source.encode()), (H_DLQ_TS, str(int(time.time() * 1000)).encode())]
