"""The HBase schema of Argus (documented in docs/schema.md).

Row keys put a salt first, derived from the camera id, so that a thousand cameras spread
over all regions while every row of one camera stays in one contiguous range; then the
camera; then the capture time *reversed* so that a scan returns the newest first; then the
frame's sequence number (and the detection's index). A key depends only on what the frame
is, never on when it was processed: a replayed micro-batch rewrites the same cells.

``detections_by_time`` holds the same detections time-major (salt, reversed time, camera,
...): each salt bucket is newest first across all of its cameras, so that a search over
every camera reads 16 short range scans instead of the whole table.
"""

from __future__ import annotations

import zlib

from argus.live.message import check_camera_id
from argus.store.admin import FamilySpec, TableSpec

NAMESPACE = "argus"
SALT_BUCKETS = 16
#: capture times are ms since the epoch; 13 digits last until the year 2286
TS_MAX = 10**13 - 1
SEP = "#"

DETECTIONS_TTL_S = 90 * 86400
FRAMES_TTL_S = 30 * 86400
#: a camera that stopped shows its last frame for a day, then nothing
LIVE_TTL_S = 86400


def tables(detections_ttl_s: int = DETECTIONS_TTL_S, frames_ttl_s: int = FRAMES_TTL_S,
           namespace: str = NAMESPACE) -> dict[str, TableSpec]:
    """Argus's tables by short name.

    :param namespace: the HBase namespace; another one (``argus bench search``'s) holds a
        copy of the schema that leaves the real tables untouched.
    """
    splits = tuple(f"{i:02x}".encode() for i in range(1, SALT_BUCKETS))
    return {
        "detections": TableSpec(namespace, "detections", (
            FamilySpec("d", ttl_s=detections_ttl_s),  # class, score, box, model, source
            FamilySpec("c", ttl_s=detections_ttl_s),  # optional small crop JPEG
        ), splits),
        # the same detections' d: cells (no crop) keyed time-major: all-camera search
        "detections_by_time": TableSpec(namespace, "detections_by_time", (
            FamilySpec("d", ttl_s=detections_ttl_s),
        ), splits),
        "frames": TableSpec(namespace, "frames", (
            FamilySpec("t", ttl_s=frames_ttl_s),      # stage timestamps (latency)
            FamilySpec("f", ttl_s=frames_ttl_s),      # frame facts: size, model, counts, Kafka position
        ), splits),
        "cameras": TableSpec(namespace, "cameras", (FamilySpec("i", max_versions=3, in_memory=True),)),
        # one row per camera: its newest frame as a small JPEG, with its boxes (the live wall)
        "live": TableSpec(namespace, "live", (FamilySpec("l", ttl_s=LIVE_TTL_S, in_memory=True),)),
        # the console's settings of each user (row: user name)
        "console": TableSpec(namespace, "console", (FamilySpec("u"),)),
        # one row per streaming query: its lease (who runs it) and its latest progress
        "streams": TableSpec(namespace, "streams", (FamilySpec("s", in_memory=True),)),
        # one row per track of a camera (salt#camera#track id): its class and camera (t:), and
        # one p:<capture ms> cell per sighting (seq, index, box), so that a replayed batch
        # rewrites the same cells and first / last seen are the row's first / last column
        "tracks": TableSpec(namespace, "tracks", (
            FamilySpec("t", ttl_s=detections_ttl_s), FamilySpec("p", ttl_s=detections_ttl_s),
        ), splits),
        # archive reprocessing: one row per segment of a recording, one column per job
        # (model + decoding rate) that finished it, so that an interrupted run resumes
        "segments": TableSpec(namespace, "segments", (FamilySpec("m"),)),
    }


def salt(camera_id: str) -> str:
    return f"{zlib.crc32(camera_id.encode()) % SALT_BUCKETS:02x}"


def camera_prefix(camera_id: str) -> bytes:
    return f"{salt(camera_id)}{SEP}{check_camera_id(camera_id)}{SEP}".encode()


def reverse_ts(ts_ms: int) -> str:
    if not 0 <= ts_ms <= TS_MAX:
        raise ValueError(f"capture timestamp {ts_ms} is not in milliseconds since the epoch")
    return f"{TS_MAX - ts_ms:013d}"


def frame_key(camera_id: str, ts_ms: int, seq: int) -> bytes:
    return camera_prefix(camera_id) + f"{reverse_ts(ts_ms)}{SEP}{seq:012d}".encode()


def detection_key(camera_id: str, ts_ms: int, seq: int, index: int) -> bytes:
    return frame_key(camera_id, ts_ms, seq) + f"{SEP}{index:04d}".encode()


def track_key(camera_id: str, track_id: int) -> bytes:
    """A track's row in ``tracks``: the camera's salt and prefix, then its id (per camera)."""
    return camera_prefix(camera_id) + f"{int(track_id):012d}".encode()


def time_major_key(camera_id: str, ts_ms: int, seq: int, index: int) -> bytes:
    """A detection's key in ``detections_by_time``: the camera's salt, then the reversed
    capture time, then the camera, seq and index (so a bucket is newest first across cameras)."""
    return (f"{salt(camera_id)}{SEP}{reverse_ts(ts_ms)}{SEP}{check_camera_id(camera_id)}{SEP}"
            f"{seq:012d}{SEP}{index:04d}").encode()


def parse_time_major_key(key: bytes) -> tuple[str, int, int, int]:
    """(camera, capture ms, seq, index) of a :func:`time_major_key` (camera ids hold no ``#``)."""
    _, reversed_ts, camera, seq, index = key.decode().split(SEP)
    return camera, TS_MAX - int(reversed_ts), int(seq), int(index)


def bucket_prefix(bucket: int) -> bytes:
    """The key prefix of salt bucket ``bucket`` (0 .. SALT_BUCKETS - 1)."""
    if not 0 <= bucket < SALT_BUCKETS:
        raise ValueError(f"salt bucket {bucket} is not in 0..{SALT_BUCKETS - 1}")
    return f"{bucket:02x}{SEP}".encode()


def _reversed_range(prefix: bytes, since_ms: int | None, until_ms: int | None) -> tuple[bytes, bytes]:
    """Start/stop (stop exclusive) of the keys ``prefix + reversed time ...`` captured in [since, until]."""
    start = prefix + (reverse_ts(until_ms).encode() if until_ms is not None else b"")
    stop = prefix + (f"{TS_MAX - since_ms + 1:013d}".encode() if since_ms else b"\xff")
    return start, stop


def time_range(camera_id: str, since_ms: int | None, until_ms: int | None) -> tuple[bytes, bytes]:
    """Scan start/stop (stop exclusive) for one camera's rows captured in [since, until]."""
    return _reversed_range(camera_prefix(camera_id), since_ms, until_ms)


def bucket_time_range(bucket: int, since_ms: int | None, until_ms: int | None) -> tuple[bytes, bytes]:
    """Scan start/stop (stop exclusive) for one salt bucket of ``detections_by_time``:
    every camera's detections captured in [since, until]."""
    return _reversed_range(bucket_prefix(bucket), since_ms, until_ms)
