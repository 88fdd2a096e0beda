"""The status row of a streaming query in HBase (``argus:streams``): its lease and its progress.

One row per query name, family ``s``:

| column | written by | value |
| --- | --- | --- |
| ``s:lease`` | the driver (compare-and-set) | :class:`Lease` as JSON: who runs the query, its heartbeat |
| ``s:state`` | the driver | ``{"state": starting/running/stopped/failed, "ms", "message"}`` |
| ``s:job`` | the driver | the job's settings (topic, trigger interval, checkpoint, ...) |
| ``s:progress`` | the driver's query listener | the last ``StreamingQueryProgress`` JSON |
| ``s:batch_ms`` / ``s:idle_ms`` | the listener | wall time of the last completed micro-batch / idle event |
| ``s:recent`` | the listener | compact summaries of the last micro-batches (for sustained SLOs) |
| ``s:qstatus`` | the driver's heartbeat | ``StreamingQuery.status`` (data available, trigger active) |
| ``s:failing`` | the driver | the micro-batch failing in a row: ``{"batch", "attempts", "after", "error", "first_ms", "ms"}`` |
| ``s:isolated`` | the driver | records that failed their batch alone and were dead-lettered: ``{"total", "recent": [...]}`` |
| ``s:outage`` / ``s:last_outage`` | the driver | a service the driver waits for (``{"service", "name", "since_ms", "error"}``), and the last one it waited out |
| ``s:skipped`` | the listener | offsets the source skipped: ``{"total", "recent": [{"batch", "ms", "skipped", "partitions", "text"}]}`` |
| ``s:starts`` | the driver, on taking the lease | the last driver starts: ``[{"ms", "owner", "launch_id"}]``, oldest first |

Every driver write is a Thrift2 ``checkAndPut`` that expects the driver's own current lease
value, so a driver whose lease was taken over (expired or revoked) can no longer write
anything here: the lease fences it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from thriftpy2.rpc import make_client
from thriftpy2.transport import TTransportException

from argus.config import DEFAULT_PORTS
from argus.store.admin import HBaseAdmin, hbase2
from argus.store.schema import tables

STATUS_TABLE = "argus:streams"
FAMILY = b"s"
LEASE = b"lease"
#: how many skipped-offsets entries ``s:skipped`` keeps
SKIPPED_KEPT = 20
#: how many micro-batch summaries ``s:recent`` keeps
RECENT_BATCHES = 20
#: how many driver starts ``s:starts`` keeps
STARTS_KEPT = 50


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Lease:
    """Who runs a streaming query.

    :param owner: unique id of the driver (one per process start).
    :param host: / :param pid: / :param pid_start: / :param boot: / :param pgid: where the driver
        runs: its host name, its Python process id, that process's start time in clock ticks since
        boot ``boot`` (:class:`argus.process.ProcessIdentity`: a reused pid is not taken for it,
        and a step of the wall clock changes nothing) and its process group (spark-submit's session).
    :param acquired_ms: / :param heartbeat_ms: when it took the lease and last renewed it.
    :param ttl_ms: the lease is free once the heartbeat is older than this.
    :param launch_id: id the supervisor gave this launch (``--launch-id``), if any.
    :param app_id: the Spark application id, once the session exists.
    :param ui_url: where the driver's Spark UI (and its REST API) listens, once the session exists.
    :param released: the driver gave the lease up (clean stop or failure).
    :param revoked_by: a supervisor took the lease away (the driver must stop at once).
    """

    owner: str
    host: str
    pid: int
    pid_start: int
    acquired_ms: int
    heartbeat_ms: int
    ttl_ms: int
    pgid: int | None = None
    boot: str | None = None
    launch_id: str | None = None
    app_id: str | None = None
    ui_url: str | None = None
    released: bool = False
    revoked_by: str | None = None

    def encode(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes) -> Lease:
        data = json.loads(raw)
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def expired(self, at_ms: int) -> bool:
        return at_ms - self.heartbeat_ms > self.ttl_ms

    def live(self, at_ms: int) -> bool:
        """Held by a driver that is (as far as the heartbeat tells) running."""
        return not self.released and not self.revoked_by and not self.expired(at_ms)

    def describe(self, at_ms: int | None = None) -> str:
        age = f", heartbeat {((at_ms or now_ms()) - self.heartbeat_ms) / 1000:.1f}s ago"
        return f"owner {self.owner} (pid {self.pid} on {self.host}, app {self.app_id or '-'}{age})"


class LeaseHeld(RuntimeError):
    """Another driver holds the lease of this query."""

    def __init__(self, query: str, holder: Lease):
        super().__init__(f"streaming query {query!r} is already running: lease held by {holder.describe()}")
        self.query, self.holder = query, holder


@dataclass
class StreamStatus:
    """Everything the status row says about one query (missing columns are None/empty)."""

    query: str
    lease: Lease | None = None
    lease_raw: bytes | None = None
    state: dict[str, Any] = field(default_factory=dict)
    job: dict[str, Any] = field(default_factory=dict)
    progress: dict[str, Any] | None = None
    batch_ms: int | None = None
    idle_ms: int | None = None
    recent: list[dict[str, Any]] = field(default_factory=list)
    query_status: dict[str, Any] = field(default_factory=dict)
    skipped: dict[str, Any] = field(default_factory=dict)
    failing: dict[str, Any] = field(default_factory=dict)
    isolated: dict[str, Any] = field(default_factory=dict)
    outage: dict[str, Any] = field(default_factory=dict)
    last_outage: dict[str, Any] = field(default_factory=dict)
    starts: list[dict[str, Any]] = field(default_factory=list)

    def restarts(self, since_ms: int) -> int:
        """Driver starts since ``since_ms`` that followed an earlier start: restarts."""
        return sum(1 for i, start in enumerate(self.starts) if i and start.get("ms", 0) >= since_ms)

    @classmethod
    def from_cells(cls, query: str, cells: dict[bytes, bytes]) -> StreamStatus:
        def js(name: str, default=None):
            raw = cells.get(name.encode())
            return json.loads(raw) if raw else default

        def num(name: str) -> int | None:
            raw = cells.get(name.encode())
            return int(raw) if raw else None

        raw_lease = cells.get(LEASE)
        return cls(query=query, lease=Lease.decode(raw_lease) if raw_lease else None, lease_raw=raw_lease,
                   state=js("state", {}), job=js("job", {}), progress=js("progress"), batch_ms=num("batch_ms"),
                   idle_ms=num("idle_ms"), recent=js("recent", []), query_status=js("qstatus", {}),
                   skipped=js("skipped", {}), failing=js("failing", {}), isolated=js("isolated", {}),
                   outage=js("outage", {}), last_outage=js("last_outage", {}), starts=js("starts", []))


def _cells(values: dict[str, Any]) -> list:
    out = []
    for name, value in values.items():
        if isinstance(value, bytes):
            data = value
        elif isinstance(value, (dict, list)):
            data = json.dumps(value, separators=(",", ":")).encode()
        else:
            data = str(value).encode()
        out.append(hbase2.TColumnValue(family=FAMILY, qualifier=name.encode(), value=data))
    return out


class StreamStatusStore:
    """Reads and compare-and-sets the status rows, through the HBase Thrift2 server.

    Thread-safe (one lock around the Thrift client; a dropped connection is reopened once).

    :param host: / :param port: the HBase Thrift2 server.
    :param table: the status table.
    """

    def __init__(self, host: str, port: int = DEFAULT_PORTS["hbase_thrift2"], table: str = STATUS_TABLE,
                 timeout_ms: int = 10_000):
        self.host, self.port, self.table, self.timeout_ms = host, port, table.encode(), timeout_ms
        self._client = None
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, cfg=None, **kw) -> StreamStatusStore:
        """The local stack's status table (:meth:`argus.endpoints.Endpoints.from_config`)."""
        from argus.endpoints import Endpoints

        return cls.from_endpoints(Endpoints.from_config(cfg), **kw)

    @classmethod
    def from_endpoints(cls, endpoints, **kw) -> StreamStatusStore:
        """:param endpoints: an :class:`~argus.endpoints.Endpoints` (its Thrift2 server)."""
        return cls(endpoints.hbase_admin_host, endpoints.hbase_admin_port, **kw)

    def ensure_table(self) -> None:
        with HBaseAdmin(self.host, self.port) as admin:
            admin.create_table(tables()["streams"])

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                try:
                    self._client.close()
                except TTransportException:
                    pass
                self._client = None

    def _call(self, method: str, *args):
        with self._lock:
            for attempt in (0, 1):
                if self._client is None:
                    self._client = make_client(hbase2.THBaseService, self.host, self.port, timeout=self.timeout_ms)
                try:
                    return getattr(self._client, method)(*args)
                except (TTransportException, OSError, EOFError):
                    # a Thrift server restart or an idle timeout: reconnect once, then give up
                    try:
                        self._client.close()
                    except Exception:
                        pass
                    self._client = None
                    if attempt:
                        raise

    def read(self, query: str) -> StreamStatus:
        result = self._call("get", self.table, hbase2.TGet(row=query.encode(), columns=[hbase2.TColumn(family=FAMILY)]))
        cells = {cv.qualifier: cv.value for cv in (result.columnValues or [])}
        return StreamStatus.from_cells(query, cells)

    def read_all(self, limit: int = 100) -> list[StreamStatus]:
        """The status row of every query (at most ``limit``), in name order."""
        scan = hbase2.TScan(columns=[hbase2.TColumn(family=FAMILY)])
        results = self._call("getScannerResults", self.table, scan, limit) or []
        return [StreamStatus.from_cells(r.row.decode(), {cv.qualifier: cv.value for cv in (r.columnValues or [])})
                for r in results]

    def check_and_put(self, query: str, expected_lease: bytes | None, values: dict[str, Any]) -> bool:
        """Write ``values`` (column -> value) iff ``s:lease`` is exactly ``expected_lease``
        (None: iff there is no lease cell)."""
        put = hbase2.TPut(row=query.encode(), columnValues=_cells(values))
        return bool(self._call("checkAndPut", self.table, query.encode(), FAMILY, LEASE, expected_lease, put))

    # ---- the driver's side ----

    def acquire(self, query: str, lease: Lease,
                extra: dict[str, Any] | Callable[[StreamStatus], dict[str, Any]] | None = None,
                holder_gone: Callable[[Lease], bool] | None = None) -> bytes:
        """Take the lease of ``query`` for ``lease.owner``; returns the stored lease value.
        ``extra``: more columns written with it, or a function of the row as read that makes them.

        Succeeds if there is no lease, or the current one is released, revoked or expired, or
        ``holder_gone(current)`` says its holder's process provably no longer exists: the
        compare-and-set on the value read makes two drivers racing for a free lease end with one
        winner. Raises :class:`LeaseHeld` if a live driver holds it.
        """
        for _ in range(5):
            status = self.read(query)
            current = status.lease
            if (current is not None and current.owner != lease.owner and current.live(now_ms())
                    and not (holder_gone and holder_gone(current))):
                raise LeaseHeld(query, current)
            raw = lease.encode()
            more = extra(status) if callable(extra) else extra
            if self.check_and_put(query, status.lease_raw, {"lease": raw, **(more or {})}):
                return raw
        status = self.read(query)
        raise LeaseHeld(query, status.lease) if status.lease else RuntimeError(f"could not take the lease of {query!r}")

    # ---- the supervisor's side ----

    def revoke(self, query: str, by: str) -> Lease | None:
        """Take the lease away from whoever holds it (its next heartbeat fails and it stops);
        returns the lease as it was, or None if there was none."""
        for _ in range(5):
            status = self.read(query)
            if status.lease is None or status.lease.revoked_by or status.lease.released:
                return status.lease
            revoked = replace(status.lease, revoked_by=by)
            if self.check_and_put(query, status.lease_raw, {"lease": revoked.encode()}):
                return status.lease
        return self.read(query).lease

    def delete(self, query: str) -> None:
        """Remove the row (tests, or retiring a query)."""
        self._call("deleteSingle", self.table, hbase2.TDelete(row=query.encode()))
