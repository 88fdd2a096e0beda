"""``argus demo`` (``make demo``): the real pipeline on the local stack, end to end.

1. the stack up (Kafka, HBase, HDFS, Spark, Airflow);
2. the simulator's cameras (those of ``cameras.yaml``) playing into Kafka in real time;
3. ``argus_stream_detection`` triggered in Airflow: its supervisor starts the streaming job;
4. wait until detections land in HBase, measure a while, and print a summary: frames/s,
   capture -> HBase latency p50/p99, detections per class, the newest rows;
5. the simulator stops; the streaming job stays up under the supervisor, and the Airflow UI
   keeps running (URL and login printed) until ``argus stack down``.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import numpy as np
from rich.console import Console
from rich.table import Table

from argus.config import ArgusConfig

STREAM_DAG = "argus_stream_detection"


def _client(cfg: ArgusConfig):
    from argus.airflow_client import AirflowClient
    from argus.stack.airflow import airflow_login

    user, password = airflow_login(cfg)
    return AirflowClient(cfg.airflow_url, user, password)


def ensure_stream_run(cfg: ArgusConfig) -> str:
    """The running ``argus_stream_detection`` run, triggered if there is none."""
    client = _client(cfg)
    try:
        client.wait_for_dag(STREAM_DAG, timeout=300)
        active = client._json("GET", f"/dags/{STREAM_DAG}/dagRuns", params={"state": ["queued", "running"]})
        if active["dag_runs"]:
            return active["dag_runs"][0]["dag_run_id"]
        return client.trigger(STREAM_DAG)["dag_run_id"]
    finally:
        client.close()


def frames_since(store, cameras: list[str], since_ms: int) -> list[dict]:
    rows = []
    for cam in cameras:
        rows += [dict(r, camera=cam) for r in store.frames(cam, since=since_ms)]
    return rows


def _newest_latency_ms(store, cameras: list[str]) -> float:
    """Capture -> HBase latency of the newest stored frame (how far behind the job is)."""
    newest = None
    for cam in cameras:
        rows = store.frames(cam, since=int(time.time() * 1000) - 60_000)
        if rows and "t:written" in rows[0] and (newest is None or int(rows[0]["t:captured"]) > newest[0]):
            newest = (int(rows[0]["t:captured"]), int(rows[0]["t:written"]))
    return float("inf") if newest is None else max(newest[1] - newest[0], time.time() * 1000 - newest[1])


def summarize(store, cameras: list[str], since_ms: int, until_ms: int) -> dict:
    """Frames/s, latency and detections of the frames captured in ``[since, until]``."""
    rows = [r for r in frames_since(store, cameras, since_ms) if int(r["t:captured"]) <= until_ms]
    written = sorted(int(r["t:written"]) for r in rows if "t:written" in r)
    latency = np.array([int(r["t:written"]) - int(r["t:captured"]) for r in rows if "t:written" in r])
    span_s = (written[-1] - written[0]) / 1000 if len(written) > 1 else 0.0
    detections = []
    for cam in cameras:
        detections += store.search(camera=cam, since=since_ms, until=until_ms, limit=100_000)
    return {
        "window_s": (until_ms - since_ms) / 1000,
        "frames": len(rows),
        "fps": round((len(written) - 1) / span_s, 2) if span_s > 0 else 0.0,
        "latency_ms": {"p50": float(np.percentile(latency, 50)), "p99": float(np.percentile(latency, 99))}
        if latency.size else {},
        "classes": dict(Counter(d.class_name for d in detections).most_common()),
        "newest": [d.to_dict() for d in sorted(detections, key=lambda d: -d.capture_ts_ms)[:5]],
    }


def run_demo(console: Console, measure_s: float = 30.0, wait_s: float = 600.0) -> int:
    from argus.cli.output import print_status, reporter
    from argus.live.cameras import camera_registry_path, load_cameras, register_cameras
    from argus.live.ingest import KafkaFrameSink, run_ingest
    from argus.live.simulate import ensure_clips
    from argus.stack.airflow import airflow_login
    from argus.stack.manager import Stack
    from argus.store import DetectionStore
    from argus.live.topics import ensure_topics

    stack = Stack(reporter=reporter())
    cfg = stack.cfg
    console.print("[bold]1/4 starting the local stack[/bold]")
    stack.up()
    ensure_topics(cfg.kafka_bootstrap)
    store = DetectionStore.from_config(cfg)
    store.ensure_tables()

    console.print("[bold]2/4 cameras: the simulator plays cameras.yaml into Kafka[/bold]")
    ensure_clips(cfg.cache_dir / "simulator")
    cameras = load_cameras(camera_registry_path())
    register_cameras(store, cameras)
    ids = [c.id for c in cameras]
    stop = threading.Event()
    sink = KafkaFrameSink(cfg.kafka_bootstrap)
    started_ms = int(time.time() * 1000)
    ingest = threading.Thread(target=run_ingest, args=(cameras, sink, stop), daemon=True)
    ingest.start()

    try:
        console.print(f"[bold]3/4 Airflow: {STREAM_DAG} supervises the streaming job[/bold]")
        run_id = ensure_stream_run(cfg)
        console.print(f"    run {run_id}")

        console.print("[bold]4/4 waiting for detections in HBase[/bold]")
        deadline = time.monotonic() + wait_s
        with console.status("the streaming job is starting (Spark, models) ...") as status:
            while True:
                n = len(frames_since(store, ids, started_ms))
                if n:
                    break
                if time.monotonic() > deadline:
                    console.print(f"[red]no frame stored after {wait_s:.0f}s: see the Airflow UI and "
                                  f"{cfg.state_dir / 'logs'}[/red]")
                    return 1
                time.sleep(2)
            # the job starts on a backlog (frames sent while Spark and the models loaded):
            # measure once it has caught up, i.e. once fresh frames land within seconds
            catch_up = time.monotonic() + 180
            while time.monotonic() < catch_up and _newest_latency_ms(store, ids) > 5000:
                status.update("the streaming job is catching up with the backlog ...")
                time.sleep(2)
            first_ms = int(time.time() * 1000)
            end = time.monotonic() + measure_s
            while time.monotonic() < end:
                status.update(f"measuring: {len(frames_since(store, ids, first_ms))} frames stored "
                              f"({end - time.monotonic():.0f}s left)")
                time.sleep(2)
        until_ms = int(time.time() * 1000)
        time.sleep(5)  # let the last micro-batch land
    finally:
        stop.set()
        ingest.join(30)
        sink.close(30)

    summary = summarize(store, ids, first_ms, until_ms)
    _print_summary(console, summary, ids)
    print_status(stack, None)
    user, password = airflow_login(cfg)
    console.print(f"The run in the Airflow UI: [bold]{cfg.airflow_url}/dags/{STREAM_DAG}/runs/{run_id}[/bold] "
                  f"(login {user} / {password})")
    console.print(f"The Argus console (live wall, search, cameras): [bold]{cfg.console_url}/live[/bold]")
    console.print("The streaming job keeps running under its supervisor; stop everything with "
                  "[bold].venv/bin/argus stack down[/bold] (or make down)")
    return 0 if summary["frames"] else 1


def _print_summary(console: Console, s: dict, cameras: list[str]) -> None:
    lat = s["latency_ms"]
    console.print(f"[bold]Live pipeline[/bold] (steady state, {s['window_s']:.0f} s): {s['frames']} frames from "
                  f"{len(cameras)} cameras stored, "
                  f"{s['fps']} frames/s; capture -> HBase latency p50 {lat.get('p50', 0):.0f} ms, "
                  f"p99 {lat.get('p99', 0):.0f} ms")
    classes = Table(title="Detections per class", title_justify="left")
    classes.add_column("class")
    classes.add_column("detections", justify="right")
    for name, n in s["classes"].items():
        classes.add_row(name, str(n))
    console.print(classes)
    rows = Table(title="Newest detections (argus search)", title_justify="left")
    for col in ("camera", "captured", "class", "score", "box"):
        rows.add_column(col)
    for d in s["newest"]:
        rows.add_row(d["camera_id"], time.strftime("%H:%M:%S", time.gmtime(d["capture_ts_ms"] / 1000)),
                     d["class_name"], f"{d['score']:.2f}", ",".join(f"{v:.2f}" for v in d["box"]))
    console.print(rows)
