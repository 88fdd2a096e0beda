"""``argus bench tracking``: how well the per-camera tracker follows the people of a
simulated ground scene (``argus.live.scenes``), against the scene's truth.

Each camera's clip is decoded at the cameras' rate, detected with a model, and tracked
(:class:`~argus.track.bytetrack.CameraTracker`); the tracks are scored per camera with
TrackEval's own metrics (CLEAR MOT: MOTA and ID switches; Identity: IDF1; HOTA), a match
being IoU >= 0.5 with a true box. The same tracker is also fed the true boxes themselves
("truth" detections): the tracker's own share of the errors, apart from the detector's. The
detector's and the tracker's time are measured in the same run, on the same frames.

Not measured yet (issue 19): cross-camera IDF1 on global ids (no association yet), and the
streaming job's throughput with tracking on and off (tracking is not in the job yet).
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from argus.live.scenes import make_scene, plaza, read_truth
from argus.track.bytetrack import CameraTracker, TrackerSettings, iou_matrix

#: what a scene's true box counts as, fed to the tracker in the "truth" run
TRUTH_SCORE = 0.9
#: TrackEval's figures reported (HOTA's are averaged over its IoU thresholds, as it reports them)
REPORTED = ("MOTA", "IDF1", "HOTA", "IDSW", "CLR_Re", "CLR_Pr", "MT", "ML")


def scene_folder(cache: Path, cameras: int, people: int, seconds: float) -> Path:
    """The scene a benchmark uses, made once and kept (``<cache>/simulator/``)."""
    folder = cache / "simulator" / f"plaza-{cameras}cam-{people}people-{seconds:g}s"
    if not (folder / "cameras.yaml").exists():
        make_scene(folder, plaza(cameras, people), seconds=seconds)
    return folder


def decode_at(clip: Path, times_ms: Sequence[int]) -> list[np.ndarray]:
    """The frames of ``clip`` shown at ``times_ms`` (the newest frame at or before each)."""
    import av

    wanted, out = list(times_ms), []
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            at = int(round(float(frame.pts * stream.time_base) * 1000))
            while wanted and at >= wanted[0] - 1:
                out.append(frame.to_ndarray(format="rgb24"))
                wanted.pop(0)
            if not wanted:
                break
    return out


def sequence_data(truth: Sequence[Sequence[tuple[int, Sequence[float]]]],
                  tracked: Sequence[Sequence[tuple[int, Sequence[float]]]]) -> dict[str, Any]:
    """TrackEval's input for one sequence from per-frame (id, box) of the truth and of the
    tracker: ids made contiguous, IoU as similarity."""
    gt_index = {i: n for n, i in enumerate(sorted({i for frame in truth for i, _ in frame}))}
    tr_index = {i: n for n, i in enumerate(sorted({i for frame in tracked for i, _ in frame}))}

    def boxes(frame):
        return np.array([b for _, b in frame], dtype=float).reshape(-1, 4)

    return {
        "num_timesteps": len(truth), "num_gt_ids": len(gt_index), "num_tracker_ids": len(tr_index),
        "num_gt_dets": sum(len(f) for f in truth), "num_tracker_dets": sum(len(f) for f in tracked),
        "gt_ids": [np.array([gt_index[i] for i, _ in f], dtype=int) for f in truth],
        "tracker_ids": [np.array([tr_index[i] for i, _ in f], dtype=int) for f in tracked],
        "similarity_scores": [iou_matrix(boxes(g), boxes(t)) for g, t in zip(truth, tracked)],
    }


def score(data: dict[str, Any]) -> dict[str, float]:
    """TrackEval's CLEAR, Identity and HOTA of one sequence, the :data:`REPORTED` figures."""
    with contextlib.redirect_stdout(io.StringIO()):  # trackeval prints about datasets it cannot load
        from trackeval.metrics import CLEAR, HOTA, Identity

        results = {}
        for metric in (CLEAR({"THRESHOLD": 0.5, "PRINT_CONFIG": False}), Identity({"THRESHOLD": 0.5, "PRINT_CONFIG": False}),
                       HOTA()):
            results.update(metric.eval_sequence(data))
    return {name: round(float(np.mean(results[name])), 4) for name in REPORTED}


def track_frames(frames: Sequence[tuple[int, Sequence[tuple[str, float, Sequence[float]]]]],
                 settings: TrackerSettings | None = None) -> tuple[list[list[tuple[int, Sequence[float]]]], float]:
    """Track one camera's (t_ms, detections) in order: each frame's (track id, box) of its
    tracked people, and the seconds the tracker took."""
    tracker = CameraTracker(settings)
    out, spent = [], 0.0
    for t_ms, dets in frames:
        start = time.perf_counter()
        tracked = tracker.update(t_ms, dets)
        spent += time.perf_counter() - start
        out.append([(t.track_id, dets[t.index][2]) for t in tracked if t.track_id is not None])
    return out, spent


def bench_tracking(*, cameras: int = 3, people: int = 4, seconds: float = 20.0, rate_hz: float = 2.0,
                   model: str | None = None, batch: int = 8, cache: Path | None = None,
                   settings: TrackerSettings | None = None) -> dict[str, Any]:
    """Score the tracker on a plaza scene, per camera, on ``model``'s detections and on the
    true boxes (``model="truth"``: the true boxes only, no detector).

    :param rate_hz: the decoding rate (frames tracked per second of video).
    """
    from argus.config import ArgusConfig

    folder = scene_folder(cache or ArgusConfig().cache_dir, cameras, people, seconds)
    truth = read_truth(folder)
    clip_fps = 1000 / (truth[1]["t_ms"] - truth[0]["t_ms"])
    step = max(1, int(round(clip_fps / rate_hz)))
    moments = truth[::step]
    cams = sorted(moments[0]["objects"][0]["views"])
    true_views = {cam: [[(o["id"], o["views"][cam]) for o in m["objects"] if o["views"][cam]] for m in moments]
                  for cam in cams}
    runs: dict[str, Any] = {}
    sources = ["truth"] if model == "truth" else [model or _default_model(), "truth"]
    for source in sources:
        per_camera, detect_s, track_s, frames_n = {}, 0.0, 0.0, 0
        detector = None if source == "truth" else _detector(source, batch)
        for cam in cams:
            if detector is None:
                dets = [[("person", TRUTH_SCORE, box) for _, box in frame] for frame in true_views[cam]]
            else:
                images = decode_at(folder / f"{cam}.mp4", [m["t_ms"] for m in moments])
                start = time.perf_counter()
                found = [d for i in range(0, len(images), batch) for d in detector.detect(images[i:i + batch])]
                detect_s += time.perf_counter() - start
                dets = [[(d.class_name, float(d.score), tuple(float(v) for v in d.box)) for d in frame
                         if d.class_name == "person"] for frame in found]
            tracked, spent = track_frames(list(zip((m["t_ms"] for m in moments), dets)), settings)
            track_s += spent
            frames_n += len(dets)
            per_camera[cam] = {**score(sequence_data(true_views[cam], tracked)),
                               "true_people": len({i for f in true_views[cam] for i, _ in f}),
                               "tracks": len({i for f in tracked for i, _ in f})}
        runs[source] = {"cameras": per_camera,
                        "mean": {k: round(float(np.mean([c[k] for c in per_camera.values()])), 4) for k in REPORTED},
                        "frames": frames_n, "tracker_ms_per_frame": round(track_s * 1000 / max(frames_n, 1), 3),
                        **({"detector_ms_per_frame": round(detect_s * 1000 / max(frames_n, 1), 2),
                            "tracking_share_of_detection": round(track_s / detect_s, 5) if detect_s else None}
                           if detector is not None else {})}
    return {"benchmark": "tracking", "scene": str(folder), "cameras": cameras, "people": people, "seconds": seconds,
            "rate_hz": rate_hz, "frames_per_camera": len(moments), "match_iou": 0.5,
            "settings": (settings or TrackerSettings()).__dict__, "runs": runs,
            "not_measured": {"cross_camera_idf1": "no cross-camera association yet (issue 19)",
                             "streaming_tracking_on_vs_off": "tracking is not in the streaming job yet (issue 19)"}}


def _default_model() -> str:
    from argus.detect.detector import default_model_name

    return default_model_name()


def _detector(model: str, batch: int):
    from argus.detect.detector import Detector

    return Detector(model, batch_size=batch)
