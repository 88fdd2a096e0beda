"""Dependency outages, waited out by the driver instead of failing the query.

A micro-batch that fails because HBase's Thrift server or Kafka is down is not the job's
fault, and restarting the driver (with backoff) only delays the recovery. So when a batch
fails, the driver probes the services: if one does not answer, it records the outage in the
status row (``s:outage``: the supervisor alerts once per outage, naming the service), probes
every few seconds until the service answers, and runs the same batch again (HBase writes are
idempotent). If every service answers, the failure is the batch's own and counts towards the
poison-batch defence (:mod:`argus.supervision.poison`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from argus.supervision.poison import error_summary
from argus.supervision.status import now_ms

log = logging.getLogger(__name__)

#: the longest wait between two probes of a service that is down
MAX_PROBE_INTERVAL_S = 3.0
#: a query that shows no life this long has its services probed by the heartbeat
QUIET_AFTER_S = 15.0
#: what the status row and the alerts call each service
SERVICE_NAMES = {"hbase-thrift": "HBase Thrift server", "kafka": "Kafka"}


def probe_services(kafka_bootstrap: str, hbase_host: str, hbase_port: int, timeout_s: float = 5.0) -> str | None:
    """The first service of the pipeline that does not answer (``hbase-thrift``, ``kafka``), or None."""
    import happybase
    from confluent_kafka.admin import AdminClient

    try:
        connection = happybase.Connection(hbase_host, hbase_port, timeout=int(timeout_s * 1000))
        try:
            connection.tables()
        finally:
            connection.close()
    except Exception:  # noqa: BLE001 - any failure to answer is an outage
        return "hbase-thrift"
    try:
        metadata = AdminClient({"bootstrap.servers": kafka_bootstrap, "socket.timeout.ms": int(timeout_s * 1000)}
                               ).list_topics(timeout=timeout_s)
        if not metadata.brokers:
            return "kafka"
    except Exception:  # noqa: BLE001
        return "kafka"
    return None


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
            if down is not None and (self._noticed or {}).get("service") != down:
                self._noticed = {"service": down, "name": SERVICE_NAMES.get(down, down), "since_ms": now_ms(),
                                 "error": f"{SERVICE_NAMES.get(down, down)} does not answer; the query waits"}
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
            self._waiting, self._noticed = True, None
        try:
            return self._wait_out(service, error)
        finally:
            with self._lock:
                self._waiting = False

    def _wait_out(self, service: str, error: BaseException | str) -> dict[str, Any]:
        outage = {"service": service, "name": SERVICE_NAMES.get(service, service), "since_ms": now_ms(),
                  "error": error_summary(str(error), 300) if str(error) else type(error).__name__}
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
                outage = {**outage, "service": down, "name": SERVICE_NAMES.get(down, down)}
                self._write({"outage": outage})
        over = {**outage, "until_ms": now_ms(), "seconds": round((now_ms() - outage["since_ms"]) / 1000, 1)}
        self._write({"outage": {}, "last_outage": over})
        print("ARGUS_RECOVERED " + _json(over), flush=True)
        return over

    def _write(self, values: dict[str, Any]) -> None:
        try:
            self.record(values)
        except Exception as exc:  # noqa: BLE001 - HBase itself may be what is down
            log.warning("could not record the outage in the status row: %s", exc)


def _json(value: dict[str, Any]) -> str:
    import json

    return json.dumps(value)
