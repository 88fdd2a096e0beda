"""Starting, recognising and stopping detached processes, on real (tiny) processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import psutil
import pytest

from argus import process
from argus.process import ProcessIdentity

SLEEP = "import time; time.sleep(120)"
#: a daemon with a child in its session, as a JVM's or Airflow's workers
WITH_CHILD = ("import subprocess, sys, time; "
              "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); time.sleep(120)")


def _spawn(tmp_path, code=SLEEP, *, stack_id="stack-a", service="svc", marker=None, cwd=None):
    return process.spawn_daemon([sys.executable, "-c", code], env={}, log_file=tmp_path / "svc.log",
                                pid_file=tmp_path / "svc.pid", cwd=cwd or tmp_path, stack_id=stack_id,
                                service=service, marker=marker)


def _wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _gone(pid: int) -> bool:
    return not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


@pytest.fixture
def stepped_clock(monkeypatch):
    """Steps the wall clock as the code sees it: psutil derives create_time() from the boot
    time in /proc/stat's btime, which moves when the clock is stepped (NTP after boot, a
    restored VM snapshot), so a step shows as a shifted boot time."""
    from psutil import _pslinux

    real = _pslinux.boot_time

    def step(seconds: float) -> None:
        monkeypatch.setattr(_pslinux, "boot_time", lambda: real() + seconds)
        monkeypatch.setattr(psutil, "boot_time", lambda: real() + seconds)

    return step


def test_spawn_tags_the_daemon_and_terminate_stops_it(tmp_path):
    pid = _spawn(tmp_path)
    try:
        assert process.live_pid(tmp_path / "svc.pid") == pid
        identity = process.read_identity(tmp_path / "svc.pid")
        assert identity == ProcessIdentity.of(pid) and identity.boot == process.boot_id()
        assert [p.pid for p in process.tagged("stack-a", "svc")] == [pid]
        assert os.getsid(pid) == pid  # leads a session of its own
        assert process.START_MARKER in (tmp_path / "svc.log").read_bytes()
    finally:
        process.terminate(process.tagged("stack-a"), timeout=5)
    assert _gone(pid)
    assert process.live_pid(tmp_path / "svc.pid") is None


def test_identity_survives_a_wall_clock_step(tmp_path, stepped_clock):
    pid = _spawn(tmp_path)
    try:
        before = psutil.Process(pid).create_time()
        stepped_clock(11.0)
        # what the old pid files compared moved with the clock ...
        assert abs(psutil.Process(pid).create_time() - before - 11.0) < 0.01
        # ... the identity did not
        assert process.live_pid(tmp_path / "svc.pid") == pid
        found = process.find_daemon(tmp_path / "svc.pid", stack_id="stack-a", service="svc", state_dir=tmp_path)
        assert found.how == "pid file" and found.root.pid == pid
    finally:
        process.terminate(process.tagged("stack-a"), timeout=5)


def test_a_reused_pid_or_a_replaced_program_is_not_taken_for_the_daemon(tmp_path):
    pid = _spawn(tmp_path, marker="time.sleep")
    try:
        real = process.read_identity(tmp_path / "svc.pid")
        assert real.alive()
        # the same pid with another start time: the kernel reused it for another process
        assert not ProcessIdentity(pid, real.start_ticks + 1, real.boot).alive()
        # another boot: start ticks count from the boot
        assert not ProcessIdentity(pid, real.start_ticks, "another-boot").alive()
        # the command line no longer holds the daemon's word: something exec'd over it
        assert not ProcessIdentity(pid, real.start_ticks, real.boot, marker="kafka.Kafka").alive()
    finally:
        process.terminate(process.tagged("stack-a"), timeout=5)


def test_a_daemon_still_inside_exec_is_alive(tmp_path, monkeypatch):
    # right after Popen returns, the kernel may not have set the new program's arguments yet:
    # its command line reads empty, which must not pass for a program that exited
    pid = _spawn(tmp_path, marker="time.sleep")
    try:
        monkeypatch.setattr(psutil.Process, "cmdline", lambda self: [])
        assert process.live_pid(tmp_path / "svc.pid") == pid
    finally:
        monkeypatch.undo()
        process.terminate(process.tagged("stack-a"), timeout=5)


def test_start_ticks_reads_the_field_after_a_command_name_with_spaces_and_parens(tmp_path):
    odd = tmp_path / "a b) (c"
    os.symlink(sys.executable, odd)
    proc = subprocess.Popen([str(odd), "-c", SLEEP])
    try:
        assert ")" in psutil.Process(proc.pid).name()
        since_boot = psutil.Process(proc.pid).create_time() - psutil.boot_time()
        assert abs(process.start_ticks(proc.pid) / process.CLOCK_TICKS - since_boot) < 0.02
    finally:
        proc.kill()
        proc.wait()
    assert process.start_ticks(proc.pid) is None


def test_a_daemon_whose_pid_file_is_gone_is_found_by_its_port(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = ("import socket, time; s = socket.socket(); s.bind(('127.0.0.1', %d)); s.listen(); "
            "time.sleep(120)" % port)
    pid = _spawn(tmp_path, code, stack_id="stack-p")
    try:
        _wait_for(lambda: process.listeners("127.0.0.1", [port]))
        (tmp_path / "svc.pid").unlink()
        # found without its tag too (setproctitle can clobber the environment)
        found = process.find_daemon(tmp_path / "svc.pid", stack_id="other-stack", service="svc",
                                    state_dir=tmp_path, ports=[port])
        assert found.how == "port" and found.root.pid == pid and [p.pid for p in found.processes] == [pid]
        # a listener that works elsewhere is somebody else's
        assert process.find_daemon(tmp_path / "svc.pid", stack_id="other-stack", service="svc",
                                   state_dir=tmp_path / "elsewhere", ports=[port]).root is None
    finally:
        process.terminate(process.tagged("stack-p"), timeout=5)


def test_an_old_format_pid_file_is_followed_to_the_daemons_session(tmp_path):
    code = WITH_CHILD
    pid = _spawn(tmp_path, code, stack_id="stack-o")
    try:
        _wait_for(lambda: len(process.session_members(pid)) == 2)
        (tmp_path / "svc.pid").write_text(f"{pid} 1796319148.9")  # pid and create_time, as before
        assert process.live_pid(tmp_path / "svc.pid") is None
        found = process.find_daemon(tmp_path / "svc.pid", stack_id="other-stack", service="svc", state_dir=tmp_path)
        assert found.how == "session" and found.root.pid == pid
        assert len(found.processes) == 2
        process.terminate(found.processes, timeout=5)
        assert all(_gone(p.pid) for p in found.processes)
    finally:
        process.terminate(process.tagged("stack-o"), timeout=5)


def test_what_a_dead_daemon_left_behind_is_found_but_never_adopted(tmp_path):
    code = WITH_CHILD
    pid = _spawn(tmp_path, code, stack_id="stack-d")
    try:
        _wait_for(lambda: len(process.session_members(pid)) == 2)
        child = next(p for p in process.session_members(pid) if p.pid != pid)
        os.kill(pid, 9)  # the daemon alone, as an OOM kill would
        _wait_for(lambda: _gone(pid))
        found = process.find_daemon(tmp_path / "svc.pid", stack_id="other-stack", service="svc", state_dir=tmp_path)
        assert found.how == "orphans" and found.root is None and [p.pid for p in found.processes] == [child.pid]
    finally:
        process.terminate(process.tagged("stack-d"), timeout=5)


def test_sweep_finds_children_that_left_the_process_group(tmp_path):
    code = ("import subprocess, sys, time; "
            "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'], start_new_session=True); "
            "time.sleep(120)")
    _spawn(tmp_path, code, stack_id="stack-c")
    _wait_for(lambda: len(process.tagged("stack-c")) == 2)
    process.terminate(process.tagged("stack-c"), timeout=5)
    assert process.tagged("stack-c") == []


def test_strays_are_the_stacks_programs_working_in_its_state_dir(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    inside = process.spawn_detached([sys.executable, "-c", SLEEP], env={}, cwd=state)
    shell = process.spawn_detached(["sleep", "120"], env={}, cwd=state)  # a person's program there
    outside = process.spawn_detached([sys.executable, "-c", SLEEP], env={}, cwd=tmp_path)
    try:
        _wait_for(lambda: process.start_ticks(shell.pid) is not None)
        assert [p.pid for p in process.strays(state, [sys.executable])] == [inside.pid]
    finally:
        for proc in (inside, shell, outside):
            process.stop_group(proc, timeout=5)


def test_stop_group_ends_the_whole_group(tmp_path):
    code = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', %r]); time.sleep(120)" % SLEEP
    proc = process.spawn_detached([sys.executable, "-c", code], env=os.environ, cwd=tmp_path)
    _wait_for(lambda: len(process.group_members(proc.pid)) == 2)
    members = process.group_members(proc.pid)
    process.stop_group(proc, timeout=5)
    assert proc.returncode is not None
    _wait_for(lambda: all(_gone(p.pid) for p in members))
    # members started after a time are left out (a group id reused later matches nothing)
    assert process.group_members(os.getpgid(0), until_ticks=0) == []


def test_kill_group_kills_a_group_that_ignores_sigterm_and_says_when_it_is_gone(tmp_path):
    stubborn = "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN); " + WITH_CHILD
    proc = process.spawn_detached([sys.executable, "-c", stubborn], env=os.environ, cwd=tmp_path)
    _wait_for(lambda: len(process.group_members(proc.pid)) == 2)
    members = process.group_members(proc.pid)
    assert process.kill_group(proc.pid, members, timeout=10) is True
    assert all(_gone(p.pid) for p in members)
    proc.wait(5)
    assert process.kill_group(proc.pid, members, timeout=1) is True  # a group already gone


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


def test_a_pid_file_naming_another_daemons_session_adopts_nothing(tmp_path):
    # a stale pid file whose pid is now the leader of another daemon of the stack (pid reuse
    # after a reboot): that leader is not adopted, and nothing of it is taken
    other = _spawn(tmp_path, stack_id="stack-r", service="other", marker="time.sleep")
    stale = ProcessIdentity(other, process.start_ticks(other) - 1, process.boot_id(), "kafka.Kafka")
    (tmp_path / "mine.pid").write_text(stale.encode())
    try:
        found = process.find_daemon(tmp_path / "mine.pid", stack_id="stack-r", service="mine", state_dir=tmp_path)
        assert found.root is None and found.processes == []
        # an old-format pid file is adopted only if the leader is the service's program
        (tmp_path / "mine.pid").write_text(f"{other} 1796319148.9")
        assert process.find_daemon(tmp_path / "mine.pid", stack_id="stack-r", service="mine", state_dir=tmp_path,
                                   marker="kafka.Kafka").root is None
    finally:
        process.terminate(process.tagged("stack-r"), timeout=5)


def test_a_job_started_detached_does_not_carry_the_daemon_tag_of_its_starter(tmp_path):
    env = {**os.environ, process.STACK_TAG: "stack-t", process.SERVICE_TAG: "airflow-scheduler"}
    job = process.spawn_detached([sys.executable, "-c", SLEEP], env=env, cwd=tmp_path)
    try:
        _wait_for(lambda: process.tagged("stack-t") != [])
        assert process.tagged("stack-t", "airflow-scheduler") == []  # not the scheduler's remains
        assert [p.pid for p in process.tagged("stack-t")] == [job.pid]  # but swept by a whole down
    finally:
        process.stop_group(job, timeout=5)
