"""``argus bench detector``: the Detector path against the bare model call, same run, same cores.

Both loops take the same frames; the bare loop calls only ``backend.infer`` on the tensor
the Detector's own pre-processing made from them. The two alternate every iteration so that
machine noise (other processes, CPU frequency) hits both alike.
"""

from __future__ import annotations

import multiprocessing
import time

from argus import config
from argus.detect import Detector
from argus.detect.devices import configure_devices, framework_for
from argus.media.images import sample_frames


def bench_detector(model: str, batch: int, seconds: float, frame_size: tuple[int, int] = (480, 640),
                   warmup: int = 2, ready=None) -> dict:
    """:param ready: called once the model is loaded and warm, before the clock starts
    (:func:`bench_detector_processes` lines its processes up with it)."""
    detector = Detector(model, batch_size=batch)
    frames = sample_frames(batch, frame_size)
    tensor, _ = detector.backend.preprocess(frames)
    for _ in range(warmup):  # graph tracing, memory pools
        detector.detect(frames)
        detector.backend.infer(tensor)
    if ready is not None:
        ready()
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
    devices = configure_devices(framework_for(detector.spec.family))
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
        "backend": devices.backend,
    }


def _bench_in_process(model: str, batch: int, seconds: float, threads: int, barrier) -> dict:
    config.set_cpu_threads(threads)
    return bench_detector(model, batch, seconds, ready=barrier.wait)


def bench_detector_processes(model: str, batch: int, seconds: float, processes: int, threads: int) -> dict:
    """:func:`bench_detector` in ``processes`` processes of ``threads`` threads each, at once:
    the bare detector laid out as a Spark job's tasks (``spark.task.cpus`` = ``threads``).
    Frames/s are summed. On this project's 2-core VM, two single-threaded processes ran the
    bare model 6-45% faster than one process with two threads (three measurements)."""
    ctx = multiprocessing.get_context("spawn")  # TensorFlow is not fork-safe
    with ctx.Manager() as manager, ctx.Pool(processes) as pool:
        barrier = manager.Barrier(processes)  # every model loaded before any clock starts
        runs = pool.starmap(_bench_in_process, [(model, batch, seconds, threads, barrier)] * processes)
    total = {k: round(sum(r[k] for r in runs), 2) for k in ("images", "img_per_s", "bare_img_per_s")}
    return {**runs[0], **total, "seconds": max(r["seconds"] for r in runs),
            "ratio": round(total["img_per_s"] / total["bare_img_per_s"], 4), "cpu_threads": threads,
            "processes": processes}


__all__ = ["bench_detector", "bench_detector_processes"]
