"""The ``centernet-coco`` backend: CenterNet with a MobileNetV3 backbone, 80 COCO classes.

Weights: the TF.js graph model shipped in npm ``@vladmandic/human@3.3.6`` (MIT; upstream
https://github.com/610265158/mobilenetv3_centernet), converted once by :mod:`argus.detect.tfjs`.

The graph's own decoding (``tower_0/detections``) only runs at batch 1, so the SavedModel
stops at the two heads and the CenterNet decode is done here, batched:

- ``tower_0/keypoints`` [N, 128, 128, 80]: per-class centre heat map, already sigmoided;
- ``tower_0/wh`` [N, 128, 128, 4]: distances (left, top, right, bottom) in pixels of the
  512×512 input from the cell's corner ``(4·x, 4·y)`` to the box edges. Checked against the
  graph's own ``detections``: x1 = 4x − l, y1 = 4y − t, x2 = 4x + r, y2 = 4y + b.

Decoding is exact with respect to the original (a peak is a cell that equals the 3×3 max of
its class; the 100 best peaks are kept), but avoids the 3×3 max-pool over the whole
[N,128,128,80] map, which costs about as much as half the network on 2 CPU cores: for a
score threshold ≥ ``SPARSE_MIN_THRESHOLD`` only cells whose best class reaches the threshold
are examined (peaks below the threshold are dropped anyway).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from argus.detect.registry import COCO_CLASSES
from argus.detect.types import Detection, DetectorError

log = logging.getLogger(__name__)

NAME = "centernet-coco"
NPM_SPEC = "@vladmandic/human@3.3.6"
#: Package members -> sha256, recorded from the 3.3.6 tarball.
FILES = {
    "package/models/centernet.json": "bfb942eaacc5becf738d536663bc4580a0ae9e560722306e6d4dd7fe4a09de05",
    "package/models/centernet.bin": "1b635a15009071f506f9f2b3519b31c072c534888989f30d269ffd44734ef7ef",
    "package/LICENSE": "9a3442b79acaf4fbc7c2e07b7e2d8f84af9bb3871bf08a69d80304ab00640e9a",
}
INPUT_NAME = "tower_0/images"
HEAT, GEOMETRY = "tower_0/keypoints", "tower_0/wh"
INPUT_SIZE = (512, 512)
#: Peaks kept per frame before NMS, as in the original graph (TopKV2 k=100).
TOP_K = 100
#: Below this score threshold the decode falls back to the dense 3×3 max-pool path.
SPARSE_MIN_THRESHOLD = 0.05



# --------------------------------------------------------------------------- files

def ensure_centernet(cache_dir: Path) -> Path:
    """Fetch (npm) and convert the model once; return the SavedModel directory.

    Idempotent: a stamp recording the source checksums and the converter version marks a
    finished conversion, and a file lock keeps two processes from converting at once.
    """
    from argus.detect import tfjs
    from argus.detect.fetch import npm_pack_files

    home = Path(cache_dir) / NAME
    model_dir, stamp_file = home / "saved_model", home / "saved_model.stamp"
    stamp = {"files": FILES, "converter": tfjs.CONVERTER_VERSION, "outputs": [HEAT, GEOMETRY]}
    if _stamp_ok(stamp_file, stamp, model_dir):
        return model_dir
    home.mkdir(parents=True, exist_ok=True)
    with (home / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _stamp_ok(stamp_file, stamp, model_dir):  # another process finished meanwhile
            return model_dir
        files = npm_pack_files(NPM_SPEC, FILES, home / "tfjs")
        stamp_file.unlink(missing_ok=True)
        tfjs.convert_graph_model(files["package/models/centernet.json"], model_dir,
                                 [HEAT, GEOMETRY], INPUT_NAME, batch=True)
        # The MIT licence travels with the converted weights.
        shutil.copyfile(files["package/LICENSE"], model_dir / "LICENSE")
        (model_dir / "NOTICE").write_text(
            f"Converted from {NPM_SPEC} models/centernet.json (MIT, Vladimir Mandic);\n"
            "upstream model: https://github.com/610265158/mobilenetv3_centernet\n")
        stamp_file.write_text(json.dumps(stamp, indent=2, sort_keys=True))
    return model_dir


def _stamp_ok(stamp_file: Path, stamp: dict, model_dir: Path) -> bool:
    try:
        return (json.loads(stamp_file.read_text()) == json.loads(json.dumps(stamp))
                and (model_dir / "saved_model.pb").is_file())
    except (OSError, ValueError):
        return False


# --------------------------------------------------------------------------- backend

class CenterNetBackend:
    """CenterNet-MobileNetV3 on COCO, batched (see the module docstring for the decode)."""

    name = NAME
    input_size = INPUT_SIZE

    def __init__(self, model_dir: Path, threads: int | None = None):
        import tensorflow as tf

        if threads:
            try:  # only possible before TensorFlow's runtime starts; otherwise keep its pools
                tf.config.threading.set_intra_op_parallelism_threads(threads)
                tf.config.threading.set_inter_op_parallelism_threads(threads)
            except RuntimeError:
                log.debug("TensorFlow already initialised; thread settings left as they are")
        model_dir = Path(model_dir)
        if not (model_dir / "saved_model.pb").is_file():
            raise DetectorError(f"{NAME}: no converted model at {model_dir}; run `argus setup` "
                                f"or argus.detect.centernet.ensure_centernet()")
        try:
            self._model = tf.saved_model.load(str(model_dir))
        except Exception as exc:  # noqa: BLE001 - any load failure is a broken cache
            raise DetectorError(f"{NAME}: cannot load {model_dir}: {exc}") from exc
        # float32 input: a uint8 signature casting inside was measured 10 ms per batch of 8
        # slower than numpy's conversion (the cast does not fuse into the restored graph)
        self._serve = self._model.serve
        self._classes = COCO_CLASSES
        self._decode_sparse, self._decode_dense = _decoders(tf, INPUT_SIZE, TOP_K)
        self._buffers: dict[tuple[int, ...], np.ndarray] = {}
        self._scratch: dict[tuple[int, ...], np.ndarray] = {}
        self._buffer_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=max(1, threads or os.cpu_count() or 1),
                                        thread_name_prefix="centernet-pre")
        self._resize = _resizer(tf, INPUT_SIZE)

    # -- preprocess
    def preprocess(self, frames: list[np.ndarray]) -> tuple[Any, list[tuple[int, int]]]:
        """Stretch-resize each RGB uint8 frame to 512×512 (bilinear) into a float32 batch of
        raw 0..255 values (the model was trained on unnormalised pixels)."""
        import tensorflow as tf

        height, width = INPUT_SIZE
        shape = (len(frames), height, width, 3)
        with self._buffer_lock:
            batch = self._batch_buffer(shape)
            scratch = self._scratch.get(shape)
            if scratch is None:
                scratch = self._scratch[shape] = np.empty(shape, np.uint8)

            def prepare(i: int) -> None:
                # resize in uint8 (OpenCV's fast path), then widen to float32; both release
                # the GIL, so frames are prepared on all cores while the model is idle
                frame = frames[i]
                if frame.shape[:2] == (height, width):
                    np.copyto(batch[i], frame)
                else:
                    self._resize(frame, scratch[i])
                    np.copyto(batch[i], scratch[i])

            list(self._pool.map(prepare, range(len(frames))))
        return _to_tensor(tf, batch), [f.shape[:2] for f in frames]

    def _batch_buffer(self, shape: tuple[int, ...]) -> np.ndarray:
        """A page-aligned float32 batch buffer (25 MB at batch 8), reused across calls rather
        than allocated per batch. It is reused only when no tensor made from it is alive
        (the DLPack capsule holds a reference to it)."""
        buf = self._buffers.get(shape)
        # references: the dict, ``buf`` and getrefcount's argument; more means a live tensor
        if buf is None or sys.getrefcount(buf) > 3:
            buf = self._buffers[shape] = _aligned_empty(shape)
        return buf

    # -- infer
    def infer(self, batch: Any) -> Any:
        """The bare model call: ``{keypoints: [N,128,128,80], wh: [N,128,128,4]}``."""
        if batch.shape[0] == 0:  # the graph's depthwise convolutions reject an empty batch
            import tensorflow as tf

            return {HEAT: tf.zeros([0, 128, 128, len(COCO_CLASSES)]), GEOMETRY: tf.zeros([0, 128, 128, 4])}
        return self._serve(batch)

    # -- postprocess
    def postprocess(self, raw: Any, meta: Any, score_threshold: float, iou_threshold: float,
                    max_detections: int) -> list[list[Detection]]:
        """Decode peaks, class-aware NMS, boxes normalised to the original frame.

        The stretch resize maps the 512×512 input's [0,1] coordinates onto the frame's own,
        so normalised boxes need no per-frame correction (``meta`` is kept for the contract).
        """
        import tensorflow as tf

        decode = self._decode_sparse if score_threshold >= SPARSE_MIN_THRESHOLD else self._decode_dense
        frame, boxes, scores, classes = decode(
            raw[HEAT], raw[GEOMETRY], tf.constant(score_threshold, tf.float32),
            tf.constant(iou_threshold, tf.float32), tf.constant(max(int(max_detections), 0), tf.int32))
        names = self._classes
        out: list[list[Detection]] = [[] for _ in range(int(raw[HEAT].shape[0]))]
        # In descending score order overall, hence within each frame too.
        for f, b, s, c in zip(frame.numpy().tolist(), boxes.numpy().tolist(), scores.numpy().tolist(),
                              classes.numpy().tolist()):
            out[f].append(Detection(c, names[c], s, tuple(b)))
        return out


def _aligned_empty(shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
    """An uninitialised array whose data starts on a page boundary, so TensorFlow can adopt
    it without a copy (its kernels require EIGEN_MAX_ALIGN_BYTES alignment)."""
    itemsize = np.dtype(dtype).itemsize
    size = int(np.prod(shape)) * itemsize
    raw = np.empty(size + 4096, np.uint8)
    start = -raw.ctypes.data % 4096
    return raw[start:start + size].view(dtype).reshape(shape)


def _to_tensor(tf, array: np.ndarray):
    """Zero-copy numpy -> tf.Tensor through DLPack (``convert_to_tensor`` copies: about 1 ms
    per 512×512 frame on these CPUs), falling back to a copy."""
    if array.ctypes.data % 4096 == 0 and array.flags.c_contiguous:
        try:
            return tf.experimental.dlpack.from_dlpack(array.__dlpack__())
        except Exception:  # noqa: BLE001 - any DLPack trouble: take the copying path
            pass
    return tf.convert_to_tensor(array)


def _resizer(tf, size: tuple[int, int]):
    """``(frame, out)``: resize a uint8 frame into ``out`` (uint8 [h, w, 3]) with OpenCV
    (several times faster than TF's resize on CPU), else TF. Both use half-pixel-centre
    bilinear interpolation."""
    height, width = size
    try:
        import cv2
    except ImportError:
        resize = tf.function(lambda x: tf.image.resize(x, size, method="bilinear"),
                             input_signature=[tf.TensorSpec([None, None, 3], tf.uint8)])

        def tf_resize(frame, out):
            out[...] = np.clip(np.round(resize(frame).numpy()), 0, 255)

        return tf_resize
    return lambda frame, out: cv2.resize(np.ascontiguousarray(frame), (width, height), dst=out,
                                         interpolation=cv2.INTER_LINEAR)


def _decoders(tf, input_size: tuple[int, int], top_k: int):
    """The two compiled decoders ``(heat, wh, score_thr, iou_thr, max_det) -> (frame [D],
    boxes [D, 4] as x1,y1,x2,y2 in [0,1], scores [D], classes [D])``, flat over the batch
    and in descending score order (so grouping by frame keeps each frame's order).

    Few, batch-wide ops on purpose: on 2 CPU cores each graph op costs some 10 µs whatever
    its size, so the decode is written without per-frame loops or repeated masking.
    """
    in_h, in_w = (float(v) for v in input_size)
    specs = [tf.TensorSpec([None, None, None, None], tf.float32),
             tf.TensorSpec([None, None, None, 4], tf.float32),
             tf.TensorSpec([], tf.float32), tf.TensorSpec([], tf.float32), tf.TensorSpec([], tf.int32)]

    def rank_in_frame(frame, n):
        """For entries in descending score order: how many of the same frame come first."""
        onehot = tf.one_hot(frame, n, dtype=tf.int32)
        return tf.reduce_sum(onehot * tf.cumsum(onehot, axis=0, exclusive=True), 1)

    def finish(heat, wh, peaks, score, iou_threshold, max_det):
        """Peaks ``[P, 4]`` (frame, y, x, class) in descending score order -> top_k per
        frame -> boxes -> class-aware NMS -> max_det per frame."""
        shape = tf.shape(heat)
        n, h, w = shape[0], shape[1], shape[2]
        kept = tf.where(rank_in_frame(peaks[:, 0], n) < top_k)[:, 0]  # the original keeps 100
        peaks, score = tf.gather(peaks, kept), tf.gather(score, kept)
        geo = tf.gather_nd(wh, peaks[:, :3])
        centre = tf.cast(peaks[:, 2:0:-1], tf.float32) * tf.stack([in_w / tf.cast(w, tf.float32),
                                                                    in_h / tf.cast(h, tf.float32)])
        size = tf.constant([in_w, in_h, in_w, in_h])
        boxes = tf.clip_by_value(tf.concat([centre - geo[:, :2], centre + geo[:, 2:]], 1) / size, 0.0, 1.0)
        # One NMS for the whole batch and all classes: shifting each box by 2·class along x
        # and 2·frame along y puts boxes of different classes or frames far apart (no
        # overlap), so a single greedy NMS kernel does class-aware NMS per frame. Far
        # cheaper on CPU than combined_non_max_suppression's per-class loop.
        shift = tf.tile(tf.cast(tf.stack([peaks[:, 0], peaks[:, 3]], 1), tf.float32) * 2.0, [1, 2])
        shifted = tf.gather(boxes, [1, 0, 3, 2], axis=1) + shift                   # y1,x1,y2,x2
        selected = tf.image.non_max_suppression(shifted, score, tf.shape(score)[0], iou_threshold)
        selected = tf.gather(selected, tf.where(rank_in_frame(tf.gather(peaks[:, 0], selected), n) < max_det)[:, 0])
        return (tf.gather(peaks[:, 0], selected), tf.gather(boxes, selected), tf.gather(score, selected),
                tf.gather(peaks[:, 3], selected))

    @tf.function(jit_compile=True)
    def best_class(heat):
        # The one full pass over [N,H,W,C]; XLA's fused reduction is about twice TF's speed.
        return tf.reduce_max(heat, -1)

    @tf.function(input_signature=specs)
    def decode_sparse(heat, wh, score_threshold, iou_threshold, max_det):
        # Only cells whose best class reaches the threshold can hold a peak that survives it.
        cells = tf.cast(tf.where(best_class(heat) >= score_threshold), tf.int32)      # [M, 3]
        shape = tf.shape(heat)
        h, w = shape[1], shape[2]
        centre = tf.gather_nd(heat, cells)                                            # [M, C]
        # Their 8 neighbours, per class; outside the map counts as -inf (SAME max-pool).
        offsets = tf.constant([[0, dy, dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx], tf.int32)
        near = cells[:, None, :] + offsets                                            # [M, 8, 3]
        inside = tf.reduce_all((near[..., 1:] >= 0) & (near[..., 1:] < tf.stack([h, w])), -1)
        around = tf.gather_nd(heat, tf.stack([near[..., 0], tf.clip_by_value(near[..., 1], 0, h - 1),
                                              tf.clip_by_value(near[..., 2], 0, w - 1)], -1))  # [M, 8, C]
        around = tf.where(inside[:, :, None], around, float("-inf"))
        hits = tf.cast(tf.where((centre >= tf.reduce_max(around, 1)) & (centre >= score_threshold)), tf.int32)
        score = tf.gather_nd(centre, hits)
        peaks = tf.concat([tf.gather(cells, hits[:, 0]), hits[:, 1:]], 1)             # frame,y,x,class
        order = tf.argsort(score, direction="DESCENDING", stable=True)
        return finish(heat, wh, tf.gather(peaks, order), tf.gather(score, order), iou_threshold, max_det)

    @tf.function(input_signature=specs)
    def decode_dense(heat, wh, score_threshold, iou_threshold, max_det):
        # The original graph's decode: peaks = cells equal to their 3×3 max, best top_k.
        shape = tf.shape(heat)
        n, w, c = shape[0], shape[2], shape[3]
        peaks = tf.where(tf.equal(heat, tf.nn.max_pool2d(heat, 3, 1, "SAME")), heat, 0.0)
        score, flat = tf.math.top_k(tf.reshape(peaks, [n, -1]), k=top_k)
        frame = tf.broadcast_to(tf.range(n)[:, None], tf.shape(flat))
        peaks = tf.stack([frame, flat // c // w, flat // c % w, flat % c], -1)
        peaks, score = tf.reshape(peaks, [-1, 4]), tf.reshape(score, [-1])
        order = tf.argsort(score, direction="DESCENDING", stable=True)
        order = tf.gather(order, tf.where(tf.gather(score, order) >= score_threshold)[:, 0])
        return finish(heat, wh, tf.gather(peaks, order), tf.gather(score, order), iou_threshold, max_det)

    return decode_sparse, decode_dense
