"""Cameras on the ground: an image-to-ground homography from four or more image points with
their coordinates, and a track's foot point projected to WGS84.

The homography maps normalised image coordinates (0..1 across the frame, the detectors'
convention) to metres east and north of a reference point (the mean of the mapping's
points), on a local tangent plane: at the few hundred metres a camera sees, the
equirectangular approximation used to go between degrees and metres is off by far less
than a box's foot point is (millimetres per hundred metres).

OpenCV's ``findHomography`` fits it (least squares on all points; four points give an exact
fit, more give a reprojection error that says how well the ground is a plane and the points
were picked).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: WGS84's equatorial radius (m)
EARTH_RADIUS_M = 6_378_137.0
#: a mapping whose points' reprojection error is over this (m) is refused by ``calibrate``
MAX_REPROJECTION_M = 2.0


class GroundMappingError(ValueError):
    """A camera's image-to-ground mapping cannot be used (too few points, degenerate, ...)."""


@dataclass(frozen=True)
class GroundPoint:
    """One point of a mapping: where it is in the image (normalised x, y) and on the ground."""

    x: float
    y: float
    latitude: float
    longitude: float


def to_metres(lat: float, lon: float, lat0: float, lon0: float) -> tuple[float, float]:
    """(east, north) in metres of (lat, lon) from (lat0, lon0), on the local tangent plane."""
    east = math.radians(lon - lon0) * EARTH_RADIUS_M * math.cos(math.radians(lat0))
    north = math.radians(lat - lat0) * EARTH_RADIUS_M
    return east, north


def to_degrees(east: float, north: float, lat0: float, lon0: float) -> tuple[float, float]:
    """(lat, lon) of a point ``east``/``north`` metres from (lat0, lon0)."""
    lat = lat0 + math.degrees(north / EARTH_RADIUS_M)
    lon = lon0 + math.degrees(east / (EARTH_RADIUS_M * math.cos(math.radians(lat0))))
    return lat, lon


@dataclass(frozen=True)
class GroundMapping:
    """A fitted image-to-ground homography.

    :param matrix: 3x3, normalised image (x, y, 1) -> metres (east, north, 1) from the origin.
    :param origin: (lat, lon) the metres are measured from.
    :param errors_m: each mapping point's reprojection error (m).
    """

    matrix: tuple[tuple[float, ...], ...]
    origin: tuple[float, float]
    errors_m: tuple[float, ...]

    @classmethod
    def fit(cls, points: Sequence[GroundPoint]) -> GroundMapping:
        """:raises GroundMappingError: fewer than 4 points, points off the image, or points on
        a line (no homography)."""
        import cv2

        if len(points) < 4:
            raise GroundMappingError(f"{len(points)} point(s): a homography needs 4 or more")
        for p in points:
            if not (-0.5 <= p.x <= 1.5 and -0.5 <= p.y <= 1.5):
                raise GroundMappingError(f"image point ({p.x}, {p.y}) is not in normalised frame coordinates (0..1)")
        lat0 = float(np.mean([p.latitude for p in points]))
        lon0 = float(np.mean([p.longitude for p in points]))
        image = np.array([[p.x, p.y] for p in points], dtype=np.float64)
        ground = np.array([to_metres(p.latitude, p.longitude, lat0, lon0) for p in points], dtype=np.float64)
        for name, pts in (("image", image), ("ground", ground)):
            centred = pts - pts.mean(axis=0)
            if np.linalg.matrix_rank(centred, tol=1e-9 * max(1.0, float(np.abs(centred).max()))) < 2:
                raise GroundMappingError(f"the {name} points lie on a line: no homography")
        matrix, _ = cv2.findHomography(image, ground, method=0)
        if matrix is None or not np.all(np.isfinite(matrix)) or abs(np.linalg.det(matrix)) < 1e-12:
            raise GroundMappingError("the points give no invertible homography")
        mapping = cls(tuple(tuple(float(v) for v in row) for row in matrix), (lat0, lon0), ())
        errors = [math.dist(mapping.to_metres(p.x, p.y), g) for p, g in zip(points, ground)]
        return cls(mapping.matrix, mapping.origin, tuple(round(e, 4) for e in errors))

    @property
    def rms_error_m(self) -> float:
        return math.sqrt(sum(e * e for e in self.errors_m) / len(self.errors_m)) if self.errors_m else 0.0

    def to_metres(self, x: float, y: float) -> tuple[float, float]:
        """The ground point (east, north metres from the origin) under image point (x, y)."""
        h = np.asarray(self.matrix)
        east, north, w = h @ np.array([x, y, 1.0])
        if abs(w) < 1e-12:
            raise GroundMappingError(f"image point ({x}, {y}) lies on the horizon")
        return float(east / w), float(north / w)

    def to_wgs84(self, x: float, y: float) -> tuple[float, float]:
        """(lat, lon) under image point (x, y)."""
        return to_degrees(*self.to_metres(x, y), *self.origin)


def view_polygon(mapping: GroundMapping, top: float) -> list[tuple[float, float]]:
    """The ground a camera sees, as (lat, lon) around the frame from row ``top`` (normalised:
    the mapping holds below the horizon only, so the frame above its points is left out)."""
    edge = [(x / 4, top) for x in range(5)] + [(1.0, top + (1 - top) * y / 4) for y in range(1, 5)]
    edge += [(1 - x / 4, 1.0) for x in range(1, 5)] + [(0.0, 1 - (1 - top) * y / 4) for y in range(1, 4)]
    return [mapping.to_wgs84(x, y) for x, y in edge]


def view_wedge(latitude: float, longitude: float, heading_deg: float, fov_deg: float = 60.0,
               range_m: float = 30.0, steps: int = 8) -> list[tuple[float, float]]:
    """A camera without a ground mapping: a wedge of ``fov_deg`` around its heading, ``range_m`` deep."""
    points = [(latitude, longitude)]
    for i in range(steps + 1):
        bearing = math.radians(heading_deg - fov_deg / 2 + fov_deg * i / steps)
        points.append(to_degrees(range_m * math.sin(bearing), range_m * math.cos(bearing), latitude, longitude))
    return points


def foot_point(box: Sequence[float]) -> tuple[float, float]:
    """Where a box's object stands: the middle of its bottom edge (normalised image coordinates)."""
    x1, _, x2, y2 = box
    return (x1 + x2) / 2, y2


def calibration_report(cameras: Sequence, max_error_m: float = MAX_REPROJECTION_M) -> list[dict]:
    """Each camera's mapping checked (``argus cameras calibrate``): points, reprojection errors,
    whether it can be used, and why not.

    :param cameras: :class:`~argus.live.cameras.CameraSpec` s.
    """
    rows = []
    for camera in cameras:
        row = {"camera": camera.id, "points": len(camera.ground), "errors_m": [], "rms_error_m": None, "ok": True}
        if not camera.ground:
            rows.append({**row, "verdict": "no mapping: its tracks are not placed on the map"})
            continue
        try:
            mapping = camera.ground_mapping()
        except ValueError as exc:
            rows.append({**row, "ok": False, "verdict": str(exc)})
            continue
        worst = max(mapping.errors_m)
        ok = worst <= max_error_m
        rows.append({**row, "errors_m": list(mapping.errors_m), "rms_error_m": round(mapping.rms_error_m, 4), "ok": ok,
                     "verdict": "ok" if ok else f"a point is {worst:.2f} m off (over {max_error_m:g} m): check the "
                                                "points, or the ground is not flat there"})
    return rows
