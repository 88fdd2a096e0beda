"""What the streaming job's integration tests share: sending frames with a plain producer
(a batch, or a live feed on a thread), waiting on a running driver, reading a dead-letter
topic, and the sequence numbers stored."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from confluent_kafka import Consumer, Producer

from argus.media.codec import encode_jpeg
from argus.media.images import sample_frames
from argus.live.message import MAX_MESSAGE_BYTES, FrameMessage
from argus.store import DetectionStore
from argus.live.launcher import StreamJob, StreamJobSpec
from argus.live.topics import ensure_topics


def one_partition_job(cfg, name: str, unique: str, **spec) -> tuple[str, StreamJobSpec]:
    """A one-partition frames topic (and its DLQ) of the test's own, and the spec of a small
    BlazeFace streaming job over it; returns (topic, spec)."""
    topic = f"it.{name}.{unique}"
    ensure_topics(cfg.kafka_bootstrap, topic, f"{topic}.dlq", partitions=1)
    settings = dict(topic=topic, dlq_topic=f"{topic}.dlq", checkpoint=f"{cfg.hdfs_uri}/argus/tests/{unique}/checkpoint",
                    query_name=f"it_{name}_{unique}", camera_models={"*": "blazeface"}, batch_size=4,
                    max_offsets_per_trigger=10)
    return topic, StreamJobSpec(**{**settings, **spec})


def produce_frames(cfg, topic: str, camera: str, seqs: Iterable[int]) -> None:
    """Valid 64x48 frames of ``camera`` with the sequence numbers ``seqs``."""
    producer = Producer({"bootstrap.servers": cfg.kafka_bootstrap})
    image = encode_jpeg(sample_frames(1, (48, 64))[0])
    for seq in seqs:
        msg = FrameMessage(camera, int(time.time() * 1000), seq, 64, 48, image)
        producer.produce(topic, key=msg.key, value=msg.jpeg, headers=msg.headers())
    assert producer.flush(30) == 0


def wait_while_running(predicate: Callable[[], bool], job: StreamJob, timeout: float, what: str = "it") -> None:
    """Wait for ``predicate``, failing at once with the driver's log if the driver exits."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert job.alive, f"the driver exited ({job.proc.returncode}):\n{job.log_tail()}"
        assert time.monotonic() < deadline, f"{what}: timed out after {timeout:.0f}s; log tail:\n{job.log_tail()}"
        time.sleep(1)


def stored_seqs(store: DetectionStore, camera: str) -> list[int]:
    """The sequence numbers of the frames rows of ``camera``, sorted (a duplicate shows twice)."""
    return sorted(int(r["key"].rsplit("#", 1)[1]) for r in store.frames(camera))


def dead_letters(cfg, dlq: str, expected: int, timeout: float = 60, linger_s: float = 0) -> list[dict]:
    """Messages of the dead-letter topic as dicts of their headers plus ``key``, ``value``,
    ``size``: until ``expected`` arrived (and ``linger_s`` more, so that a duplicate shows)."""
    consumer = Consumer({"bootstrap.servers": cfg.kafka_bootstrap, "group.id": f"t-{dlq}-{time.monotonic_ns()}",
                         "auto.offset.reset": "earliest", "fetch.max.bytes": 50 * 2**20,
                         "max.partition.fetch.bytes": 20 * 2**20})
    consumer.subscribe([dlq])
    out, deadline, enough_at = [], time.monotonic() + timeout, None
    try:
        while time.monotonic() < deadline:
            if len(out) >= expected:
                enough_at = enough_at or time.monotonic()
                if time.monotonic() - enough_at >= linger_s:
                    break
            msg = consumer.poll(1.0)
            if msg is not None and not msg.error():
                out.append({"key": msg.key(), "value": msg.value(), "size": len(msg.value() or b""),
                            **dict(msg.headers() or [])})
    finally:
        consumer.close()
    return out


class TcpRelay:
    """A TCP relay on its own loopback address (``127.0.0.2``, ...) to a real service: a job
    told to reach the service through it can only do so through its address, and
    :attr:`connections` counts those who did.

    :param host: the address to listen on (any of 127.0.0.0/8).
    :param target: (host, port) of the service.
    """

    def __init__(self, host: str, target: tuple[str, int]):
        import socket
        import threading

        self.target, self.connections = target, 0
        self._server = socket.create_server((host, 0))
        self.host, self.port = host, self._server.getsockname()[1]
        self._threading = threading
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def _accept(self) -> None:
        import socket

        while True:
            try:
                client, _ = self._server.accept()
            except OSError:  # closed
                return
            self.connections += 1
            try:
                upstream = socket.create_connection(self.target, timeout=10)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            for a, b in ((client, upstream), (upstream, client)):
                self._threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src, dst) -> None:
        import socket

        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._server.close()


class LiveFeed:
    """Cameras sending frames with a plain producer at ``rate_hz`` each, on a thread, until
    stopped: the stream has input through every fault (the producer buffers while Kafka is
    down). ``sent[camera]`` counts each camera's frames (seq 0, 1, ...)."""

    def __init__(self, cfg, topic: str, cameras: list[str], rate_hz: float = 2.0, size: tuple[int, int] = (48, 64)):
        """:param size: (height, width) of the frames: the astronaut photo, scaled."""
        self.topic, self.cameras, self.period, self.size = topic, cameras, 1 / rate_hz, size
        self.image = encode_jpeg(sample_frames(1, size)[0])
        # log_level 2: librdkafka's connection-refused lines while Kafka restarts are expected here
        self.producer = Producer({"bootstrap.servers": cfg.kafka_bootstrap, "enable.idempotence": True,
                                  "message.max.bytes": MAX_MESSAGE_BYTES, "log_level": 2})
        self.sent = dict.fromkeys(cameras, 0)
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        height, width = self.size
        while not self.stop_event.wait(self.period):
            for cam in self.cameras:
                msg = FrameMessage(cam, int(time.time() * 1000), self.sent[cam], width, height, self.image)
                self.producer.produce(self.topic, key=msg.key, value=msg.jpeg, headers=msg.headers())
                self.sent[cam] += 1
            self.producer.poll(0)

    def stop(self) -> int:
        self.stop_event.set()
        self.thread.join()
        assert self.producer.flush(120) == 0
        return sum(self.sent.values())
