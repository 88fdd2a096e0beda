"""The driver's process, seen from the same host: is it alive, and stopping it for good.

The driver runs in client mode in its own session (:func:`argus.process.spawn_detached`):
spark-submit's JVM leads the process group, the Python driver is its child. Killing the group
leaves nothing of that driver behind; the Spark master then ends its executors. A lease names
the driver by its :class:`~argus.process.ProcessIdentity` (pid, start ticks, boot), which a
step of the wall clock does not change.
"""

from __future__ import annotations

import os
import signal
import socket
import time

import psutil

from argus.process import CLOCK_TICKS, ProcessIdentity, boot_id, group_members, kill_group
from argus.supervision.status import Lease


def on_this_host(lease: Lease) -> bool:
    return lease.host == socket.gethostname()


def _identity(lease: Lease) -> ProcessIdentity:
    # a lease written before the boot was recorded is taken for one of this boot
    return ProcessIdentity(lease.pid, int(lease.pid_start), lease.boot or boot_id())


def process_alive(host: str, pid: int, start: int, boot: str | None = None) -> bool | None:
    """Whether process ``pid`` that started at ``start`` (clock ticks since boot ``boot``)
    still runs; None when it is on another host."""
    if host != socket.gethostname() or boot is None:  # boot None: a launch of an older version, unknown
        return None
    return ProcessIdentity(pid, int(start), boot).alive()


def driver_alive(lease: Lease | None) -> bool | None:
    """Whether the lease holder's process exists; None when it runs on another host."""
    if lease is None or not on_this_host(lease) or lease.boot is None:
        return None  # elsewhere, or a lease of an older version (its pid_start is wall-clock seconds)
    return _identity(lease).alive()


def driver_processes(lease: Lease) -> list[psutil.Process]:
    """The processes of the lease holder's group on this host (its spark-submit JVM and Python
    driver): members of ``lease.pgid`` started no later than the Python driver (a second's
    margin), so that a group id reused after the driver's end matches nothing."""
    if not on_this_host(lease) or not lease.pgid or (lease.boot and lease.boot != boot_id()):
        return []
    return group_members(lease.pgid, until_ticks=int(lease.pid_start) + CLOCK_TICKS)


def stop_driver(lease: Lease, grace_s: float = 20.0) -> bool:
    """Stop the lease holder if it runs on this host: SIGTERM to the Python driver (it stops
    its query and releases the lease), then SIGKILL to what is left of its group after
    ``grace_s``. Returns True once none of its processes is left, False if it runs elsewhere."""
    if not on_this_host(lease):
        return False
    _refuse_own_group(lease)
    if grace_s > 0 and _identity(lease).alive():
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
    return kill_group(lease.pgid, procs, timeout_s)


def _refuse_own_group(lease: Lease) -> None:
    # drivers run in their own session; a lease naming our group is not one of theirs
    if on_this_host(lease) and lease.pgid == os.getpgid(0):
        raise RuntimeError(f"driver {lease.pid} shares this process's group {lease.pgid}; refusing to kill it")
