"""The streaming driver's side of supervision: hold the lease, heartbeat, report progress.

Used by ``jobs/stream_detect.py``::

    keeper = LeaseKeeper(StreamStatusStore(host, port), "argus_stream_detect", ttl_s=15)
    keeper.acquire()              # LeaseHeld if a live driver runs the query: exit EXIT_LEASE_HELD
    keeper.start()                # heartbeat thread
    spark.streams.addListener(status_listener(keeper))
    ...
    keeper.release("stopped")

A driver that loses its lease (a supervisor revoked it, or another driver took it over)
ends its own process at once with ``EXIT_LEASE_LOST``: two drivers never keep running the
same query. A driver that cannot reach the status row to renew its lease for a whole TTL
(HBase or its Thrift2 server down, or this host cut off from them) cannot tell whether
someone took the lapsed lease over: it suspends itself, cancelling the Spark jobs of the
running micro-batch and starting no other (:meth:`LeaseKeeper.hold`), keeps trying, and runs
on once it has renewed the lease it still holds, or exits if someone else holds it by then.
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
from argus.supervision.outage import service_name
from argus.supervision.health import summarize
from argus.supervision.process import driver_alive
from argus.supervision.status import RECENT_BATCHES, SKIPPED_KEPT, STARTS_KEPT, Lease, StreamStatusStore, now_ms

log = logging.getLogger(__name__)

#: the driver's exit status when a live driver already runs the query (nothing was started)
EXIT_LEASE_HELD = 3
#: the driver's exit status when it lost its lease while running (revoked or not renewable)
EXIT_LEASE_LOST = 4
#: how often a suspended driver tries to renew its lease again
SUSPENDED_RETRY_S = 1.0


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
    :param on_suspend: called when the driver suspends itself (the job cancels the Spark jobs
        of its running micro-batch, which then waits in :meth:`hold`).
    :param name_outage: which service keeps the status row unreachable
        (:func:`argus.supervision.outage.probe_status_store`), for the log.
    """

    def __init__(self, store: StreamStatusStore, query: str, *, ttl_s: float = 15.0, heartbeat_s: float | None = None,
                 launch_id: str | None = None, job: dict[str, Any] | None = None,
                 on_lost: Callable[[str], None] | None = None, on_suspend: Callable[[], None] | None = None,
                 name_outage: Callable[[], str] | None = None):
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
        self.on_suspend, self.name_outage = on_suspend, name_outage
        self._held = threading.Event()  # cleared while suspended: the lease could not be renewed
        self._held.set()

    def acquire(self) -> Lease:
        """Take the lease (raises :class:`~argus.supervision.status.LeaseHeld`)."""
        t, me = now_ms(), ProcessIdentity.current()
        lease = Lease(owner=self.owner, host=socket.gethostname(), pid=me.pid, pid_start=me.start_ticks, boot=me.boot,
                      pgid=os.getpgid(0), acquired_ms=t, heartbeat_ms=t, ttl_ms=self.ttl_ms, launch_id=self.launch_id)
        state = {"state": "starting", "ms": t, "message": "", "owner": self.owner}
        # a new driver starts with a clean slate: no progress of its predecessor counts as its own
        # a holder killed on this very host (kill -9, then a restart within the TTL) is provably
        # gone: its lease need not lapse first
        started = {"ms": t, "owner": self.owner, "launch_id": self.launch_id}

        def fresh_row(status) -> dict[str, Any]:
            return {"state": state, "job": self.job, "recent": [], "batch_ms": b"", "idle_ms": b"", "qstatus": {},
                    "outage": {}, "starts": [*status.starts, started][-STARTS_KEPT:]}

        raw = self.store.acquire(self.query, lease, extra=fresh_row, holder_gone=lambda held: driver_alive(held) is False)
        with self._lock:
            self.lease, self._raw, self._last_ok = lease, raw, time.monotonic()
        return lease

    def start(self) -> LeaseKeeper:
        self._thread = threading.Thread(target=self._heartbeat, name="argus-lease", daemon=True)
        self._thread.start()
        return self

    def attach(self, query_handle, app_id: str | None = None, ui_url: str | None = None) -> None:
        """The running ``StreamingQuery``: its status goes with every heartbeat; the Spark
        application's id and UI go into the lease."""
        self._query_handle = query_handle
        if app_id:
            self.renew(app_id=app_id, ui_url=ui_url)

    def write(self, values: dict[str, Any]) -> bool:
        """Write status columns, only while this driver holds the lease."""
        for attempt in (0, 1):
            with self._lock:
                if self._lost or self._raw is None:
                    return False
                ok = self.store.check_and_put(self.query, self._raw, values)
            if ok:
                return True
            if attempt or not self._still_ours():
                break
        self._lose(f"lease of {self.query!r} was {self._why_not_ours()}")
        return False

    def _still_ours(self) -> bool:
        """After a failed checkAndPut: whether the lease in the row is still this driver's, with
        a value other than the one it expected (a renewal whose answer timed out here was
        written all the same); if so, take that value as the current one."""
        try:
            status = self.store.read(self.query)
        except Exception:  # noqa: BLE001 - cannot tell: lost, to be safe
            return False
        current = status.lease
        if current is None or current.owner != self.owner or current.revoked_by or current.released:
            return False
        with self._lock:
            self.lease, self._raw = current, status.lease_raw
        return True

    def _why_not_ours(self) -> str:
        try:
            current = self.store.read(self.query).lease
        except Exception as exc:  # noqa: BLE001 - lost it is, whatever the reason
            return f"replaced ({exc})"
        if current and current.revoked_by:
            return f"revoked by {current.revoked_by}"
        return f"taken over by {current.owner}" if current else "deleted"

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
        return self.keep_skipped(skipped_entry(batch_id, entries))

    def keep_skipped(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Add a :func:`skipped_entry` to ``s:skipped``."""
        before = self.store.read(self.query).skipped or {}
        recent = [*before.get("recent", []), entry][-SKIPPED_KEPT:]
        self.write({"skipped": {"total": int(before.get("total", 0)) + entry["skipped"], "recent": recent}})
        return entry

    def record_idle(self) -> bool:
        self._last_event = time.monotonic()
        return self.write({"idle_ms": now_ms()})

    def renew(self, app_id: str | None = None, ui_url: str | None = None) -> bool:
        for attempt in (0, 1):
            if self._renew_once(app_id, ui_url):
                return True
            if self._lost or attempt or not self._still_ours():
                break
        if not self._lost:
            self._lose(f"lease of {self.query!r} was {self._why_not_ours()}")
        return False

    def _renew_once(self, app_id: str | None, ui_url: str | None = None) -> bool:
        with self._lock:
            if self._lost or self.lease is None:
                return False
            lease = replace(self.lease, heartbeat_ms=now_ms(), app_id=app_id or self.lease.app_id,
                            ui_url=ui_url or self.lease.ui_url)
            values: dict[str, Any] = {"lease": lease.encode()}
            status = self._query_status()
            if status is not None:
                values["qstatus"] = status
            ok = self.store.check_and_put(self.query, self._raw, values)
            if ok:
                self.lease, self._raw, self._last_ok = lease, values["lease"], time.monotonic()
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

    def hold(self) -> bool:
        """Block while the driver is suspended: no micro-batch runs on a lease that could not
        be renewed. Returns False if the lease is lost meanwhile."""
        while not self._held.wait(SUSPENDED_RETRY_S):
            if self._lost:
                return False
        return not self._lost

    @property
    def suspended(self) -> bool:
        return not self._held.is_set()

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.heartbeat_s if self._held.is_set() else SUSPENDED_RETRY_S):
            try:
                self.renew()
            except Exception as exc:
                stale = time.monotonic() - self._last_ok
                log.warning("lease heartbeat of %s failed (%.0fs since the last one): %s", self.query, stale, exc)
                if stale * 1000 > self.ttl_ms:
                    # someone may have taken the lapsed lease by now: process nothing until we know
                    self._suspend(stale, exc)
                continue
            if not self._held.is_set() and not self._lost:
                print("ARGUS_LEASE_RESUMED " + json.dumps({"query": self.query, "owner": self.owner}), flush=True)
                log.warning("lease of %s renewed: the driver runs on", self.query)
                self._held.set()

    def _suspend(self, stale: float, exc: BaseException) -> None:
        if not self._held.is_set():
            return
        self._held.clear()  # first: no micro-batch starts from now on
        if self.on_suspend is not None:
            try:
                self.on_suspend()
            except Exception as err:  # noqa: BLE001 - the suspension holds all the same
                log.warning("could not cancel the running micro-batch: %s", err)
        try:
            service = self.name_outage() if self.name_outage is not None else None
        except Exception:  # noqa: BLE001
            service = None
        print("ARGUS_LEASE_SUSPENDED " + json.dumps({"query": self.query, "service": service,
                                                      "stale_s": round(stale, 1)}), flush=True)
        log.warning("lease of %s not renewed for %.0fs (%s: %s); the driver runs no micro-batch until it has "
                    "renewed it", self.query, stale, service_name(service) if service else "the status row", exc)

    def _lose(self, reason: str) -> None:
        with self._lock:
            if self._lost:
                return
            self._lost = True
        self._stop.set()
        self.on_lost(reason)


def skipped_entry(batch_id: int | None, entries: list[dict[str, Any]]) -> dict[str, Any]:
    """A skip of offsets as ``s:skipped`` keeps it (``entries``: per partition, from
    :class:`~argus.supervision.offsets.SkipDetector`)."""
    return {"batch": batch_id, "ms": now_ms(), "skipped": sum(e["missing"] for e in entries),
            "partitions": entries, "text": describe(entries)}


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

    def recorded(what: str, write: Callable[[], Any]) -> None:
        try:
            write()
        except Exception as exc:  # noqa: BLE001 - HBase may be down: the stream goes on without it
            log.warning("could not record the %s of %s in the status row: %s", what, query_name, exc)

    class StatusListener(StreamingQueryListener):
        def onQueryStarted(self, event) -> None:
            if event.name == query_name:
                recorded("start", lambda: keeper.set_state("running"))

        def onQueryProgress(self, event) -> None:
            if event.progress.name == query_name:
                progress = json.loads(event.progress.json)
                # one line per micro-batch in the driver's log: where its time went
                print("ARGUS_PROGRESS " + json.dumps(progress_line(progress)), flush=True)
                recorded("progress", lambda: keeper.record_progress(progress))
                skipped = skips.check(progress) if skips is not None else []
                if skipped:
                    log.error("streaming query %s skipped offsets it could not read (deleted or expired): %s",
                              query_name, describe(skipped))
                    entry = skipped_entry(progress.get("batchId"), skipped)
                    recorded("skipped offsets", lambda: keeper.keep_skipped(entry))
                    print("ARGUS_SKIPPED " + json.dumps(entry), flush=True)

        def onQueryIdle(self, event) -> None:
            recorded("idle time", keeper.record_idle)

        def onQueryTerminated(self, event) -> None:
            pass  # the driver's main thread records how it ended

    return StatusListener()
