"""YOLOv2 / YOLOv2-tiny from Darknet cfg + weights files (bring your own weights).

The network runs as a Keras 3 model built by :mod:`argus.detect.darknet`; frames are
stretched to the network's input size (bilinear, no letterbox: YOLOv2's own pipeline and
OpenCV's ``blobFromImage``), scaled to [0, 1]; the region layer is decoded with its anchors
and followed by class-aware NMS.

The canonical cfgs ship in ``argus/detect/cfg`` (``builtin:yolov2.cfg``,
``builtin:yolov2-tiny.cfg``); :func:`cfg_text` derives variants (input size, classes).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from argus.detect.darknet import DarknetError, nms, parse_cfg, region_decode
from argus.detect.types import Detection, DetectorError

CFG_DIR = Path(__file__).with_name("cfg")
BUILTIN_CFGS = ("yolov2", "yolov2-tiny")


def builtin_cfg(name: str) -> Path:
    """The path of a shipped cfg, ``yolov2`` or ``yolov2-tiny`` (``.cfg`` optional)."""
    stem = name.removesuffix(".cfg")
    if stem not in BUILTIN_CFGS:
        raise DetectorError(f"no built-in Darknet cfg {name!r} (built-in: {', '.join(BUILTIN_CFGS)})")
    return CFG_DIR / f"{stem}.cfg"


def cfg_text(name: str, *, width: int | None = None, height: int | None = None, classes: int | None = None,
             thresh: float | None = None) -> str:
    """A built-in cfg's text with ``[net]`` width/height, ``[region]`` classes/thresh
    replaced (changing ``classes`` also sets the last convolution's filters to
    ``num · (5 + classes)``). Sizes must be multiples of 32 for YOLOv2's 5 stride-2 pools."""
    path = builtin_cfg(name)
    text = path.read_text()
    for value, what in ((width, "width"), (height, "height")):
        if value is not None and (value <= 0 or value % 32):
            raise DetectorError(f"YOLOv2 input {what} must be a positive multiple of 32, got {value}")
    num = parse_cfg(path, text).region.num
    lines = text.splitlines(keepends=True)
    sections = [(i, line.strip().lower()) for i, line in enumerate(lines) if line.strip().startswith("[")]
    region_at = next(i for i, s in sections if s == "[region]")
    last_conv_at = max(i for i, s in sections if s == "[convolutional]" and i < region_at)
    net_at = sections[0][0]
    net_end = sections[1][0]

    def setting(start: int, end: int, key: str, value) -> None:
        pattern = re.compile(rf"^\s*{key}\s*=.*$")
        for i in range(start, end):
            if pattern.match(lines[i]):
                lines[i] = f"{key}={value}\n"
                return
        lines.insert(start + 1, f"{key}={value}\n")

    # from the bottom up, so that insertions do not move the sections still to edit
    if classes is not None:
        setting(region_at, len(lines), "classes", classes)
    if thresh is not None:
        setting(region_at, len(lines), "thresh", thresh)
    if classes is not None:
        conv_end = next(i for i, _ in sections if i > last_conv_at)
        setting(last_conv_at, conv_end, "filters", num * (5 + classes))
    if height is not None:
        setting(net_at, net_end, "height", height)
    if width is not None:
        setting(net_at, net_end, "width", width)
    return "".join(lines)


def write_cfg(name: str, dest: str | Path, **overrides) -> Path:
    """Write :func:`cfg_text` of a built-in cfg to ``dest``; returns ``dest``."""
    dest = Path(dest)
    dest.write_text(cfg_text(name, **overrides))
    return dest


class YoloBackend:
    """A Darknet YOLOv2 model.

    :param name: registry name; :param cfg_path: / :param weights_path: Darknet files;
    :param class_names: one per region class; :param threads: unused here: the framework's
        thread pools are set process-wide by :func:`argus.detect.devices.configure_devices`.

    The model is Keras 3, so it runs on the backend Keras is set to (``KERAS_BACKEND``, else
    ``keras.json``): TensorFlow by default, JAX or PyTorch on GPU machines without TensorFlow.
    """

    def __init__(self, name: str, cfg_path: Path, weights_path: Path, class_names: list[str],
                 threads: int | None = None):
        from argus.detect.darknet import build_model, load_weights

        self.name, self.class_names, self.threads = name, list(class_names), threads
        try:
            network = parse_cfg(cfg_path)
            region = network.region
            if region is None:
                raise DarknetError(f"{cfg_path} has no [region] layer: it is not a YOLOv2 detector")
            if network.input_shape[2] != 3:
                raise DarknetError(f"{cfg_path} takes {network.input_shape[2]} channels; frames are RGB (3)")
            if region.classes != len(self.class_names):
                raise DarknetError(f"{cfg_path} detects {region.classes} classes but {len(self.class_names)} "
                                   f"class names were given")
            if not Path(weights_path).is_file():
                raise DarknetError(f"Darknet weights file {weights_path} does not exist")
            model = build_model(network)
            load_weights(model, network, weights_path)
        except DarknetError as exc:
            raise DarknetError(f"model {name!r}: {exc}") from exc
        self.network, self.region, self.model = network, region, model
        self.input_size = (network.height, network.width)
        import keras

        self.framework = keras.config.backend()  # what Keras runs the model in, read once
        if self.framework == "tensorflow":
            import tensorflow as tf

            self._fn = tf.function(
                lambda x: model(x, training=False),
                input_signature=[tf.TensorSpec([None, network.height, network.width, 3], tf.float32)],
                reduce_retracing=True,
            )
        else:  # Keras compiles its own predict step for the backend (XLA on JAX)
            self._fn = model.predict_on_batch

    def preprocess(self, frames: list[np.ndarray]):
        from argus.detect.preprocess import resize_batch

        batch = resize_batch(frames, self.input_size, backend=self.framework) / 255.0
        sizes = np.asarray([frame.shape[:2] for frame in frames], np.int64).reshape(-1, 2)
        return batch, sizes

    def infer(self, batch):
        return self._fn(batch)

    def decode(self, raw):
        """The region layer's decoded boxes and scores (:class:`darknet.RegionOutput`)."""
        return region_decode(np.asarray(raw), self.region.anchors, self.region.classes, self.region.coords)

    def postprocess(self, raw, meta, score_threshold: float, iou_threshold: float,
                    max_detections: int) -> list[list[Detection]]:
        decoded = self.decode(raw)
        boxes, scores = decoded.xyxy, decoded.scores
        out: list[list[Detection]] = []
        for b in range(boxes.shape[0]):
            box_idx, cls_idx, kept = nms(boxes[b], scores[b], score_threshold, iou_threshold, max_detections)
            # stretch resize: input-normalised coordinates are frame-normalised coordinates
            clipped = np.clip(np.nan_to_num(boxes[b, box_idx], nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
            out.append([
                Detection(int(c), self.class_names[int(c)], float(s), tuple(float(v) for v in box))
                for c, s, box in zip(cls_idx, kept, clipped)
            ])
        return out
