"""Real photos for demos, simulators and benchmarks: scikit-image's sample data, offline."""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: photos with people, vehicles and things; all ship inside the scikit-image wheel
PHOTOS = ("astronaut.png", "motorcycle_left.png", "coffee.png", "chelsea.png", "camera.png", "rocket.jpg")


def photo_path(name: str) -> Path:
    import skimage

    path = Path(skimage.__file__).parent / "data" / name
    if not path.exists():
        raise FileNotFoundError(f"{name} is not in scikit-image's data folder ({path.parent})")
    return path


def load_image(path: str | Path) -> np.ndarray:
    """An image file as RGB uint8 (grayscale and RGBA converted)."""
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def sample_frames(n: int, size: tuple[int, int] = (480, 640)) -> list[np.ndarray]:
    """``n`` camera-sized RGB frames (height, width) made from the real photos, cycled."""
    from PIL import Image

    frames = []
    for i in range(n):
        with Image.open(photo_path(PHOTOS[i % len(PHOTOS)])) as img:
            frames.append(np.asarray(img.convert("RGB").resize((size[1], size[0]), Image.BILINEAR)))
    return frames
