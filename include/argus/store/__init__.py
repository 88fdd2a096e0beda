"""Argus's HBase storage: schema, administration (Thrift2) and the DetectionStore (Thrift v1)."""

from argus.store.detections import DetectionStore, FrameResult, StoredDetection

__all__ = ["DetectionStore", "FrameResult", "StoredDetection"]
