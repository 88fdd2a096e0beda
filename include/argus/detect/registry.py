"""The model registry (``models.yaml``) and the camera -> model mapping.

The built-in registry ships with the package; ``ARGUS_MODEL_REGISTRY`` names a user file
merged over it (new models, other thresholds, weights paths, camera mappings).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from argus import config
from argus.detect.types import DetectorError

BUILTIN = Path(__file__).with_name("models.yaml")

COCO_CLASSES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)


@dataclass(frozen=True)
class ModelSpec:
    """One registry entry."""

    name: str
    family: str
    input_size: tuple[int, int]
    classes: tuple[str, ...]
    score_threshold: float
    iou_threshold: float
    source: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)  # family-specific (cfg, weights, anchors)
    description: str = ""

    @classmethod
    def parse(cls, name: str, entry: dict[str, Any]) -> ModelSpec:
        try:
            family = entry["family"]
            from argus.detect.backends import families

            if family not in families():
                raise DetectorError(f"model {name!r}: unknown family {family!r} (known: {', '.join(families())})")
            classes = entry["classes"]
            classes = COCO_CLASSES if classes == "coco" else tuple(str(c) for c in classes)
            height, width = (int(v) for v in entry["input_size"])
            known = {"family", "classes", "input_size", "score_threshold", "iou_threshold", "source",
                     "description", "license"}
            return cls(
                name=name, family=family, input_size=(height, width), classes=classes,
                score_threshold=float(entry.get("score_threshold", 0.3)),
                iou_threshold=float(entry.get("iou_threshold", 0.45)),
                source=dict(entry.get("source") or {}),
                options={k: v for k, v in entry.items() if k not in known},
                description=str(entry.get("description", "")),
            )
        except DetectorError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise DetectorError(f"model {name!r} in the registry is malformed: {exc!r}") from exc


class ModelRegistry:
    """Models by name, and which model each camera runs."""

    def __init__(self, models: dict[str, ModelSpec], default: str, cameras: dict[str, str]):
        self.models, self.default, self.cameras = models, default, cameras
        for camera, model in cameras.items():
            if model not in models:
                raise DetectorError(f"camera {camera!r} is mapped to unknown model {model!r}")
        if default not in models:
            raise DetectorError(f"default model {default!r} is not in the registry")

    @classmethod
    def load(cls, *extra: Path) -> ModelRegistry:
        docs = [BUILTIN, *extra]
        user = config.model_registry_file()
        if user:
            docs.append(user)
        raw_models: dict[str, dict] = {}
        default, cameras = None, {}  # the built-in registry names the default model
        for path in docs:
            try:
                doc = yaml.safe_load(Path(path).read_text()) or {}
            except (OSError, yaml.YAMLError) as exc:
                raise DetectorError(f"cannot read model registry {path}: {exc}") from exc
            for name, entry in (doc.get("models") or {}).items():
                raw_models[name] = {**raw_models.get(name, {}), **entry}
            default = doc.get("default", default)
            cameras.update({str(k): str(v) for k, v in (doc.get("cameras") or {}).items()})
        models = {name: ModelSpec.parse(name, entry) for name, entry in raw_models.items()}
        if default is None:
            raise DetectorError(f"no default model in {', '.join(map(str, docs))}")
        return cls(models, default, cameras)

    def get(self, name: str | None = None) -> ModelSpec:
        name = name or self.default
        try:
            return self.models[name]
        except KeyError:
            raise DetectorError(f"unknown model {name!r}; known models: {', '.join(sorted(self.models))}") from None

    def model_for_camera(self, camera_id: str) -> ModelSpec:
        """The model a camera runs (:func:`mapped_model` over the registry's ``cameras:``)."""
        return self.get(mapped_model(camera_id, self.cameras, self.default))


def mapped_model(camera_id: str, mapping: Mapping[str, str], default: str) -> str:
    """The model ``mapping`` gives a camera: its exact entry, else the first shell pattern
    (``"lobby-*"``) that matches it, else ``default``. The registry's ``cameras:`` and the
    streaming job's ``camera_models`` both map cameras this way."""
    if camera_id in mapping:
        return mapping[camera_id]
    for pattern, model in mapping.items():
        if fnmatch.fnmatchcase(camera_id, pattern):
            return model
    return default
