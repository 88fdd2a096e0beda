"""``argus bench detector``: the Detector path against the bare model call, same run, same cores.

Both loops take the same frames; the bare loop calls only ``backend.infer`` on the tensor
the Detector's own pre-processing made from them. The two alternate every iteration so that
machine noise (other processes, CPU frequency) hits both alike.
"""

from __future__ import annotations

import time

from argus.detect import Detector
from argus.detect.devices import configure_devices
from argus.images import sample_frames


def bench_detector(model: str, batch: int, seconds: float, frame_size: tuple[int, int] = (480, 640),
                   warmup: int = 2) -> dict:
    detector = Detector(model, batch_size=batch)
    frames = sample_frames(batch, frame_size)
    tensor, _ = detector.backend.preprocess(frames)
    for _ in range(warmup):  # graph tracing, memory pools
        detector.detect(frames)
        detector.backend.infer(tensor)
    full_s = bare_s = 0.0
    rounds = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or rounds == 0:
        t0 = time.perf_counter()
        detector.detect(frames)
        t1 = time.perf_counter()
        detector.backend.infer(tensor)
        t2 = time.perf_counter()
        full_s += t1 - t0
        bare_s += t2 - t1
        rounds += 1
    images = rounds * batch
    devices = configure_devices()
    return {
        "model": model,
        "batch": batch,
        "images": images,
        "seconds": round(full_s + bare_s, 3),
        "img_per_s": round(images / full_s, 2),
        "bare_img_per_s": round(images / bare_s, 2),
        "ratio": round(bare_s / full_s, 4),
        "frame_size": list(frame_size),
        "cpu_threads": devices.cpu_threads,
        "gpus": list(devices.gpus),
    }


__all__ = ["bench_detector"]
