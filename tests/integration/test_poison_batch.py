"""A record that kills the Python worker (a native crash no try/except can catch) fails its
micro-batch every time. After ``poison_after_failures`` failures of that batch in a row, each
counted in the status row across driver restarts, the driver isolates the record by
bisection and dead-letters it; every other frame is stored once; the verdicts name the crash
loop and the isolated offset. The supervisor's part (restart, alert) is played here by
restarting the driver as it would, so that the test needs no Airflow."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from confluent_kafka import Producer
from stream_checks import dead_letters, stored_seqs

from argus.bench.live import driver_lines
from argus.media.codec import encode_jpeg
from argus.live.message import FrameMessage
from argus.submit import submit_argv
from argus.store import DetectionStore
from argus.live.launcher import StreamJob, StreamJobSpec
from argus.supervision.health import DEAD, Thresholds, assess
from argus.supervision.status import StreamStatusStore, now_ms
from argus.live.topics import ensure_topics

PLUGINS = Path(__file__).resolve().parents[1] / "plugins"
#: what the fault model needs, on the driver and on every executor
FAULT_ENV = {"ARGUS_DETECTOR_PLUGINS": "fault_detector", "ARGUS_MODEL_REGISTRY": str(PLUGINS / "fault_models.yaml"),
             "PYTHONPATH": str(PLUGINS)}


def start(spec: StreamJobSpec, cfg, log_path) -> StreamJob:
    job = StreamJob(spec, cfg, log_path)
    conf = {**spec.spark_conf(), **{f"spark.executorEnv.{k}": v for k, v in FAULT_ENV.items()},
            "spark.task.maxFailures": "1"}
    argv = submit_argv(cfg, job.application, spec.args(job.endpoints), conf=conf)
    return job.start(argv=argv, env={**job.environment(), **FAULT_ENV})


def wait_exit(job: StreamJob, timeout=300) -> int:
    deadline = time.monotonic() + timeout
    while job.alive:
        assert time.monotonic() < deadline, f"the driver did not fail:\n{job.log_tail()}"
        time.sleep(1)
    return job.proc.returncode


@pytest.mark.timeout(1200)
def test_a_record_that_crashes_the_worker_is_isolated_after_repeated_failures(stack, cfg, unique, tmp_path):
    topic, dlq = f"it.poison.{unique}", f"it.poison.{unique}.dlq"
    ensure_topics(cfg.kafka_bootstrap, topic, dlq, partitions=1)
    camera = f"poison-{unique}"
    producer = Producer({"bootstrap.servers": cfg.kafka_bootstrap})
    grey, white = encode_jpeg(np.full((48, 64, 3), 90, np.uint8)), encode_jpeg(np.full((48, 64, 3), 255, np.uint8))
    for seq in range(12):
        msg = FrameMessage(camera, int(time.time() * 1000), seq, 64, 48, white if seq == 7 else grey)
        producer.produce(topic, key=msg.key, value=msg.jpeg, headers=msg.headers())
    assert producer.flush(30) == 0
    spec = StreamJobSpec(topic=topic, dlq_topic=dlq, checkpoint=f"{cfg.hdfs_uri}/argus/tests/{unique}/checkpoint",
                         query_name=f"it_poison_{unique}", default_model="crash-on-white", batch_size=4,
                         max_offsets_per_trigger=20, poison_after_failures=2)
    status_store = StreamStatusStore.from_config(cfg)
    log_path = tmp_path / "stream.log"

    # two drivers in a row fail on the same micro-batch; each failure is counted
    for attempt in (1, 2):
        job = start(spec, cfg, log_path)
        assert wait_exit(job) != 0
        failing = status_store.read(spec.query_name).failing
        assert failing["attempts"] == attempt and "Python worker" in failing["error"] + job.log_tail(), failing
    verdict = assess(status_store.read(spec.query_name), now_ms(), Thresholds())
    assert verdict.state == DEAD and any(name.startswith("crash_loop@") for name in verdict.breaches), verdict

    # the third isolates the record and goes on
    store = DetectionStore.from_config(cfg)
    job = start(spec, cfg, log_path)
    try:
        deadline = time.monotonic() + 420
        while len(store.frames(camera)) < 11:
            assert job.alive, f"the driver stopped:\n{job.log_tail()}"
            assert time.monotonic() < deadline, f"timed out:\n{job.log_tail()}"
            time.sleep(2)
        time.sleep(3)
        assert job.alive
        status = status_store.read(spec.query_name)
    finally:
        job.kill()

    assert stored_seqs(store, camera) == [s for s in range(12) if s != 7]
    [entry] = driver_lines(log_path.read_text(), "ARGUS_ISOLATED")
    assert [(r["partition"], r["offset"]) for r in entry["records"]] == [(0, 7)]
    assert status.failing == {} and status.isolated["total"] == 1
    [breach] = [t for n, t in assess(status, now_ms(), Thresholds()).breaches.items() if n.startswith("isolated@")]
    assert f"{topic}/0/7" in breach

    letters = dead_letters(cfg, dlq, 1, timeout=30, linger_s=5)
    [letter] = letters
    assert letter["dlq_stage"] == b"isolate" and letter["dlq_source"] == f"{topic}/0/7".encode()
    assert letter["value"] == white and letter["seq"] == b"7"
