"""Object detection: registry models behind one batched :class:`Detector` API."""

from argus.detect.detector import Detector, default_model_name, default_registry, load_backend
from argus.detect.frames import InvalidFrameError, as_rgb
from argus.detect.registry import ModelRegistry, ModelSpec
from argus.detect.types import Detection, DetectorError

__all__ = ["Detection", "Detector", "DetectorError", "InvalidFrameError", "ModelRegistry", "ModelSpec",
           "as_rgb", "default_model_name", "default_registry", "load_backend"]
