"""The HBase schema of Argus (documented in docs/schema.md).

Row keys put a salt first, derived from the camera id, so that a thousand cameras spread
over all regions while every row of one camera stays in one contiguous range; then the
camera; then the capture time *reversed* so that a scan returns the newest first; then the
frame's sequence number (and the detection's index). A key depends only on what the frame
is, never on when it was processed: a replayed micro-batch rewrites the same cells.
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


def tables(detections_ttl_s: int = DETECTIONS_TTL_S, frames_ttl_s: int = FRAMES_TTL_S) -> dict[str, TableSpec]:
    splits = tuple(f"{i:02x}".encode() for i in range(1, SALT_BUCKETS))
    return {
        "detections": TableSpec(NAMESPACE, "detections", (
            FamilySpec("d", ttl_s=detections_ttl_s),  # class, score, box, model, source
            FamilySpec("c", ttl_s=detections_ttl_s),  # optional small crop JPEG
        ), splits),
        "frames": TableSpec(NAMESPACE, "frames", (
            FamilySpec("t", ttl_s=frames_ttl_s),      # stage timestamps (latency)
            FamilySpec("f", ttl_s=frames_ttl_s),      # frame facts: size, model, counts, Kafka position
        ), splits),
        "cameras": TableSpec(NAMESPACE, "cameras", (FamilySpec("i", max_versions=3, in_memory=True),)),
        # one row per camera: its newest frame as a small JPEG, with its boxes (the live wall)
        "live": TableSpec(NAMESPACE, "live", (FamilySpec("l", ttl_s=LIVE_TTL_S, in_memory=True),)),
        # the console's settings of each user (row: user name)
        "console": TableSpec(NAMESPACE, "console", (FamilySpec("u"),)),
        # one row per streaming query: its lease (who runs it) and its latest progress
        "streams": TableSpec(NAMESPACE, "streams", (FamilySpec("s", in_memory=True),)),
        # one row per track of a camera (salt#camera#track id): its class and camera (t:), and
        # one p:<capture ms> cell per sighting (seq, index, box), so that a replayed batch
        # rewrites the same cells and first / last seen are the row's first / last column
        "tracks": TableSpec(NAMESPACE, "tracks", (
            FamilySpec("t", ttl_s=detections_ttl_s), FamilySpec("p", ttl_s=detections_ttl_s),
        ), splits),
        # archive reprocessing: one row per segment of a recording, one column per job
        # (model + decoding rate) that finished it, so that an interrupted run resumes
        "segments": TableSpec(NAMESPACE, "segments", (FamilySpec("m"),)),
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


def time_range(camera_id: str, since_ms: int | None, until_ms: int | None) -> tuple[bytes, bytes]:
    """Scan start/stop (stop exclusive) for one camera's rows captured in [since, until]."""
    prefix = camera_prefix(camera_id)
    start = prefix + (reverse_ts(until_ms).encode() if until_ms is not None else b"")
    stop = prefix + (f"{TS_MAX - since_ms + 1:013d}".encode() if since_ms else b"\xff")
    return start, stop
