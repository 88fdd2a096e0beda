"""The live pipeline's per-partition work, free of Spark so that it is unit-tested alone.

Spark's ``mapInPandas`` hands each task an iterator of Kafka records; for each chunk:
validate the frame message, decode the JPEG, route the frame to its camera's model, detect
in batches with the process's cached models, write frames and detections to HBase, and
send every rejected record to the dead-letter topic with its reason. Returns one summary
row per record so that the driver can account for every frame.
"""

from __future__ import annotations

import fnmatch
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field

import numpy as np

from argus.codec import FrameDecodeError, decode_jpeg
from argus.schema import DLQ_TOPIC, FrameMessage, InvalidMessage, dead_letter_headers
from argus.store.detections import FrameResult


@dataclass(frozen=True)
class PipelineConfig:
    """Everything an executor needs, shipped from the driver.

    :param camera_models: camera id or shell pattern -> model; others run ``default_model``.
    """

    kafka_bootstrap: str
    hbase_host: str = "127.0.0.1"
    hbase_port: int = 9090
    hbase_admin_port: int = 9091
    dlq_topic: str = DLQ_TOPIC
    default_model: str = "centernet-coco"
    camera_models: dict[str, str] = field(default_factory=dict)
    batch_size: int = 8
    source: str = "live"

    def model_for(self, camera_id: str, override: str | None) -> str:
        if override:
            return override
        if camera_id in self.camera_models:
            return self.camera_models[camera_id]
        for pattern, model in self.camera_models.items():
            if fnmatch.fnmatchcase(camera_id, pattern):
                return model
        return self.default_model

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class KafkaRecord:
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    topic: str
    partition: int
    offset: int
    timestamp_ms: int

    @property
    def source(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"


@dataclass(frozen=True)
class DeadLetter:
    record: KafkaRecord
    reason: str
    stage: str


#: columns of the summary rows returned to Spark (see SUMMARY_SCHEMA in the job)
SUMMARY_COLUMNS = ("status", "camera_id", "seq", "capture_ts_ms", "model", "detections", "reason",
                   "partition", "offset", "kafka_ms", "read_ms", "detected_ms", "written_ms")


def prepare(records: Iterable[KafkaRecord], cfg: PipelineConfig, known_models: set[str]
            ) -> tuple[list[tuple[KafkaRecord, FrameMessage, np.ndarray, str]], list[DeadLetter]]:
    """Validate and decode; returns (frames to detect, dead letters)."""
    ready, dead = [], []
    for rec in records:
        try:
            msg = FrameMessage.from_kafka(rec.key, rec.value, rec.headers)
        except InvalidMessage as exc:
            dead.append(DeadLetter(rec, exc.reason, "validate"))
            continue
        model = cfg.model_for(msg.camera_id, msg.model)
        if model not in known_models:
            dead.append(DeadLetter(rec, f"unknown model {model!r}", "validate"))
            continue
        try:
            rgb = decode_jpeg(msg.jpeg)
        except FrameDecodeError as exc:
            dead.append(DeadLetter(rec, str(exc), "decode"))
            continue
        if rgb.shape[:2] != (msg.height, msg.width):
            dead.append(DeadLetter(rec, f"decoded {rgb.shape[1]}x{rgb.shape[0]} but headers say "
                                        f"{msg.width}x{msg.height}", "decode"))
            continue
        ready.append((rec, msg, rgb, model))
    return ready, dead


def detect(ready, cfg: PipelineConfig, read_ms: int, detector_for) -> tuple[list[FrameResult], list[DeadLetter]]:
    """Batched detection per model (the talk's heterogeneous deployment in one task)."""
    by_model: dict[str, list] = defaultdict(list)
    for item in ready:
        by_model[item[3]].append(item)
    results, dead = [], []
    for model, items in by_model.items():
        try:
            detections = detector_for(model).detect([rgb for _, _, rgb, _ in items])
        except Exception as exc:  # a model that fails must not stop the query: park its frames
            dead.extend(DeadLetter(rec, f"detection failed ({model}): {type(exc).__name__}: {exc}", "detect")
                        for rec, _, _, _ in items)
            continue
        detected_ms = int(time.time() * 1000)
        for (rec, msg, _, _), dets in zip(items, detections):
            results.append(FrameResult(
                camera_id=msg.camera_id, capture_ts_ms=msg.capture_ts_ms, seq=msg.seq, width=msg.width,
                height=msg.height, model=model, detections=dets, source=cfg.source,
                stages={"captured": msg.capture_ts_ms, "kafka": rec.timestamp_ms, "read": read_ms,
                        "detected": detected_ms},
                kafka_partition=rec.partition, kafka_offset=rec.offset,
            ))
    return results, dead


def summary_rows(results: list[FrameResult], dead: list[DeadLetter], written_ms: int | None) -> list[dict]:
    rows = [{"status": "stored", "camera_id": r.camera_id, "seq": r.seq, "capture_ts_ms": r.capture_ts_ms,
             "model": r.model, "detections": len(r.detections), "reason": None, "partition": r.kafka_partition,
             "offset": r.kafka_offset, "kafka_ms": r.stages["kafka"], "read_ms": r.stages["read"],
             "detected_ms": r.stages["detected"], "written_ms": written_ms} for r in results]
    rows += [{"status": "dead_letter", "camera_id": None, "seq": None, "capture_ts_ms": None, "model": None,
              "detections": 0, "reason": f"{d.stage}: {d.reason}", "partition": d.record.partition,
              "offset": d.record.offset, "kafka_ms": d.record.timestamp_ms, "read_ms": None, "detected_ms": None,
              "written_ms": None} for d in dead]
    return rows


# ---- per-process resources (one per Python worker, reused across tasks and batches) ----
_store = None
_dlq = None


def _store_for(cfg: PipelineConfig):
    global _store
    if _store is None:
        from argus.store import DetectionStore

        _store = DetectionStore(cfg.hbase_host, cfg.hbase_port, cfg.hbase_admin_port)
        _store.ensure_tables()
    return _store


def _dlq_for(cfg: PipelineConfig):
    global _dlq
    if _dlq is None:
        from confluent_kafka import Producer

        _dlq = Producer({"bootstrap.servers": cfg.kafka_bootstrap, "acks": "all", "enable.idempotence": True,
                         "message.max.bytes": 16 * 2**20})
    return _dlq


def send_dead_letters(dead: list[DeadLetter], cfg: PipelineConfig) -> None:
    """Produce and wait: a batch is not done until its rejects are safely in the DLQ."""
    if not dead:
        return
    producer, errors = _dlq_for(cfg), []
    for d in dead:
        producer.produce(cfg.dlq_topic, key=d.record.key, value=d.record.value or b"",
                         headers=dead_letter_headers(d.record.headers, d.reason, d.stage, d.record.source),
                         on_delivery=lambda err, _m: errors.append(err) if err else None)
    remaining = producer.flush(60)
    if remaining or errors:
        raise RuntimeError(f"{remaining + len(errors)} dead letter(s) not delivered to {cfg.dlq_topic}: {errors[:3]}")


def process_records(records: list[KafkaRecord], cfg: PipelineConfig) -> list[dict]:
    """Validate, decode, detect, store, dead-letter; one summary row per record."""
    from argus.detect import Detector, default_registry

    read_ms = int(time.time() * 1000)
    known = set(default_registry().models)
    ready, dead = prepare(records, cfg, known)
    results, failed = detect(ready, cfg, read_ms, lambda m: Detector(m, batch_size=cfg.batch_size))
    dead += failed
    written_ms = None
    if results:
        written_ms = int(time.time() * 1000)
        _store_for(cfg).write(results, written_ms=written_ms)
    send_dead_letters(dead, cfg)
    return summary_rows(results, dead, written_ms)


def records_from_pandas(pdf) -> Iterator[KafkaRecord]:
    """Kafka source rows (key, value, headers, topic, partition, offset, timestamp) as records."""
    for row in pdf.itertuples(index=False):
        headers = []
        raw = row.headers
        if raw is not None:
            for h in raw:
                headers.append((h["key"], h["value"]))
        ts = row.timestamp
        yield KafkaRecord(key=row.key, value=row.value, headers=headers, topic=row.topic,
                          partition=int(row.partition), offset=int(row.offset),
                          timestamp_ms=int(ts.timestamp() * 1000) if ts is not None else 0)
