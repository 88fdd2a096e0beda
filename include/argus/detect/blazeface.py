"""BlazeFace (MediaPipe face detection) from its TFLite file: SSD anchors, box decoding
and NMS are ours, following MediaPipe's ssd_anchors and tensors_to_detections calculators.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import tensorflow as tf

from argus.detect.preprocess import letterbox_batch
from argus.detect.types import Detection, DetectorError

RAW_SCORE_LIMIT = 80.0  # MediaPipe clips logits before the sigmoid


def ssd_anchors(input_size: tuple[int, int], strides: list[int], interpolated_scale_aspect_ratio: float) -> np.ndarray:
    """Anchor centres (x, y), normalised, in the order the model's outputs use."""
    height, width = input_size
    anchors: list[tuple[float, float]] = []
    layer = 0
    while layer < len(strides):
        repeats, last = 0, layer
        while last < len(strides) and strides[last] == strides[layer]:
            repeats += 2 if interpolated_scale_aspect_ratio == 1.0 else 1
            last += 1
        fh, fw = height // strides[layer], width // strides[layer]
        for y in range(fh):
            for x in range(fw):
                anchors.extend([((x + 0.5) / fw, (y + 0.5) / fh)] * repeats)
        layer = last
    return np.asarray(anchors, np.float32)


class BlazeFaceBackend:
    """:param model_path: the .tflite file; :param anchors: ``{strides, interpolated_scale_aspect_ratio}``."""

    def __init__(self, name: str, model_path: Path, classes: tuple[str, ...], input_size: tuple[int, int],
                 anchors: dict, threads: int | None = None):
        self.name, self.classes, self.input_size = name, classes, input_size
        try:
            with warnings.catch_warnings():  # "deprecated, use ai_edge_litert": still the TF 2.21 API
                warnings.simplefilter("ignore", UserWarning)
                self._interp = tf.lite.Interpreter(model_path=str(model_path), num_threads=threads)
            self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise DetectorError(f"{name}: cannot load TFLite model {model_path}: {exc}") from exc
        self._input = self._interp.get_input_details()[0]["index"]
        outputs = sorted(self._interp.get_output_details(), key=lambda d: d["shape"][-1], reverse=True)
        self._boxes, self._scores = outputs[0]["index"], outputs[1]["index"]
        self.anchors = ssd_anchors(input_size, anchors["strides"], anchors["interpolated_scale_aspect_ratio"])

    def preprocess(self, frames: list[np.ndarray]):
        batch, geometry = letterbox_batch(frames, self.input_size)
        return (batch / 127.5 - 1.0).numpy().astype(np.float32), geometry  # [-1, 1]

    def infer(self, batch: np.ndarray):
        # The graph reshapes with a fixed batch of 1 (a resized input yields [1, N*896, 16]),
        # so frames go through one at a time; at 1-3 ms each, the loop costs little.
        boxes, scores = [], []
        for frame in batch:
            self._interp.set_tensor(self._input, frame[None])
            self._interp.invoke()
            boxes.append(self._interp.get_tensor(self._boxes)[0])
            scores.append(self._interp.get_tensor(self._scores)[0])
        return np.stack(boxes), np.stack(scores)

    def postprocess(self, raw, geometry, score_threshold: float, iou_threshold: float, max_detections: int):
        raw_boxes, raw_scores = raw
        n = raw_boxes.shape[0]
        scale = float(self.input_size[0])
        # centre x, y and size w, h, relative to the anchor, in input pixels
        xy = raw_boxes[..., 0:2] / scale + self.anchors[None]
        wh = raw_boxes[..., 2:4] / scale
        boxes_yx = np.concatenate([xy[..., ::-1] - wh[..., ::-1] / 2, xy[..., ::-1] + wh[..., ::-1] / 2], axis=-1)
        scores = 1.0 / (1.0 + np.exp(-np.clip(raw_scores[..., 0], -RAW_SCORE_LIMIT, RAW_SCORE_LIMIT)))
        nms_boxes, nms_scores, _, valid = tf.image.combined_non_max_suppression(
            boxes_yx[:, :, None, :], scores[..., None], max_output_size_per_class=max_detections,
            max_total_size=max_detections, iou_threshold=iou_threshold, score_threshold=score_threshold,
            clip_boxes=False)
        nms_boxes, nms_scores, valid = nms_boxes.numpy(), nms_scores.numpy(), valid.numpy()
        out = []
        for b in range(n):
            top, left, sh, sw = geometry[b]
            frame = []
            for i in range(int(valid[b])):
                y1, x1, y2, x2 = nms_boxes[b, i]
                # undo the letterbox: input fractions -> frame fractions
                box = np.clip([(x1 - left) / sw, (y1 - top) / sh, (x2 - left) / sw, (y2 - top) / sh], 0.0, 1.0)
                frame.append(Detection(0, self.classes[0], float(nms_scores[b, i]), tuple(float(v) for v in box)))
            out.append(frame)
        return out
