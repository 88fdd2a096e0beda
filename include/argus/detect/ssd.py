"""SSD models exported by the TF Object Detection API as frozen graphs (``ssdlite-person``).

The graph does its own resizing, box decoding and NMS; it is imported once into a
``wrap_function`` so that TensorFlow 2 calls it without a Session.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from argus.detect.preprocess import resize_batch
from argus.detect.types import Detection, DetectorError


def load_frozen_graph(path: Path, inputs: list[str], outputs: list[str]):
    """A callable concrete function of a frozen GraphDef, pruned to ``inputs`` -> ``outputs``."""
    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(Path(path).read_bytes())
    except OSError as exc:
        raise DetectorError(f"cannot read frozen graph {path}: {exc}") from exc
    except Exception as exc:  # protobuf DecodeError
        raise DetectorError(f"{path} is not a valid frozen TensorFlow graph: {exc}") from exc

    def _import():
        tf.compat.v1.import_graph_def(graph_def, name="")

    wrapped = tf.compat.v1.wrap_function(_import, [])
    graph = wrapped.graph
    return wrapped.prune(feeds=[graph.get_tensor_by_name(n) for n in inputs],
                         fetches=[graph.get_tensor_by_name(n) for n in outputs])


class SsdBackend:
    """:param name: registry name; :param graph_path: the frozen graph (.pb)."""

    def __init__(self, name: str, graph_path: Path, classes: tuple[str, ...], input_size: tuple[int, int]):
        self.name, self.classes, self.input_size = name, classes, input_size
        self._fn = load_frozen_graph(
            graph_path, ["image_tensor:0"],
            ["detection_boxes:0", "detection_scores:0", "detection_classes:0", "num_detections:0"],
        )

    def preprocess(self, frames: list[np.ndarray]):
        # the graph resizes to 300×300 itself; feeding that size makes its resize a no-op
        batch = tf.cast(tf.round(resize_batch(frames, self.input_size, backend="tensorflow")), tf.uint8)
        return batch, None

    def infer(self, batch):
        return self._fn(batch)

    def postprocess(self, raw, meta, score_threshold: float, iou_threshold: float, max_detections: int):
        boxes, scores, classes, counts = (t.numpy() for t in raw)
        out = []
        for b in range(boxes.shape[0]):
            n = int(counts[b])
            keep = np.flatnonzero(scores[b, :n] >= score_threshold)[:max_detections]
            frame = []
            for i in keep:
                ymin, xmin, ymax, xmax = np.clip(boxes[b, i], 0.0, 1.0)
                cid = int(classes[b, i])
                name = self.classes[cid] if cid < len(self.classes) else str(cid)
                frame.append(Detection(cid, name, float(scores[b, i]), (float(xmin), float(ymin), float(xmax), float(ymax))))
            out.append(frame)
        return out
