"""Spark jobs on the local standalone cluster reading the real HDFS and Kafka."""

from __future__ import annotations

from confluent_kafka import Producer

from argus.archive.hdfs import webhdfs_client
from argus.submit import submit


def test_spark_job_reads_a_file_written_to_hdfs(stack, cfg, unique):
    client = webhdfs_client(cfg)
    path = f"/argus/tests/{unique}/cameras.txt"
    lines = [f"cam-{i},{48.85 + i / 100:.2f},{2.35 + i / 100:.2f}" for i in range(5)]
    client.write(path, data="\n".join(lines) + "\n", encoding="utf-8", overwrite=True)
    assert client.status(path)["length"] > 0

    run = submit(cfg, cfg.root / "jobs" / "smoke.py", ["--hdfs", f"{cfg.hdfs_uri}{path}"], with_kafka=False)
    assert run.returncode == 0, run.output[-3000:]
    assert run.result == {"hdfs": {"count": 5, "lines": lines}}
    # it really ran on the standalone cluster, not in local mode
    assert f"Connecting to master {cfg.spark_master_url}" in run.output or "StandaloneSchedulerBackend" in run.output


def test_spark_job_reads_kafka_with_sparks_kafka_source(stack, cfg, unique):
    topic = f"test.spark.{unique}"
    producer = Producer({"bootstrap.servers": cfg.kafka_bootstrap})
    for i in range(12):
        producer.produce(topic, key=f"cam-{i % 4}", value=b"\xff\xd8" + bytes(100 * i))
    assert producer.flush(30) == 0

    run = submit(cfg, cfg.root / "jobs" / "smoke.py", ["--kafka-bootstrap", cfg.kafka_bootstrap, "--topic", topic])
    assert run.returncode == 0, run.output[-3000:]
    assert run.result["kafka"] == {"count": 12, "keys": ["cam-0", "cam-1", "cam-2", "cam-3"],
                                   "bytes": sum(2 + 100 * i for i in range(12))}
