"""``argus bench archive``: archive reprocessing on 1, 2, ... executors vs bare decode+detect.

The same archive (the simulator's scenes as 32-s recordings, filed under two cameras) is reprocessed from scratch with
each executor count on the local Spark standalone cluster, one core and one TensorFlow
thread per executor. Frames/s is the job's own measure: frames over the detection stage,
after every executor has loaded its model (the job's warm-up), so that it compares with the
bare figure. Bare decode+detect runs the same segments from local copies of the clips in as
many plain processes as each executor count, one thread each, models loaded first, with no
Spark, HDFS or HBase: what the job adds is the difference, and bare's own speed-up is how
far the machine scales with its cores busy. Each figure is the mean of ``repeats`` runs,
bare and job runs interleaved (:func:`run_order`): the machine's speed drifts by 10-20%
within minutes, and running all bare figures first, then all jobs, once moved the
efficiency between 0.85 and 1.02 from one benchmark to the next.
"""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

from argus import config
from argus.archive.layout import put
from argus.config import ArgusConfig
from argus.detect.devices import cpu_threads
from argus.archive.hdfs import webhdfs_client
from argus.archive.reprocess import Recording, decode_segment, longest_first, plan_segments, recording_duration_s
from argus.archive.launcher import ReprocessJobSpec
from argus.detect.detector import default_model_name

BENCH_ROOT = "/argus/bench/archive"
START = 1_790_000_000_000


def bench_clips(cfg: ArgusConfig, seconds: int) -> list[Path]:
    """The simulator's scenes as ``seconds``-long recordings (archives hold long files, not
    8-second clips), made once and cached."""
    from argus.live.simulate import SCENES, make_clip

    folder = cfg.cache_dir / "simulator"
    return [p if (p := folder / f"bench-{i}-{seconds}s.mp4").exists() else make_clip(p, i, seconds=seconds)
            for i in range(len(SCENES))]


def _archive(cfg: ArgusConfig, recordings: int, seconds: int) -> list[tuple[Path, str, int]]:
    """(local clip, camera, start ms) of each recording, uploaded once (idempotent)."""
    clips = bench_clips(cfg, seconds)
    client = webhdfs_client(cfg)
    root = f"{BENCH_ROOT}/{seconds}s"
    layout = [(clips[i % len(clips)], f"bench-{i % 2}", START + i * 3_600_000) for i in range(recordings)]
    for clip, camera, start in layout:
        put([clip], camera, client, start_ms=start, root=root)
    return layout


_worker: dict = {}


def _init_worker(model: str, batch: int, threads: int) -> None:
    config.set_cpu_threads(threads)
    import fsspec

    from argus.detect import Detector
    from argus.media.images import sample_frames

    detector = Detector(model, batch_size=batch)
    detector.detect(sample_frames(batch, (480, 640)))  # graph tracing before the clock starts
    _worker.update(detector=detector, fs=fsspec.filesystem("file"))


def _bare_segment(args) -> int:
    segment, rate_hz, batch = args
    frames = [f.rgb for f in decode_segment(_worker["fs"], segment, rate_hz, threads=cpu_threads())]
    for i in range(0, len(frames), batch):
        _worker["detector"].detect(frames[i:i + batch])
    return len(frames)


def bare_decode_detect(layout, model: str, rate_hz: float, window_s: float, batch: int, workers: int,
                       threads: int = 1) -> dict:
    import fsspec

    fs = fsspec.filesystem("file")
    segments = []
    for clip, camera, start in layout:
        rec = Recording(str(clip), camera, "", start, "video")
        segments += plan_segments(rec, recording_duration_s(fs, rec, rate_hz), window_s, rate_hz, batch)
    ctx = multiprocessing.get_context("spawn")  # TensorFlow is not fork-safe
    with ctx.Pool(workers, initializer=_init_worker, initargs=(model, batch, threads)) as pool:
        pool.map(_bare_segment, [(segments[0], rate_hz, batch)] * workers, chunksize=1)  # all workers up
        t0 = time.perf_counter()
        # the job's order: full windows first, each recording's short tail last
        frames = sum(pool.map(_bare_segment, [(s, rate_hz, batch) for s in longest_first(segments)], chunksize=1))
        seconds = time.perf_counter() - t0
    return {"workers": workers, "threads": threads, "frames": frames, "seconds": round(seconds, 3),
            "fps": round(frames / seconds, 3)}


def _job_run(cfg: ArgusConfig, n: int, seconds: int, model: str, rate_hz: float, window_s: float,
             batch: int) -> dict:
    spec = ReprocessJobSpec(archive_root=f"{cfg.hdfs_uri}{BENCH_ROOT}/{seconds}s", model=model, rate_hz=rate_hz,
                            window_s=window_s, batch_size=batch, executors=n, cores_per_executor=1, resume=False)
    out = spec.run(cfg, timeout=3600)
    if out.returncode != 0 or out.result is None:
        raise RuntimeError(f"reprocessing with {n} executor(s) failed:\n{out.output[-3000:]}")
    r = out.result
    if r["failures"]:
        raise RuntimeError(f"the benchmark archive has unreadable recordings: {r['failures']}")
    return {"executors": n, "frames": r["frames"], "segments": r["segments_done"], "seconds": r["seconds"],
            "fps": r["fps"], "segment_seconds": r["segment_seconds"], "total_seconds": r["total_seconds"]}


def run_order(executors: list[int], repeats: int) -> list[tuple[str, int]]:
    """The measurements, ("bare" | "job", executors), interleaved so that a drift of the
    machine's speed during the benchmark hits every figure alike: each round runs every
    count bare and as a job, and every other round runs in the reverse order (ABBA)."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, not {repeats}")
    one = [(kind, n) for n in executors for kind in ("bare", "job")]
    return [step for r in range(repeats) for step in (one if r % 2 == 0 else one[::-1])]


def _mean_fps(runs: list[dict]) -> float:
    return round(sum(r["fps"] for r in runs) / len(runs), 3)


def bench_archive(executors: list[int], recordings: int = 4, seconds: int = 32, rate_hz: float = 5.0,
                  window_s: float = 10.0, model: str | None = None, batch: int = 8,
                  cfg: ArgusConfig | None = None, repeats: int = 2) -> dict:
    """Frames/s of the job and of bare decode+detect at each executor count, each measured
    ``repeats`` times in the interleaved :func:`run_order`; ratios are of the means."""
    model = model or default_model_name()
    cfg = cfg or ArgusConfig()
    order = run_order(executors, repeats)
    layout = _archive(cfg, recordings, seconds)
    runs, bare_runs = [], []
    for kind, n in order:
        if kind == "bare":  # bare at every count too: how far the machine itself scales
            bare_runs.append(bare_decode_detect(layout, model, rate_hz, window_s, batch, workers=n))
        else:
            runs.append(_job_run(cfg, n, seconds, model, rate_hz, window_s, batch))
    job_fps = {n: _mean_fps([r for r in runs if r["executors"] == n]) for n in executors}
    bare_fps = {n: _mean_fps([b for b in bare_runs if b["workers"] == n]) for n in executors}
    lo, hi = min(executors), max(executors)
    return {
        "model": model, "rate_hz": rate_hz, "window_s": window_s, "batch": batch, "recordings": recordings,
        "recording_seconds": seconds, "repeats": repeats,
        "runs": runs, "bare_runs": bare_runs,
        "fps": {str(n): job_fps[n] for n in executors}, "bare_fps": {str(n): bare_fps[n] for n in executors},
        "bare": {"workers": hi, "fps": bare_fps[hi]},
        "speedup": round(job_fps[hi] / job_fps[lo], 3) if hi != lo else 1.0,
        "speedup_of": f"{hi} vs {lo} executors",
        "bare_speedup": round(bare_fps[hi] / bare_fps[lo], 3) if hi != lo else 1.0,
        "efficiency": round(job_fps[hi] / bare_fps[hi], 3),
    }
