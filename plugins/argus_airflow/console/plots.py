"""The monitor's small plots (matplotlib, drawn on the server as PNG): throughput and latency
over the window, from :func:`argus.store.latency.series`."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Mapping
from typing import Any

#: cameras drawn one line each in the throughput plot; the rest are in the total only
MAX_CAMERA_LINES = 8
_SIZE_IN = (6.4, 2.4)


def _figure(title: str, ylabel: str):
    import matplotlib

    matplotlib.use("Agg")  # no display on the api-server
    from matplotlib.figure import Figure  # a Figure of its own: pyplot's global state is not thread-safe

    fig = Figure(figsize=_SIZE_IN, dpi=100, layout="constrained")
    ax = fig.subplots()
    ax.set_title(title, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    return fig, ax


def _times(series: Mapping[str, Any]) -> list[dt.datetime]:
    half = series["step_ms"] / 2
    return [dt.datetime.fromtimestamp((t + half) / 1000, dt.UTC) for t in series["start_ms"]]


def _png(fig) -> bytes:
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()


def throughput_png(series: Mapping[str, Any]) -> bytes:
    """Frames/s of all cameras and of the busiest few, per bucket."""
    fig, ax = _figure("frames stored per second (by capture time, UTC)", "frames/s")
    times = _times(series)
    ax.plot(times, series["total_fps"], color="black", linewidth=1.6, label="all cameras")
    busiest = sorted(series["fps"].items(), key=lambda kv: -sum(kv[1]))[:MAX_CAMERA_LINES]
    for camera, fps in busiest:
        ax.plot(times, fps, linewidth=0.9, label=camera)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=6, ncol=3, loc="upper left")
    return _png(fig)


def latency_png(series: Mapping[str, Any]) -> bytes:
    """p50 and p99 of capture -> written over every camera's frames, per bucket."""
    fig, ax = _figure("latency, capture -> written (all cameras)", "ms")
    times = _times(series)
    for name, style in (("p50_ms", "-"), ("p99_ms", "--")):
        points = [(t, v) for t, v in zip(times, series[name]) if v is not None]
        if points:
            ax.plot([t for t, _ in points], [v for _, v in points], style, marker=".", linewidth=1, label=name[:3])
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=6, loc="upper left")
    return _png(fig)
