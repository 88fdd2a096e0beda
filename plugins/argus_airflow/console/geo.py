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


def camera_features(cameras: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A FeatureCollection of the cameras with coordinates: a ``camera`` point each, and its
    ``view`` polygon where the mapping or the heading gives one (``view``: ``mapping`` or
    ``heading``); a mapping that cannot be used is named in ``mapping_error``."""
    from argus.track.ground import GroundMapping, GroundMappingError, GroundPoint, view_polygon, view_wedge

    features = []
    for cam in cameras:
        lat, lon = _number(cam.get("latitude")), _number(cam.get("longitude"))
        heading = _number(cam.get("heading_deg"))
        props = {"camera": cam["id"], "model": cam.get("assigned_model") or cam.get("model"), "heading_deg": heading}
        polygon, how = None, None
        if cam.get("ground"):
            try:
                points = [GroundPoint(float(p["x"]), float(p["y"]), float(p["latitude"]), float(p["longitude"]))
                          for p in json.loads(cam["ground"])]
                polygon = view_polygon(GroundMapping.fit(points), min(p.y for p in points))
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
