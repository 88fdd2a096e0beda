"""Drawing detections onto an image (``argus detect --out``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from argus.detect.types import Detection

_COLOURS = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180)]


def annotate(image: np.ndarray, detections: list[Detection], out: Path) -> Path:
    from PIL import Image, ImageDraw

    img = Image.fromarray(image)
    draw = ImageDraw.Draw(img)
    width, height = img.size
    for det in detections:
        colour = _COLOURS[det.class_id % len(_COLOURS)]
        x1, y1, x2, y2 = det.box
        box = (x1 * width, y1 * height, x2 * width, y2 * height)
        draw.rectangle(box, outline=colour, width=max(2, width // 300))
        label = f"{det.class_name} {det.score:.2f}"
        left, top, right, bottom = draw.textbbox((box[0], box[1]), label)
        draw.rectangle((left, top - (bottom - top) - 2, right + 4, top), fill=colour)
        draw.text((box[0] + 2, box[1] - (bottom - top) - 2), label, fill=(0, 0, 0))
    out.parent.mkdir(parents=True, exist_ok=True)
    img.save(out)
    return out
