"""Decoded frames as the detectors take them: RGB uint8, H×W×3."""

from __future__ import annotations

import numpy as np

from argus.detect.types import DetectorError

#: Larger frames are refused rather than risking the executor's memory (16K × 16K).
MAX_SIDE = 16384


class InvalidFrameError(DetectorError, ValueError):
    """A frame that is not a usable image; ``index`` is its position in the batch."""

    def __init__(self, index: int, reason: str):
        super().__init__(f"frame {index}: {reason}")
        self.index, self.reason = index, reason


def as_rgb(frame: object, index: int = 0) -> np.ndarray:
    """``frame`` as a contiguous RGB uint8 array: grayscale is replicated, alpha dropped."""
    if isinstance(frame, (bytes, bytearray, memoryview)):
        raise InvalidFrameError(index, "got encoded bytes, not a decoded image (decode the JPEG first)")
    if not isinstance(frame, np.ndarray):
        raise InvalidFrameError(index, f"expected a numpy image array, got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise InvalidFrameError(index, f"expected uint8 pixels, got {frame.dtype}")
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    if frame.ndim == 2:
        frame = np.repeat(frame[:, :, None], 3, axis=2)
    elif frame.ndim == 3 and frame.shape[2] == 4:
        frame = frame[:, :, :3]
    elif frame.ndim != 3 or frame.shape[2] != 3:
        raise InvalidFrameError(index, f"expected H×W, H×W×3 or H×W×4, got shape {frame.shape}")
    height, width = frame.shape[:2]
    if height == 0 or width == 0:
        raise InvalidFrameError(index, f"empty image ({height}×{width})")
    if max(height, width) > MAX_SIDE:
        raise InvalidFrameError(index, f"{width}×{height} is larger than {MAX_SIDE} pixels on a side")
    return np.ascontiguousarray(frame)
