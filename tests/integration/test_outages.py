"""A dependency restarting under the running stream is waited out by the driver: no driver
restart, the outage recorded with the service named (the supervisor alerts it once), and
frames stored within 30 s of the service's return, none lost, none twice."""

from __future__ import annotations

import time

import pytest
from store_checks import assert_one_detection_row_per_detection
from stream_checks import one_partition_job, produce_frames, stored_seqs, wait_while_running

from argus.bench.live import driver_lines
from argus.store import DetectionStore
from argus.live.launcher import StreamJob
from argus.supervision.health import Thresholds, assess
from argus.supervision.status import StreamStatusStore, now_ms


@pytest.mark.timeout(900)
def test_an_hbase_thrift_restart_is_waited_out_without_a_driver_restart(stack, cfg, unique, tmp_path):
    topic, spec = one_partition_job(cfg, "outage", unique)
    camera = f"outage-{unique}"
    store, status_store = DetectionStore.from_config(cfg), StreamStatusStore.from_config(cfg)
    store.ensure_tables()
    log_path = tmp_path / "stream.log"
    produce_frames(cfg, topic, camera, range(0, 10))
    job = StreamJob(spec, cfg, log_path).start()
    driver_pid = job.proc.pid
    try:
        wait_while_running(lambda: len(store.frames(camera)) >= 10, job, 300, "the first frames")
        stack.down(["hbase-thrift"])
        try:
            produce_frames(cfg, topic, camera, range(10, 30))
            wait_while_running(lambda: (status_store.read(spec.query_name).outage or {}).get("service") == "hbase-thrift",
                               job, 120, "the outage being recorded")
            during = assess(status_store.read(spec.query_name), now_ms(), Thresholds())
            time.sleep(5)
        finally:
            stack.up(["hbase-thrift"])
        back = time.monotonic()
        store = DetectionStore.from_config(cfg)  # the test's own pooled connections died with the server
        wait_while_running(lambda: len(store.frames(camera)) >= 30, job, 60, "storing the frames after the return")
        recovery_s = time.monotonic() - back
        status = status_store.read(spec.query_name)
    finally:
        job.kill()

    assert job.proc.pid == driver_pid and not driver_lines(log_path.read_text(), "ARGUS_BATCH_FAILED")
    assert recovery_s <= 30, f"frames stored {recovery_s:.0f}s after the Thrift server was back"
    # one outage, named; over once the service answered
    assert list(during.breaches) == ["outage:hbase-thrift"] and "HBase Thrift server is down" in \
        during.breaches["outage:hbase-thrift"]
    [outage] = driver_lines(log_path.read_text(), "ARGUS_OUTAGE")
    assert outage["service"] == "hbase-thrift"
    assert status.outage == {}
    # none lost, none twice
    frames = store.frames(camera)
    assert stored_seqs(store, camera) == list(range(30))
    assert_one_detection_row_per_detection(store, {camera: frames})


@pytest.mark.timeout(900)
def test_a_kafka_restart_is_waited_out_without_a_driver_restart(stack, cfg, unique, tmp_path):
    topic, spec = one_partition_job(cfg, "kafkaout", unique)
    camera = f"kafkaout-{unique}"
    store, status_store = DetectionStore.from_config(cfg), StreamStatusStore.from_config(cfg)
    log_path = tmp_path / "stream.log"
    produce_frames(cfg, topic, camera, range(0, 10))
    job = StreamJob(spec, cfg, log_path).start()
    driver_pid = job.proc.pid
    try:
        wait_while_running(lambda: len(store.frames(camera)) >= 10, job, 300, "the first frames")
        stack.down(["kafka"])
        try:
            # the source waits while it plans a batch; the heartbeat's watchdog names the outage
            wait_while_running(lambda: (status_store.read(spec.query_name).outage or {}).get("service") == "kafka",
                               job, 90, "the Kafka outage being recorded")
            during = assess(status_store.read(spec.query_name), now_ms(), Thresholds())
        finally:
            stack.up(["kafka"])
        produce_frames(cfg, topic, camera, range(10, 30))
        back = time.monotonic()
        wait_while_running(lambda: len(store.frames(camera)) >= 30, job, 90, "storing the frames after the return")
        recovery_s = time.monotonic() - back
        wait_while_running(lambda: status_store.read(spec.query_name).outage == {}, job, 30, "the outage's end")
        status = status_store.read(spec.query_name)
    finally:
        job.kill()

    assert job.proc.pid == driver_pid and not driver_lines(log_path.read_text(), "ARGUS_BATCH_FAILED")
    assert recovery_s <= 30, f"frames stored {recovery_s:.0f}s after Kafka was back"
    assert list(during.breaches) == ["outage:kafka"] and "Kafka is down" in during.breaches["outage:kafka"]
    assert [o["service"] for o in driver_lines(log_path.read_text(), "ARGUS_OUTAGE")] == ["kafka"]
    assert status.last_outage["service"] == "kafka" and status.last_outage["seconds"] > 0
    frames = store.frames(camera)
    assert stored_seqs(store, camera) == list(range(30))
    assert_one_detection_row_per_detection(store, {camera: frames})
