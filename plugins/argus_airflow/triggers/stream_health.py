"""Trigger that watches a streaming query's health from its status row in HBase."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from argus.supervision.control import stop_stream
from argus.supervision.health import HEALTHY, Health, Thresholds, assess
from argus.supervision.outage import STATUS_ROW_SERVICES, outage_text, probe_status_store
from argus.supervision.process import driver_alive, process_alive
from argus.supervision.status import StreamStatusStore, now_ms


#: how long one read of the status row may take
READ_TIMEOUT_MS = 5000
#: after the status row was unreadable, how long (beyond its TTL) the driver has to renew its
#: lease before it is judged: a suspended driver's renewal may itself be waiting out a timeout
RENEW_GRACE_MS = 30_000
#: a row that reads but cannot be decoded this many times in a row fails the trigger
MAX_UNDECODABLE_READS = 24


class StreamHealthTrigger(BaseTrigger):
    """Polls the query's status row (lease, progress) and fires when the query needs a
    restart (dead or stalled) or its set of open SLO breaches changes; silent while healthy
    or starting. Runs in the triggerer, so watching a never-ending job holds no worker slot.

    The event's payload: ``{"health": Health.to_dict(), "lease": {...} | None}``.

    :param query_name: the streaming query (status row).
    :param hbase_host: / :param hbase_port: the HBase Thrift2 server.
    :param thresholds: :class:`~argus.supervision.health.Thresholds` as a dict.
    :param poll_interval: seconds between two reads of the status row.
    :param launch_id: / :param launched_ms: the supervisor's latest launch, if it launched one.
    :param launcher: ``{"host", "pid", "start", "boot"}`` of that launch's spark-submit process
        (start: clock ticks since boot, :class:`argus.process.ProcessIdentity`).
    :param open_breaches: SLO breaches already alerted on (fires when the set changes).
    :param max_read_failures: consecutive failed reads of the status row before the trigger
        names the outage itself (``outage:hbase`` or ``outage:hbase-thrift2``: the driver cannot
        record it where HBase is down). It then keeps reading until the row answers again, and
        for one lease TTL after that it waits for the driver to renew its lease (it could not
        meanwhile) before it judges it.
    :param newer: arguments of a newer version of this trigger, ignored.
    """

    def __init__(self, *, query_name: str, hbase_host: str, hbase_port: int, thresholds: dict[str, Any],
                 poll_interval: float = 5.0, launch_id: str | None = None, launched_ms: int | None = None,
                 launcher: dict[str, Any] | None = None, open_breaches: Sequence[str] = (),
                 max_read_failures: int = 3, **newer: Any) -> None:
        super().__init__()
        if newer:
            # written by a newer supervisor while this triggerer runs older code (a rolling
            # upgrade): watch with what this version knows rather than fail the task
            self.log.warning("StreamHealthTrigger ignores arguments it does not know: %s", sorted(newer))
        self.query_name = query_name
        self.hbase_host, self.hbase_port = hbase_host, int(hbase_port)
        self.thresholds = dict(thresholds)
        self.poll_interval = float(poll_interval)
        self.launch_id, self.launched_ms, self.launcher = launch_id, launched_ms, launcher
        self.open_breaches = sorted(open_breaches)
        self.max_read_failures = max_read_failures

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}", {
            "query_name": self.query_name, "hbase_host": self.hbase_host, "hbase_port": self.hbase_port,
            "thresholds": self.thresholds, "poll_interval": self.poll_interval, "launch_id": self.launch_id,
            "launched_ms": self.launched_ms, "launcher": self.launcher, "open_breaches": self.open_breaches,
            "max_read_failures": self.max_read_failures,
        })

    def _store(self) -> StreamStatusStore:
        # a read that HBase cannot answer fails within seconds: the outage is named sooner
        return StreamStatusStore(self.hbase_host, self.hbase_port, timeout_ms=READ_TIMEOUT_MS)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        thresholds = Thresholds.from_mapping(self.thresholds)
        store = self._store()
        failures = undecodable = 0
        # an outage of the status row's services already alerted on (by an earlier trigger)
        store_down = any(b.removeprefix("outage:") in STATUS_ROW_SERVICES for b in self.open_breaches)
        renew_by_ms = None  # after the row was unreadable: the driver has until then to renew
        try:
            while True:
                try:
                    status = await asyncio.to_thread(store.read, self.query_name)
                    undecodable = 0
                except (ValueError, KeyError, TypeError) as exc:  # it answers, with a row we cannot read
                    undecodable += 1
                    self.log.warning("The status row of %s cannot be read (%d in a row): %s",
                                     self.query_name, undecodable, exc)
                    if undecodable >= MAX_UNDECODABLE_READS:
                        raise
                    await asyncio.sleep(self.poll_interval)
                    continue
                except Exception as exc:
                    failures += 1
                    self.log.warning("Reading the status of %s failed (%d in a row): %s",
                                     self.query_name, failures, exc)
                    if failures >= self.max_read_failures and not store_down:
                        yield await self._store_outage(exc)
                        return
                    await asyncio.sleep(self.poll_interval)
                    continue
                alive = await asyncio.to_thread(driver_alive, status.lease)
                launcher_alive = await asyncio.to_thread(process_alive, **self.launcher) if self.launcher else None
                now = now_ms()
                if failures or store_down:
                    failures, store_down = 0, False
                    ttl_ms = status.lease.ttl_ms if status.lease else 0
                    renew_by_ms = now + ttl_ms + RENEW_GRACE_MS + int(2 * self.poll_interval * 1000)
                if (renew_by_ms is not None and now < renew_by_ms and status.lease is not None
                        and not status.lease.live(now) and alive is not False):
                    await asyncio.sleep(self.poll_interval)  # its heartbeat could not reach HBase either
                    continue
                renew_by_ms = None
                health = assess(status, now, thresholds, launch_id=self.launch_id,
                                launched_ms=self.launched_ms, launcher_alive=launcher_alive, driver_alive=alive)
                if health.needs_restart or sorted(health.breaches) != self.open_breaches:
                    self.log.info("Streaming query %s: %s %s %s", self.query_name, health.state,
                                  "; ".join(health.reasons), health.breaches)
                    lease = status.lease
                    yield TriggerEvent({"health": health.to_dict(),
                                        "lease": lease.__dict__ if lease is not None else None})
                    return
                await asyncio.sleep(self.poll_interval)
        finally:
            store.close()

    async def _store_outage(self, error: Exception) -> TriggerEvent:
        """The status row cannot be read: name the service that is down, as a breach (the
        breaches already open stay open)."""
        service = await asyncio.to_thread(probe_status_store, self.hbase_host, self.hbase_port)
        breaches = {name: "still open" for name in self.open_breaches}
        breaches[f"outage:{service}"] = outage_text(service, error, "the supervisor cannot read the stream's status; "
                                                                    "the stream waits for it")
        self.log.warning("Streaming query %s: %s", self.query_name, breaches[f"outage:{service}"])
        return TriggerEvent({"health": Health(HEALTHY, (), breaches).to_dict(), "lease": None})

    async def on_kill(self) -> None:
        """The user stopped the task (mark failed/success, clear): stop the streaming job."""
        store = self._store()
        try:
            lease = await asyncio.to_thread(stop_stream, store, self.query_name, "airflow: task stopped by a user",
                                            20.0)
            self.log.info("Stopped streaming query %s (%s)", self.query_name,
                          lease.describe() if lease else "no driver was running")
        finally:
            store.close()
