"""Fencing and stopping a streaming query's driver, wherever it runs.

The lease is the switch: revoking it makes the holder's next heartbeat fail, and a driver
that cannot renew its lease ends itself (``EXIT_LEASE_LOST``), so a driver on another host
stops within a heartbeat, or within its TTL if it cannot even reach HBase. A driver on this
host is also killed outright, which is immediate.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from argus.supervision.process import kill_driver, on_this_host, stop_driver
from argus.supervision.status import Lease, StreamStatusStore, now_ms

log = logging.getLogger(__name__)

#: margin over the lease TTL before a remote driver is taken for gone
FENCE_MARGIN_MS = 2000


@dataclass(frozen=True)
class Fenced:
    """:param lease: the lease as it was (None: nobody held it).
    :param safe_at_ms: from when no process of that driver can still be running."""

    lease: Lease | None
    safe_at_ms: int


def fence(store: StreamStatusStore, query: str, by: str, grace_s: float = 0.0) -> Fenced:
    """Make sure the current holder of ``query``'s lease runs no more.

    :param store: the status store.
    :param query: the query (status row).
    :param by: who fences (recorded in the revoked lease).
    :param grace_s: on this host, time the driver gets to stop its query and release the lease
        after SIGTERM (0: no SIGTERM, for a driver that is dead or stalled anyway).
    """
    current = store.read(query).lease
    if current is not None and grace_s > 0 and not current.released and on_this_host(current):
        stop_driver(current, grace_s)
    lease = store.revoke(query, by)
    now = now_ms()
    if lease is None:
        return Fenced(None, now)
    if on_this_host(lease):
        if kill_driver(lease):
            return Fenced(lease, now)
        log.warning("driver %s of %s did not go away after SIGKILL", lease.pid, query)
    if lease.released:
        return Fenced(lease, now)
    # elsewhere: it ends itself at its next heartbeat, or a TTL after its last one at the latest
    return Fenced(lease, max(now, lease.heartbeat_ms + lease.ttl_ms + FENCE_MARGIN_MS))


def stop_stream(store: StreamStatusStore, query: str, by: str, grace_s: float = 20.0) -> Lease | None:
    """Stop ``query`` for good: its driver stops its query and releases the lease (SIGTERM on
    this host, lease revoked elsewhere), SIGKILL after ``grace_s``. Returns the lease it had."""
    fenced = fence(store, query, by, grace_s=grace_s)
    wait_s = (fenced.safe_at_ms - now_ms()) / 1000
    if fenced.lease is not None and not on_this_host(fenced.lease) and wait_s > 0:
        time.sleep(min(wait_s, grace_s))
    return fenced.lease
