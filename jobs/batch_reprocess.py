"""Archive reprocessing: recordings on HDFS -> segments -> detection -> the live pipeline's HBase rows.

    spark-submit jobs/batch_reprocess.py --spec '<ReprocessJobSpec JSON>' --endpoints '<Endpoints JSON>'

The spec is :class:`argus.archive.launcher.ReprocessJobSpec` whole (days, cameras, model,
rate, window; its archive root resolved by the launcher); the endpoints say where HBase and
WebHDFS are (:class:`argus.endpoints.Endpoints`). The job has no settings of its own.

The driver lists the archive (metadata only); executors probe each recording and cut it
into segments, then decode (PyAV over WebHDFS range reads), detect and write each segment.
Segments already finished by this job (same model and rate) are skipped; a recording that
cannot be read is reported with its path and the rest of the run goes on. Progress lines
(``ARGUS_PROGRESS {json}``) while running, ``ARGUS_RESULT {json}`` at the end; the exit
status is 0 even when some recordings failed (they are in the summary), 1 when nothing
could be processed and something failed.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time

from pyspark.sql import SparkSession

from argus.archive.launcher import ReprocessJobSpec
from argus.endpoints import Endpoints
from argus.submit import json_argument

from argus.archive.reprocess import (
    ArchiveReadError, ReprocessConfig, SegmentMarkers, SegmentResult, archive_fs, list_recordings, longest_first,
    plan_segments, process_segment, recording_duration_s, worker_resources,
)


def plan(cfg: ReprocessConfig):
    """flatMap: a recording -> its segments, or one failure naming it."""

    def run(recording):
        fs, _ = archive_fs(cfg)
        try:
            duration = recording_duration_s(fs, recording, cfg.rate_hz)
        except ArchiveReadError as exc:
            return [("failed", SegmentResult(recording.path, recording.path, recording.camera, "failed",
                                             error=str(exc)))]
        segments = plan_segments(recording, duration, cfg.window_s, cfg.rate_hz, cfg.batch_size)
        return [("segment", seg) for seg in segments]

    return run


def warm_up(cfg: ReprocessConfig):
    """foreachPartition: load the model (and TensorFlow) and trace it before the timed stage."""

    def run(_):
        worker_resources(cfg)

    return run


def detect_segments(cfg: ReprocessConfig, frames_acc, segments_acc):
    """mapPartitions: segments -> results; marks each finished segment."""

    def run(segments):
        store, fs, detector = worker_resources(cfg)
        markers = SegmentMarkers(store, cfg.job_key)
        for segment in segments:
            result = process_segment(fs, segment, cfg, detector, store)
            if result.status == "done":
                markers.mark(segment, result)
            frames_acc.add(result.frames)
            segments_acc.add(1)
            yield result

    return run


def report_progress(spark: SparkSession, total: int, frames_acc, segments_acc, stop: threading.Event,
                    every_s: float = 5.0) -> None:
    t0 = time.monotonic()
    while not stop.wait(every_s):
        elapsed = time.monotonic() - t0
        print("ARGUS_PROGRESS " + json.dumps({
            "segments_done": segments_acc.value, "segments": total, "frames": frames_acc.value,
            "elapsed_s": round(elapsed, 1), "fps": round(frames_acc.value / elapsed, 2) if elapsed else 0.0,
        }), flush=True)


def summarize(results: list[SegmentResult], probe_failures: list[SegmentResult], skipped: int,
              recordings: int, seconds: float) -> dict:
    done = [r for r in results if r.status == "done"]
    failed = probe_failures + [r for r in results if r.status == "failed"]
    frames = sum(r.frames for r in results)
    classes: dict[str, int] = {}
    for r in results:
        for name, n in r.classes.items():
            classes[name] = classes.get(name, 0) + n
    return {
        "recordings": recordings, "segments": len(results) + skipped, "segments_done": len(done),
        "segments_skipped": skipped, "segments_failed": len([r for r in results if r.status == "failed"]),
        "frames": frames, "detections": sum(r.detections for r in results), "classes": classes,
        "seconds": round(seconds, 3), "fps": round(frames / seconds, 3) if seconds > 0 and frames else 0.0,
        # time spent inside segments (decode, detect, write), summed over executors: against
        # seconds x executors it shows what scheduling and the JVMs take
        "segment_seconds": round(sum(r.seconds for r in results), 3),
        "failures": [{"path": r.path, "segment": r.segment if r.segment != r.path else None, "error": r.error}
                     for r in failed],
    }


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--spec", required=True, type=json_argument(ReprocessJobSpec.from_json), help="the job's ReprocessJobSpec, JSON")
    p.add_argument("--endpoints", required=True, type=json_argument(Endpoints.from_json), help="where the services are, JSON")
    args = p.parse_args(argv)
    spec, endpoints = args.spec, args.endpoints

    cfg = ReprocessConfig.of(spec, endpoints)
    from argus.detect import default_registry
    from argus.store import DetectionStore

    default_registry().get(cfg.model)  # an unknown model fails here, before any work
    store = DetectionStore.from_endpoints(endpoints)
    store.ensure_tables()

    spark = SparkSession.builder.appName("argus-batch-reprocess").getOrCreate()
    sc = spark.sparkContext
    fs, root = archive_fs(cfg)
    recordings = list_recordings(fs, root, list(spec.cameras) or None, spec.since, spec.until)
    print(f"argus: {len(recordings)} recording(s) under {cfg.archive_root}", flush=True)

    t0 = time.monotonic()
    planned = (sc.parallelize(recordings, max(1, min(len(recordings), sc.defaultParallelism * 4)))
               .flatMap(plan(cfg)).collect()) if recordings else []
    probe_failures = [r for kind, r in planned if kind == "failed"]
    segments = [s for kind, s in planned if kind == "segment"]
    finished = set() if not spec.resume else SegmentMarkers(store, cfg.job_key).finished()
    todo = longest_first([s for s in segments if s.key not in finished])
    print(f"argus: {len(segments)} segment(s), {len(segments) - len(todo)} already done by {cfg.job_key}, "
          f"{len(probe_failures)} unreadable recording(s)", flush=True)

    if todo:
        # every executor loads its model once before the measured stage (one task per
        # executor: the job waits for all of them to register, see ReprocessJobSpec)
        conf = sc.getConf()
        slots = max(1, int(conf.get("spark.cores.max", str(sc.defaultParallelism)))
                    // int(conf.get("spark.task.cpus", "1")))
        sc.parallelize(range(slots), slots).foreachPartition(warm_up(cfg))

    frames_acc, segments_acc = sc.accumulator(0), sc.accumulator(0)
    stop = threading.Event()
    progress = threading.Thread(target=report_progress, args=(spark, len(todo), frames_acc, segments_acc, stop,
                                                              spec.progress_s), daemon=True)
    progress.start()
    t1 = time.monotonic()
    try:
        # one segment per task: segments are the unit of balance, retry and resume
        results = (sc.parallelize(todo, len(todo)).mapPartitions(detect_segments(cfg, frames_acc, segments_acc))
                   .collect()) if todo else []
    finally:
        stop.set()
    summary = summarize(results, probe_failures, len(segments) - len(todo), len(recordings), time.monotonic() - t1)
    summary["total_seconds"] = round(time.monotonic() - t0, 3)  # with probing and model loading
    summary["job"] = cfg.job_key
    for failure in summary["failures"]:
        print(f"argus: FAILED {failure['path']}: {failure['error']}", file=sys.stderr, flush=True)
    print("ARGUS_RESULT " + json.dumps(summary), flush=True)
    spark.stop()
    nothing_done = summary["segments_done"] == 0 and summary["segments_skipped"] == 0
    return 1 if summary["failures"] and nothing_done else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
