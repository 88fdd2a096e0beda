"""What every detector backend produces and the contract it implements."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np


@dataclass(frozen=True)
class Detection:
    """One object in one frame.

    ``box`` is ``(x1, y1, x2, y2)`` normalised to [0, 1] in the *original* frame's
    width and height (not the model's input), clipped to the frame.
    """

    class_id: int
    class_name: str
    score: float
    box: tuple[float, float, float, float]

    def to_dict(self) -> dict:
        return asdict(self)


class DetectorError(RuntimeError):
    """A model cannot be loaded or run; the message names the model and the problem."""


class Backend(Protocol):
    """A loaded model. All three steps work on whole batches.

    ``preprocess`` takes RGB uint8 frames (H×W×3, any size; the Detector has already
    normalised grayscale/RGBA and rejected non-images) and returns the model's input
    tensor plus whatever ``postprocess`` needs (original sizes, letterbox offsets).
    ``infer`` is the bare model call, timed alone by ``argus bench detector``.
    ``postprocess`` turns raw outputs into per-frame detections after the score
    threshold and NMS.
    """

    name: str
    input_size: tuple[int, int]  # (height, width) of the model input

    def preprocess(self, frames: list[np.ndarray]) -> tuple[Any, Any]: ...

    def infer(self, batch: Any) -> Any: ...

    def postprocess(self, raw: Any, meta: Any, score_threshold: float, iou_threshold: float,
                    max_detections: int) -> list[list[Detection]]: ...
