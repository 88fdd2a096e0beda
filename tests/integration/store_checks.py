"""Checks the integration tests make on what landed in HBase."""

from __future__ import annotations

from argus.store import DetectionStore
from argus.store.schema import camera_prefix


def assert_one_detection_row_per_detection(store: DetectionStore, per_camera: dict[str, list[dict]]) -> None:
    """Each camera's detection rows number what its frames rows say (``f:n``): a replayed
    batch that wrote a second copy, or lost one, fails this."""
    with store.table("detections") as table:
        for cam, rows in per_camera.items():
            n_rows = sum(1 for _ in table.scan(row_prefix=camera_prefix(cam), columns=[b"d:cls"]))
            assert n_rows == sum(int(r["f:n"]) for r in rows), f"duplicate or missing detection rows for {cam}"
