"""The live pipeline's per-partition work, free of Spark so that it is unit-tested alone.

Spark's ``mapInPandas`` hands each task an iterator of Kafka records, chunk by chunk; for
each record: validate the frame message, decode the JPEG, route the frame to its camera's
model, detect in batches with the process's cached models, write frames and detections to
HBase, and send every rejected record to the dead-letter topic with its reason. The stages
overlap (:func:`process_stream`): on a few cores, a stage that runs alone leaves the others
idle. Returns one summary row per record so that the driver can account for every frame.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from argus.detect.batch import PendingFrame, detect_batch
from argus.detect.registry import mapped_model
from argus.media.codec import FrameDecodeError, decode_jpeg
from argus.live.message import MAX_MESSAGE_BYTES, FrameMessage, InvalidMessage, dead_letter_headers
from argus.store.detections import FrameResult, result_rows
from argus.store.crops import ImageMaker
from argus.store.writer import BackgroundWriter

if TYPE_CHECKING:
    from argus.endpoints import Endpoints
    from argus.live.launcher import StreamJobSpec


log = logging.getLogger(__name__)

#: how often each executor process re-reads the camera models given in the console
ASSIGNED_MODELS_TTL_S = 5.0


@dataclass(frozen=True)
class PipelineConfig:
    """Everything an executor needs, shipped from the driver: made from the job's spec and
    endpoints by :meth:`of` (the settings' defaults live in the spec only).

    :param camera_models: camera id or shell pattern -> model; others run ``default_model``.
    """

    endpoints: Endpoints
    dlq_topic: str
    default_model: str
    camera_models: dict[str, str]
    batch_size: int
    crop_px: int = 0
    live_view_px: int = 0
    source: str = "live"
    #: threads decoding JPEG ahead of detection (PIL releases the GIL while it decodes)
    decode_threads: int = 2
    #: where each stored frame's detections go for the tracker (None: no tracking)
    tracking_topic: str | None = None

    @classmethod
    def of(cls, spec: StreamJobSpec, endpoints: Endpoints) -> PipelineConfig:
        return cls(endpoints=endpoints, dlq_topic=spec.dlq_topic, default_model=spec.default_model,
                   camera_models=dict(spec.camera_models), batch_size=spec.batch_size, crop_px=spec.crop_px,
                   live_view_px=spec.live_view_px, tracking_topic=spec.tracking_topic)

    def model_for(self, camera_id: str, override: str | None, assigned: Mapping[str, str] | None = None) -> str:
        """The model of a frame: the one given to its camera in the console (``assigned``),
        else the frame's own ``model`` header, else the job's camera mapping, else the default."""
        return (assigned or {}).get(camera_id) or override or mapped_model(camera_id, self.camera_models,
                                                                           self.default_model)


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


@dataclass(frozen=True)
class ReadyFrame:
    """A record that passed validation and decoding: its frame waits for ``model``."""

    record: KafkaRecord
    frame: PendingFrame
    model: str


def prepare_one(rec: KafkaRecord, cfg: PipelineConfig, known_models: set[str],
                assigned: Mapping[str, str] | None = None) -> ReadyFrame | DeadLetter:
    """Validate and decode one record, or say why not. Never raises for a record: whatever
    fails is that record's dead letter, with its stage.

    :param assigned: camera -> model given in the console (:class:`AssignedModels`)."""
    stage = "validate"
    try:
        try:
            msg = FrameMessage.from_kafka(rec.key, rec.value, rec.headers)
        except InvalidMessage as exc:
            return DeadLetter(rec, exc.reason, stage)
        model = cfg.model_for(msg.camera_id, msg.model, assigned)
        if model not in known_models:
            return DeadLetter(rec, f"unknown model {model!r}", stage)
        stage = "decode"
        try:
            rgb = decode_jpeg(msg.jpeg)
        except FrameDecodeError as exc:
            return DeadLetter(rec, str(exc), stage)
        if rgb.shape[:2] != (msg.height, msg.width):
            return DeadLetter(rec, f"decoded {rgb.shape[1]}x{rgb.shape[0]} but headers say "
                                   f"{msg.width}x{msg.height}", stage)
        frame = PendingFrame(rgb, msg.camera_id, msg.capture_ts_ms, msg.seq, cfg.source,
                             {"captured": msg.capture_ts_ms, "kafka": rec.timestamp_ms},
                             kafka_partition=rec.partition, kafka_offset=rec.offset)
        return ReadyFrame(rec, frame, model)
    except Exception as exc:  # noqa: BLE001 - one record's failure, whatever it is, is its own
        return DeadLetter(rec, _failure(exc), stage)


def _failure(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:1000]


def detect(ready: Sequence[ReadyFrame], cfg: PipelineConfig, read_ms: int | Sequence[int], detector_for
           ) -> tuple[list[FrameResult], list[DeadLetter]]:
    """Batched detection per model (the talk's heterogeneous deployment in one task).

    A batch whose model call fails is detected again frame by frame, so that only the frames
    the model fails on are dead-lettered (stage ``detect``); a frame whose rows cannot be
    built is dead-lettered too (stage ``store``). Nothing here raises for one record.

    :param read_ms: when the records were read: one stamp for all, or one per item of ``ready``.
    """
    stamps = [read_ms] * len(ready) if isinstance(read_ms, int) else list(read_ms)
    by_model: dict[str, list[ReadyFrame]] = defaultdict(list)
    for item, stamp in zip(ready, stamps):
        item.frame.stages["read"] = stamp
        by_model[item.model].append(item)
    results, dead = [], []
    for model, items in by_model.items():
        for item, result in _detect_model(model, items, detector_for, dead):
            try:
                result_rows(result)
            except Exception as exc:  # noqa: BLE001 - this frame's rows only
                dead.append(DeadLetter(item.record, f"cannot build its HBase rows: {_failure(exc)}", "store"))
                continue
            results.append(result)
    return results, dead


def _detect_model(model: str, items: list[ReadyFrame], detector_for, dead: list[DeadLetter]
                  ) -> Iterator[tuple[ReadyFrame, FrameResult]]:
    """(item, its result) for the items ``model`` detects; the others go to ``dead``."""
    try:
        detector = detector_for(model)
    except Exception as exc:  # noqa: BLE001 - a model that cannot load must not stop the query
        dead.extend(DeadLetter(i.record, f"model {model} failed to load: {_failure(exc)}", "detect") for i in items)
        return
    try:
        results = detect_batch(detector, model, [i.frame for i in items])
    except Exception as exc:  # noqa: BLE001 - find the frames it fails on, one by one
        if len(items) == 1:
            dead.append(DeadLetter(items[0].record, f"detection failed ({model}): {_failure(exc)}", "detect"))
            return
    else:
        yield from zip(items, results)
        return
    for item in items:
        try:
            [result] = detect_batch(detector, model, [item.frame])
        except Exception as exc:  # noqa: BLE001
            dead.append(DeadLetter(item.record, f"detection failed ({model}): {_failure(exc)}", "detect"))
            continue
        yield item, result


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


def tally(rows: Iterable[dict]) -> list[dict]:
    """Summary rows -> one row per status: ``status``, ``n`` (records), ``detections``; and one
    ``status="read"`` row per Kafka partition: the ``first`` and ``last`` offset read and how
    many (``n``), from which the driver tells offsets skipped by the source
    (:mod:`argus.supervision.offsets`). Tasks return this instead of a row per record, so a
    micro-batch is one Spark stage with no shuffle: the driver only ever needs the counts."""
    counts: dict[str, list[int]] = {}
    reads: dict[int, list[int]] = {}
    for row in rows:
        c = counts.setdefault(row["status"], [0, 0])
        c[0] += 1
        c[1] += int(row["detections"] or 0)
        if row.get("partition") is not None and row.get("offset") is not None:
            offset = int(row["offset"])
            r = reads.setdefault(int(row["partition"]), [offset, offset, 0])
            r[0], r[1], r[2] = min(r[0], offset), max(r[1], offset), r[2] + 1
    out = [{"status": status, "n": n, "detections": d} for status, (n, d) in counts.items()]
    out += [{"status": READ_STATUS, "n": n, "detections": 0, "partition": p, "first": first, "last": last}
            for p, (first, last, n) in sorted(reads.items())]
    return out


#: the status of :func:`tally`'s per-partition rows (not a status of records)
READ_STATUS = "read"


class AssignedModels:
    """Camera -> model given in the console (``argus:cameras``, ``i:assigned_model``), read
    at most every ``ttl_s``: a change reaches the running job within a few micro-batches,
    without a restart. While HBase does not answer, the last mapping read stays.

    :param read: returns the mapping (:meth:`DetectionStore.assigned_models`).
    """

    def __init__(self, read: Callable[[], dict[str, str]], ttl_s: float = ASSIGNED_MODELS_TTL_S,
                 clock: Callable[[], float] = time.monotonic):
        self.read, self.ttl_s, self.clock = read, ttl_s, clock
        self._mapping: dict[str, str] = {}
        self._read_at: float | None = None

    def get(self) -> dict[str, str]:
        now = self.clock()
        if self._read_at is None or now - self._read_at >= self.ttl_s:
            self._read_at = now
            try:
                self._mapping = dict(self.read())
            except Exception as exc:  # noqa: BLE001 - the frames go on with the last mapping
                log.warning("camera models given in the console not read (%s); keeping the last ones", exc)
        return self._mapping


# ---- per-process resources (one per Python worker, reused across tasks and batches) ----
_store = None
_dlq = None
_assigned: AssignedModels | None = None
_images: dict[tuple[int, int], ImageMaker] = {}


def _assigned_for(cfg: PipelineConfig) -> AssignedModels:
    global _assigned
    if _assigned is None:
        _assigned = AssignedModels(lambda: _store_for(cfg).assigned_models())
    return _assigned


def _images_for(cfg: PipelineConfig) -> ImageMaker | None:
    """The process's crop and live-frame maker (its live-frame throttle spans tasks)."""
    if not (cfg.crop_px or cfg.live_view_px):
        return None
    key = (cfg.crop_px, cfg.live_view_px)
    if key not in _images:
        _images[key] = ImageMaker(cfg.crop_px, cfg.live_view_px)
    return _images[key]


def _store_for(cfg: PipelineConfig):
    global _store
    if _store is None:
        from argus.store import DetectionStore

        _store = DetectionStore.from_endpoints(cfg.endpoints)
        _store.ensure_tables()
    return _store


def write_tracked(rows: Iterable, cfg: PipelineConfig) -> int:
    """Store a partition of the tracking query's rows (d:tid, argus:tracks) with the
    executor's store."""
    return _store_for(cfg).write_tracks(r.asDict() if hasattr(r, "asDict") else r for r in rows)


def _dlq_for(cfg: PipelineConfig):
    global _dlq
    if _dlq is None:
        from confluent_kafka import Producer

        # a message not delivered within the batch's wait expires instead of going out later,
        # next to the copy the retried batch sends
        _dlq = Producer({"bootstrap.servers": cfg.endpoints.kafka_bootstrap, "acks": "all", "enable.idempotence": True,
                         "message.max.bytes": MAX_MESSAGE_BYTES, "message.timeout.ms": 55_000})
    return _dlq


def send_dead_letters(dead: list[DeadLetter], cfg: PipelineConfig, producer=None) -> None:
    """Produce and wait: a batch is not done until its rejects are safely in the DLQ.

    A dead letter Kafka refuses for its own sake (too large with the added headers, say) is
    sent again without its payload, saying so; failures that are not about one message
    (Kafka down) raise, and the micro-batch is retried.
    """
    if not dead:
        return
    producer = producer or _dlq_for(cfg)
    refused: list[DeadLetter] = []
    errors: list = []

    def delivered(letter: DeadLetter, retry: bool):
        def report(err, _msg):
            if err is None:
                return
            if _about_the_message(err) and not retry:
                refused.append(letter)
            else:
                errors.append(err)
        return report

    for d in dead:
        _produce(producer, cfg.dlq_topic, d, d.record.value or b"", delivered(d, False), refused)
    remaining = producer.flush(60)
    retries, refused[:] = list(refused), []
    for d in retries:  # once more, without the payload that made it too large
        note = (f"{d.reason} (payload of {len(d.record.value or b'')} bytes and the original headers not kept: "
                "Kafka refused the message)")
        bare = replace(d.record, headers=[])
        _produce(producer, cfg.dlq_topic, DeadLetter(bare, note, d.stage), b"", delivered(d, True), errors)
    if retries:
        remaining += producer.flush(60)
    if remaining or errors:
        if hasattr(producer, "purge"):  # the retried batch sends them again: none may follow late
            producer.purge()
        raise RuntimeError(f"{remaining + len(errors)} dead letter(s) not delivered to {cfg.dlq_topic}: {errors[:3]}")


def _produce(producer, topic: str, d: DeadLetter, value: bytes, on_delivery, refused: list) -> None:
    from confluent_kafka import KafkaException

    headers = dead_letter_headers(d.record.headers, d.reason, d.stage, d.record.source)
    while True:
        try:
            producer.produce(topic, key=d.record.key, value=value, headers=headers, on_delivery=on_delivery)
            return
        except BufferError:  # the local queue is full: let it drain
            producer.poll(0.5)
        except KafkaException as exc:
            if not _about_the_message(exc.args[0]):
                raise
            refused.append(d)
            return


def _about_the_message(err) -> bool:
    from confluent_kafka import KafkaError

    return err.code() in (KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.INVALID_MSG_SIZE,
                          KafkaError.RECORD_LIST_TOO_LARGE, KafkaError.INVALID_RECORD)


def process_stream(chunks: Iterable[Iterable[KafkaRecord]], cfg: PipelineConfig, *, detector_for=None,
                   store=None, dead_letters=None, known_models: set[str] | None = None,
                   assigned: Mapping[str, str] | None = None) -> list[dict]:
    """Validate, decode, detect, store and dead-letter a task's records, the stages overlapped:
    JPEG decoding runs ahead of detection on :attr:`PipelineConfig.decode_threads` threads,
    each model detects as soon as it has a full batch, and HBase writes go on a writer
    thread. Returns when every frame is written and every reject is in the DLQ.

    :param chunks: the task's records, chunk by chunk as Spark hands them over.
    :param detector_for: model name -> Detector (default: the process's cached models).
    :param store: where frames go (default: the process's :class:`DetectionStore`).
    :param dead_letters: sends a list of DeadLetter and waits (default: the DLQ producer).
    :param assigned: camera -> model given in the console (default: read from the
        process's store every few seconds; none with a store passed in).
    :return: one summary row per record.
    """
    if detector_for is None:
        from argus.detect import Detector

        def detector_for(model):
            return Detector(model, batch_size=cfg.batch_size)
    if known_models is None:
        from argus.detect import default_registry

        known_models = set(default_registry().models)
    send = dead_letters or (lambda dead: send_dead_letters(dead, cfg))
    if assigned is None:
        assigned = _assigned_for(cfg).get() if store is None else {}
    writer = BackgroundWriter(store if store is not None else _store_for(cfg), prepare=_images_for(cfg))
    waiting: dict[str, list] = defaultdict(list)  # model -> [(item, read_ms)] not yet detected
    dead: list[DeadLetter] = []

    def run(model: str) -> None:
        batch = waiting.pop(model)
        results, failed = detect([i for i, _ in batch], cfg, [r for _, r in batch], detector_for)
        dead.extend(failed)
        writer.put(results)

    def settle(future, read_ms: int) -> None:
        item = future.result()
        if isinstance(item, DeadLetter):
            dead.append(item)
            return
        waiting[item.model].append((item, read_ms))
        if len(waiting[item.model]) >= cfg.batch_size:
            run(item.model)

    pending: deque = deque()
    ahead = max(2 * cfg.batch_size, 16)  # decoded frames held at most: bounded memory
    try:
        with ThreadPoolExecutor(max(1, cfg.decode_threads), thread_name_prefix="argus-decode") as pool:
            for chunk in chunks:
                read_ms = int(time.time() * 1000)
                for rec in chunk:
                    pending.append((pool.submit(prepare_one, rec, cfg, known_models, assigned), read_ms))
                    while len(pending) > ahead:
                        settle(*pending.popleft())
            while pending:
                settle(*pending.popleft())
        for model in list(waiting):
            run(model)
    finally:
        writer.close()
    send(dead)
    if cfg.tracking_topic:
        send_to_tracker([r for results, _ in writer.written for r in results], cfg)
    rows = [row for results, written_ms in writer.written for row in summary_rows(results, [], written_ms)]
    return rows + summary_rows([], dead, None)


def send_to_tracker(results: list[FrameResult], cfg: PipelineConfig, producer=None) -> None:
    """Each stored frame's detections to the tracker's topic, keyed by camera, and wait: a
    batch is not done until the tracker will see its frames (a retried batch sends them
    again; the tracker passes over frames it has seen)."""
    from argus.track.stream import frame_message

    producer = producer or _dlq_for(cfg)
    errors: list = []
    for r in results:
        producer.produce(cfg.tracking_topic, key=r.camera_id.encode(), on_delivery=lambda e, _m: e and errors.append(e),
                         value=frame_message(r.camera_id, r.capture_ts_ms, r.seq, r.model,
                                             [(d.class_name, d.score, d.box) for d in r.detections]))
        producer.poll(0)
    left = producer.flush(60)
    if errors or left:
        raise RuntimeError(f"{len(errors) + left} frame(s) not delivered to the tracker's topic "
                           f"{cfg.tracking_topic}: {errors[:1] or 'timed out'}")


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
