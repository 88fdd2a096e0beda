"""JPEG encoding and decoding of frames (libjpeg-turbo through Pillow)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, UnidentifiedImageError

#: Decoding refuses anything larger (a "decompression bomb" would take the executor's memory).
MAX_PIXELS = 8192 * 8192


class FrameDecodeError(ValueError):
    """The bytes are not a decodable JPEG; the message is the dead-letter reason."""


def encode_jpeg(rgb: np.ndarray, quality: int = 85) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format="JPEG", quality=quality)
    return out.getvalue()


def decode_jpeg(data: bytes) -> np.ndarray:
    """RGB uint8 H×W×3, or :class:`FrameDecodeError` saying why not."""
    if not data:
        raise FrameDecodeError("empty payload")
    if data[:2] != b"\xff\xd8":
        raise FrameDecodeError("not a JPEG (no SOI marker)")
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format != "JPEG":
                raise FrameDecodeError(f"not a JPEG ({img.format})")
            if img.width * img.height > MAX_PIXELS:
                raise FrameDecodeError(f"oversized image {img.width}x{img.height}")
            img.load()  # full decode: truncated or corrupt data fails here
            return np.asarray(img.convert("RGB"))
    except FrameDecodeError:
        raise
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError, SyntaxError, ValueError) as exc:
        raise FrameDecodeError(f"corrupt JPEG: {exc}") from exc
