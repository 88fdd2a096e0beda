"""``argus demo --round-trip``: bring the local stack up and push a round trip through every service.

Kafka (frames in and out), HBase (put/get/scan through Thrift), HDFS (a file through
WebHDFS), Spark (a job on the standalone cluster reading that file and that topic with
Spark's Kafka source) and Airflow (a DAG run reaching HBase through its connection).
``argus demo`` without the flag runs the real pipeline (``argus.cli.demo``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import numpy as np
from rich.console import Console
from rich.table import Table

from argus.config import ArgusConfig
from argus.stack.manager import Stack

SMOKE_TABLE = "argus_smoke"


def synthetic_jpegs(n: int, width: int = 320, height: int = 240) -> list[bytes]:
    """``n`` small JPEG frames of a moving gradient, encoded with PyAV's MJPEG encoder."""
    import av

    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "yuvj420p"
    codec.time_base = av.time_base  # required by the encoder; irrelevant to single images
    ys, xs = np.mgrid[0:height, 0:width]
    frames = []
    for i in range(n):
        rgb = np.stack([(xs + 8 * i) % 256, (ys + 4 * i) % 256, np.full_like(xs, 128)], axis=-1).astype(np.uint8)
        packets = codec.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuvj420p"))
        frames.append(b"".join(bytes(p) for p in packets))
    return frames


def kafka_round_trip(cfg: ArgusConfig, topic: str, frames: list[bytes]) -> str:
    from confluent_kafka import Consumer, Producer

    producer = Producer({"bootstrap.servers": cfg.kafka_bootstrap, "acks": "all", "enable.idempotence": True})
    for seq, jpeg in enumerate(frames):
        producer.produce(topic, key=f"demo-cam-{seq % 2}", value=jpeg, headers={"seq": str(seq)})
    if producer.flush(30):
        raise RuntimeError("Kafka did not acknowledge every frame within 30 s")
    consumer = Consumer({"bootstrap.servers": cfg.kafka_bootstrap, "group.id": f"argus-demo-{topic}",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    got = 0
    deadline = time.monotonic() + 60
    try:
        while got < len(frames) and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is not None and not msg.error() and msg.value()[:2] == b"\xff\xd8":
                got += 1
    finally:
        consumer.close()
    if got != len(frames):
        raise RuntimeError(f"consumed {got} of {len(frames)} frames from {topic}")
    return f"{len(frames)} JPEG frames produced and consumed on {topic}"


def hbase_round_trip(cfg: ArgusConfig, run: str) -> str:
    import happybase

    conn = happybase.Connection(cfg.host, cfg.port("hbase_thrift"))
    try:
        if SMOKE_TABLE.encode() not in conn.tables():
            conn.create_table(SMOKE_TABLE, {"r": dict(max_versions=1)})
        table = conn.table(SMOKE_TABLE)
        with table.batch() as batch:
            for i in range(5):
                batch.put(f"demo-{run}-{i}".encode(), {b"r:status": b"ok"})
        rows = list(table.scan(row_prefix=f"demo-{run}-".encode()))
    finally:
        conn.close()
    if len(rows) != 5:
        raise RuntimeError(f"scanned {len(rows)} of 5 rows back from {SMOKE_TABLE}")
    return f"5 rows put and scanned back in {SMOKE_TABLE}"


def hdfs_write(cfg: ArgusConfig, path: str) -> str:
    from argus.archive.hdfs import webhdfs_client

    webhdfs_client(cfg).write(path, data="camera,lat,lon\ndemo-cam-0,48.85,2.35\n", encoding="utf-8", overwrite=True)
    return f"wrote {cfg.hdfs_uri}{path}"


def spark_job(cfg: ArgusConfig, path: str, topic: str, n_frames: int) -> str:
    from argus.submit import submit

    run = submit(cfg, cfg.root / "jobs" / "smoke.py",
                 ["--hdfs", f"{cfg.hdfs_uri}{path}", "--kafka-bootstrap", cfg.kafka_bootstrap, "--topic", topic])
    if run.returncode != 0 or not run.result:
        raise RuntimeError(f"Spark job failed:\n{run.output[-2000:]}")
    lines, frames = run.result["hdfs"]["count"], run.result["kafka"]["count"]
    if lines != 2 or frames != n_frames:
        raise RuntimeError(f"Spark read {lines} lines (expected 2) and {frames} frames (expected {n_frames})")
    return f"job on {cfg.spark_master_url} read {lines} lines from HDFS and {frames} frames from Kafka"


def airflow_dag(cfg: ArgusConfig) -> str:
    from argus.airflow_client import AirflowClient
    from argus.stack.airflow import airflow_login

    user, password = airflow_login(cfg)
    client = AirflowClient(cfg.airflow_url, user, password)
    try:
        client.wait_for_dag("argus_smoke", timeout=240)
        run = client.trigger("argus_smoke")
        done = client.wait_for_run("argus_smoke", run["dag_run_id"], timeout=300)
    finally:
        client.close()
    if done["state"] != "success":
        raise RuntimeError(f"argus_smoke run {run['dag_run_id']} ended {done['state']}; see the Airflow UI")
    return f"argus_smoke run {run['dag_run_id']} succeeded (HBase through the argus_hbase connection)"


def round_trip(cfg: ArgusConfig, console: Console) -> bool:
    run = uuid.uuid4().hex[:8]
    topic, path = f"argus.demo.{run}", f"/argus/demo/{run}/cameras.csv"
    frames = synthetic_jpegs(10)
    steps: list[tuple[str, Callable[[], str]]] = [
        ("Kafka", lambda: kafka_round_trip(cfg, topic, frames)),
        ("HBase", lambda: hbase_round_trip(cfg, run)),
        ("HDFS", lambda: hdfs_write(cfg, path)),
        ("Spark", lambda: spark_job(cfg, path, topic, len(frames))),
        ("Airflow", lambda: airflow_dag(cfg)),
    ]
    table = Table(title="Round trip through every service", title_justify="left")
    for col in ("service", "result", "seconds", "details"):
        table.add_column(col)
    ok = True
    for name, step in steps:
        t0 = time.monotonic()
        with console.status(f"{name} ..."):
            try:
                detail, passed = step(), True
            except Exception as exc:  # report every step, then fail
                detail, passed = f"{type(exc).__name__}: {exc}", False
        ok &= passed
        table.add_row(name, "[green]ok[/]" if passed else "[red]FAILED[/]", f"{time.monotonic() - t0:.1f}", detail)
    console.print(table)
    return ok


def run_demo(console: Console) -> int:
    from argus.cli.output import print_status, reporter

    stack = Stack(reporter=reporter())
    console.print("[bold]1/2 starting the local stack[/bold]")
    stack.up()
    console.print("[bold]2/2 round trip through every service[/bold]")
    ok = round_trip(stack.cfg, console)
    print_status(stack, None)
    console.print(f"Spark UI: http://{stack.cfg.host}:{stack.cfg.port('spark_master_ui')}   "
                  "stop everything with: [bold].venv/bin/argus stack down[/bold] (or make down)")
    return 0 if ok else 1
