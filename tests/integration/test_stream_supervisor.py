"""The streaming supervisor on the real stack, through the real Airflow: the
``argus_stream_detection`` DAG starts the job, a second copy is refused by the lease, the
driver is killed with SIGKILL and restarted from its checkpoint within 60 s with an alert to
a local webhook receiver, and every frame is stored exactly once. Invalid params are refused
before any run exists."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psutil
import pytest
from confluent_kafka import Producer
from store_checks import assert_one_detection_row_per_detection
from test_live_pipeline import ProducerSink, stored

from argus.live.cameras import CameraSpec
from argus.live.ingest import CameraWorker
from argus.live.simulate import ensure_clips
from argus.store import DetectionStore
from argus.live.launcher import StreamJob, StreamJobSpec
from argus.supervision.control import stop_stream
from argus.supervision.driver import EXIT_LEASE_HELD
from argus.supervision.process import driver_processes
from argus.supervision.status import StreamStatusStore
from argus.live.message import MAX_MESSAGE_BYTES
from argus.live.topics import ensure_topics

DAG_ID = "argus_stream_detection"
TASK_ID = "supervise_stream"
WEBHOOK = "argus_alert_webhook"
FRAMES_PER_CAMERA = 40  # 8-second simulator clips at 5 Hz


class AlertReceiver:
    """A local HTTP endpoint recording the JSON alerts POSTed to it."""

    def __init__(self):
        alerts = self.alerts = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                alerts.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture
def client(airflow):
    airflow.wait_for_dag(DAG_ID, timeout=240)
    return airflow


@pytest.fixture
def receiver(client):
    """The webhook alert channel pointed at a local receiver (the previous connection is restored)."""
    rx = AlertReceiver()
    before = client.request("GET", f"/connections/{WEBHOOK}")
    body = {"connection_id": WEBHOOK, "conn_type": "http", "host": rx.url, "description": "test receiver"}
    resp = client.request("PATCH" if before.status_code == 200 else "POST",
                          f"/connections/{WEBHOOK}" if before.status_code == 200 else "/connections", json=body)
    assert resp.status_code < 300, resp.text
    yield rx
    if before.status_code == 200:
        old = {k: v for k, v in before.json().items() if k in ("connection_id", "conn_type", "host", "port", "schema",
                                                               "login", "extra", "description")}
        client.request("PATCH", f"/connections/{WEBHOOK}", json=old)
    else:
        client.request("DELETE", f"/connections/{WEBHOOK}")
    rx.close()


def produce_frames(cfg, topic: str, cameras: list[str]) -> int:
    producer = Producer({"bootstrap.servers": cfg.kafka_bootstrap, "message.max.bytes": MAX_MESSAGE_BYTES,
                         "enable.idempotence": True})
    clips = ensure_clips(cfg.cache_dir / "simulator")
    workers = [CameraWorker(CameraSpec(id=cam, url=str(clips[i]), rate_hz=5.0), ProducerSink(producer, topic),
                            threading.Event()) for i, cam in enumerate(cameras)]
    for w in workers:
        w.run()
    assert producer.flush(60) == 0
    return sum(w.stats.sent for w in workers)


def wait_until(predicate, timeout: float, what: str, interval: float = 2.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def task_state(client, run_id) -> str:
    return {t["task_id"]: t["state"] for t in client.task_instances(DAG_ID, run_id)}.get(TASK_ID)


def task_log(cfg, run_id) -> str:
    folder = cfg.state_dir / "logs" / "airflow-tasks" / f"dag_id={DAG_ID}" / f"run_id={run_id}"
    return "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(folder.rglob("*.log"))) if folder.exists() else ""


@pytest.mark.timeout(1800)
def test_supervisor_restarts_a_killed_driver_from_its_checkpoint(stack, cfg, client, receiver, unique, tmp_path):
    topic, dlq, query = f"it.sup.{unique}", f"it.sup.{unique}.dlq", f"it_sup_{unique}"
    ensure_topics(cfg.kafka_bootstrap, topic, dlq, partitions=2)
    cameras = [f"it-{unique}-{i}" for i in range(3)]
    valid = produce_frames(cfg, topic, cameras)
    assert valid == len(cameras) * FRAMES_PER_CAMERA

    params = {
        "topic": topic, "dlq_topic": dlq, "query_name": query,
        "checkpoint": f"{cfg.hdfs_uri}/argus/tests/{unique}/checkpoint",
        "camera_models": {f"it-{unique}-*": "blazeface"}, "default_model": "ssdlite-person",
        # small: the cluster has 2 cores and other jobs share them
        "batch_size": 4, "executors": 1, "cores_per_executor": 1, "task_cpus": 1, "executor_memory": "1g",
        "max_offsets_per_trigger": 8, "trigger_seconds": 1, "lease_ttl_seconds": 10,
        "thresholds": {"stall_s": 1200, "start_timeout_s": 600, "max_batch_age_s": 900, "max_lag_records": 1000},
        "restart": {"base_s": 5, "max_restarts": 5, "window_s": 3600},
    }
    store = DetectionStore.from_config(cfg)
    store.ensure_tables()
    status_store = StreamStatusStore.from_config(cfg)
    run_id = client.trigger(DAG_ID, conf=params)["dag_run_id"]
    try:
        # the supervisor starts the driver and defers: the task holds no worker slot while watching
        first = wait_until(lambda: (s := status_store.read(query)).lease and s.lease.live(int(time.time() * 1000))
                           and s.lease, 300, "the first driver's lease")
        assert first.launch_id.startswith(f"{run_id}/")
        wait_until(lambda: task_state(client, run_id) == "deferred", 120, "the supervisor task to defer")

        # a second copy of the query, started by hand while the lease is live, exits at once
        spec = StreamJobSpec(topic=topic, dlq_topic=dlq, query_name=query, checkpoint=params["checkpoint"],
                             executors=1, cores_per_executor=1, task_cpus=1, executor_memory="1g")
        copy = StreamJob(spec, cfg, tmp_path / "second-copy.log").start()
        try:
            assert copy.proc.wait(120) == EXIT_LEASE_HELD, copy.log_tail()
        finally:
            copy.kill()
        assert "ARGUS_LEASE_HELD" in copy.log_tail() and "already running" in copy.log_tail()
        assert status_store.read(query).lease.owner == first.owner

        wait_until(lambda: stored(store, cameras) >= 16, 900, "the first frames stored", interval=1)

        # kill -9 the driver's whole process group, mid-backlog
        victim = status_store.read(query).lease
        partial = stored(store, cameras)
        assert partial < valid, "the job finished before it could be killed; make batches smaller"
        killed_at = time.monotonic()
        os.killpg(victim.pgid, signal.SIGKILL)

        def restarted():
            lease = status_store.read(query).lease
            return lease if lease and lease.owner != victim.owner and lease.live(int(time.time() * 1000)) else None

        successor = wait_until(restarted, 60, "a new driver holding the lease", interval=1)
        took = time.monotonic() - killed_at
        print(f"new driver holds the lease {took:.1f}s after the kill", flush=True)
        assert successor.launch_id.startswith(f"{run_id}/") and successor.launch_id != victim.launch_id
        assert successor.pid != victim.pid

        alerts = wait_until(lambda: [a for a in receiver.alerts if "restarting" in a["summary"]], 30,
                            "the restart alert")
        alert = alerts[0]
        assert (alert["dag_id"], alert["task_id"], alert["run_id"]) == (DAG_ID, TASK_ID, run_id)
        assert query in alert["summary"] and alert["severity"] == "error"
        assert alert["details"]["checkpoint"] == params["checkpoint"]

        # the new driver resumes from the checkpoint and finishes the backlog
        wait_until(lambda: stored(store, cameras) >= valid, 900, "every frame stored", interval=3)
        time.sleep(6)  # a few more triggers: nothing more may appear
        status = status_store.read(query)
        assert status.lease.owner == successor.owner and status.lease.live(int(time.time() * 1000))
        assert status.progress and status.progress["name"] == query
        assert task_state(client, run_id) == "deferred"
    finally:
        client.request("PATCH", f"/dags/{DAG_ID}/dagRuns/{run_id}", json={"state": "failed"})
        # marking the run failed stops the driver (the trigger's on_kill): nothing stays running
        lease = status_store.read(query).lease
        try:
            if lease is not None:
                wait_until(lambda: not driver_processes(lease), 90, "the driver to stop after the run was failed")
                wait_until(lambda: (s := status_store.read(query).lease) and (s.released or s.revoked_by), 30,
                           "the lease to be given up")
        finally:
            stop_stream(status_store, query, "test cleanup", grace_s=5)
        print(task_log(cfg, run_id)[-4000:])

    # no frame lost, none stored twice
    per_camera = {cam: store.frames(cam) for cam in cameras}
    assert {cam: len(rows) for cam, rows in per_camera.items()} == {cam: FRAMES_PER_CAMERA for cam in cameras}
    assert_one_detection_row_per_detection(store, per_camera)
    assert {r["f:model"] for rows in per_camera.values() for r in rows} == {"blazeface"}
    assert not [p for p in psutil.process_iter(["cmdline"]) if query in " ".join(p.info["cmdline"] or [])]


@pytest.mark.parametrize("conf, param, fragment", [
    ({"batch_size": "eight"}, "batch_size", "is not of type 'integer'"),
    ({"batch_size": 65}, "batch_size", "greater than the maximum of 64"),
    ({"trigger_seconds": 0.05}, "trigger_seconds", "less than the minimum of 0.2"),
    ({"camera_models": {"no-such-camera": "blazeface"}}, "camera_models", "'no-such-camera' is not one of"),
    ({"camera_models": {"sim-000": "no-such-model"}}, "camera_models", "'no-such-model' is not one of"),
    ({"thresholds": {"max_lag_records": -1}}, "thresholds", "less than the minimum of 0"),
    ({"topic": "bad topic!"}, "topic", "does not match"),
])
def test_an_invalid_param_is_refused_before_any_run(client, conf, param, fragment):
    runs_before = client.request("GET", f"/dags/{DAG_ID}/dagRuns").json()["total_entries"]
    resp = client.request("POST", f"/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "conf": conf})
    assert resp.status_code == 400, resp.text
    detail = resp.json()["detail"]
    assert f"Invalid input for param {param}:" in detail and fragment in detail, detail
    assert client.request("GET", f"/dags/{DAG_ID}/dagRuns").json()["total_entries"] == runs_before
