"""When to restart a dead streaming job: exponential backoff, and a cap per time window."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass


class TooManyRestarts(RuntimeError):
    """The job keeps dying: restarting it again would only hide the problem."""


@dataclass(frozen=True)
class RestartPolicy:
    """The first restart in a window is immediate, the next ones wait ``base_s``, then twice as
    long each time, up to ``max_delay_s``; more than ``max_restarts`` within ``window_s`` fails.

    :param base_s: wait before the second restart of a window.
    :param factor: growth of the wait per further restart.
    :param max_delay_s: cap of the wait.
    :param max_restarts: restarts allowed within ``window_s``.
    :param window_s: the sliding window restarts are counted in.
    """

    base_s: float = 10.0
    factor: float = 2.0
    max_delay_s: float = 300.0
    max_restarts: int = 5
    window_s: float = 3600.0

    def recent(self, restarts_ms: Sequence[int], now_ms: int) -> list[int]:
        """The restarts (ms since the epoch) still inside the window."""
        return [t for t in restarts_ms if now_ms - t < self.window_s * 1000]

    def delay_s(self, restarts_ms: Sequence[int], now_ms: int) -> float:
        """Seconds to wait before the next restart; raises :class:`TooManyRestarts`."""
        n = len(self.recent(restarts_ms, now_ms))
        if n >= self.max_restarts:
            raise TooManyRestarts(f"{n} restarts within {self.window_s:.0f}s (limit {self.max_restarts})")
        if n == 0:
            return 0.0
        return min(self.max_delay_s, self.base_s * self.factor ** (n - 1))

    def to_dict(self) -> dict:
        return asdict(self)
