"""Detection tests run real models; their files are fetched into the shared cache once."""

from __future__ import annotations

import numpy as np
import pytest

from argus.media.images import load_image, photo_path


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    return {name: load_image(photo_path(f"{name}.png"))
            for name in ("astronaut", "coffee", "motorcycle_left", "chelsea", "camera")}
