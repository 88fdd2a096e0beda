"""``argus bench pipeline``: the live pipeline against the bare detector, one run, same cores.

1. Sustained throughput: N cameras' frames are pre-filled into a fresh topic (so that ingest
   does not compete for the cores), then the streaming job drains it. Throughput is taken
   in steady state, from the end of the first micro-batch (executors have loaded their
   models by then) to the last HBase write, from the frames rows' stage stamps.
2. Latency: a second fresh topic is fed live at RATE Hz per camera while the job runs; end
   to end is capture -> HBase write, with each stage's share. The cameras replay JPEG
   frames encoded beforehand from the simulator's clips, stamped with the time they are
   sent: on this 2-core machine, decoding H.264 for N cameras would otherwise take the
   cores the pipeline is being measured on (in a deployment ingest runs on its own hosts).
3. The bare detector (``argus bench detector``'s bare model call) on the same machine, just
   before the drain and again just after it, for the efficiency ratio (their mean: the VM's
   speed drifts by 10-20% within minutes, and one bare figure taken before the drain has
   measured 22 to 35 frames/s), laid out as the job's tasks: one process per task slot,
   ``task_cpus`` threads each.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any
import time
import uuid

import numpy as np

from argus.bench.detector import bench_detector_processes
from argus.config import ArgusConfig
from argus.live.cameras import CameraSpec
from argus.live.ingest import CameraStats, CameraWorker, KafkaFrameSink
from argus.live.simulate import ensure_clips
from argus.store import DetectionStore, schema
from argus.store.latency import STAGES
from argus.live.launcher import StreamJob, StreamJobSpec
from argus.live.topics import ensure_topics
from argus.detect.detector import default_model_name



def _prefill(cfg: ArgusConfig, topic: str, ids: list[str], frames_per_camera: int, clips) -> int:
    """Fill ``topic`` with frames of the clips, as fast as they decode; returns frames sent."""
    sink = KafkaFrameSink(cfg.kafka_bootstrap, topic)
    sent = 0
    for i, cam in enumerate(ids):
        worker = CameraWorker(CameraSpec(id=cam, url=str(clips[i % len(clips)]), rate_hz=15.0, loop=True,
                                         max_frames=frames_per_camera), sink, threading.Event())
        worker.run()
        sent += worker.stats.sent
    if sink.close(120):
        raise RuntimeError(f"pre-filling {topic} failed: frames undelivered")
    return sent


def _replay_live(cfg: ArgusConfig, topic: str, ids: list[str], rate_hz: float, seconds: float, clips) -> int:
    """Send each camera's frames at ``rate_hz`` for ``seconds``, stamped with the send time."""
    from argus.media.codec import encode_jpeg
    from argus.live.message import FrameMessage

    import av

    jpegs = []
    with av.open(str(clips[0])) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i % 3 == 0:
                rgb = frame.to_ndarray(format="rgb24")
                jpegs.append((encode_jpeg(rgb), rgb.shape[1], rgb.shape[0]))
    sink = KafkaFrameSink(cfg.kafka_bootstrap, topic)
    stats = [CameraStats() for _ in ids]
    start, period, n = time.monotonic(), 1.0 / rate_hz, 0
    for tick in range(int(seconds * rate_hz)):
        for c, cam in enumerate(ids):  # cameras spread over the period, not all at once
            due = start + (tick + c / len(ids)) * period
            time.sleep(max(0.0, due - time.monotonic()))
            jpeg, w, h = jpegs[(tick + c) % len(jpegs)]
            sink.send(FrameMessage(cam, int(time.time() * 1000), tick, w, h, jpeg), stats[c])
            n += 1
    if sink.close(60):
        raise RuntimeError(f"live frames to {topic} undelivered")
    return n


def _rows(store: DetectionStore, cameras: list[str]) -> list[dict]:
    return [r for cam in cameras for r in store.frames(cam)]


def driver_lines(log_text: str, kind: str) -> list[dict]:
    """The JSON documents of the driver's ``KIND {json}`` log lines (``ARGUS_BATCH``,
    ``ARGUS_PROGRESS``); a line cut short is skipped."""
    docs = []
    for line in log_text.splitlines():
        head, _, doc = line.partition(" ")
        if head == kind:
            try:
                docs.append(json.loads(doc))
            except ValueError:
                continue
    return docs


def settled_records(log_text: str) -> int:
    """Records the driver reports settled (stored or dead-lettered), from its ``ARGUS_BATCH``
    lines. A replayed micro-batch is counted again: this says when to look, not what is stored."""
    return sum(int(b.get("stored", 0)) + int(b.get("dead_letter", 0)) for b in driver_lines(log_text, "ARGUS_BATCH"))


def _wait_stored(store, cameras, expected, job: StreamJob, timeout: float, log_from: int = 0) -> list[dict]:
    """The frames rows of ``cameras`` once ``expected`` are in HBase. Scanning HBase while the
    job runs would be part of what is measured (every 2 s, a scan of every row so far took
    ~11% of a core from the 2 the job shares), so it waits on the driver's own batch counts
    (its log from ``log_from`` on) and reads HBase only when they say the frames are done."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not job.alive:
            raise RuntimeError(f"streaming job died:\n{job.log_tail()}")
        if settled_records(_log_since(job, log_from)) >= expected:
            rows = _rows(store, cameras)
            if len(rows) >= expected:
                return rows
            time.sleep(2)  # counts include a replay or other records: HBase decides
        else:
            time.sleep(0.5)
    return _rows(store, cameras)  # out of time: what is stored, short of expected


def _log_since(job: StreamJob, offset: int) -> str:
    try:
        with job.log_path.open(errors="replace") as log:
            log.seek(offset)
            return log.read()
    except FileNotFoundError:
        return ""


def _log_size(job: StreamJob) -> int:
    return job.log_path.stat().st_size if job.log_path.exists() else 0


def _pct(values, q) -> float:
    return round(float(np.percentile(values, q)), 1) if len(values) else float("nan")


def micro_batches(log_text: str) -> dict:
    """Micro-batches with input, from the driver's ``ARGUS_PROGRESS`` lines: how many, rows
    each, and p50 / p95 of each ``durationMs`` part (ms); from its ``ARGUS_BATCH`` lines, of
    the Spark job inside ``addBatch`` (``collect``), the slowest task's time in Python
    (``task``) and its wait for the first records (``wait``). A progress line whose batch has
    no ``ARGUS_BATCH`` line in the text is left out: the driver logs a batch's progress after
    its results, so text cut after a warm-up batch's frames were stored starts with that
    batch's progress."""
    batches, jobs = driver_lines(log_text, "ARGUS_PROGRESS"), driver_lines(log_text, "ARGUS_BATCH")
    ran = {j.get("batch") for j in jobs}
    batches = [b for b in batches if b.get("rows") and (not jobs or b.get("batch") in ran)]
    parts = sorted({k for b in batches for k in b.get("ms", {})})
    ms = {k: {"p50": _pct(v, 50), "p95": _pct(v, 95)}
          for k in parts if (v := [b["ms"][k] for b in batches if k in b["ms"]])}
    # inside addBatch (the driver's ARGUS_BATCH lines): the Spark job, the slowest task's time in Python
    for key in ("collect_ms", "task_ms", "wait_ms"):
        if v := [j[key] for j in jobs if key in j and j.get("stored", 0) + j.get("dead_letter", 0)]:
            ms[key.removesuffix("_ms")] = {"p50": _pct(v, 50), "p95": _pct(v, 95)}
    return {"batches": len(batches),
            "rows": {"p50": _pct([b["rows"] for b in batches], 50), "p95": _pct([b["rows"] for b in batches], 95)},
            "ms": ms}


def image_bytes(store: DetectionStore, cameras: list[str], frames: int, seconds: float) -> dict:
    """What the images cost in HBase per stored frame of ``cameras``: the crops of its
    detections (``c:jpg``) and its share of the live frames (``argus:live``: at most one JPEG
    per camera per second, each replacing the last; counted as written once a second)."""
    detections, crops = 0, []
    with store.table("detections") as table:
        for camera in cameras:
            start, stop = schema.time_range(camera, None, None)
            for _, data in table.scan(row_start=start, row_stop=stop, columns=[b"d:cls", b"c:jpg"]):
                detections += 1
                if b"c:jpg" in data:
                    crops.append(len(data[b"c:jpg"]))
    live = [len(jpeg) for jpeg in (store.latest_jpeg(c) for c in cameras) if jpeg]
    live_writes = min(frames, round(len(cameras) * seconds))
    frames = max(1, frames)
    crop_per_frame = sum(crops) / frames
    live_per_frame = (sum(live) / len(live) if live else 0.0) * live_writes / frames
    return {"detections_per_frame": round(detections / frames, 3), "crops": len(crops),
            "crop_bytes_mean": round(sum(crops) / len(crops), 1) if crops else 0.0,
            "crop_bytes_per_frame": round(crop_per_frame, 1),
            "live_jpeg_bytes_mean": round(sum(live) / len(live), 1) if live else 0.0,
            "live_bytes_per_frame": round(live_per_frame, 1),
            "image_bytes_per_frame": round(crop_per_frame + live_per_frame, 1)}


def bench_pipeline(cameras: int, rate_hz: float, seconds: float, model: str | None = None,
                   batch: int = 8, executors: int = 1, cores_per_executor: int = 2,
                   drain_frames: int | None = None, trigger_seconds: float = 0.5,
                   checkpoint: str = "hdfs", task_cpus: int | None = None,
                   job_settings: Mapping[str, Any] | None = None) -> dict:
    """Throughput (drain), live latency and the bare detector, in one run (see the module).

    :param job_settings: other :class:`StreamJobSpec` settings of both jobs (e.g. ``crop_px=0``).
    :param trigger_seconds: the streaming job's trigger interval (both phases).
    :param task_cpus: cores of each task (default: all of its executor's).
    :param checkpoint: ``hdfs`` (the default deployment's) or ``local`` (a folder under the
        state dir, for the driver's host).
    """
    model = model or default_model_name()
    task_cpus = cores_per_executor if task_cpus is None else task_cpus
    if not 1 <= task_cpus <= cores_per_executor:
        raise ValueError(f"task cpus must be 1..{cores_per_executor} (the executor's cores), not {task_cpus}")
    slots = executors * (cores_per_executor // task_cpus)
    cfg = ArgusConfig()
    run = uuid.uuid4().hex[:6]
    if checkpoint not in ("hdfs", "local"):
        raise ValueError(f"checkpoint must be hdfs or local, not {checkpoint!r}")
    checkpoints = (f"{cfg.hdfs_uri}/argus/bench/{run}" if checkpoint == "hdfs"
                   else (cfg.state_dir / "checkpoints" / "bench" / run).as_uri())
    clips = ensure_clips(cfg.cache_dir / "simulator")
    store = DetectionStore.from_config(cfg)
    store.ensure_tables()

    # the bare model laid out as the job's tasks: as many processes, as many threads each
    def measure_bare() -> float:
        return bench_detector_processes(model, batch, seconds=min(20.0, max(5.0, seconds / 3)), processes=slots,
                                        threads=task_cpus)["bare_img_per_s"]

    bare_runs = [measure_bare()]
    bare_fps = bare_runs[0]  # sizes the drain; the ratio takes the mean of both bare runs

    # ---- 1. sustained: drain a pre-filled topic ----
    drain_topic, dlq = f"bench.{run}.drain", f"bench.{run}.dlq"
    ensure_topics(cfg.kafka_bootstrap, drain_topic, dlq, partitions=max(2, slots))
    total = drain_frames or max(cameras, int(bare_fps * max(20.0, seconds)))
    drain_ids = [f"drain-{run}-{i:03d}" for i in range(cameras)]
    sent = _prefill(cfg, drain_topic, drain_ids, -(-total // cameras), clips)
    spec = StreamJobSpec(topic=drain_topic, dlq_topic=dlq, query_name=f"bench_{run}_drain", default_model=model,
                         batch_size=batch, executors=executors, cores_per_executor=cores_per_executor,
                         task_cpus=task_cpus, max_offsets_per_trigger=max(50, int(bare_fps * 8)),
                         trigger_seconds=trigger_seconds, checkpoint=f"{checkpoints}/drain", **(job_settings or {}))
    job = StreamJob(spec, cfg)
    log_from = _log_size(job)
    job.start()
    try:
        rows = _wait_stored(store, drain_ids, sent, job, timeout=120 + 4 * sent / max(bare_fps, 0.1),
                            log_from=log_from)
    finally:
        job.stop()
    if len(rows) < sent:
        raise RuntimeError(f"the drain stored {len(rows)} of {sent} frames in time:\n{job.log_tail()}")
    steady_from = min(int(r["t:written"]) for r in rows)  # the first batch is done: models loaded
    steady = [r for r in rows if int(r["t:read"]) >= steady_from]
    last_written = max(int(r["t:written"]) for r in rows)
    fps = len(steady) / max(1e-3, (last_written - steady_from) / 1000)
    bare_runs.append(measure_bare())
    bare_fps = round(sum(bare_runs) / len(bare_runs), 2)

    # ---- 2. latency: live cameras at the set rate ----
    live_topic = f"bench.{run}.live"
    ensure_topics(cfg.kafka_bootstrap, live_topic, dlq, partitions=max(2, slots))
    spec = StreamJobSpec(topic=live_topic, dlq_topic=dlq, query_name=f"bench_{run}_live", default_model=model,
                         batch_size=batch, executors=executors, cores_per_executor=cores_per_executor,
                         task_cpus=task_cpus, trigger_seconds=trigger_seconds, starting_offsets="earliest",
                         # a bound for backlogs only: live batches take what arrived since the last
                         max_offsets_per_trigger=max(50, int(bare_fps * 4)),
                         checkpoint=f"{checkpoints}/live", **(job_settings or {}))
    job = StreamJob(spec, cfg)
    log_from = _log_size(job)
    job.start()
    try:
        # warm up: every task's Python worker loads its model before the measured frames arrive
        warm_ids = [f"warm-{run}-{i}" for i in range(2 * slots)]
        warm = _prefill(cfg, live_topic, warm_ids, batch, clips)
        if len(_wait_stored(store, warm_ids, warm, job, timeout=300, log_from=log_from)) < warm:
            raise RuntimeError(f"warm-up frames were not stored:\n{job.log_tail()}")
        live_ids = [f"lat-{run}-{i:03d}" for i in range(cameras)]
        log_from = _log_size(job)
        frames_in = _replay_live(cfg, live_topic, live_ids, rate_hz, seconds, clips)
        live_rows = _wait_stored(store, live_ids, frames_in, job, timeout=120, log_from=log_from)
    finally:
        job.stop()
    live_batches = micro_batches(_log_since(job, log_from))

    stamps = np.array([[int(r[f"t:{s}"]) for s in STAGES] for r in live_rows], dtype=np.int64)
    e2e = stamps[:, -1] - stamps[:, 0]
    per_stage = {f"{a}->{b}": {"p50": _pct(stamps[:, i + 1] - stamps[:, i], 50),
                                "p99": _pct(stamps[:, i + 1] - stamps[:, i], 99)}
                 for i, (a, b) in enumerate(zip(STAGES, STAGES[1:]))}
    dlq_count = _count(cfg, dlq)
    return {
        "model": model, "batch": batch, "executors": executors, "cores_per_executor": cores_per_executor,
        "task_cpus": task_cpus, "tasks_per_batch": slots, "bare_layout": f"{slots} x {task_cpus} threads",
        "cameras": cameras, "rate_hz": rate_hz,
        "offered_fps": round(cameras * rate_hz, 2), "load": round(cameras * rate_hz / bare_fps, 3),
        "drain_frames": sent, "steady_frames": len(steady), "frames_in": frames_in, "frames_stored": len(live_rows),
        "frames_dlq": dlq_count, "fps": round(fps, 2), "bare_fps": bare_fps, "bare_runs": bare_runs,
        "efficiency": round(fps / bare_fps, 4),
        "latency_ms": {"p50": _pct(e2e, 50), "p95": _pct(e2e, 95), "p99": _pct(e2e, 99)},
        "stage_latency_ms": per_stage, "micro_batches": live_batches, "seconds": seconds,
        "trigger_seconds": trigger_seconds, "checkpoint": checkpoint, "job_settings": dict(job_settings or {}),
        # the live phase's cameras, with the job's default crops and live frames
        "hbase_image_bytes": image_bytes(store, live_ids, len(live_rows), seconds),
    }


def _count(cfg: ArgusConfig, topic: str) -> int:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": cfg.kafka_bootstrap, "group.id": f"bench-count-{topic}"})
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        total = 0
        for p in meta.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            total += high - low
        return total
    finally:
        consumer.close()
