"""Batched resizing shared by the backends."""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def resize_batch(frames: list[np.ndarray], size: tuple[int, int]) -> tf.Tensor:
    """Stretch-resize RGB uint8 frames to ``size`` (h, w): float32 [N, h, w, 3], values 0..255.

    Frames of one camera share a shape, so each group of equal shapes is resized in one op.
    """
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, frame in enumerate(frames):
        groups.setdefault(frame.shape, []).append(i)
    if len(groups) == 1:
        return tf.image.resize(np.stack(frames), size, method="bilinear")
    out = np.empty((len(frames), size[0], size[1], 3), np.float32)
    for idx in groups.values():
        out[idx] = tf.image.resize(np.stack([frames[i] for i in idx]), size, method="bilinear").numpy()
    return tf.convert_to_tensor(out)


def letterbox_batch(frames: list[np.ndarray], size: tuple[int, int]) -> tuple[tf.Tensor, np.ndarray]:
    """Resize keeping the aspect ratio and pad to ``size``: float32 [N, h, w, 3] (0..255) and,
    per frame, the ``(top, left, scaled_h, scaled_w)`` of the image inside, as fractions of
    ``size`` (to map boxes back to the frame)."""
    height, width = size
    out = np.zeros((len(frames), height, width, 3), np.float32)
    geometry = np.empty((len(frames), 4), np.float32)
    for i, frame in enumerate(frames):
        fh, fw = frame.shape[:2]
        scale = min(height / fh, width / fw)
        sh, sw = max(1, round(fh * scale)), max(1, round(fw * scale))
        top, left = (height - sh) // 2, (width - sw) // 2
        out[i, top:top + sh, left:left + sw] = tf.image.resize(frame[None], (sh, sw), method="bilinear")[0].numpy()
        geometry[i] = (top / height, left / width, sh / height, sw / width)
    return tf.convert_to_tensor(out), geometry
