"""The driver's process, seen from the same host: is it alive, and stopping it for good.

The driver runs in client mode in its own session (``start_new_session``): spark-submit's
JVM leads the process group, the Python driver is its child. Killing the group leaves nothing
of that driver behind; the Spark master then ends its executors.
"""

from __future__ import annotations

import os
import signal
import socket
import time

import psutil

from argus.supervision.status import Lease


def process_start_time(pid: int | None = None) -> float:
    return psutil.Process(pid or os.getpid()).create_time()


def on_this_host(lease: Lease) -> bool:
    return lease.host == socket.gethostname()


def _process(lease: Lease) -> psutil.Process | None:
    try:
        proc = psutil.Process(lease.pid)
        # a pid the kernel has reused for another program is not our driver
        if abs(proc.create_time() - lease.pid_start) > 1.0 or proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def process_alive(host: str, pid: int, start: float) -> bool | None:
    """Whether process ``pid`` started at ``start`` still runs; None when it is on another host."""
    if host != socket.gethostname():
        return None
    try:
        proc = psutil.Process(pid)
        return abs(proc.create_time() - start) <= 1.0 and proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def driver_alive(lease: Lease | None) -> bool | None:
    """Whether the lease holder's process exists; None when it runs on another host."""
    if lease is None or not on_this_host(lease):
        return None
    return _process(lease) is not None


def driver_processes(lease: Lease) -> list[psutil.Process]:
    """The processes of the lease holder's group on this host (its spark-submit JVM and Python
    driver): members of ``lease.pgid`` started no later than the Python driver, so that a
    group id reused after the driver's end matches nothing."""
    if not on_this_host(lease) or not lease.pgid:
        return []
    out = []
    for proc in _group_members(lease.pgid):
        try:
            if proc.create_time() <= lease.pid_start + 1.0 and _running(proc):
                out.append(proc)
        except psutil.NoSuchProcess:
            continue
    return out


def _group_members(pgid: int) -> list[psutil.Process]:
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid:
                members.append(proc)
        except (ProcessLookupError, PermissionError, psutil.NoSuchProcess):
            continue
    return members


def stop_driver(lease: Lease, grace_s: float = 20.0) -> bool:
    """Stop the lease holder if it runs on this host: SIGTERM to the Python driver (it stops
    its query and releases the lease), then SIGKILL to what is left of its group after
    ``grace_s``. Returns True once none of its processes is left, False if it runs elsewhere."""
    if not on_this_host(lease):
        return False
    _refuse_own_group(lease)
    if grace_s > 0 and _process(lease) is not None:
        try:
            os.kill(lease.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and driver_processes(lease):
            time.sleep(0.5)
    return kill_driver(lease)


def kill_driver(lease: Lease, timeout_s: float = 30.0) -> bool:
    """SIGKILL the lease holder's processes on this host and wait until they are gone."""
    _refuse_own_group(lease)
    procs = driver_processes(lease)
    if not procs:
        return on_this_host(lease)
    try:
        os.killpg(lease.pgid, signal.SIGKILL)
    except ProcessLookupError:
        return True
    _, alive = psutil.wait_procs(procs, timeout=timeout_s)
    return not [p for p in alive if _running(p)]


def _refuse_own_group(lease: Lease) -> None:
    # drivers run in their own session; a lease naming our group is not one of theirs
    if on_this_host(lease) and lease.pgid == os.getpgid(0):
        raise RuntimeError(f"driver {lease.pid} shares this process's group {lease.pgid}; refusing to kill it")


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
