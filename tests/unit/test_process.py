"""Daemon start/stop mechanics on real (tiny) processes."""

from __future__ import annotations

import socket
import sys
import time

import psutil

from argus.stack import process


def _spawn_sleeper(tmp_path, stack_id="stack-a", service="svc", child=False):
    code = "import time, subprocess, sys\n"
    if child:  # a grandchild in a new session, as Airflow and Spark start their workers
        code += "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'], start_new_session=True)\n"
    code += "time.sleep(120)\n"
    return process.spawn([sys.executable, "-c", code], env={}, log_file=tmp_path / "svc.log",
                         pid_file=tmp_path / "svc.pid", cwd=tmp_path, stack_id=stack_id, service=service)


def test_spawn_tags_the_daemon_and_terminate_stops_it(tmp_path):
    pid = _spawn_sleeper(tmp_path)
    try:
        assert process.live_pid(tmp_path / "svc.pid") == pid
        assert [p.pid for p in process.service_processes(tmp_path / "svc.pid", "stack-a", "svc")] == [pid]
        # a pid file whose process has another start time (a reused pid) is not ours
        (tmp_path / "other.pid").write_text(f"{pid} 12345.0")
        assert process.live_pid(tmp_path / "other.pid") is None
        assert process.START_MARKER in (tmp_path / "svc.log").read_bytes()
    finally:
        process.terminate(process.tagged("stack-a"), timeout=5)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert process.live_pid(tmp_path / "svc.pid") is None


def test_sweep_finds_children_that_left_the_process_group(tmp_path):
    _spawn_sleeper(tmp_path, stack_id="stack-c", child=True)
    deadline = time.monotonic() + 10
    while len(process.tagged("stack-c")) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(process.tagged("stack-c")) == 2
    process.terminate(process.tagged("stack-c"), timeout=5)
    assert process.tagged("stack-c") == []


def test_port_owner_names_the_listener():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        owner = process.port_owner("127.0.0.1", port)
        assert owner is not None and "python" in owner.lower()
    assert process.port_owner("127.0.0.1", port) is None


def test_tail_returns_the_last_lines(tmp_path):
    log = tmp_path / "x.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert process.tail(log, 3).splitlines() == ["line 97", "line 98", "line 99"]
    assert process.tail(tmp_path / "missing.log") == ""
