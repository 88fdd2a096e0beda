"""The camera registry (``cameras.yaml``) and the HBase table that records it (``argus:cameras``).

The registry file is what ingest reads and what the DAGs validate camera ids against; the
table is its copy beside the detections (id, URL, coordinates, model, rate), written when
ingest starts and by ``argus cameras import``, so that search, the console and the map know
each camera without the file.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from argus.live.message import check_camera_id

#: what the table keeps of a camera (its ``i:`` columns; ``ground`` as JSON)
TABLE_FIELDS = ("url", "rate_hz", "latitude", "longitude", "model", "heading_deg", "ground")


@dataclass(frozen=True)
class CameraSpec:
    """One camera of the registry file (``cameras.yaml``)."""

    id: str
    url: str
    rate_hz: float = 2.0
    latitude: float | None = None
    longitude: float | None = None
    model: str | None = None
    jpeg_quality: int = 85
    #: for files: play at the recording's pace (a simulated camera) and loop at the end
    realtime: bool = False
    loop: bool = False
    #: stop after this many frames (e.g. to pre-fill a topic); None: no limit
    max_frames: int | None = None
    #: where the camera looks, degrees clockwise from north (the map draws its field of view)
    heading_deg: float | None = None
    #: the image-to-ground mapping: four or more ``{x, y, latitude, longitude}`` (x, y
    #: normalised 0..1 across the frame), fitted into a homography (argus.track.ground)
    ground: tuple[dict[str, float], ...] = field(default=())

    def __post_init__(self):
        check_camera_id(self.id)
        object.__setattr__(self, "ground", tuple(dict(p) for p in self.ground or ()))
        if self.heading_deg is not None and not 0 <= self.heading_deg < 360:
            raise ValueError(f"camera {self.id}: heading_deg must be in [0, 360), got {self.heading_deg}")
        if not 0 < self.rate_hz <= 120:
            raise ValueError(f"camera {self.id}: rate_hz must be in (0, 120], got {self.rate_hz}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"camera {self.id}: jpeg_quality must be 1-100, got {self.jpeg_quality}")


    def ground_points(self) -> list[Any]:
        """The mapping's points as :class:`~argus.track.ground.GroundPoint` (ValueError if malformed)."""
        from argus.track.ground import GroundPoint

        try:
            return [GroundPoint(float(p["x"]), float(p["y"]), float(p["latitude"]), float(p["longitude"]))
                    for p in self.ground]
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"camera {self.id}: each ground point needs numbers x, y, latitude, longitude "
                             f"({type(exc).__name__}: {exc})") from None

    def ground_mapping(self):
        """The camera's fitted :class:`~argus.track.ground.GroundMapping`, None without points.

        :raises ValueError: the points are malformed or give no homography.
        """
        from argus.track.ground import GroundMapping

        return GroundMapping.fit(self.ground_points()) if self.ground else None


def camera_registry_path() -> Path:
    """The camera registry: ``ArgusConfig.cameras_file`` (``ARGUS_CAMERAS``, else
    ``cameras.yaml`` at the project root)."""
    from argus.config import ArgusConfig

    return ArgusConfig().cameras_file


def load_cameras(path: str | Path) -> list[CameraSpec]:
    """Read a camera registry: ``cameras: [{id, url, rate_hz, latitude, longitude, model}, ...]``.
    A relative file URL is relative to the registry file."""
    try:
        doc = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot read camera registry {path}: {exc}") from exc
    cameras = []
    for i, entry in enumerate(doc.get("cameras") or []):
        try:
            cameras.append(CameraSpec(**entry))
        except TypeError as exc:
            raise ValueError(f"{path}: camera #{i + 1}: {exc}") from exc
    here = Path(path).resolve().parent
    cameras = [replace(c, url=str(here / c.url)) if "://" not in c.url and not Path(c.url).is_absolute() else c
               for c in cameras]
    ids = [c.id for c in cameras]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: duplicate camera ids")
    if not cameras:
        raise ValueError(f"{path}: no cameras")
    return cameras


def camera_row(camera: CameraSpec) -> dict[str, str]:
    """The ``argus:cameras`` row of a camera: its :data:`TABLE_FIELDS` that are set, as text
    (the ground mapping as JSON)."""
    values = asdict(camera)
    return {name: json.dumps(list(values[name])) if name == "ground" else str(values[name])
            for name in TABLE_FIELDS if values[name] not in (None, (), [])}


def register_cameras(store, cameras: list[CameraSpec]) -> int:
    """Write each camera's row to ``argus:cameras`` (a put per camera: replaying is harmless).

    :param store: a :class:`~argus.store.DetectionStore`.
    """
    for camera in cameras:
        store.put_camera(camera.id, **camera_row(camera))
    return len(cameras)
