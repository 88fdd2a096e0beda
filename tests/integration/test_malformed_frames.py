"""Malformed messages from a plain Kafka client, in the same micro-batches as valid frames of
other cameras: the query never stops, every valid frame is stored once, every malformed
message is dead-lettered once with a reason and none is stored.

The corpus is written from docs/schema.md's rules alone, with confluent-kafka and PIL: no
Argus code builds or checks these messages. Each carries an ``x-case`` header (other headers
are carried along, the docs say) so that its dead letter can be found again.
"""

from __future__ import annotations

import io
import time
from collections import Counter

import pytest
from confluent_kafka import Producer
from PIL import Image
from stream_checks import dead_letters, stored_seqs

from argus.bench.live import driver_lines
from argus.store import DetectionStore
from argus.live.launcher import StreamJob, StreamJobSpec
from argus.live.message import MAX_MESSAGE_BYTES
from argus.live.topics import ensure_topics

FRAMES_PER_CAMERA = 12


def jpeg(width: int, height: int, shade: int = 90) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (shade, 120, 200 - shade)).save(out, format="JPEG")
    return out.getvalue()


def headers(camera: str, seq, *, ts=None, width=64, height=48, version=b"1", **extra) -> list[tuple[str, bytes]]:
    values = {"camera_id": camera, "capture_ts_ms": ts if ts is not None else int(time.time() * 1000),
              "seq": seq, "width": width, "height": height, "schema_version": version, **extra}
    return [(k, v if isinstance(v, bytes) else str(v).encode()) for k, v in values.items() if v is not None]


def corpus(bad_cam: str) -> dict[str, tuple[bytes | None, bytes, list]]:
    """case -> (key, value, headers): each breaks one rule of docs/schema.md."""
    key, img, now = bad_cam.encode(), jpeg(64, 48), int(time.time() * 1000)

    def without(name):
        return [h for h in headers(bad_cam, 1) if h[0] != name]

    def with_(**changes):
        return headers(bad_cam, changes.pop("seq", 1), **changes)

    cases = {
        "no headers": (key, img, []),
        **{f"no {name}": (key, img, without(name)) for name in
           ("camera_id", "capture_ts_ms", "seq", "width", "height", "schema_version")},
        "camera id with #": (b"cam#x", img, headers("cam#x", 1)),
        "camera id with a space": (b"cam x", img, headers("cam x", 1)),
        "camera id of 129 characters": (b"c" * 129, img, headers("c" * 129, 1)),
        "camera id not ASCII": ("caméra".encode(), img, headers("caméra", 1)),
        "camera id with HTML": (b"<script>x</script>", img, headers("<script>x</script>", 1)),
        "empty camera id": (b"", img, headers("", 1)),
        "no key": (None, img, headers(bad_cam, 1)),
        "key is another camera": (b"someone-else", img, headers(bad_cam, 1)),
        "negative seq": (key, img, with_(seq=-5)),
        "seq of 13 digits": (key, img, with_(seq=10**12)),
        "seq of 40 digits": (key, img, with_(seq=10**39)),
        "seq not a number": (key, img, with_(seq="five")),
        "seq with a space": (key, img, with_(seq=" 5")),
        "capture time 0": (key, img, with_(ts=0)),
        "capture time before 2000": (key, img, with_(ts=900_000_000_000)),
        "capture time a year ahead": (key, img, with_(ts=now + 365 * 86_400_000)),
        "capture time not a number": (key, img, with_(ts="yesterday")),
        "width 0": (key, img, with_(width=0)),
        "height over 16384": (key, img, with_(height=99_999)),
        "width negative": (key, img, with_(width=-64)),
        "schema_version 2": (key, img, with_(version=b"2")),
        "schema_version v1": (key, img, with_(version=b"v1")),
        "width not UTF-8": (key, img, with_(width=b"\xff\xfe")),
        "seq given twice": (key, img, [*headers(bad_cam, 1), ("seq", b"2")]),
        "unknown model": (key, img, with_(model="no-such-model")),
        "model name with spaces": (key, img, with_(model="Centernet COCO")),
        "empty payload": (key, b"", headers(bad_cam, 1)),
        "payload not a JPEG": (key, b"GIF89a" + bytes(64), headers(bad_cam, 1)),
        "truncated JPEG": (key, img[: len(img) // 3], headers(bad_cam, 1)),
        "JPEG of another size": (key, jpeg(32, 24), headers(bad_cam, 1)),
        "payload over 12 MiB": (key, b"\xff\xd8" + bytes(13 * 2**20), headers(bad_cam, 1)),
    }
    return {case: (k, v, [*h, ("x-case", case.encode())]) for case, (k, v, h) in cases.items()}


@pytest.mark.timeout(900)
def test_malformed_messages_are_dead_lettered_and_the_stream_goes_on(stack, cfg, unique, tmp_path):
    topic, dlq = f"it.malformed.{unique}", f"it.malformed.{unique}.dlq"
    ensure_topics(cfg.kafka_bootstrap, topic, dlq, partitions=2)
    cameras = [f"ok-{unique}-{i}" for i in range(3)]
    bad_cam = f"bad-{unique}"
    cases = corpus(bad_cam)
    assert len(cases) >= 25

    # valid frames of three cameras with the malformed messages spread between them, so that
    # every micro-batch mixes both; and a 1x1 frame, which is valid
    producer = Producer({"bootstrap.servers": cfg.kafka_bootstrap, "message.max.bytes": MAX_MESSAGE_BYTES})
    bad = list(cases.items())
    for seq in range(FRAMES_PER_CAMERA):
        for cam in cameras:
            producer.produce(topic, key=cam.encode(), value=jpeg(64, 48, 40 + 10 * seq), headers=headers(cam, seq))
        for _ in range(-(-len(cases) // FRAMES_PER_CAMERA)):
            if bad:
                case, (key, value, hs) = bad.pop(0)
                producer.produce(topic, key=key, value=value, headers=hs)
    tiny = f"tiny-{unique}"
    producer.produce(topic, key=tiny.encode(), value=jpeg(1, 1), headers=headers(tiny, 0, width=1, height=1))
    assert not bad and producer.flush(60) == 0

    store = DetectionStore.from_config(cfg)
    store.ensure_tables()
    spec = StreamJobSpec(topic=topic, dlq_topic=dlq, checkpoint=f"{cfg.hdfs_uri}/argus/tests/{unique}/checkpoint",
                         query_name=f"it_malformed_{unique}", camera_models={"*": "blazeface"}, batch_size=4,
                         max_offsets_per_trigger=20)
    log_path = tmp_path / "stream.log"
    job = StreamJob(spec, cfg, log_path).start()
    valid = len(cameras) * FRAMES_PER_CAMERA + 1
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            assert job.alive, f"the query stopped ({job.proc.returncode}):\n{job.log_tail()}"
            batches = driver_lines(log_path.read_text(), "ARGUS_BATCH")
            if sum(b.get("stored", 0) + b.get("dead_letter", 0) for b in batches) >= valid + len(cases):
                break
            time.sleep(2)
        time.sleep(5)  # a few more triggers: the query must still run, nothing more may appear
        assert job.alive, f"the query stopped:\n{job.log_tail()}"
    finally:
        job.kill()

    # the malformed messages went through in micro-batches with valid frames
    batches = driver_lines(log_path.read_text(), "ARGUS_BATCH")
    assert sum(1 for b in batches if b.get("stored") and b.get("dead_letter")) >= 3, batches

    # every valid frame stored once, each camera complete; the 1x1 frame too
    for cam in cameras:
        assert stored_seqs(store, cam) == list(range(FRAMES_PER_CAMERA)), cam
    assert len(store.frames(tiny)) == 1 and store.frames(tiny)[0]["f:w"] == "1"
    # no malformed message stored
    assert store.frames(bad_cam) == [] and store.frames("someone-else") == []

    # every malformed message dead-lettered once, with a reason and where it came from
    letters = dead_letters(cfg, dlq, len(cases), timeout=90, linger_s=20)
    seen = Counter(m.get("x-case", b"?").decode() for m in letters)
    assert seen == Counter({case: 1 for case in cases}), seen
    for m in letters:
        assert m["dlq_reason"] and m["dlq_stage"] in (b"validate", b"decode"), m
        assert m["dlq_source"].decode().startswith(f"{topic}/")
    reasons = {m["x-case"].decode(): m["dlq_reason"].decode() for m in letters}
    assert "is not a camera id" in reasons["camera id with #"]
    assert "no message key" in reasons["no key"]
    assert "is not 1-12 decimal digits" in reasons["seq of 40 digits"]
    assert "out of range" in reasons["capture time a year ahead"]
