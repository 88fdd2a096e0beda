"""The monitor's sources beside the frames rows: the dead-letter topic, the streaming queries'
status rows, the Spark application's executors, the stack's services and the GPUs. Each
section is gathered on its own: a service that is down turns its section into an error
message, and the rest of the page still shows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from argus.live.deadletters import DeadLetterCounts
from argus.live.launcher import StreamJobSpec
from argus.live.message import DLQ_TOPIC
from argus.store.latency import percentile
from argus.supervision.status import StreamStatus

#: the query the monitor always shows, running or not (the DAG's default)
MAIN_QUERY = StreamJobSpec.__dataclass_fields__["query_name"].default


class MonitorSources:
    """The real sources (the Airflow connections' endpoints, this host's processes).

    :param endpoints: makes the :class:`~argus.endpoints.Endpoints` (default: the connections').
    """

    def __init__(self, endpoints: Callable[[], Any] | None = None):
        self._endpoints_factory = endpoints
        self._endpoints = None
        self._usage = None

    def endpoints(self):
        if self._endpoints is None:
            if self._endpoints_factory is None:
                from argus_airflow.hooks.endpoints import airflow_endpoints

                self._endpoints_factory = airflow_endpoints
            self._endpoints = self._endpoints_factory()
        return self._endpoints

    def dead_letters(self, since_ms: int, until_ms: int, topics: list[str]) -> DeadLetterCounts:
        from argus.live.deadletters import count_dead_letters

        return count_dead_letters(self.endpoints().kafka_bootstrap, since_ms, until_ms, topics=topics)

    def streams(self) -> list[StreamStatus]:
        from argus.supervision.status import StreamStatusStore

        store = StreamStatusStore.from_endpoints(self.endpoints(), timeout_ms=5000)
        try:
            return store.read_all()
        finally:
            store.close()

    def executors(self, ui_url: str, app_id: str) -> list[dict[str, Any]]:
        from argus.supervision.executors import spark_executors

        return spark_executors(ui_url, app_id)

    def services(self) -> list[dict[str, Any]]:
        if self._usage is None:
            from argus.stack.usage import ServiceUsage

            self._usage = ServiceUsage()
        return self._usage.sample()

    def gpus(self) -> list[dict[str, Any]] | None:
        from argus.detect.devices import gpu_usage

        return gpu_usage()


def stream_row(status: StreamStatus, since_ms: int, now_ms: int) -> dict[str, Any]:
    """What the monitor shows of one streaming query: who runs it, its micro-batches over the
    window (duration, rows, lag), restarts in the window, and what it waits for."""
    lease = status.lease
    batches = [b for b in status.recent if (b.get("ms") or 0) >= since_ms]
    durations = [b["duration_ms"] for b in batches if b.get("duration_ms") is not None]
    last = status.recent[-1] if status.recent else {}
    return {
        "query": status.query, "state": status.state.get("state"), "message": status.state.get("message") or "",
        "running": bool(lease and lease.live(now_ms)),
        "driver": f"pid {lease.pid} on {lease.host}" if lease else None,
        "app_id": lease.app_id if lease else None, "ui_url": lease.ui_url if lease else None,
        "heartbeat_age_s": round((now_ms - lease.heartbeat_ms) / 1000, 1) if lease else None,
        "batches": len(batches),
        "batch_ms": {"last": last.get("duration_ms"), "median": percentile(durations, 50),
                     "max": max(durations) if durations else None},
        "rows_last": last.get("rows"), "lag": last.get("lag"),
        "restarts": status.restarts(since_ms), "starts": len(status.starts),
        "last_start_ms": status.starts[-1]["ms"] if status.starts else None,
        "outage": status.outage.get("service") if status.outage else None,
        "isolated": (status.isolated or {}).get("total", 0), "skipped": (status.skipped or {}).get("total", 0),
        "recent": [{"ms": b.get("ms"), "duration_ms": b.get("duration_ms"), "rows": b.get("rows"), "lag": b.get("lag")}
                   for b in batches],
    }


def section(make: Callable[[], Any]) -> dict[str, Any]:
    try:
        return {"rows": make()}
    except Exception as exc:  # one source down must not take the page with it
        return {"rows": None, "error": f"{type(exc).__name__}: {exc}"[:300]}


def shown(statuses: list[StreamStatus], since_ms: int, now_ms: int) -> tuple[list[StreamStatus], list[str]]:
    """The queries worth a row: the main one, those running, those active in the window; and
    the names of the others (finished test or benchmark queries, say)."""
    def active(s: StreamStatus) -> bool:
        last = max([s.lease.heartbeat_ms if s.lease else 0, *(b.get("ms") or 0 for b in s.recent)])
        return s.query == MAIN_QUERY or bool(s.lease and s.lease.live(now_ms)) or last >= since_ms

    return [s for s in statuses if active(s)], [s.query for s in statuses if not active(s)]


def dead_letter_topics(statuses: list[StreamStatus], since_ms: int, now_ms: int) -> list[str]:
    """The dead-letter topics of the queries shown (their ``s:job``), the default one first."""
    rows, _ = shown(statuses, since_ms, now_ms)
    return list(dict.fromkeys([DLQ_TOPIC, *(s.job.get("dlq_topic") or DLQ_TOPIC for s in rows)]))


def cluster(sources: MonitorSources, streams: dict[str, Any], since_ms: int, until_ms: int) -> dict[str, Any]:
    """The streaming queries (``streams``: the section of :meth:`MonitorSources.streams`), their
    executors, the services and the GPUs, each a section ``{"rows": ..., "error"?: ...}``;
    ``gpus`` rows are None where the host has no nvidia-smi."""
    rows, others = shown(streams["rows"] or [], since_ms, until_ms)
    queries = {"rows": [stream_row(s, since_ms, until_ms) for s in rows], "idle": others,
               **({"error": streams["error"]} if streams.get("error") else {})}
    executors = {}
    for row in queries["rows"]:
        if row["running"] and row["ui_url"] and row["app_id"]:
            executors[row["query"]] = section(lambda row=row: sources.executors(row["ui_url"], row["app_id"]))
    return {"streams": queries, "executors": executors, "services": section(sources.services),
            "gpus": section(sources.gpus)}
