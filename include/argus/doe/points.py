"""Running one design point: the benchmark at its settings (archive job or live pipeline),
recorded in the sweep's folder once."""

from __future__ import annotations

import math
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path

from argus import process
from argus.config import ArgusConfig
from argus.detect.detector import default_model_name
from argus.doe.analysis import optimum_settings
from argus.doe.spec import FACTOR_NAMES, MAX_EXECUTORS_PER_CORE, MODES
from argus.doe.sweep import CONFIRMATION_FILE, RUNS_FILE, Sweep, utc_now

#: where archive-mode points find their video (uploaded once per size)
DOE_ARCHIVE_ROOT = "/argus/bench/doe"
_ARCHIVE_START_MS = 1_790_000_000_000


PointRunner = Callable[..., dict]


def run_point(settings: Mapping[str, float], mode: str, seconds: float, cfg: ArgusConfig | None = None, *,
              model: str | None = None, window_s: float = 4.0, cameras: int = 2, cores: int = 2,
              log_path: Path | None = None, timeout: float | None = None,
              on_start: Callable[[subprocess.Popen], None] | None = None) -> dict:
    """Run one benchmark at ``settings`` and return what was run and measured.

    Factors map to the benchmarks as: ``executors`` -> Spark executors sharing ``cores``
    (``cores // executors`` cores and TensorFlow threads each, one when executors outnumber
    the cores), ``batch_size`` -> frames per
    detector call, ``decoding_rate`` -> frames taken per second of video (archive: the job's
    ``--rate``; pipeline: each live camera's rate).

    :param settings: ``executors``, ``batch_size``, ``decoding_rate`` (whole numbers).
    :param mode: ``archive``: the reprocessing job over ``seconds`` of archived simulator video
        (:data:`DOE_ARCHIVE_ROOT`; the detection stage after every executor loaded its model
        is the measured window); ``pipeline``: :func:`argus.bench.live.bench_pipeline`
        with ``cameras`` live cameras for ``seconds``.
    :param seconds: see :class:`SweepSpec`.
    :param log_path: archive: where the job's log goes.
    :param timeout: archive: the job is killed after this many seconds.
    :param on_start: archive: called with the job's process as soon as it starts (to stop it).
    :return: the settings as run, ``throughput`` (frames/s), ``processing_time`` (s), the
        benchmark's own measures, ``mode``, ``model``, ``started`` and ``finished`` (UTC).
    """
    model = model or default_model_name()
    cfg = cfg or ArgusConfig()
    run = {k: int(round(float(settings[k]))) for k in FACTOR_NAMES}
    if run["executors"] > MAX_EXECUTORS_PER_CORE * cores:
        raise ValueError(f"{run['executors']} executors cannot share {cores} core(s)")
    # more executors than cores share them (one thread each), as the talk's executors shared a GPU:
    # one executor's decoding and Python work overlaps another's detection
    cores_per_executor = max(1, cores // run["executors"])
    started = utc_now()
    if mode == "archive":
        measured = _archive_point(run, seconds, cfg, model=model, window_s=window_s,
                                  cores_per_executor=cores_per_executor, log_path=log_path,
                                  timeout=timeout or 600 + 60 * seconds, on_start=on_start)
    elif mode == "pipeline":
        measured = _pipeline_point(run, seconds, model=model, cameras=cameras, cores_per_executor=cores_per_executor)
    else:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    return {**run, **measured, "mode": mode, "model": model, "cores_per_executor": cores_per_executor,
            "started": started, "finished": utc_now()}


def doe_archive(cfg: ArgusConfig, seconds: float) -> tuple[str, list[tuple[Path, str, int]]]:
    """Upload (once) the archive archive-mode points reprocess: ``ceil(seconds / 8)`` simulator
    clips filed under two cameras, in a folder of its own per size.

    :return: the archive root URL and (clip, camera, start ms) of each recording.
    """
    from argus.archive.layout import put
    from argus.archive.hdfs import webhdfs_client
    from argus.live.simulate import CLIP_SECONDS, ensure_clips

    recordings = max(1, math.ceil(seconds / CLIP_SECONDS - 1e-9))
    root = f"{DOE_ARCHIVE_ROOT}/{recordings}x{CLIP_SECONDS}s"
    clips = ensure_clips(cfg.cache_dir / "simulator")
    client = webhdfs_client(cfg)
    layout = [(clips[i % len(clips)], f"doe-{i % 2}", _ARCHIVE_START_MS + i * 600_000) for i in range(recordings)]
    for clip, camera, start in layout:
        put([clip], camera, client, start_ms=start, root=root)
    return f"{cfg.hdfs_uri}{root}", layout


def stop_point(proc: subprocess.Popen | None) -> None:
    """Stop a point's job (its whole process group: spark-submit and the driver)."""
    if proc is not None:
        process.stop_group(proc, timeout=20)


def _archive_point(run: dict, seconds: float, cfg: ArgusConfig, *, model: str, window_s: float,
                   cores_per_executor: int, log_path: Path | None, timeout: float,
                   on_start: Callable[[subprocess.Popen], None] | None) -> dict:
    from argus.archive.launcher import ReprocessJobSpec, parse_line
    from argus.live.simulate import CLIP_SECONDS

    root, layout = doe_archive(cfg, seconds)
    spec = ReprocessJobSpec(archive_root=root, model=model, rate_hz=float(run["decoding_rate"]), window_s=window_s,
                            batch_size=run["batch_size"], executors=run["executors"],
                            cores_per_executor=cores_per_executor, resume=False)
    proc = spec.start(cfg, log_path)
    if on_start is not None:
        on_start(proc)
    timer = threading.Timer(timeout, stop_point, args=(proc,))
    timer.daemon = True
    timer.start()
    result, tail = None, deque(maxlen=40)
    try:
        for line in proc.stdout:
            tail.append(line.rstrip())
            parsed = parse_line(line)
            if parsed and parsed[0] == "ARGUS_RESULT":
                result = parsed[1]
        returncode = proc.wait()
    finally:
        timer.cancel()
        stop_point(proc)
    if returncode != 0 or result is None:
        log = log_path.read_text()[-3000:] if log_path and log_path.exists() else ""
        raise RuntimeError(f"the reprocessing job at {run} ended with status {returncode} and "
                           f"{'no' if result is None else 'a'} summary\n" + "\n".join(tail) + "\n" + log)
    if result["failures"] or not result["frames"]:
        raise RuntimeError(f"the sweep's archive {root} could not be reprocessed: {result['failures']}")
    return {"throughput": float(result["fps"]), "processing_time": float(result["seconds"]),
            "frames": int(result["frames"]), "segments": int(result["segments_done"]),
            "total_seconds": float(result["total_seconds"]), "video_s": len(layout) * CLIP_SECONDS,
            "window_s": window_s, "archive_root": root}


def _pipeline_point(run: dict, seconds: float, *, model: str, cameras: int, cores_per_executor: int) -> dict:
    from argus.bench.live import bench_pipeline

    r = bench_pipeline(cameras, float(run["decoding_rate"]), seconds, model=model, batch=run["batch_size"],
                       executors=run["executors"], cores_per_executor=cores_per_executor)
    latency = r["latency_ms"]
    return {"throughput": float(r["fps"]), "processing_time": float(latency["p95"]) / 1000,
            "latency_p50_ms": latency["p50"], "latency_p95_ms": latency["p95"], "latency_p99_ms": latency["p99"],
            "frames_in": r["frames_in"], "frames_stored": r["frames_stored"], "bare_fps": r["bare_fps"],
            "cameras": cameras, "seconds": seconds}


def run_design_point(sweep: Sweep, index: int, cfg: ArgusConfig | None = None, *, runner: PointRunner = run_point,
                     confirmation: bool = False, **kwargs) -> tuple[dict, bool]:
    """Run point ``index`` of ``sweep`` (or confirmation run ``index`` at the analysed optimum)
    and record it, unless it is recorded already.

    :param runner: :func:`run_point` or a stand-in with its signature (tests).
    :param kwargs: passed to the runner (``on_start``, ``timeout``).
    :return: the recorded row and whether this call ran it.
    """
    table = CONFIRMATION_FILE if confirmation else RUNS_FILE
    done = sweep.recorded(index, table)
    if done is not None:
        return done, False
    spec = sweep.spec
    if confirmation:
        settings = {**optimum_settings(sweep), **spec.fixed_settings()}
        point = {"run": None, "point": "confirmation"}
    else:
        planned = sweep.point(index)
        settings, point = planned["settings"], {"run": planned["run"], "point": planned["point"]}
    log = sweep.path / (f"confirm-{index:02d}.log" if confirmation else f"point-{index:02d}.log")
    options = {**spec.bench_options(), **({"log_path": log} if spec.mode == "archive" else {}), **kwargs}
    row = runner(settings, spec.mode, spec.seconds, cfg, **options)
    row = {**point, **row}
    sweep.append_run(index, row, table)
    return sweep.recorded(index, table) or row, True
