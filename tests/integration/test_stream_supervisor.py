"""The streaming supervisor on the real stack, through the real Airflow: the
``argus_stream_detection`` DAG starts the job, a second copy is refused by the lease, the
driver is killed with SIGKILL six times and restarted from its checkpoint each time with an
alert to a local webhook receiver, the HBase Thrift server and Kafka restart under it (waited
out by the driver, one alert each naming the service), and every frame is stored exactly
once. Invalid params are refused before any run exists."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psutil
import pytest
from store_checks import assert_one_detection_row_per_detection
from stream_checks import LiveFeed, stored_seqs
from test_live_pipeline import stored

from argus.bench.live import driver_lines

from argus.store import DetectionStore
from argus.live.launcher import StreamJob, StreamJobSpec
from argus.supervision.control import stop_stream
from argus.supervision.driver import EXIT_LEASE_HELD
from argus.supervision.process import driver_processes
from argus.supervision.status import StreamStatusStore
from argus.live.topics import ensure_topics

DAG_ID = "argus_stream_detection"
TASK_ID = "supervise_stream"
WEBHOOK = "argus_alert_webhook"


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


def _outage_alerts(receiver, service: str) -> list[dict]:
    return [a for a in receiver.alerts if (a.get("details") or {}).get("slo") == f"outage:{service}"]


@pytest.mark.timeout(1800)
def test_the_supervised_stream_survives_six_driver_kills_and_a_thrift_and_a_kafka_restart(
        stack, cfg, client, receiver, unique, tmp_path):
    """Issue: six driver deaths within the hour must not exhaust the budget (independent
    faults), and a dependency restart is waited out by the running driver with one alert
    naming the service; no frame lost or stored twice through all of it."""
    topic, dlq, query = f"it.sup.{unique}", f"it.sup.{unique}.dlq", f"it_sup_{unique}"
    ensure_topics(cfg.kafka_bootstrap, topic, dlq, partitions=2)
    cameras = [f"it-{unique}-{i}" for i in range(2)]
    params = {
        "topic": topic, "dlq_topic": dlq, "query_name": query,
        "checkpoint": f"{cfg.hdfs_uri}/argus/tests/{unique}/checkpoint",
        "camera_models": {f"it-{unique}-*": "blazeface"}, "default_model": "ssdlite-person",
        # small: the cluster has 2 cores and other jobs share them
        "batch_size": 4, "executors": 1, "cores_per_executor": 1, "task_cpus": 1, "executor_memory": "1g",
        "max_offsets_per_trigger": 16, "trigger_seconds": 1, "lease_ttl_seconds": 10,
        "thresholds": {"stall_s": 1200, "start_timeout_s": 600, "max_batch_age_s": 900, "max_lag_records": 100000},
        # the default budget (30 restarts an hour, 3 of the same failure); short waits for the test's sake
        "restart": {"base_s": 2, "max_delay_s": 4},
    }
    store = DetectionStore.from_config(cfg)
    store.ensure_tables()
    status_store = StreamStatusStore.from_config(cfg)
    feed = LiveFeed(cfg, topic, cameras)
    run_id = client.trigger(DAG_ID, conf=params)["dag_run_id"]
    log_path = cfg.state_dir / "logs" / f"{query}.log"
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
        wait_until(lambda: stored(store, cameras) >= 8, 600, "the first frames stored", interval=1)

        # six kill -9 of the driver's whole process group: each is restarted from the checkpoint
        for kill in range(1, 7):
            victim = status_store.read(query).lease
            killed_at = time.monotonic()
            os.killpg(victim.pgid, signal.SIGKILL)

            def restarted():
                lease = status_store.read(query).lease
                return lease if lease and lease.owner != victim.owner and lease.live(int(time.time() * 1000)) else None

            successor = wait_until(restarted, 90, f"a new driver after kill {kill}", interval=1)
            print(f"kill {kill}: new driver holds the lease {time.monotonic() - killed_at:.1f}s later", flush=True)
            assert successor.launch_id.startswith(f"{run_id}/") and successor.launch_id != victim.launch_id
            before = stored(store, cameras)
            wait_until(lambda: stored(store, cameras) > before, 120, f"progress after kill {kill}", interval=1)
        restarts = wait_until(lambda: [a for a in receiver.alerts if "restarting" in a["summary"]][:6]
                              if len([a for a in receiver.alerts if "restarting" in a["summary"]]) >= 6 else None,
                              30, "six restart alerts")
        assert all((a["dag_id"], a["task_id"], a["run_id"]) == (DAG_ID, TASK_ID, run_id) for a in restarts)
        assert all(query in a["summary"] and a["details"]["checkpoint"] == params["checkpoint"] for a in restarts)
        assert not [a for a in receiver.alerts if a["severity"] == "critical"], "the supervisor gave up"
        assert task_state(client, run_id) == "deferred"

        # the HBase Thrift server restarts under the running driver: waited out, not a restart
        holder = status_store.read(query).lease
        stack.down(["hbase-thrift"])
        try:
            wait_until(lambda: _outage_alerts(receiver, "hbase-thrift"), 120, "the Thrift outage's alert")
        finally:
            stack.up(["hbase-thrift"])
        store = DetectionStore.from_config(cfg)  # the test's pooled connections died with the server
        back, before = time.monotonic(), stored(store, cameras)
        wait_until(lambda: stored(store, cameras) > before, 60, "frames stored after Thrift's return", interval=1)
        thrift_recovery_s = time.monotonic() - back

        # Kafka restarts: the source waits while it plans a batch; the heartbeat names the outage
        stack.down(["kafka"])
        try:
            wait_until(lambda: _outage_alerts(receiver, "kafka"), 120, "the Kafka outage's alert")
        finally:
            stack.up(["kafka"])
        back, before = time.monotonic(), stored(store, cameras)
        wait_until(lambda: stored(store, cameras) > before, 90, "frames stored after Kafka's return", interval=1)
        kafka_recovery_s = time.monotonic() - back
        status = status_store.read(query)
        assert status.lease.owner == holder.owner, "a dependency restart restarted the driver"

        # the backlog drains: every frame sent is stored
        sent = feed.stop()
        wait_until(lambda: stored(store, cameras) >= sent, 600, "every frame stored", interval=3)
        time.sleep(6)  # a few more triggers: nothing more may appear
        assert task_state(client, run_id) == "deferred"
    finally:
        feed.stop_event.set()
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

    print(f"recovery after the return: Thrift {thrift_recovery_s:.1f}s, Kafka {kafka_recovery_s:.1f}s", flush=True)
    assert thrift_recovery_s <= 30 and kafka_recovery_s <= 30
    # one alert per outage, each an error naming the service
    for service, name in (("hbase-thrift", "HBase Thrift server"), ("kafka", "Kafka")):
        [alert] = _outage_alerts(receiver, service)
        assert alert["severity"] == "error" and f"{name} is down" in alert["summary"], alert
    outages = [o["service"] for o in driver_lines(log_path.read_text(), "ARGUS_OUTAGE")]
    assert outages == ["hbase-thrift", "kafka"], outages
    assert not driver_lines(log_path.read_text(), "ARGUS_BATCH_FAILED")
    # no frame lost, none stored twice
    per_camera = {cam: store.frames(cam) for cam in cameras}
    assert {cam: stored_seqs(store, cam) for cam in cameras} == {cam: list(range(feed.sent[cam])) for cam in cameras}
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
