"""Starting, finding and stopping the stack's daemons.

Every daemon is started in its own session (so its whole process group can be signalled)
with two environment tags, ``ARGUS_STACK`` (the state dir) and ``ARGUS_SERVICE`` (its name).
The tags survive into children that start sessions of their own, which lets ``down`` sweep
everything a stack started. Programs that rewrite their process title (Airflow's, through
setproctitle) can clobber /proc/<pid>/environ, so a daemon is identified by its pid file,
which records the pid with the process's start time: a stale pid file (a pid reused by
another program) never matches.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import psutil

STACK_TAG = "ARGUS_STACK"
SERVICE_TAG = "ARGUS_SERVICE"
#: written to a daemon's log before each start (logs are appended across restarts)
START_MARKER = b"==== argus: starting "


def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    log_file: Path,
    pid_file: Path,
    cwd: Path,
    stack_id: str,
    service: str,
) -> int:
    """Start a daemon detached from this process, logging to ``log_file``; returns its pid."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, **env, STACK_TAG: stack_id, SERVICE_TAG: service}
    with log_file.open("ab") as log:
        log.write(b"\n" + START_MARKER + f"{service} at {time.strftime('%Y-%m-%d %H:%M:%S')}: "
                  f"{' '.join(argv)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            list(argv), env=full_env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True, close_fds=True,
        )
    try:
        started = psutil.Process(proc.pid).create_time()
    except psutil.Error:  # already gone: the caller's readiness wait reports it with the log
        started = 0.0
    pid_file.write_text(f"{proc.pid} {started}")
    return proc.pid


def _tags(proc: psutil.Process) -> tuple[str | None, str | None]:
    try:
        env = proc.environ()
    except (psutil.Error, OSError):
        return None, None
    return env.get(STACK_TAG), env.get(SERVICE_TAG)


def tagged(stack_id: str, service: str | None = None) -> list[psutil.Process]:
    """Live processes started by this stack (optionally by one service), children included."""
    found = []
    for proc in psutil.process_iter():
        stack, svc = _tags(proc)
        if stack == stack_id and (service is None or svc == service):
            found.append(proc)
    return found


def live_pid(pid_file: Path) -> int | None:
    """The pid in ``pid_file`` if that very process (same start time) is still alive."""
    try:
        pid_text, started = pid_file.read_text().split()
        proc = psutil.Process(int(pid_text))
        if proc.status() == psutil.STATUS_ZOMBIE or abs(proc.create_time() - float(started)) > 0.05:
            return None
    except (FileNotFoundError, ValueError, psutil.Error):
        return None
    return proc.pid


def service_processes(pid_file: Path, stack_id: str, service: str) -> list[psutil.Process]:
    """A daemon, its descendants, and any process still tagged as this service."""
    procs: dict[int, psutil.Process] = {p.pid: p for p in tagged(stack_id, service)}
    pid = live_pid(pid_file)
    if pid is not None:
        try:
            root = psutil.Process(pid)
            for proc in (root, *root.children(recursive=True)):
                procs.setdefault(proc.pid, proc)
        except psutil.Error:
            pass
    return list(procs.values())


def resident_mb(pid: int) -> float:
    """RSS of a daemon and all its children, in MiB."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            pass
    return total / 2**20


def terminate(procs: Iterable[psutil.Process], timeout: float = 30.0) -> None:
    """SIGTERM each process group, then SIGKILL whatever is still alive after ``timeout``."""
    procs = list(procs)
    for proc in procs:
        _signal(proc, signal.SIGTERM)
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for proc in alive:
        _signal(proc, signal.SIGKILL)
    psutil.wait_procs(alive, timeout=10)


def _signal(proc: psutil.Process, sig: int) -> None:
    try:
        pgid = os.getpgid(proc.pid)
        if pgid == proc.pid:  # a session leader we started: signal its whole group
            os.killpg(pgid, sig)
        else:
            proc.send_signal(sig)
    except (ProcessLookupError, psutil.Error, PermissionError):
        pass


def port_owner(host: str, port: int) -> str | None:
    """Who listens on ``host:port`` ("pid 123 (java)"), ``"unknown"`` if taken by an
    unseen process, or None if the port is free."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            return None
        except OSError:
            pass
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                if conn.pid:
                    try:
                        return f"pid {conn.pid} ({psutil.Process(conn.pid).name()})"
                    except psutil.Error:
                        return f"pid {conn.pid}"
    except (psutil.Error, OSError):
        pass
    return "unknown process"


def tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log file, for error messages."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            return "\n".join(f.read().decode(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""
