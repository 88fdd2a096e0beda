"""What the stage times of ``argus:frames`` rows say: per-stage percentiles over a window, and
the same over time in buckets (the monitor's table and plots). Pure: rows in, numbers out.

A frames row carries ``t:<stage>`` for each stage a frame passed (ms since the epoch), in the
order of :data:`STAGES`; a stage's time is the difference between two consecutive stamps, and
the whole is ``captured -> written``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: the stage timestamps of a frames row (``t:<stage>``), in the order a frame passes them
STAGES = ("captured", "kafka", "read", "detected", "written")
#: the spans reported: each stage, then the whole
SPANS = (*zip(STAGES, STAGES[1:]), (STAGES[0], STAGES[-1]))
#: the whole span's name
TOTAL = f"{STAGES[0]}->{STAGES[-1]}"

StageRow = Mapping[str, int]  # stage -> ms since the epoch


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (linear between ranks, as numpy's default), None of nothing."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return round(ordered[low] + (ordered[high] - ordered[low]) * (rank - low), 1)


def spent(rows: Sequence[StageRow], start: str, end: str) -> list[int]:
    """ms from ``start`` to ``end`` of each row that has both stamps."""
    return [r[end] - r[start] for r in rows if start in r and end in r]


def stage_summary(rows: Sequence[StageRow], since_ms: int, until_ms: int) -> dict[str, Any]:
    """Frames in the window, frames/s over it, and p50 / p99 (ms) of each span (None where no
    row has both stamps)."""
    window_s = max(1e-3, (until_ms - since_ms) / 1000)
    stages = {}
    for a, b in SPANS:
        times = spent(rows, a, b)
        stages[f"{a}->{b}"] = {"p50": percentile(times, 50), "p99": percentile(times, 99)}
    return {"frames": len(rows), "fps": round(len(rows) / window_s, 2), "stages": stages}


def series(rows_by_camera: Mapping[str, Sequence[StageRow]], since_ms: int, until_ms: int,
           buckets: int = 30) -> dict[str, Any]:
    """The window cut into ``buckets`` equal spans of capture time: frames/s of each camera and
    of all, and p50 / p99 of the whole latency over every camera's frames, per bucket (None in
    a bucket without frames)."""
    step = max(1, (until_ms - since_ms) // buckets)
    per_camera: dict[str, list[int]] = {}
    totals: list[list[int]] = [[] for _ in range(buckets)]
    for camera, rows in rows_by_camera.items():
        counts = [0] * buckets
        for row in rows:
            at = row.get(STAGES[0])
            if at is None or not since_ms <= at <= until_ms:
                continue
            i = min(buckets - 1, (at - since_ms) // step)
            counts[i] += 1
            if STAGES[-1] in row:
                totals[i].append(row[STAGES[-1]] - at)
        per_camera[camera] = counts
    seconds = step / 1000
    return {"start_ms": [since_ms + i * step for i in range(buckets)], "step_ms": step,
            "fps": {cam: [round(n / seconds, 3) for n in counts] for cam, counts in per_camera.items()},
            "total_fps": [round(sum(c[i] for c in per_camera.values()) / seconds, 3) for i in range(buckets)],
            "p50_ms": [percentile(t, 50) for t in totals], "p99_ms": [percentile(t, 99) for t in totals]}
