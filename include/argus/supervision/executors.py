"""The streaming application's executors and their tasks, from Spark's REST API (the
driver's UI, ``/api/v1/applications/<app>/executors``), for the console's monitor.

The driver records where its UI listens and its application id in its lease
(:class:`~argus.supervision.status.Lease`), so whoever reads the status row knows where to ask.
"""

from __future__ import annotations

from typing import Any

import httpx

#: what the monitor shows of each executor (Spark's ExecutorSummary fields)
EXECUTOR_FIELDS = ("id", "hostPort", "isActive", "totalCores", "activeTasks", "completedTasks", "failedTasks",
                   "totalDuration", "memoryUsed", "maxMemory")


def executor_rows(summaries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Spark's executor summaries, reduced to :data:`EXECUTOR_FIELDS`, the driver first."""
    rows = [{name: s.get(name) for name in EXECUTOR_FIELDS} for s in summaries]
    return sorted(rows, key=lambda r: (r["id"] != "driver", str(r["id"]).zfill(6)))


def spark_executors(ui_url: str, app_id: str, timeout_s: float = 3.0) -> list[dict[str, Any]]:
    """The live executors (and the driver) of ``app_id``, asking its UI at ``ui_url``.

    :raises httpx.HTTPError: the UI does not answer (the driver is gone or has no UI).
    """
    resp = httpx.get(f"{ui_url.rstrip('/')}/api/v1/applications/{app_id}/executors", timeout=timeout_s)
    resp.raise_for_status()
    return executor_rows(resp.json())
