"""Batched resizing shared by the backends.

:func:`resize_batch` runs in the framework the model runs in (TensorFlow, or the Keras 3
backend Keras is set to): on a GPU the resized batch then stays on it.
"""

from __future__ import annotations

import numpy as np

from argus.detect.devices import keras_backend


def _resize(images: np.ndarray, size: tuple[int, int], backend: str):
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.image.resize(images, size, method="bilinear")
    from keras import ops

    return ops.image.resize(images.astype(np.float32), size, interpolation="bilinear")


def _to_numpy(tensor, backend: str) -> np.ndarray:
    if backend == "tensorflow":
        return tensor.numpy()
    from keras import ops

    return ops.convert_to_numpy(tensor)  # from a GPU too (torch tensors on cuda refuse np.asarray)


def resize_batch(frames: list[np.ndarray], size: tuple[int, int], backend: str | None = None):
    """Stretch-resize RGB uint8 frames to ``size`` (h, w): float32 [N, h, w, 3], values 0..255.

    Frames of one camera share a shape, so each group of equal shapes is resized in one op.

    :param backend: the framework whose tensor to return: ``tensorflow`` for the TensorFlow
        graph models, else (default) the Keras backend of this process.
    """
    backend = backend or keras_backend()
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, frame in enumerate(frames):
        groups.setdefault(frame.shape, []).append(i)
    if len(groups) == 1:
        return _resize(np.stack(frames), size, backend)
    out = np.empty((len(frames), size[0], size[1], 3), np.float32)
    for idx in groups.values():
        out[idx] = _to_numpy(_resize(np.stack([frames[i] for i in idx]), size, backend), backend)
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.convert_to_tensor(out)
    return out


def letterbox_batch(frames: list[np.ndarray], size: tuple[int, int]):
    """Resize keeping the aspect ratio and pad to ``size``: float32 [N, h, w, 3] (0..255) and,
    per frame, the ``(top, left, scaled_h, scaled_w)`` of the image inside, as fractions of
    ``size`` (to map boxes back to the frame)."""
    import tensorflow as tf  # the letterboxing models (BlazeFace, TFLite) run in TensorFlow only

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
