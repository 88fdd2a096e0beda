"""Tracking as a stream: what the detection job tells the tracker about each frame, and the
per-camera step Spark's stateful API runs (``applyInPandasWithState``, keyed by camera, the
tracker's state in the query's checkpoint).

The pieces are pure (no Spark here): :func:`frame_message` is the message of one detected
frame (JSON, keyed by camera), :func:`track_camera` takes one camera's frames of a
micro-batch and its state, and returns each tracked detection and the new state. A frame
the state has already seen (a replayed micro-batch) is passed over, so replays change no
track; frames of a batch are taken in capture order whatever order they came in.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from argus.track.bytetrack import CameraTracker
from argus.track.settings import TrackerSettings

#: how many of the last frames the state remembers, to pass over a replay's
SEEN_KEPT = 256
#: the columns of :func:`track_camera`'s rows (Spark's output schema is made from them)
TRACKED_COLUMNS = {"camera_id": "string", "capture_ts_ms": "long", "seq": "long", "index": "int",
                   "track_id": "long", "class_name": "string", "score": "double", "box": "string"}
#: the message's fields, as Spark reads them (``from_json``)
MESSAGE_SCHEMA = ("camera_id string, capture_ts_ms long, seq long, model string, "
                  "detections array<struct<class_name: string, score: double, box: array<double>>>")


def frame_message(camera_id: str, capture_ts_ms: int, seq: int, model: str,
                  detections: Iterable[tuple[str, float, Sequence[float]]]) -> bytes:
    """One detected frame as the tracker reads it (JSON; send it keyed by the camera)."""
    return json.dumps({"camera_id": camera_id, "capture_ts_ms": int(capture_ts_ms), "seq": int(seq), "model": model,
                       "detections": [{"class_name": c, "score": round(float(s), 4),
                                       "box": [round(float(v), 5) for v in b]} for c, s, b in detections]},
                      separators=(",", ":")).encode()


def track_camera(camera_id: str, frames: Iterable[Mapping[str, Any]], state: str | None,
                 settings: TrackerSettings | None = None) -> tuple[list[dict[str, Any]], str]:
    """Track one camera's frames of a micro-batch (dicts of :data:`MESSAGE_SCHEMA`'s fields).

    :param state: the camera's state as the last batch left it (JSON), None for a new camera.
    :return: a row per detection a confirmed track took (:data:`TRACKED_COLUMNS`), and the
        new state.
    """
    saved = json.loads(state) if state else {}
    tracker = CameraTracker.from_state(saved.get("tracker"), settings)
    seen = [tuple(s) for s in saved.get("seen", [])]
    known = set(seen)
    rows = []
    for frame in sorted(frames, key=lambda f: (int(f["capture_ts_ms"]), int(f["seq"]))):
        key = (int(frame["capture_ts_ms"]), int(frame["seq"]))
        if key in known:
            continue  # a replayed batch: this frame's detections are tracked already
        known.add(key)
        seen.append(key)
        found = frame.get("detections")
        dets = [(d["class_name"], float(d["score"]), tuple(float(v) for v in d["box"]))
                for d in (found if found is not None else [])]  # a list, or Arrow's array of structs
        for tracked in tracker.update(key[0], dets):
            if tracked.track_id is None:
                continue
            name, score, box = dets[tracked.index]
            rows.append({"camera_id": camera_id, "capture_ts_ms": key[0], "seq": key[1], "index": tracked.index,
                         "track_id": tracked.track_id, "class_name": name, "score": score,
                         "box": ",".join(f"{v:.5f}" for v in box)})
    return rows, json.dumps({"tracker": tracker.state(), "seen": seen[-SEEN_KEPT:]}, separators=(",", ":"))
