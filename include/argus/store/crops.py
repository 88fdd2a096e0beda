"""The images HBase keeps besides the numbers: a small crop JPEG per detection (``c:jpg``,
what the console's search shows) and, at most once a second per camera, the newest frame
as a small JPEG (``argus:live``, the live wall). Both are made from the decoded frame the
detector saw, on the writer's thread, so that they overlap the next batch's detection; no
frame is decoded twice.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import numpy as np
from PIL import Image

from argus.media.codec import encode_jpeg

#: crops are scaled down to at most this many pixels a side (0: no crops)
DEFAULT_CROP_PX = 128
#: the live wall's frames are scaled down to at most this width (0: no live frames)
DEFAULT_LIVE_VIEW_PX = 640
#: one live frame per camera per this many seconds at most
LIVE_VIEW_INTERVAL_S = 1.0
CROP_QUALITY = 80
LIVE_VIEW_QUALITY = 75


def downscale(rgb: np.ndarray, max_width: int, max_height: int | None = None) -> np.ndarray:
    """``rgb`` scaled down (never up) to fit ``max_width`` x ``max_height`` (default: no
    height limit), keeping its aspect."""
    height, width = rgb.shape[:2]
    scale = min(1.0, max_width / width, (max_height or height) / height)
    if scale >= 1.0:
        return rgb
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR))


def crop_jpegs(rgb: np.ndarray, boxes: Sequence[Sequence[float]], max_px: int = DEFAULT_CROP_PX) -> list[bytes]:
    """A JPEG of each box (``x1, y1, x2, y2`` normalised), at most ``max_px`` a side."""
    height, width = rgb.shape[:2]
    out = []
    for x1, y1, x2, y2 in boxes:
        left, top = min(width - 1, max(0, int(x1 * width))), min(height - 1, max(0, int(y1 * height)))
        right, bottom = max(left + 1, min(width, round(x2 * width))), max(top + 1, min(height, round(y2 * height)))
        out.append(encode_jpeg(downscale(rgb[top:bottom, left:right], max_px, max_px), CROP_QUALITY))
    return out


class LiveViewThrottle:
    """Says which frames become a camera's live frame: the newest of a batch, at most one per
    camera per ``interval_s`` in this process (thread-safe: one per executor process)."""

    def __init__(self, interval_s: float = LIVE_VIEW_INTERVAL_S, clock=time.monotonic):
        self.interval_s, self.clock = interval_s, clock
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def take(self, camera_id: str) -> bool:
        now = self.clock()
        with self._lock:
            if now - self._last.get(camera_id, -1e18) < self.interval_s:
                return False
            self._last[camera_id] = now
            return True


class ImageMaker:
    """Fills the crops and live frames of a batch of results from their ``image``, then lets
    the images go (the writer's ``prepare`` step).

    :param crop_px: crop size (0: no crops).
    :param live_view_px: width of the live frames (0: none; the archive makes none).
    """

    def __init__(self, crop_px: int = DEFAULT_CROP_PX, live_view_px: int = 0, throttle: LiveViewThrottle | None = None):
        self.crop_px, self.live_view_px = crop_px, live_view_px
        self.throttle = throttle or LiveViewThrottle()

    def __call__(self, results) -> None:
        newest = {}
        for r in results:
            if r.image is not None and (r.camera_id not in newest or r.capture_ts_ms > newest[r.camera_id].capture_ts_ms):
                newest[r.camera_id] = r
        for r in results:
            if r.image is None:
                continue
            if self.crop_px and r.detections:
                r.crops = crop_jpegs(r.image, [d.box for d in r.detections], self.crop_px)
            if self.live_view_px and newest.get(r.camera_id) is r and self.throttle.take(r.camera_id):
                r.thumbnail = encode_jpeg(downscale(r.image, self.live_view_px), LIVE_VIEW_QUALITY)
            r.image = None


__all__ = ["DEFAULT_CROP_PX", "DEFAULT_LIVE_VIEW_PX", "ImageMaker", "LiveViewThrottle", "crop_jpegs", "downscale"]
