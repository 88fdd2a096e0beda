"""Camera ingest: decode each source at its decoding rate, JPEG-encode, produce to Kafka.

One worker thread per camera. Sources are anything PyAV (FFmpeg) opens: RTSP/HTTP URLs or
video files. Frames are selected by presentation time at the camera's rate. Once the worker has seen
that keyframes alone come often enough for the rate, only keyframes are decoded (the
cheapest skip H.264 allows); otherwise every frame is decoded (P-frames depend on their
predecessors) but only the selected ones are converted and JPEG-encoded, which is where
the cost is.

Backpressure: the producer's queue is bounded; when it is full a worker waits for
deliveries instead of dropping frames. Streams that drop are reopened with exponential
backoff.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


from argus.media.codec import encode_jpeg
from argus.live.cameras import CameraSpec
from argus.live.message import FRAMES_TOPIC, MAX_MESSAGE_BYTES, FrameMessage

log = logging.getLogger(__name__)


@dataclass
class CameraStats:
    decoded: int = 0
    sent: int = 0
    delivered: int = 0
    failed: int = 0
    reconnects: int = 0
    last_error: str = ""


class KafkaFrameSink:
    """Thread-safe producer of frame messages with delivery accounting and backpressure.

    :param bootstrap: Kafka bootstrap servers; :param topic: frames topic;
    :param max_queued: frames buffered in the producer before workers wait.
    """

    def __init__(self, bootstrap: str, topic: str = FRAMES_TOPIC, max_queued: int = 2000,
                 extra: dict | None = None):
        from confluent_kafka import Producer

        self.topic = topic
        self._producer = Producer({
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,  # retries never duplicate or reorder a camera's frames
            "linger.ms": 5,
            "message.max.bytes": MAX_MESSAGE_BYTES,
            "queue.buffering.max.messages": max_queued,
            "compression.type": "none",  # JPEG does not compress further
            **(extra or {}),
        })
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="kafka-delivery", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.1)

    def send(self, msg: FrameMessage, stats: CameraStats) -> None:
        def delivered(err, _msg):
            if err is None:
                stats.delivered += 1
            else:
                stats.failed += 1
                stats.last_error = str(err)
                log.error("frame %s/%s not delivered: %s", msg.camera_id, msg.seq, err)

        while True:
            try:
                # no explicit timestamp: the frames topic stamps LogAppendTime, the "in Kafka"
                # stage of the latency breakdown (capture time travels in the headers)
                self._producer.produce(self.topic, key=msg.key, value=msg.jpeg, headers=msg.headers(),
                                       on_delivery=delivered)
                stats.sent += 1
                return
            except BufferError:  # queue full: wait for deliveries (backpressure), never drop
                time.sleep(0.05)

    def close(self, timeout: float = 60.0) -> int:
        """Flush; returns the number of frames still undelivered."""
        self._stop.set()
        self._poller.join()
        return self._producer.flush(timeout)


class CameraWorker(threading.Thread):
    """Decodes one camera at its rate into the sink until stopped (or the file ends)."""

    def __init__(self, spec: CameraSpec, sink: KafkaFrameSink, stop: threading.Event,
                 max_backoff_s: float = 30.0, clock: Callable[[], float] = time.time):
        super().__init__(name=f"camera-{spec.id}", daemon=True)
        self.spec, self.sink, self.stop_event = spec, sink, stop
        self.stats = CameraStats()
        self.max_backoff_s, self.clock = max_backoff_s, clock
        self._seq = 0

    def run(self) -> None:
        backoff = 1.0
        while not self.stop_event.is_set():
            try:
                finished = self._stream_once()
                backoff = 1.0
                if finished and not self.spec.loop:
                    return
            except Exception as exc:  # av.error.*, network: reconnect
                self.stats.reconnects += 1
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("camera %s: %s; reopening in %.0fs", self.spec.id, self.stats.last_error, backoff)
                if self.stop_event.wait(backoff):
                    return
                backoff = min(backoff * 2, self.max_backoff_s)

    def _open(self):
        import av

        options = {"rtsp_transport": "tcp", "stimeout": "5000000"} if self.spec.url.startswith("rtsp") else {}
        return av.open(self.spec.url, options=options, timeout=(10.0, 10.0))

    def _stream_once(self) -> bool:
        """Decode until the source ends (True) or we are stopped (False)."""
        container = self._open()
        try:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            interval = 1.0 / self.spec.rate_hz
            next_pts = None
            wall0 = self.clock()
            first_pts = None
            last_key, key_interval = None, None
            for frame in container.decode(stream):
                if self.stop_event.is_set():
                    return False
                if frame.time is None:
                    continue
                self.stats.decoded += 1
                if frame.key_frame:
                    # the decoder cannot tell the GOP length up front: learn it, and once
                    # keyframes alone are frequent enough, stop decoding the frames between
                    if last_key is not None and frame.time > last_key:
                        key_interval = frame.time - last_key
                        if interval >= key_interval and stream.codec_context.skip_frame != "NONKEY":
                            stream.codec_context.skip_frame = "NONKEY"
                    last_key = frame.time
                if first_pts is None:
                    first_pts = frame.time
                if next_pts is not None and frame.time + 1e-6 < next_pts:
                    continue
                next_pts = (next_pts or frame.time) + interval
                if next_pts < frame.time:  # far behind (e.g. after skipped keyframes): resync
                    next_pts = frame.time + interval
                if self.spec.realtime:
                    due = wall0 + (frame.time - first_pts)
                    delay = due - self.clock()
                    if delay > 0 and self.stop_event.wait(delay):
                        return False
                self._emit(frame)
                if self.spec.max_frames is not None and self._seq >= self.spec.max_frames:
                    self.stop_event.set()
                    return False
            return True
        finally:
            container.close()

    def _emit(self, frame) -> None:
        rgb = frame.to_ndarray(format="rgb24")
        capture = int(self.clock() * 1000)
        msg = FrameMessage(self.spec.id, capture, self._seq, rgb.shape[1], rgb.shape[0],
                           encode_jpeg(rgb, self.spec.jpeg_quality), model=self.spec.model)
        self._seq += 1
        self.sink.send(msg, self.stats)


@dataclass
class IngestRun:
    workers: list[CameraWorker] = field(default_factory=list)

    @property
    def stats(self) -> dict[str, CameraStats]:
        return {w.spec.id: w.stats for w in self.workers}


def run_ingest(cameras: list[CameraSpec], sink: KafkaFrameSink, stop: threading.Event,
               seconds: float | None = None, on_tick: Callable[[IngestRun], None] | None = None) -> IngestRun:
    """Run one worker per camera until ``stop`` is set, ``seconds`` pass, or every file ends."""
    run = IngestRun([CameraWorker(c, sink, stop) for c in cameras])
    for w in run.workers:
        w.start()
    deadline = time.monotonic() + seconds if seconds else None
    try:
        while any(w.is_alive() for w in run.workers):
            if deadline and time.monotonic() >= deadline:
                break
            if on_tick:
                on_tick(run)
            stop.wait(0.5)
    finally:
        stop.set()
        for w in run.workers:
            w.join(timeout=15)
    return run
