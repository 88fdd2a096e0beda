"""Records deleted ahead of the query's checkpoint (retention, or by hand) are skipped by
Spark's Kafka source, which runs with failOnDataLoss=false so that one lost range cannot stop
every camera: the skip must never be silent. The driver logs it, the status row holds it,
and the supervisor's verdict breaches with the topic, partition and offset range."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient
from stream_checks import one_partition_job, produce_frames, stored_seqs, wait_while_running

from argus.bench.live import driver_lines
from argus.store import DetectionStore
from argus.live.launcher import StreamJob
from argus.supervision.health import Thresholds, assess
from argus.supervision.status import StreamStatusStore, now_ms


@pytest.mark.timeout(900)
def test_offsets_deleted_ahead_of_the_checkpoint_are_named_not_skipped_silently(stack, cfg, unique, tmp_path):
    topic, spec = one_partition_job(cfg, "skip", unique)
    camera = f"skip-{unique}"
    store = DetectionStore.from_config(cfg)
    store.ensure_tables()
    log_path = tmp_path / "stream.log"

    produce_frames(cfg, topic, camera, range(0, 20))
    job = StreamJob(spec, cfg, log_path).start()
    try:
        wait_while_running(lambda: len(store.frames(camera)) >= 20, job, 300)
    finally:
        job.stop()
    # while the query is down, 30 more frames arrive and the first 15 of them are deleted
    produce_frames(cfg, topic, camera, range(20, 50))
    admin = AdminClient({"bootstrap.servers": cfg.kafka_bootstrap})
    [(_, future)] = admin.delete_records([TopicPartition(topic, 0, 35)]).items()
    assert future.result(30).low_watermark == 35

    job = StreamJob(spec, cfg, log_path).start()
    try:
        wait_while_running(lambda: len(store.frames(camera)) >= 35, job, 300)
        deadline = time.monotonic() + 60
        while sum(e["skipped"] for e in driver_lines(log_path.read_text(), "ARGUS_SKIPPED")) < 15:
            assert time.monotonic() < deadline, f"no skip reported; log tail:\n{job.log_tail()}"
            time.sleep(2)
        status = StreamStatusStore.from_config(cfg).read(spec.query_name)
        health = assess(status, now_ms(), Thresholds())
    finally:
        job.kill()

    # the stored frames are exactly those still in Kafka, none twice
    assert stored_seqs(store, camera) == [*range(0, 20), *range(35, 50)]
    # the driver's log names every skipped offset, once
    entries = driver_lines(log_path.read_text(), "ARGUS_SKIPPED")
    skipped = sorted(o for e in entries for p in e["partitions"] for a, b in p["ranges"] for o in range(a, b + 1))
    assert skipped == list(range(20, 35)), entries
    assert all(p["topic"] == topic and p["partition"] == 0 for e in entries for p in e["partitions"])
    # the status row counts them and the supervisor's verdict names them, as an open breach
    assert status.skipped["total"] == 15
    [breach] = [text for name, text in health.breaches.items() if name.startswith("skipped_offsets@")]
    assert f"{topic}/0 [" in breach and "35 offsets" not in breach
    assert f"{topic}/0 [30-34]" in breach or f"{topic}/0 [20-" in breach, breach
