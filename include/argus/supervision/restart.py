"""When to restart a dead streaming job, and when to stop and page a person instead.

A crash loop and a run of independent faults look alike if only restarts are counted: five
driver kills in an hour are five faults, not a loop. So the supervisor gives up only on

- **the same failure repeating**: ``same_failure_limit`` restarts in a row for the same
  failure (the same reason, the same failing micro-batch and error), or
- **a sustained rate**: more than ``max_restarts`` within ``window_s``;

and otherwise keeps restarting with capped exponential backoff. The history is forgotten
after a healthy period (a driver that ran ``healthy_reset_s`` before it died starts the
backoff afresh) and when the stack starts anew.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict
from typing import Annotated, Any

from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass as pydantic_dataclass


class TooManyRestarts(RuntimeError):
    """The job keeps dying: restarting it again would only hide the problem."""


@pydantic_dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class RestartPolicy:
    """The first restart is immediate, the next ones wait ``base_s``, then ``factor`` times
    longer each time, up to ``max_delay_s``.

    :param base_s: wait before the second restart in a row.
    :param factor: growth of the wait per further restart.
    :param max_delay_s: cap of the wait.
    :param max_restarts: restarts allowed within ``window_s`` (a sustained rate; give up beyond).
    :param window_s: the sliding window restarts are counted in.
    :param same_failure_limit: restarts in a row for the same failure before giving up.
    :param healthy_reset_s: a driver that ran this long before it died was healthy: the
        restarts before it no longer count (backoff and limits start afresh).
    :param repage_s: once given up, page again this often until a person acts.
    """

    base_s: Annotated[float, Field(ge=0, description="wait before the second restart in a row (s)")] = 10.0
    factor: Annotated[float, Field(ge=1, description="growth of the wait per further restart")] = 2.0
    max_delay_s: Annotated[float, Field(ge=0, description="cap of the wait (s)")] = 300.0
    max_restarts: Annotated[int, Field(ge=1, description="restarts within window_s before giving up (a sustained rate)")] = 30
    window_s: Annotated[float, Field(gt=0, description="the sliding window restarts are counted in (s)")] = 3600.0
    same_failure_limit: Annotated[int, Field(
        ge=1, description="restarts in a row for the same recorded failure before giving up")] = 3
    healthy_reset_s: Annotated[float, Field(
        gt=0, description="a driver that ran this long was healthy: the history starts afresh")] = 600.0
    repage_s: Annotated[float, Field(ge=60, description="once given up, page again this often (s)")] = 1800.0

    def history(self, restarts: Sequence[int | dict[str, Any]], now_ms: int,
                healthy_s: float | None = None) -> list[dict[str, Any]]:
        """The restarts that still count: within the window, and none before a healthy period
        (entries ``{"ms", "failure"}``; bare ms from older supervisors are read too).

        :param healthy_s: how long the last driver completed micro-batches before it died
            (None: unknown, taken as the time since the last restart).
        """
        entries = [r if isinstance(r, dict) else {"ms": int(r), "failure": None} for r in restarts]
        entries = [e for e in entries if now_ms - e["ms"] < self.window_s * 1000]
        ran_s = healthy_s if healthy_s is not None else (now_ms - entries[-1]["ms"]) / 1000 if entries else 0
        if entries and ran_s >= self.healthy_reset_s:
            return []
        return entries

    def recent(self, restarts: Sequence[int | dict[str, Any]], now_ms: int) -> list[dict[str, Any]]:
        return self.history(restarts, now_ms)

    def delay_s(self, restarts: Sequence[int | dict[str, Any]], now_ms: int, failure: str | None = None) -> float:
        """Seconds to wait before the next restart for ``failure``; raises :class:`TooManyRestarts`."""
        history = self.history(restarts, now_ms)
        if len(history) >= self.max_restarts:
            raise TooManyRestarts(f"{len(history)} restarts within {self.window_s:.0f}s (limit {self.max_restarts})")
        if failure is not None:
            same = 1
            for entry in reversed(history):
                if entry.get("failure") != failure:
                    break
                same += 1
            if same >= self.same_failure_limit:
                raise TooManyRestarts(f"the same failure {same} times in a row (limit {self.same_failure_limit}): "
                                      f"{failure}")
        if not history:
            return 0.0
        return min(self.max_delay_s, self.base_s * self.factor ** (len(history) - 1))

    def to_dict(self) -> dict:
        return asdict(self)


def healthy_seconds(status) -> float:
    """How long the lease holder completed micro-batches: from its lease to its last batch."""
    if status.lease is None or not status.batch_ms or status.batch_ms <= status.lease.acquired_ms:
        return 0.0
    return (status.batch_ms - status.lease.acquired_ms) / 1000


def recorded_failure(status) -> str | None:
    """What makes two failures the same one, from the status row (a
    :class:`~argus.supervision.status.StreamStatus`): the failing micro-batch and its error,
    else the error the driver ended with. None for a driver that recorded nothing (killed,
    out of memory, its host gone): such faults are independent of each other and count only
    towards the rate. Numbers that change from one run to the next are taken out."""
    failing = status.failing or {}
    if failing.get("attempts"):  # the same batch (same offsets) with the same error
        return f"micro-batch {failing.get('batch')}: {_steady(str(failing.get('error')))}"
    if status.lease is not None and status.lease.released and (status.state or {}).get("state") == "failed":
        return f"driver failed: {_steady(str((status.state or {}).get('message') or ''))}"
    return None


def _steady(text: str) -> str:
    return re.sub(r"\b\d+(\.\d+)?\b", "#", text)[:500]
