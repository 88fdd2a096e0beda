"""The streaming driver's side of supervision: hold the lease, heartbeat, report progress.

Used by ``jobs/stream_detect.py``::

    keeper = LeaseKeeper(StreamStatusStore(host, port), "argus_stream_detect", ttl_s=15)
    keeper.acquire()              # LeaseHeld if a live driver runs the query: exit EXIT_LEASE_HELD
    keeper.start()                # heartbeat thread
    spark.streams.addListener(status_listener(keeper))
    ...
    keeper.release("stopped")

A driver that loses its lease (a supervisor revoked it, or it could not renew it for a whole
TTL, so that someone else may have taken it over) ends its own process at once with
``EXIT_LEASE_LOST``: two drivers never keep running the same query.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from argus.process import ProcessIdentity
from argus.supervision.offsets import describe
from argus.supervision.health import summarize
from argus.supervision.process import driver_alive
from argus.supervision.status import RECENT_BATCHES, SKIPPED_KEPT, Lease, StreamStatusStore, now_ms

log = logging.getLogger(__name__)

#: the driver's exit status when a live driver already runs the query (nothing was started)
EXIT_LEASE_HELD = 3
#: the driver's exit status when it lost its lease while running (revoked or not renewable)
EXIT_LEASE_LOST = 4


def _exit_lost(reason: str) -> None:
    print(f"ARGUS_LEASE_LOST {reason}; stopping this driver now", file=sys.stderr, flush=True)
    os._exit(EXIT_LEASE_LOST)


class LeaseKeeper:
    """Takes, renews and releases a query's lease; every status write goes through it.

    :param store: the status store.
    :param query: the query name (the status row).
    :param ttl_s: the lease lapses this long after the last heartbeat.
    :param heartbeat_s: renewal period; by default a third of the TTL.
    :param launch_id: the supervisor's id for this launch, recorded in the lease.
    :param job: the job's settings, recorded in ``s:job`` (``trigger_seconds`` is used by the SLOs).
    :param on_lost: called with the reason when the lease is lost; by default the process exits
        with :data:`EXIT_LEASE_LOST`.
    """

    def __init__(self, store: StreamStatusStore, query: str, *, ttl_s: float = 15.0, heartbeat_s: float | None = None,
                 launch_id: str | None = None, job: dict[str, Any] | None = None,
                 on_lost: Callable[[str], None] | None = None):
        self.store, self.query = store, query
        self.ttl_ms = int(ttl_s * 1000)
        self.heartbeat_s = heartbeat_s or ttl_s / 3
        self.launch_id, self.job = launch_id, dict(job or {})
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.on_lost = on_lost or _exit_lost
        self.lease: Lease | None = None
        self._raw: bytes | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._query_handle = None
        self._recent: deque[dict] = deque(maxlen=RECENT_BATCHES)
        self._last_ok = time.monotonic()
        self._last_event = time.monotonic()
        self._lost = False

    def acquire(self) -> Lease:
        """Take the lease (raises :class:`~argus.supervision.status.LeaseHeld`)."""
        t, me = now_ms(), ProcessIdentity.current()
        lease = Lease(owner=self.owner, host=socket.gethostname(), pid=me.pid, pid_start=me.start_ticks, boot=me.boot,
                      pgid=os.getpgid(0), acquired_ms=t, heartbeat_ms=t, ttl_ms=self.ttl_ms, launch_id=self.launch_id)
        state = {"state": "starting", "ms": t, "message": "", "owner": self.owner}
        # a new driver starts with a clean slate: no progress of its predecessor counts as its own
        # a holder killed on this very host (kill -9, then a restart within the TTL) is provably
        # gone: its lease need not lapse first
        raw = self.store.acquire(self.query, lease, extra={"state": state, "job": self.job, "recent": [],
                                                           "batch_ms": b"", "idle_ms": b"", "qstatus": {},
                                                           "outage": {}},
                                 holder_gone=lambda held: driver_alive(held) is False)
        with self._lock:
            self.lease, self._raw, self._last_ok = lease, raw, time.monotonic()
        return lease

    def start(self) -> LeaseKeeper:
        self._thread = threading.Thread(target=self._heartbeat, name="argus-lease", daemon=True)
        self._thread.start()
        return self

    def attach(self, query_handle, app_id: str | None = None) -> None:
        """The running ``StreamingQuery``: its status goes with every heartbeat."""
        self._query_handle = query_handle
        if app_id:
            self.renew(app_id=app_id)

    def write(self, values: dict[str, Any]) -> bool:
        """Write status columns, only while this driver holds the lease."""
        with self._lock:
            if self._lost or self._raw is None:
                return False
            ok = self.store.check_and_put(self.query, self._raw, values)
        if not ok:
            self._lose(f"lease of {self.query!r} was taken over")
        return ok

    def set_state(self, state: str, message: str = "") -> bool:
        return self.write({"state": {"state": state, "ms": now_ms(), "message": message[:2000], "owner": self.owner}})

    def record_progress(self, progress: dict[str, Any]) -> bool:
        """A completed micro-batch: its progress, when it completed, and the recent summaries."""
        t = now_ms()
        self._last_event = time.monotonic()
        self._recent.append(summarize(progress, t))
        return self.write({"progress": progress, "batch_ms": t, "recent": list(self._recent)})

    def record_skipped(self, batch_id: int | None, entries: list[dict[str, Any]]) -> dict[str, Any]:
        """Offsets batch ``batch_id`` could not read: kept in ``s:skipped`` (the newest entries
        and a running total of skipped offsets, across driver restarts); returns the entry."""
        entry = {"batch": batch_id, "ms": now_ms(), "skipped": sum(e["missing"] for e in entries),
                 "partitions": entries, "text": describe(entries)}
        before = self.store.read(self.query).skipped or {}
        recent = [*before.get("recent", []), entry][-SKIPPED_KEPT:]
        self.write({"skipped": {"total": int(before.get("total", 0)) + entry["skipped"], "recent": recent}})
        return entry

    def record_idle(self) -> bool:
        self._last_event = time.monotonic()
        return self.write({"idle_ms": now_ms()})

    def renew(self, app_id: str | None = None) -> bool:
        with self._lock:
            if self._lost or self.lease is None:
                return False
            lease = replace(self.lease, heartbeat_ms=now_ms(), app_id=app_id or self.lease.app_id)
            values: dict[str, Any] = {"lease": lease.encode()}
            status = self._query_status()
            if status is not None:
                values["qstatus"] = status
            ok = self.store.check_and_put(self.query, self._raw, values)
            if ok:
                self.lease, self._raw, self._last_ok = lease, values["lease"], time.monotonic()
        if not ok:
            current = self.store.read(self.query).lease
            why = f"revoked by {current.revoked_by}" if current and current.revoked_by else (
                f"taken over by {current.owner}" if current else "deleted")
            self._lose(f"lease of {self.query!r} was {why}")
        return ok

    def release(self, state: str = "stopped", message: str = "") -> None:
        """Give the lease up (the supervisor then sees the query stopped, not just silent)."""
        self._stop.set()
        with self._lock:
            if self._lost or self.lease is None:
                return
            lease = replace(self.lease, heartbeat_ms=now_ms(), released=True)
            try:
                self.store.check_and_put(self.query, self._raw, {
                    "lease": lease.encode(),
                    "state": {"state": state, "ms": now_ms(), "message": message[:2000], "owner": self.owner}})
            except Exception as exc:  # the lease then lapses after its TTL
                log.warning("could not release the lease of %s: %s", self.query, exc)
            self._lost = True

    def _query_status(self) -> dict | None:
        if self._query_handle is None:
            return None
        try:
            return {**self._query_handle.status, "ms": now_ms()}
        except Exception:  # the query is stopping; the heartbeat itself matters more
            return None

    def quiet_s(self) -> float:
        """Seconds since the query last showed life (a completed micro-batch or an idle event)."""
        return time.monotonic() - self._last_event

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                self.renew()
            except Exception as exc:
                stale = time.monotonic() - self._last_ok
                log.warning("lease heartbeat of %s failed (%.0fs since the last one): %s", self.query, stale, exc)
                if stale * 1000 > self.ttl_ms:
                    # another driver may have taken the lapsed lease by now: fence ourselves
                    self._lose(f"lease of {self.query!r} not renewed for {stale:.0f}s ({exc})")


    def _lose(self, reason: str) -> None:
        with self._lock:
            if self._lost:
                return
            self._lost = True
        self._stop.set()
        self.on_lost(reason)


def progress_line(progress: dict) -> dict:
    """A micro-batch's progress, short: batch id, rows, rates and ``durationMs`` (where the
    trigger's time went: ``latestOffset``, ``walCommit``, ``addBatch``, ``commitOffsets``, ...)."""
    return {"batch": progress.get("batchId"), "rows": progress.get("numInputRows"),
            "input_rps": progress.get("inputRowsPerSecond"), "processed_rps": progress.get("processedRowsPerSecond"),
            "ms": progress.get("durationMs", {})}


def status_listener(keeper: LeaseKeeper, query_name: str, skips=None):
    """A PySpark ``StreamingQueryListener`` writing the query's progress to its status row.

    :param skips: an :class:`argus.supervision.offsets.SkipDetector`: offsets a batch planned
        but did not read are logged (``ARGUS_SKIPPED``) and recorded in ``s:skipped``.
    """
    from pyspark.sql.streaming import StreamingQueryListener

    class StatusListener(StreamingQueryListener):
        def onQueryStarted(self, event) -> None:
            if event.name == query_name:
                keeper.set_state("running")

        def onQueryProgress(self, event) -> None:
            if event.progress.name == query_name:
                progress = json.loads(event.progress.json)
                # one line per micro-batch in the driver's log: where its time went
                print("ARGUS_PROGRESS " + json.dumps(progress_line(progress)), flush=True)
                keeper.record_progress(progress)
                skipped = skips.check(progress) if skips is not None else []
                if skipped:
                    entry = keeper.record_skipped(progress.get("batchId"), skipped)
                    print("ARGUS_SKIPPED " + json.dumps(entry), flush=True)
                    log.error("streaming query %s skipped offsets it could not read (deleted or expired): %s",
                              query_name, describe(skipped))

        def onQueryIdle(self, event) -> None:
            keeper.record_idle()

        def onQueryTerminated(self, event) -> None:
            pass  # the driver's main thread records how it ended

    return StatusListener()
