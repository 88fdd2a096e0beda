"""The streaming supervisor on the real stack, through the real Airflow: the
``argus_stream_detection`` DAG starts the job, a second copy is refused by the lease, the
driver is killed with SIGKILL six times and restarted from its checkpoint each time with an
alert to a local webhook receiver, and every dependency goes away under it (the HBase Thrift
server, Kafka, HBase itself, the Thrift2 server, HDFS): each outage is waited out by the same
driver with one alert naming the service, and every frame is stored exactly once. Invalid
params are refused before any run exists."""

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


def _gone(pid: int) -> bool:
    """The process ended (a zombie of a daemon this test session started counts as ended)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _outage_alerts(receiver, service: str) -> list[dict]:
    return [a for a in receiver.alerts if (a.get("details") or {}).get("slo") == f"outage:{service}"]


class SupervisedStream:
    """One run of the streaming DAG on a topic of its own, two cameras fed live, BlazeFace."""

    def __init__(self, cfg, client, unique: str, name: str):
        self.cfg, self.client = cfg, client
        self.topic, dlq, self.query = f"it.{name}.{unique}", f"it.{name}.{unique}.dlq", f"it_{name}_{unique}"
        ensure_topics(cfg.kafka_bootstrap, self.topic, dlq, partitions=2)
        self.cameras = [f"it-{unique}-{i}" for i in range(2)]
        self.params = {
            "topic": self.topic, "dlq_topic": dlq, "query_name": self.query,
            "checkpoint": f"{cfg.hdfs_uri}/argus/tests/{unique}/{name}/checkpoint",
            "camera_models": {f"it-{unique}-*": "blazeface"}, "default_model": "ssdlite-person",
            # small: the cluster has 2 cores and other jobs share them
            "batch_size": 4, "executors": 1, "cores_per_executor": 1, "task_cpus": 1, "executor_memory": "1g",
            "max_offsets_per_trigger": 16, "trigger_seconds": 1, "lease_ttl_seconds": 10,
            "thresholds": {"stall_s": 1200, "start_timeout_s": 600, "max_batch_age_s": 900, "max_lag_records": 100000},
            # the default budget (30 restarts an hour, 3 of the same failure); short waits for the test's sake
            "restart": {"base_s": 2, "max_delay_s": 4},
        }
        self.store = DetectionStore.from_config(cfg)
        self.store.ensure_tables()
        self.status_store = StreamStatusStore.from_config(cfg)
        self.log_path = cfg.state_dir / "logs" / f"{self.query}.log"
        self.feed = LiveFeed(cfg, self.topic, self.cameras)
        self.run_id = client.trigger(DAG_ID, conf=self.params)["dag_run_id"]

    def lease(self):
        return self.status_store.read(self.query).lease

    def replaced(self, victim, what: str, since: float, timeout: float = 90, progress: bool = True):
        """The supervisor's new driver after ``victim`` went (a new owner holding a live lease,
        launched by this run); with ``progress``, once it has stored frames."""
        def successor():
            lease = self.lease()
            return lease if lease and lease.owner != victim.owner and lease.live(int(time.time() * 1000)) else None

        new = wait_until(successor, timeout, f"a new driver after {what}", interval=1)
        print(f"{what}: new driver holds the lease {time.monotonic() - since:.1f}s later", flush=True)
        assert new.launch_id.startswith(f"{self.run_id}/") and new.launch_id != victim.launch_id
        if progress:
            before = self.stored()
            wait_until(lambda: self.stored() > before, 120, f"progress after {what}", interval=1)
        return new

    def stored(self) -> int:
        return stored(self.store, self.cameras)

    def started(self):
        """The first driver's lease, once it holds it and the supervisor task deferred."""
        first = wait_until(lambda: (lease := self.lease()) and lease.live(int(time.time() * 1000)) and lease,
                           300, "the first driver's lease")
        assert first.launch_id.startswith(f"{self.run_id}/")
        wait_until(lambda: task_state(self.client, self.run_id) == "deferred", 120, "the supervisor task to defer")
        return first

    def recovery_s(self, what: str, timeout: float = 90) -> float:
        """Seconds until more frames are stored than now (the service just returned)."""
        self.store = DetectionStore.from_config(self.cfg)  # the test's pooled connections may have died
        back, before = time.monotonic(), self.stored()
        wait_until(lambda: self.stored() > before, timeout, f"frames stored after {what}", interval=1)
        return time.monotonic() - back

    def drained(self) -> None:
        """Every frame sent is stored, and the supervisor still watches."""
        sent = self.feed.stop()
        wait_until(lambda: self.stored() >= sent, 600, "every frame stored", interval=3)
        time.sleep(6)  # a few more triggers: nothing more may appear
        assert task_state(self.client, self.run_id) == "deferred"

    def close(self) -> None:
        """Fail the run (its trigger's on_kill stops the driver) and check nothing stays running."""
        self.feed.stop_event.set()
        self.client.request("PATCH", f"/dags/{DAG_ID}/dagRuns/{self.run_id}", json={"state": "failed"})
        lease = self.lease()
        try:
            if lease is not None:
                wait_until(lambda: not driver_processes(lease), 90, "the driver to stop after the run was failed")
                wait_until(lambda: (s := self.lease()) and (s.released or s.revoked_by), 30,
                           "the lease to be given up")
        finally:
            stop_stream(self.status_store, self.query, "test cleanup", grace_s=5)
        print(task_log(self.cfg, self.run_id)[-4000:])

    def assert_every_frame_stored_once(self) -> None:
        store, cameras = self.store, self.cameras
        per_camera = {cam: store.frames(cam) for cam in cameras}
        assert {cam: stored_seqs(store, cam) for cam in cameras} == {cam: list(range(self.feed.sent[cam]))
                                                                     for cam in cameras}
        assert_one_detection_row_per_detection(store, per_camera)
        assert {r["f:model"] for rows in per_camera.values() for r in rows} == {"blazeface"}
        assert not [p for p in psutil.process_iter(["cmdline"]) if self.query in " ".join(p.info["cmdline"] or [])]

    def driver_log(self, kind: str) -> list[dict]:
        return driver_lines(self.log_path.read_text(), kind)


def _assert_one_outage_alert_each(receiver, services) -> None:
    from argus.supervision.outage import service_name

    for service in services:
        [alert] = _outage_alerts(receiver, service)
        assert alert["severity"] == "error" and f"{service_name(service)} is down" in alert["summary"], alert


@pytest.mark.timeout(1800)
def test_the_supervised_stream_survives_six_driver_kills_a_stall_and_a_thrift_and_a_kafka_restart(
        stack, cfg, client, receiver, unique, tmp_path):
    """Issue: six driver deaths within the hour must not exhaust the budget (independent
    faults); a stalled driver is fenced and replaced; a dependency restart is waited out by
    the running driver with one alert naming the service; no frame lost or stored twice
    through all of it."""
    run = SupervisedStream(cfg, client, unique, "sup")
    query = run.query
    try:
        # the supervisor starts the driver and defers: the task holds no worker slot while watching
        first = run.started()

        # a second copy of the query, started by hand while the lease is live, exits at once
        spec = StreamJobSpec(topic=run.topic, dlq_topic=run.params["dlq_topic"], query_name=query,
                             checkpoint=run.params["checkpoint"], executors=1, cores_per_executor=1, task_cpus=1,
                             executor_memory="1g")
        copy = StreamJob(spec, cfg, tmp_path / "second-copy.log").start()
        try:
            assert copy.proc.wait(120) == EXIT_LEASE_HELD, copy.log_tail()
        finally:
            copy.kill()
        assert "ARGUS_LEASE_HELD" in copy.log_tail() and "already running" in copy.log_tail()
        assert run.lease().owner == first.owner
        wait_until(lambda: run.stored() >= 8, 600, "the first frames stored", interval=1)

        # six kill -9 of the driver's whole process group: each is restarted from the checkpoint
        # (the next kill may come before the new driver's first batch, as in a crash loop of
        # independent faults; the last one must store frames again)
        for kill in range(1, 7):
            victim = run.lease()
            killed_at = time.monotonic()
            os.killpg(victim.pgid, signal.SIGKILL)
            run.replaced(victim, f"kill {kill}", killed_at, progress=kill in (1, 6))

        # a stalled driver (SIGSTOP: its processes live, but it neither renews its lease nor
        # runs a batch) is judged dead once its lease lapses, fenced (killed, as it runs on this
        # host) and replaced; its resources go with it
        victim = run.lease()
        stopped_at = time.monotonic()
        os.killpg(victim.pgid, signal.SIGSTOP)
        try:
            run.replaced(victim, "the stall", stopped_at, timeout=120)
        finally:
            try:
                os.killpg(victim.pgid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        assert not driver_processes(victim), "the stalled driver was not fenced"
        stalled = wait_until(lambda: [a for a in receiver.alerts if "restarting" in a["summary"]
                                      and "heartbeat" in a["summary"]], 30, "the stall's restart alert")
        assert len(stalled) == 1 and stalled[0]["severity"] == "error", stalled
        restarts = wait_until(lambda: [a for a in receiver.alerts if "restarting" in a["summary"]][:6]
                              if len([a for a in receiver.alerts if "restarting" in a["summary"]]) >= 6 else None,
                              30, "six restart alerts")
        assert all((a["dag_id"], a["task_id"], a["run_id"]) == (DAG_ID, TASK_ID, run.run_id) for a in restarts)
        assert all(query in a["summary"] and a["details"]["checkpoint"] == run.params["checkpoint"] for a in restarts)
        assert not [a for a in receiver.alerts if a["severity"] == "critical"], "the supervisor gave up"
        assert task_state(client, run.run_id) == "deferred"

        # the HBase Thrift server restarts under the running driver: waited out, not a restart
        holder = run.lease()
        stack.down(["hbase-thrift"])
        try:
            wait_until(lambda: _outage_alerts(receiver, "hbase-thrift"), 120, "the Thrift outage's alert")
        finally:
            stack.up(["hbase-thrift"])
        thrift_recovery_s = run.recovery_s("Thrift's return", 60)

        # Kafka restarts: the source waits while it plans a batch; the heartbeat names the outage
        stack.down(["kafka"])
        try:
            wait_until(lambda: _outage_alerts(receiver, "kafka"), 120, "the Kafka outage's alert")
        finally:
            stack.up(["kafka"])
        kafka_recovery_s = run.recovery_s("Kafka's return")
        assert run.lease().owner == holder.owner, "a dependency restart restarted the driver"
        run.drained()
    finally:
        run.close()

    print(f"recovery after the return: Thrift {thrift_recovery_s:.1f}s, Kafka {kafka_recovery_s:.1f}s", flush=True)
    assert thrift_recovery_s <= 30 and kafka_recovery_s <= 30
    _assert_one_outage_alert_each(receiver, ("hbase-thrift", "kafka"))
    outages = [o["service"] for o in run.driver_log("ARGUS_OUTAGE")]
    assert outages == ["hbase-thrift", "kafka"], outages
    assert not run.driver_log("ARGUS_BATCH_FAILED")
    run.assert_every_frame_stored_once()


@pytest.mark.timeout(1800)
def test_the_supervised_stream_waits_out_hbase_thrift2_and_hdfs_outages(stack, cfg, client, receiver, unique):
    """Issue: an outage of HBase itself (its Thrift servers up), of the Thrift2 server that
    holds the lease, or of HDFS under the checkpoint is waited out by the same driver: one
    alert naming each service, frames stored within 30 s of its return, none lost or twice."""
    run = SupervisedStream(cfg, client, unique, "out")
    recovery: dict[str, float] = {}
    try:
        holder = run.started()
        wait_until(lambda: run.stored() >= 8, 600, "the first frames stored", interval=1)

        # HBase (master and RegionServer) restarts under its running Thrift servers: the driver
        # can neither store nor renew its lease, the supervisor cannot read the status row
        [hbase] = [s for s in stack.status(["hbase"]) if s.name == "hbase"]  # "hbase" is its group's name too
        os.kill(hbase.pid, signal.SIGTERM)
        try:
            wait_until(lambda: _outage_alerts(receiver, "hbase"), 120, "the HBase outage's alert")
            wait_until(lambda: _gone(hbase.pid), 120, "HBase to stop")
        finally:
            stack.up(["hbase"])  # the group: the Thrift servers still run, and are adopted
        recovery["hbase"] = run.recovery_s("HBase's return")

        # the Thrift2 server (lease and status row) goes away alone: the batches wait for the lease
        stack.down(["hbase-thrift2"])
        try:
            wait_until(lambda: _outage_alerts(receiver, "hbase-thrift2"), 120, "the Thrift2 outage's alert")
            wait_until(lambda: run.driver_log("ARGUS_LEASE_SUSPENDED"), 60, "the driver to hold its batches")
        finally:
            stack.up(["hbase-thrift2"])
        recovery["hbase-thrift2"] = run.recovery_s("Thrift2's return")

        # HDFS (NameNode and DataNode) goes away under the checkpoint: the query fails, and the
        # driver starts it again from the checkpoint once HDFS answers
        stack.down(["hdfs-namenode"])
        try:
            wait_until(lambda: _outage_alerts(receiver, "hdfs"), 180, "the HDFS outage's alert")
        finally:
            stack.up(["hdfs-namenode", "hdfs-datanode"])
        recovery["hdfs"] = run.recovery_s("HDFS's return")
        assert run.lease().owner == holder.owner, "a dependency outage restarted the driver"
        run.drained()
    finally:
        run.close()

    print(f"recovery after the return: {recovery}", flush=True)
    assert all(seconds <= 30 for seconds in recovery.values()), recovery
    _assert_one_outage_alert_each(receiver, ("hbase", "hbase-thrift2", "hdfs"))
    assert not [a for a in receiver.alerts if "restarting" in a["summary"]], "an outage restarted the driver"
    assert {o["service"] for o in run.driver_log("ARGUS_OUTAGE")} >= {"hbase", "hdfs"}
    assert not run.driver_log("ARGUS_BATCH_FAILED")
    run.assert_every_frame_stored_once()


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
