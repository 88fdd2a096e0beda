"""The model registry, camera mapping and frame validation (no model is loaded here)."""

from __future__ import annotations

import numpy as np
import pytest

from argus.detect import DetectorError, InvalidFrameError, ModelRegistry, as_rgb
from argus.detect.registry import COCO_CLASSES


def test_builtin_registry_has_the_models_and_a_default():
    reg = ModelRegistry.load()
    assert {"centernet-coco", "ssdlite-person", "yolov2", "yolov2-tiny", "blazeface"} <= set(reg.models)
    assert reg.get().name == "centernet-coco"
    spec = reg.get("centernet-coco")
    assert spec.classes == COCO_CLASSES and len(spec.classes) == 80 and spec.input_size == (512, 512)
    assert reg.get("ssdlite-person").classes[1] == "person"


def test_unknown_model_is_named_with_the_choices():
    with pytest.raises(DetectorError, match=r"unknown model 'yolo9'.*centernet-coco"):
        ModelRegistry.load().get("yolo9")


def test_user_registry_overrides_and_maps_cameras(tmp_path, monkeypatch):
    user = tmp_path / "models.yaml"
    user.write_text(
        "models:\n"
        "  yolov2:\n    weights: /data/yolov2.weights\n    score_threshold: 0.5\n"
        "cameras:\n  gate-1: ssdlite-person\n  'lobby-*': blazeface\n"
    )
    monkeypatch.setenv("ARGUS_MODEL_REGISTRY", str(user))
    reg = ModelRegistry.load()
    assert reg.get("yolov2").options["weights"] == "/data/yolov2.weights"
    assert reg.get("yolov2").score_threshold == 0.5
    assert reg.get("yolov2").family == "yolov2"  # merged, not replaced
    assert reg.model_for_camera("gate-1").name == "ssdlite-person"
    assert reg.model_for_camera("lobby-east").name == "blazeface"
    assert reg.model_for_camera("street-9").name == "centernet-coco"


def test_camera_mapped_to_an_unknown_model_is_rejected(tmp_path, monkeypatch):
    user = tmp_path / "models.yaml"
    user.write_text("cameras:\n  gate-1: no-such-model\n")
    monkeypatch.setenv("ARGUS_MODEL_REGISTRY", str(user))
    with pytest.raises(DetectorError, match="gate-1.*no-such-model"):
        ModelRegistry.load()


def test_malformed_entries_are_named(tmp_path, monkeypatch):
    user = tmp_path / "models.yaml"
    user.write_text("models:\n  broken:\n    family: centernet\n")
    monkeypatch.setenv("ARGUS_MODEL_REGISTRY", str(user))
    with pytest.raises(DetectorError, match="'broken'.*malformed"):
        ModelRegistry.load()
    user.write_text("models:\n  odd:\n    family: rcnn\n    classes: [a]\n    input_size: [8, 8]\n")
    with pytest.raises(DetectorError, match="unknown family 'rcnn'"):
        ModelRegistry.load()


def test_frames_are_normalised_to_rgb():
    gray = np.zeros((4, 5), np.uint8)
    assert as_rgb(gray).shape == (4, 5, 3)
    assert as_rgb(gray[:, :, None]).shape == (4, 5, 3)
    rgba = np.dstack([np.full((4, 5), v, np.uint8) for v in (1, 2, 3, 4)])
    assert as_rgb(rgba).shape == (4, 5, 3) and as_rgb(rgba)[0, 0].tolist() == [1, 2, 3]


@pytest.mark.parametrize("frame, reason", [
    (b"\xff\xd8garbage", "encoded bytes"),
    ("not an image", "numpy image array"),
    (np.zeros((4, 4, 3), np.float32), "uint8"),
    (np.zeros((0, 4, 3), np.uint8), "empty image"),
    (np.zeros((4, 4, 2), np.uint8), "shape"),
    (np.zeros((2, 2, 2, 3), np.uint8), "shape"),
    (np.lib.stride_tricks.as_strided(np.zeros(1, np.uint8), (20000, 10, 3), (0, 0, 0)), "larger than"),
])
def test_bad_frames_get_a_clear_error(frame, reason):
    with pytest.raises(InvalidFrameError, match=reason) as info:
        as_rgb(frame, index=7)
    assert info.value.index == 7 and "frame 7" in str(info.value)


def test_a_plugin_module_registers_a_backend_family(tmp_path, monkeypatch):
    from pathlib import Path

    import numpy as np

    from argus.detect import Detector, backends, detector

    plugins = Path(__file__).resolve().parents[1] / "plugins"
    monkeypatch.syspath_prepend(str(plugins))
    monkeypatch.setenv("ARGUS_DETECTOR_PLUGINS", "fault_detector")
    monkeypatch.setenv("ARGUS_MODEL_REGISTRY", str(plugins / "fault_models.yaml"))
    monkeypatch.setattr(backends, "_plugins_loaded", False)
    monkeypatch.setattr(detector, "_registry", None)  # read the registry again, with the plugin's model
    assert "test-crash-on-white" in backends.families()
    assert {"centernet", "tf-od-api", "yolov2", "blazeface"} <= set(backends.families())
    assert Detector("crash-on-white").detect([np.zeros((48, 64, 3), np.uint8)]) == [[]]


def test_a_plugin_that_does_not_import_is_named(monkeypatch):
    from argus.detect import DetectorError, backends

    monkeypatch.setenv("ARGUS_DETECTOR_PLUGINS", "no_such_plugin_module")
    monkeypatch.setattr(backends, "_plugins_loaded", False)
    with pytest.raises(DetectorError, match="detector plugin 'no_such_plugin_module'"):
        backends.families()
    monkeypatch.setattr(backends, "_plugins_loaded", False)
    monkeypatch.delenv("ARGUS_DETECTOR_PLUGINS")
    backends.families()
