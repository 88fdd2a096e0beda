"""Dependency outages, waited out by the driver instead of failing the query.

A micro-batch that fails because Kafka, HBase (its Thrift servers, or the master and
RegionServers behind them) or HDFS is down is not the job's fault, and restarting the driver
(with backoff) only delays the recovery. So when a batch or the query fails, the driver
probes the services (:func:`probe_services`): if one does not answer, it records the outage in
the status row (``s:outage``: the supervisor alerts once per outage, naming the service),
probes every few seconds until the service answers, and runs the same batch (or the query,
from its checkpoint) again; HBase writes are idempotent. If every service answers, the
failure is the batch's own and counts towards the poison-batch defence
(:mod:`argus.supervision.poison`).

While HBase or its Thrift2 server is down the driver cannot write the status row, nor renew
its lease: it then processes nothing until it has renewed it
(:class:`~argus.supervision.driver.LeaseKeeper`), and the supervisor, which cannot read the
row either, names the outage itself (:func:`probe_status_store`). A probe never raises: a
check that fails in any way counts as the service not answering.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from argus.supervision.poison import error_summary
from argus.supervision.status import STATUS_TABLE, StreamStatusStore, now_ms

if TYPE_CHECKING:
    from argus.endpoints import Endpoints

log = logging.getLogger(__name__)

#: the longest wait between two probes of a service that is down
MAX_PROBE_INTERVAL_S = 3.0
#: a query that shows no life this long has its services probed by the heartbeat
QUIET_AFTER_S = 15.0
#: what the status row and the alerts call each service, in the order :func:`probe_services` asks
SERVICE_NAMES = {"kafka": "Kafka", "hbase-thrift": "HBase Thrift server", "hbase": "HBase (master or RegionServer)",
                 "hbase-thrift2": "HBase Thrift2 server", "hdfs": "HDFS"}
#: what keeps the supervisor from reading the status row (:func:`probe_status_store`)
STATUS_ROW_SERVICES = frozenset({"hbase", "hbase-thrift2"})
#: a DataNode silent this long does not count as up (the NameNode itself calls it dead only
#: after ~10 minutes, and until then a write to it fails)
DATANODE_SILENT_S = 15


def service_name(service: str) -> str:
    return SERVICE_NAMES.get(service, service)


def _listening(host: str, port: int, timeout_s: float) -> bool:
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
        return True
    except OSError:
        return False


def _kafka_answers(bootstrap: str, timeout_s: float) -> bool:
    from confluent_kafka.admin import AdminClient

    try:
        metadata = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": int(timeout_s * 1000)}
                               ).list_topics(timeout=timeout_s)
        return bool(metadata.brokers)
    except Exception:  # noqa: BLE001 - any failure to answer is an outage
        return False


def _hbase_answers(host: str, port: int, timeout_s: float) -> bool:
    """Whether HBase answers through its Thrift server: the master (the table list) and the
    RegionServers holding ``hbase:meta`` and the status table (a read of one row)."""
    import happybase

    try:
        connection = happybase.Connection(host, port, timeout=int(timeout_s * 1000))
        try:
            connection.tables()
            connection.table(STATUS_TABLE).row(b"argus-probe")
        finally:
            connection.close()
        return True
    except Exception:  # noqa: BLE001
        return False


def _thrift2_answers(host: str, port: int, timeout_s: float) -> bool:
    store = StreamStatusStore(host, port, timeout_ms=int(timeout_s * 1000))
    try:
        store.read("argus-probe")
        return True
    except Exception:  # noqa: BLE001
        return False
    finally:
        store.close()


def _hdfs_answers(webhdfs_url: str, timeout_s: float) -> bool:
    """Whether the NameNode answers, out of safe mode, with a DataNode that heartbeats."""
    from argus.archive.hdfs import namenode_jmx

    try:
        info = namenode_jmx(webhdfs_url, "Hadoop:service=NameNode,name=NameNodeInfo", timeout_s)
        if info.get("Safemode"):
            return False
        live = json.loads(info.get("LiveNodes") or "{}")
        return any(int(node.get("lastContact", DATANODE_SILENT_S + 1)) <= DATANODE_SILENT_S for node in live.values())
    except Exception:  # noqa: BLE001 - no answer, a truncated one, or one we cannot read
        return False


def probe_services(endpoints: Endpoints, timeout_s: float = 5.0) -> str | None:
    """The first service of the pipeline that does not answer, or None.

    :return: ``kafka``, ``hbase-thrift`` (the Thrift server takes no connection), ``hbase`` (it
        does, but HBase behind it does not answer), ``hbase-thrift2`` or ``hdfs`` (see
        :data:`SERVICE_NAMES`).
    """
    e = endpoints
    if not _kafka_answers(e.kafka_bootstrap, timeout_s):
        return "kafka"
    if not _listening(e.hbase_host, e.hbase_port, timeout_s):
        return "hbase-thrift"
    if not _hbase_answers(e.hbase_host, e.hbase_port, timeout_s):
        return "hbase"
    if not _thrift2_answers(e.hbase_admin_host, e.hbase_admin_port, timeout_s):
        return "hbase-thrift2"
    if not _hdfs_answers(e.webhdfs_url, timeout_s):
        return "hdfs"
    return None


def probe_status_store(host: str, port: int, timeout_s: float = 5.0) -> str:
    """Which service keeps the status row unreadable through the Thrift2 server at ``host:port``:
    ``hbase-thrift2`` when it takes no connection, else ``hbase`` (it does, but its reads fail)."""
    return "hbase" if _listening(host, port, timeout_s) else "hbase-thrift2"


def outage_text(service: str, error: BaseException | str, waiting: str = "the stream waits for it") -> str:
    """How an alert says that ``service`` is down: its name, the error, what happens meanwhile."""
    return f"{service_name(service)} is down ({_error(error)}); {waiting} and resumes by itself"


def _error(error: BaseException | str) -> str:
    return error_summary(str(error), 300) if str(error) else type(error).__name__


class OutageWaiter:
    """Waits out the outage of a service, recording it for the supervisor.

    :param record: writes status columns (the driver's ``LeaseKeeper.write``).
    :param probe: the first service that does not answer, or None.
    """

    def __init__(self, record: Callable[[dict[str, Any]], Any], probe: Callable[[], str | None],
                 sleep: Callable[[float], None] = time.sleep):
        self.record, self.probe, self.sleep = record, probe, sleep
        self._lock = threading.Lock()
        self._waiting = False  # wait_out runs (it records the outage itself)
        self._noticed: dict[str, Any] | None = None  # an outage the watchdog recorded
        self._seen_ms = 0  # when a service was last seen down

    def seen_since(self, ms: int) -> bool:
        """Whether a service was down at some time since ``ms`` (e.g. while a call that then
        failed was waiting: the service may be back by the time the failure is judged)."""
        return self._noticed is not None or self._seen_ms >= ms

    def start_watching(self, keeper, stop: threading.Event, every_s: float = 5.0) -> threading.Thread:
        """Run :meth:`watch` every ``every_s`` on a thread of its own (a probe of a service that
        is down takes seconds: it must not delay the lease's heartbeat)."""
        def loop() -> None:
            while not stop.wait(every_s):
                try:
                    self.watch(keeper)
                except Exception as exc:  # noqa: BLE001 - the watchdog must not die
                    log.warning("outage watchdog failed: %s", exc)

        thread = threading.Thread(target=loop, name="argus-outage-watch", daemon=True)
        thread.start()
        return thread

    def watch(self, keeper, quiet_after_s: float = QUIET_AFTER_S) -> None:
        """While the query shows no life (a source blocked on Kafka while it
        plans a batch, say), probe the services, record an outage that no failed batch has
        reported, and clear it once the service answers again."""
        if keeper.quiet_s() < quiet_after_s and self._noticed is None:
            return
        with self._lock:
            if self._waiting:
                return
        down = self.probe()
        with self._lock:
            if self._waiting:
                return
            if down is not None:
                self._seen_ms = now_ms()
            if down is not None and (self._noticed or {}).get("service") != down:
                self._noticed = {"service": down, "name": service_name(down), "since_ms": now_ms(),
                                 "error": f"{service_name(down)} does not answer; the query waits"}
                self._write({"outage": self._noticed})
                print("ARGUS_OUTAGE " + _json(self._noticed), flush=True)
            elif down is None and self._noticed is not None:
                over = {**self._noticed, "until_ms": now_ms(),
                        "seconds": round((now_ms() - self._noticed["since_ms"]) / 1000, 1)}
                self._noticed = None
                self._write({"outage": {}, "last_outage": over})
                print("ARGUS_RECOVERED " + _json(over), flush=True)

    def wait_out(self, service: str, error: BaseException | str) -> dict[str, Any]:
        """Block until no service is down any more; returns the outage as recorded."""
        with self._lock:
            self._waiting = True
            noticed, self._noticed = self._noticed, None
        try:
            return self._wait_out(service, error, noticed)
        finally:
            with self._lock:
                self._waiting = False

    def _wait_out(self, service: str, error: BaseException | str, noticed: dict[str, Any] | None) -> dict[str, Any]:
        if noticed is not None and noticed["service"] == service:
            outage = noticed  # the watchdog recorded this outage already (the query hung on it first)
        else:
            outage = {"service": service, "name": service_name(service), "since_ms": now_ms(), "error": _error(error)}
            self._write({"outage": outage})
            print("ARGUS_OUTAGE " + _json(outage), flush=True)
        log.warning("%s is down (%s): waiting for it before running the micro-batch again", outage["name"],
                    outage["error"])
        interval, down = 0.5, service
        while down is not None:
            self.sleep(interval)
            interval = min(MAX_PROBE_INTERVAL_S, interval * 2)
            down = self.probe()
            if down is not None and down != outage["service"]:  # another one now: say which
                outage = {**outage, "service": down, "name": service_name(down)}
                self._write({"outage": outage})
        over = {**outage, "until_ms": now_ms(), "seconds": round((now_ms() - outage["since_ms"]) / 1000, 1)}
        self._seen_ms = over["until_ms"]
        self._write({"outage": {}, "last_outage": over})
        print("ARGUS_RECOVERED " + _json(over), flush=True)
        return over

    def _write(self, values: dict[str, Any]) -> None:
        try:
            self.record(values)
        except Exception as exc:  # noqa: BLE001 - HBase itself may be what is down
            log.warning("could not record the outage in the status row: %s", exc)


def _json(value: dict[str, Any]) -> str:
    return json.dumps(value)
