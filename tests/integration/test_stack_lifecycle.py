"""`argus stack` as a user runs it, on a private state dir and private ports so that the
shared session stack is never touched; and the stack surviving what happens to machines (a
stepped wall clock, a service killed, pid files lost or of an older format)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from argus import process
from argus.config import ArgusConfig
from argus.stack.manager import Stack

ARGUS = [sys.executable, "-m", "argus.cli"]
HDFS_PORTS = ("hdfs_namenode", "hdfs_http", "hdfs_datanode", "hdfs_datanode_http", "hdfs_datanode_ipc",
              "hdfs_datanode_proxy")


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.fixture
def private_env(tmp_path):
    env = {**os.environ, "ARGUS_STATE_DIR": str(tmp_path / "state"), "COLUMNS": "200"}
    kafka, controller = free_ports(2)
    env.update(ARGUS_PORT_KAFKA=str(kafka), ARGUS_PORT_KAFKA_CONTROLLER=str(controller))
    yield env
    subprocess.run([*ARGUS, "stack", "down"], env=env, capture_output=True, timeout=120)
    assert process.tagged(str(Path(env["ARGUS_STATE_DIR"]).resolve())) == []


def argus(env, *args, timeout=300):
    return subprocess.run([*ARGUS, *args], env=env, capture_output=True, text=True, timeout=timeout)


def status(env, services="kafka") -> dict:
    out = argus(env, "stack", "status", "--json", "--services", services)
    return {s["name"]: s for s in json.loads(out.stdout)["services"]}


def test_up_is_idempotent_status_reports_and_down_leaves_nothing(private_env):
    env = private_env
    up = argus(env, "stack", "up", "--services", "kafka")
    assert up.returncode == 0, up.stdout + up.stderr
    first = status(env)["kafka"]
    assert first["state"] == "ready" and first["healthy"]
    assert first["ports"]["kafka"] == int(env["ARGUS_PORT_KAFKA"])
    assert first["url"] == f"127.0.0.1:{env['ARGUS_PORT_KAFKA']}"
    assert Path(first["log"]).exists() and first["rss_mb"] > 50

    again = argus(env, "stack", "up", "--services", "kafka")
    assert again.returncode == 0 and "already running" in again.stdout
    assert status(env)["kafka"]["pid"] == first["pid"]

    down = argus(env, "stack", "down")
    assert down.returncode == 0 and "kafka" in down.stdout
    assert not psutil.pid_exists(first["pid"])
    assert process.tagged(str(Path(env["ARGUS_STATE_DIR"]).resolve())) == []
    after = argus(env, "stack", "status", "--json", "--services", "kafka")
    assert after.returncode == 3 and json.loads(after.stdout)["services"][0]["state"] == "stopped"


def test_a_taken_port_is_named_before_anything_starts(private_env):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", int(private_env["ARGUS_PORT_KAFKA"])))
        squatter.listen()
        up = argus(private_env, "stack", "up", "--services", "kafka")
    assert up.returncode == 2
    message = " ".join(up.stderr.split())
    assert f"kafka: port {private_env['ARGUS_PORT_KAFKA']} (kafka) on 127.0.0.1 is taken by pid {os.getpid()}" in message
    assert "ARGUS_PORT_KAFKA" in message
    assert status(private_env)["kafka"]["state"] == "stopped"


def test_missing_java_is_a_clear_error(private_env, tmp_path):
    bin_dir = tmp_path / "bin"  # a PATH with this Python but no java
    bin_dir.mkdir()
    env = {**private_env, "JAVA_HOME": str(tmp_path / "no-jdk"), "PATH": str(bin_dir)}
    up = argus(env, "stack", "up", "--services", "kafka")
    assert up.returncode == 2
    assert "Java 17+ not found" in " ".join(up.stderr.split())


def test_a_service_that_fails_is_named_with_its_log(private_env):
    # a KRaft log dir formatted for another node: the broker refuses to start
    meta = Path(private_env["ARGUS_STATE_DIR"]) / "data" / "kafka" / "logs" / "meta.properties"
    meta.parent.mkdir(parents=True)
    meta.write_text("version=1\ncluster.id=AAAAAAAAAAAAAAAAAAAAAA\nnode.id=7\ndirectory.id=AAAAAAAAAAAAAAAAAAAAAA\n")
    up = argus(private_env, "stack", "up", "--services", "kafka")
    assert up.returncode == 2
    message = " ".join(up.stderr.split())
    log = Path(private_env["ARGUS_STATE_DIR"]) / "logs" / "kafka.log"
    assert "kafka exited during start-up" in message
    assert str(log) in message.replace(" ", "") or str(log) in up.stderr.replace("\n", "")
    assert status(private_env)["kafka"]["state"] in ("dead", "stopped")


def test_hdfs_data_survives_down_and_up_unless_reset(private_env):
    env = {**private_env, **{f"ARGUS_PORT_{p.upper()}": str(port) for p, port in zip(HDFS_PORTS, free_ports(len(HDFS_PORTS)))}}
    url = f"http://127.0.0.1:{env['ARGUS_PORT_HDFS_HTTP']}"
    from hdfs import InsecureClient

    assert argus(env, "stack", "up", "--services", "hdfs").returncode == 0
    client = InsecureClient(url, user="argus")
    client.write("/keep/me.txt", data="still here", encoding="utf-8")
    assert argus(env, "stack", "down", "--services", "hdfs").returncode == 0
    assert argus(env, "stack", "up", "--services", "hdfs").returncode == 0
    with client.read("/keep/me.txt", encoding="utf-8") as reader:
        assert reader.read() == "still here"
    reset = argus(env, "stack", "up", "--services", "hdfs", "--reset")
    assert reset.returncode == 0, reset.stdout + reset.stderr
    assert client.status("/keep/me.txt", strict=False) is None
    argus(env, "stack", "down")
    shutil.rmtree(Path(env["ARGUS_STATE_DIR"]) / "data", ignore_errors=True)


# ---- a private Kafka + Airflow stack: a JVM daemon, and Airflow, whose setproctitle rewrites
# its command line and environment (no tag to find it by) ----
PRIVATE_SERVICES = ("kafka", "airflow")
PRIVATE_PORTS = ("kafka", "kafka_controller", "airflow_api")


@pytest.fixture(scope="module")
def private_stack(tmp_path_factory):
    patch = pytest.MonkeyPatch()
    patch.setenv("ARGUS_STATE_DIR", str(tmp_path_factory.mktemp("stack") / "state"))
    for name, port in zip(PRIVATE_PORTS, free_ports(len(PRIVATE_PORTS))):
        patch.setenv(f"ARGUS_PORT_{name.upper()}", str(port))
    stack = Stack(ArgusConfig(), reporter=lambda svc, msg: print(f"[private stack] {svc}: {msg}", flush=True))
    try:
        stack.up(PRIVATE_SERVICES)
        yield stack
    finally:
        stack.down()
        patch.undo()


def _pids(stack: Stack) -> dict[str, int]:
    return {s.name: s.pid for s in stack.status(PRIVATE_SERVICES)}


def _leaders(stack: Stack) -> dict[str, int]:
    """How many processes of the state dir lead a session running each service's program."""
    words = {"kafka": "kafka.Kafka", "airflow-api-server": "api", "airflow-scheduler": "scheduler",
             "airflow-dag-processor": "dag-processor", "airflow-triggerer": "triggerer"}
    counts = dict.fromkeys(words, 0)
    for proc in psutil.process_iter():
        try:
            if os.getsid(proc.pid) != proc.pid or not process.works_in(proc, stack.cfg.state_dir):
                continue
            cmdline = " ".join(proc.cmdline())
        except (psutil.Error, OSError):
            continue
        for name, word in words.items():
            if word in cmdline:
                counts[name] += 1
    return counts


def _left_behind(state_dir: Path, ports: list[int]) -> list[str]:
    """Every process that still has anything to do with the stack: its state dir in its
    working dir, command line or environment, or one of its ports."""
    left = []
    for proc in psutil.process_iter():
        try:
            seen = (process.works_in(proc, state_dir) or str(state_dir) in " ".join(proc.cmdline())
                    or any(str(state_dir) in v for v in proc.environ().values()))
            if seen and proc.status() != psutil.STATUS_ZOMBIE:
                left.append(f"pid {proc.pid}: {' '.join(proc.cmdline())[:120]}")
        except (psutil.Error, OSError):
            continue
    left += [f"port {port}: pid {pid}" for port, pid in process.listeners("127.0.0.1", ports).items()]
    return left


def test_up_after_a_killed_service_adopts_the_rest_and_restarts_it(private_stack):
    stack = private_stack
    before = _pids(stack)
    assert all(before.values()) and _leaders(stack) == dict.fromkeys(before, 1)
    # kafka dies; the api-server's pid file is lost; the scheduler's is of the older format
    os.killpg(before["kafka"], 9)
    psutil.wait_procs([psutil.Process(before["kafka"])], timeout=30)
    stack.cfg.pid_file("airflow-api-server").unlink()
    stack.cfg.pid_file("airflow-scheduler").write_text(f"{before['airflow-scheduler']} 1796319187.43")
    assert {s.name: s.state for s in stack.status(PRIVATE_SERVICES)}["kafka"] == "dead"

    result = stack.up(PRIVATE_SERVICES)

    assert result.started == ["kafka"]
    assert sorted(result.already_running) == sorted(n for n in before if n != "kafka")
    after = _pids(stack)
    assert {n: p for n, p in after.items() if n != "kafka"} == {n: p for n, p in before.items() if n != "kafka"}
    assert after["kafka"] != before["kafka"]
    assert _leaders(stack) == dict.fromkeys(before, 1), "a service was started twice"
    assert all(s.state == "ready" for s in stack.status(PRIVATE_SERVICES))
    # a stack without alert connections says so, where a person looks
    shown = argus(dict(os.environ), "stack", "status", "--services", ",".join(PRIVATE_SERVICES))
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "no alert channel is configured" in " ".join(shown.stdout.split())


def test_a_stepped_clock_changes_nothing_and_down_leaves_nothing(private_stack, monkeypatch):
    stack = private_stack
    before = _pids(stack)
    from psutil import _pslinux

    # an NTP step after boot: psutil's create_time() (boot time from the wall clock + ticks) moves
    real_boot = _pslinux.boot_time
    kafka_created = psutil.Process(before["kafka"]).create_time()
    monkeypatch.setattr(_pslinux, "boot_time", lambda: real_boot() + 11.0)
    monkeypatch.setattr(psutil, "boot_time", lambda: real_boot() + 11.0)
    assert psutil.Process(before["kafka"]).create_time() > kafka_created + 10

    statuses = stack.status(PRIVATE_SERVICES)
    assert {s.name: (s.state, s.pid) for s in statuses} == {n: ("ready", p) for n, p in before.items()}

    ports = [stack.cfg.port(p) for p in PRIVATE_PORTS]
    stopped = stack.down()
    assert sorted(stopped) == sorted(before)
    assert all(not psutil.pid_exists(p) or psutil.Process(p).status() == psutil.STATUS_ZOMBIE
               for p in before.values())
    assert _left_behind(stack.cfg.state_dir, ports) == []
    assert {s.state for s in stack.status(PRIVATE_SERVICES)} == {"stopped"}
