"""A ByteTrack-class multi-object tracker for one camera (Zhang et al., "ByteTrack:
Multi-Object Tracking by Associating Every Detection Box", ECCV 2022), in numpy, with the
Hungarian assignment from scipy.

Why not a package: the trackers on PyPI (supervision's ``ByteTrack``, boxmot) either pull in
a deep-learning stack of their own or keep their state in objects that cannot be written to
Spark's state store. The streaming job keeps each camera's tracker between micro-batches in
Spark's checkpointed state (a driver kill resumes the same tracks), so the whole tracker
state here is plain data: :meth:`CameraTracker.state` / :meth:`CameraTracker.from_state`.

What it does per frame, as ByteTrack does:

1. every track's box is predicted to the frame's time by a constant-velocity Kalman filter
   on (centre x, centre y, width, height), with the frame's own time step (cameras are
   decoded at a few frames a second, not at a fixed video rate);
2. the confident detections (score >= ``high_score``, 0.3 by default) are matched to the tracks by
   distance-IoU (which still ranks boxes that no longer overlap: at 2 frames a second a
   walking person near the camera moves more than their width), one class with itself only
   (Hungarian assignment, DIoU >= ``match_diou``);
3. the remaining tracks that were seen last frame are matched to the *low-score*
   detections (``low_score`` <= score < ``high_score``, IoU >= ``low_match_iou``): an object
   half hidden keeps its id instead of being dropped;
4. confident detections left over start new tracks (score >= ``new_track_score``), which
   count as confirmed once seen ``confirm_frames`` times; tracks not seen for ``max_lost_s``
   are forgotten.

Boxes are ``(x1, y1, x2, y2)`` normalised to the frame (the detectors' convention).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from argus.track.settings import TrackerSettings

#: Kalman noise, as ByteTrack's: position and velocity deviations relative to the box size
_STD_POSITION, _STD_VELOCITY = 1 / 20, 1 / 160


@dataclass
class Track:
    """One object followed by one camera (plain data: the tracker's state is a list of these)."""

    id: int
    class_name: str
    mean: list[float]  # cx, cy, w, h, vcx, vcy, vw, vh
    cov: list[list[float]]
    first_ms: int
    last_ms: int
    hits: int = 1
    score: float = 0.0
    #: seen in the previous frame (only such tracks take low-score detections)
    seen_last: bool = True

    @property
    def box(self) -> tuple[float, float, float, float]:
        cx, cy, w, h = self.mean[:4]
        return cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2


@dataclass(frozen=True)
class TrackedBox:
    """A detection's track: ``track_id`` None for a detection that no track took (a low-score
    one, or a new track not yet confirmed)."""

    index: int
    track_id: int | None


def _xywh(box: Sequence[float]) -> np.ndarray:
    x1, y1, x2, y2 = box
    return np.array([(x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, 1e-6), max(y2 - y1, 1e-6)])


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` (n, 4) with every box of ``b`` (m, 4), xyxy."""
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda z: (z[:, 2] - z[:, 0]) * (z[:, 3] - z[:, 1])  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def diou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance-IoU (Zheng et al., AAAI 2020) of every box of ``a`` with every box of ``b``:
    IoU less the squared distance of the centres over the squared diagonal of the box
    enclosing both, in -1 .. 1. Unlike IoU it still ranks boxes that do not overlap, which at
    a few frames a second is what a walking person's next box often is."""
    iou = iou_matrix(a, b)
    if not iou.size:
        return iou
    ca, cb = (a[:, :2] + a[:, 2:]) / 2, (b[:, :2] + b[:, 2:]) / 2
    d2 = ((ca[:, None, :] - cb[None, :, :]) ** 2).sum(axis=2)
    lo = np.minimum(a[:, None, :2], b[None, :, :2])
    hi = np.maximum(a[:, None, 2:], b[None, :, 2:])
    c2 = ((hi - lo) ** 2).sum(axis=2)
    return iou - d2 / np.maximum(c2, 1e-12)


def assign(similarity: np.ndarray, least: float) -> list[tuple[int, int]]:
    """The (row, column) pairs of the assignment of most total similarity, each pair at least
    ``least`` similar (-inf: never)."""
    if not similarity.size:
        return []
    # pairs below ``least`` are priced out rather than left to linear_sum_assignment as -inf
    cost = np.where(similarity >= least, -similarity, 1e6)
    rows, cols = linear_sum_assignment(cost)
    return [(r, c) for r, c in zip(rows, cols) if similarity[r, c] >= least]


class CameraTracker:
    """The tracks of one camera.

    :param settings: thresholds and lifetimes.
    :param next_id: the id the next new track gets (ids only grow, per camera).
    """

    def __init__(self, settings: TrackerSettings | None = None, tracks: list[Track] | None = None, next_id: int = 1):
        self.settings = settings or TrackerSettings()
        self.tracks = list(tracks or [])
        self.next_id = next_id
        self.last_ms: int | None = None

    # ---- state (Spark's state store keeps it between micro-batches) ----
    def state(self) -> dict[str, Any]:
        return {"next_id": self.next_id, "last_ms": self.last_ms, "tracks": [asdict(t) for t in self.tracks]}

    @classmethod
    def from_state(cls, state: dict[str, Any] | None, settings: TrackerSettings | None = None) -> CameraTracker:
        if not state:
            return cls(settings)
        tracker = cls(settings, [Track(**t) for t in state["tracks"]], state["next_id"])
        tracker.last_ms = state.get("last_ms")
        return tracker

    # ---- Kalman filter ----
    @staticmethod
    def _motion(dt: float) -> np.ndarray:
        f = np.eye(8)
        f[:4, 4:] = np.eye(4) * dt
        return f

    def _predict(self, track: Track, dt: float) -> None:
        mean, cov = np.asarray(track.mean), np.asarray(track.cov)
        size = max(mean[2], mean[3])
        q = np.diag(np.r_[[(_STD_POSITION * size) ** 2] * 4, [(_STD_VELOCITY * size) ** 2] * 4]) * max(dt, 1e-3)
        f = self._motion(dt)
        mean = f @ mean
        mean[2:4] = np.maximum(mean[2:4], 1e-4)
        track.mean, track.cov = mean.tolist(), (f @ cov @ f.T + q).tolist()

    @staticmethod
    def _update(track: Track, box: Sequence[float]) -> None:
        mean, cov = np.asarray(track.mean), np.asarray(track.cov)
        z = _xywh(box)
        h = np.eye(4, 8)
        r = np.diag([(_STD_POSITION * max(z[2], z[3])) ** 2] * 4)
        s = h @ cov @ h.T + r
        gain = cov @ h.T @ np.linalg.inv(s)
        mean = mean + gain @ (z - h @ mean)
        track.mean, track.cov = mean.tolist(), ((np.eye(8) - gain @ h) @ cov).tolist()

    def _new_track(self, class_name: str, box: Sequence[float], score: float, at_ms: int) -> Track:
        z = _xywh(box)
        size = max(z[2], z[3])
        cov = np.diag(np.r_[[(2 * _STD_POSITION * size) ** 2] * 4, [(10 * _STD_VELOCITY * size) ** 2] * 4])
        track = Track(self.next_id, class_name, np.r_[z, np.zeros(4)].tolist(), cov.tolist(), at_ms, at_ms, 1, score)
        self.next_id += 1
        return track

    # ---- one frame ----
    def update(self, at_ms: int, detections: Sequence[tuple[str, float, Sequence[float]]]) -> list[TrackedBox]:
        """Track one frame's detections ``(class_name, score, box)``; returns each detection's
        track (in the detections' order). Frames must come in capture order; an older frame
        than the last one is tracked without moving the tracks back in time."""
        s = self.settings
        dt = 0.0 if self.last_ms is None else max(0.0, (at_ms - self.last_ms) / 1000)
        for track in self.tracks:
            self._predict(track, dt)
        self.last_ms = at_ms if self.last_ms is None else max(self.last_ms, at_ms)
        assigned: dict[int, Track] = {}  # detection index -> track
        free = list(range(len(self.tracks)))
        high = [i for i, (_, score, _) in enumerate(detections) if score >= s.high_score]
        low = [i for i, (_, score, _) in enumerate(detections) if s.low_score <= score < s.high_score]

        def match(dets: list[int], tracks: list[int], similarity, least: float) -> list[int]:
            boxes = np.array([detections[i][2] for i in dets], dtype=float).reshape(-1, 4)
            held = np.array([self.tracks[t].box for t in tracks], dtype=float).reshape(-1, 4)
            sim = similarity(boxes, held)
            for a, i in enumerate(dets):  # a class matches itself only
                for b, t in enumerate(tracks):
                    if detections[i][0] != self.tracks[t].class_name:
                        sim[a, b] = -np.inf
            taken = set()
            for a, b in assign(sim, least):
                assigned[dets[a]] = self.tracks[tracks[b]]
                taken.add(tracks[b])
            return [t for t in tracks if t not in taken]

        free = match(high, free, diou_matrix, s.match_diou)
        match(low, [t for t in free if self.tracks[t].seen_last], iou_matrix, s.low_match_iou)
        seen = set()
        for i, track in assigned.items():
            _, score, box = detections[i]
            self._update(track, box)
            track.hits, track.last_ms, track.score = track.hits + 1, max(track.last_ms, at_ms), float(score)
            seen.add(track.id)
        for i in high:
            if i not in assigned and detections[i][1] >= s.new_track_score:
                name, score, box = detections[i]
                track = self._new_track(name, box, float(score), at_ms)
                self.tracks.append(track)
                assigned[i] = track
                seen.add(track.id)
        for track in self.tracks:
            track.seen_last = track.id in seen
        # a new track missed at once was noise (ByteTrack drops unconfirmed tracks unmatched)
        self.tracks = [t for t in self.tracks if (self.last_ms - t.last_ms) / 1000 <= s.max_lost_s
                       and (t.seen_last or t.hits >= s.confirm_frames)]
        return [TrackedBox(i, t.id if (t := assigned.get(i)) is not None and t.hits >= s.confirm_frames else None)
                for i in range(len(detections))]
