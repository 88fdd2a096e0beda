"""`argus stack` as a user runs it, on a private state dir and private ports so that the
shared session stack is never touched."""

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

from argus.stack import process

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
