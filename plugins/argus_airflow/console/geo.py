"""The map page's data: the cameras as GeoJSON, each a point and the ground it sees (from
its ground mapping, else a wedge along its heading)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any


def _number(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def mapping_of(camera: Mapping[str, Any]):
    """A camera's fitted :class:`~argus.track.ground.GroundMapping` from its ``ground`` cell,
    None without one; ValueError (or GroundMappingError) if it cannot be used."""
    from argus.track.ground import GroundMapping, GroundPoint

    if not camera.get("ground"):
        return None
    points = [GroundPoint(float(p["x"]), float(p["y"]), float(p["latitude"]), float(p["longitude"]))
              for p in json.loads(camera["ground"])]
    return GroundMapping.fit(points)


def track_features(camera: Mapping[str, Any], tracks: Sequence[Mapping[str, Any]], since_ms: int | None,
                   until_ms: int | None) -> list[dict[str, Any]]:
    """A camera's tracks as GeoJSON lines on the ground: each sighting's foot point through
    the camera's mapping, in time order, those captured in [since, until]; none for a camera
    without a usable mapping."""
    from argus.track.ground import foot_point

    try:
        mapping = mapping_of(camera)
    except (ValueError, KeyError, TypeError):
        return []
    if mapping is None:
        return []
    out = []
    for track in tracks:
        path = [p for p in track["path"] if (since_ms is None or p[0] >= since_ms) and (until_ms is None or p[0] <= until_ms)]
        if not path:
            continue
        line = [[round(lon, 7), round(lat, 7)] for lat, lon in (mapping.to_wgs84(*foot_point(p[3])) for p in path)]
        out.append({"type": "Feature", "geometry": {"type": "LineString", "coordinates": line if len(line) > 1 else line * 2},
                    "properties": {"kind": "track", "camera": camera["id"], "track_id": track["track_id"],
                                   "class_name": track["class_name"], "first_ms": path[0][0], "last_ms": path[-1][0],
                                   "sightings": len(path)}})
    return out


def camera_features(cameras: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A FeatureCollection of the cameras with coordinates: a ``camera`` point each, and its
    ``view`` polygon where the mapping or the heading gives one (``view``: ``mapping`` or
    ``heading``); a mapping that cannot be used is named in ``mapping_error``."""
    from argus.track.ground import GroundMappingError, view_polygon, view_wedge

    features = []
    for cam in cameras:
        lat, lon = _number(cam.get("latitude")), _number(cam.get("longitude"))
        heading = _number(cam.get("heading_deg"))
        props = {"camera": cam["id"], "model": cam.get("assigned_model") or cam.get("model"), "heading_deg": heading}
        polygon, how = None, None
        if cam.get("ground"):
            try:
                mapping = mapping_of(cam)
                polygon = view_polygon(mapping, min(float(p["y"]) for p in json.loads(cam["ground"])))
                how = "mapping"
            except (GroundMappingError, ValueError, KeyError, TypeError) as exc:
                props["mapping_error"] = str(exc)[:200]
        if polygon is None and lat is not None and lon is not None and heading is not None:
            polygon, how = view_wedge(lat, lon, heading), "heading"
        if lat is not None and lon is not None:
            features.append({"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]},
                             "properties": {**props, "kind": "camera"}})
        if polygon is not None:
            ring = [[p_lon, p_lat] for p_lat, p_lon in polygon]
            features.append({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring + ring[:1]]},
                             "properties": {**props, "kind": "view", "view": how}})
    return {"type": "FeatureCollection", "features": features}
