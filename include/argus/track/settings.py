"""The tracker's settings (:class:`TrackerSettings`), apart from the tracker so that the CLI
makes its flags without importing numpy and scipy."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrackerSettings:
    """:param high_score: / :param low_score: the two detection tiers.
    :param new_track_score: the score a detection needs to start a track.
    :param match_diou: the distance-IoU a confident detection needs to take a track (it can be
        below 0: boxes that no longer overlap, at a few frames a second).
    :param low_match_iou: the IoU a low-score detection needs.
    :param confirm_frames: sightings before a new track is reported.
    :param max_lost_s: a track unseen this long is forgotten.
    """

    # ByteTrack's paper uses 0.6 / 0.7 with YOLOX's scores; the default model here (CenterNet)
    # scores the same people lower: on the plaza scene 0.3 / 0.4 tracks 62% of the true boxes
    # against 16% at 0.5 / 0.6 (argus bench tracking, docs/benchmarks.md)
    high_score: float = 0.3
    low_score: float = 0.1
    new_track_score: float = 0.4
    match_diou: float = -0.25
    low_match_iou: float = 0.5
    confirm_frames: int = 2
    max_lost_s: float = 5.0
