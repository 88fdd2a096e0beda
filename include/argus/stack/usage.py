"""CPU and memory of each service of the local stack, as the console's monitor shows them.

CPU is a share of one core between two looks (:class:`ServiceUsage` keeps the last one per
process), so the first look after a start only gives a baseline. Only services that run on
this host can be seen; on a deployment whose services live elsewhere the list is empty.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from argus.config import ArgusConfig
from argus.process import tree_usage


class ServiceUsage:
    """Looks at the stack's services; thread-safe (one instance serves every request).

    :param cfg: the stack whose pid files are read (default: this host's ``ArgusConfig``).
    """

    def __init__(self, cfg: ArgusConfig | None = None):
        from argus.stack.manager import Stack

        self.stack = Stack(cfg)
        self._last: dict[str, tuple[int, float, float]] = {}  # service -> (pid, cpu s, monotonic s)
        self._lock = threading.Lock()

    def sample(self) -> list[dict[str, Any]]:
        """One row per service running here: pid, CPU share (% of one core since the last
        look, None on the first), RSS (MiB), how many processes."""
        from argus.stack.services import SERVICES

        rows = []
        with self._lock:
            for svc in SERVICES:
                found = self.stack.find(svc)
                if found.root is None:
                    self._last.pop(svc.name, None)
                    continue
                usage = tree_usage(found.root.pid)
                if usage is None:
                    continue
                cpu_s, rss_mb = usage
                now = time.monotonic()
                last = self._last.get(svc.name)
                share = None
                if last and last[0] == found.root.pid and now > last[2]:
                    share = round(max(0.0, cpu_s - last[1]) / (now - last[2]) * 100, 1)
                self._last[svc.name] = (found.root.pid, cpu_s, now)
                rows.append({"service": svc.name, "group": svc.group, "pid": found.root.pid, "cpu_pct": share,
                             "rss_mb": round(rss_mb, 1), "processes": len(found.processes)})
        return rows
