"""Argus' Darknet (YOLOv2) implementation against OpenCV's independent Darknet importer.

No YOLO weights are downloadable here, so every test writes its cfg and random weights
(in Darknet's format) into tmp_path; the *same* files are loaded by Argus and by
``cv2.dnn.readNetFromDarknet``, fed the *same* NCHW/NHWC tensor, and compared.
"""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from argus.detect import darknet as dk
from argus.detect.registry import COCO_CLASSES
from argus.detect.types import DetectorError
from argus.detect.yolo import YoloBackend, builtin_cfg, cfg_text, write_cfg

# OpenCV 5 dropped the Darknet importer: the lock pins opencv-python-headless < 5
assert hasattr(cv2.dnn, "readNetFromDarknet"), "this OpenCV has no Darknet importer (pin < 5)"

RTOL = 1e-4
# Thresholds for the decode comparison: OpenCV's region layer zeroes class scores
# <= thresh (from the cfg) and then runs per-class NMS at IoU 0.4 (its default).
REGION_THRESH = 0.03
OPENCV_REGION_NMS = 0.4


def _astronaut(size: tuple[int, int]) -> np.ndarray:
    """A real photo, RGB float32 [h, w, 3] in [0, 1]."""
    from skimage import data

    img = data.astronaut()
    return cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def _batch(size: tuple[int, int]) -> np.ndarray:
    """Two different frames, NHWC float32."""
    img = _astronaut(size)
    return np.ascontiguousarray(np.stack([img, img[::-1, ::-1] * 0.8]))


def _opencv(cfg: Path, weights: Path, nhwc: np.ndarray, outputs: list[str] | None = None) -> list[np.ndarray]:
    net = cv2.dnn.readNetFromDarknet(str(cfg), str(weights))
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    net.setInput(np.ascontiguousarray(nhwc.transpose(0, 3, 1, 2)))
    names = list(net.getLayerNames())
    convs = [n for n in names if n.startswith("conv_")]
    aliases = {"last": names[-1], "last_conv": convs[-1] if convs else None}
    wanted = [aliases.get(o, o) for o in (outputs or ["last"])]
    return list(net.forward(wanted))


def _assert_close_to_scale(mine: np.ndarray, ref: np.ndarray, rtol: float = RTOL) -> float:
    """Elementwise |mine - ref| <= rtol·|ref| + rtol·max|ref|; returns max|diff| / max|ref|."""
    scale = float(np.abs(ref).max())
    np.testing.assert_allclose(mine, ref, rtol=rtol, atol=rtol * scale)
    return float(np.abs(mine - ref).max()) / scale


@pytest.fixture(scope="module")
def yolo_files(tmp_path_factory):
    """(cfg, weights) for yolov2-tiny and yolov2 at 416×416 with random weights, cached per module."""
    root = tmp_path_factory.mktemp("darknet")
    files = {}

    def get(name: str):
        if name not in files:
            cfg = write_cfg(name, root / f"{name}.cfg", thresh=REGION_THRESH)
            weights = root / f"{name}.weights"
            dk.write_weights(weights, dk.parse_cfg(cfg), np.random.default_rng(20240611))
            files[name] = (cfg, weights)
        return files[name]

    return get


# ----------------------------------------------------------------------------- cfgs


def test_builtin_cfgs_have_the_official_layer_sequences():
    # parameter counts of the official yolov2.weights (203934260 bytes, v0.1 header of 16
    # bytes) and yolov2-tiny.weights (44948600 bytes, v0.2 header of 20 bytes)
    full, tiny = dk.parse_cfg(builtin_cfg("yolov2")), dk.parse_cfg(builtin_cfg("yolov2-tiny"))
    assert full.parameter_count() == (203934260 - 16) // 4
    assert tiny.parameter_count() == (44948600 - 20) // 4
    for net in (full, tiny):
        assert net.input_shape == (416, 416, 3)
        assert net.region.grid == (13, 13) and net.region.classes == 80 and net.region.num == 5
        np.testing.assert_allclose(net.region.anchors.ravel(), [0.57273, 0.677385, 1.87446, 2.06253, 3.33843,
                                                                5.47434, 7.88282, 3.52778, 9.77052, 9.16828])
    assert [layer.type for layer in full.layers[25:]] == ["route", "convolutional", "reorg", "route",
                                                          "convolutional", "convolutional", "region"]
    assert full.layers[25].params["sources"] == [16] and full.layers[28].params["sources"] == [27, 24]
    assert full.layers[28].out_shape == (13, 13, 1280)
    assert tiny.layers[11].out_shape == (13, 13, 512)  # the 2×2 stride-1 maxpool keeps 13×13


def test_cfg_text_overrides_size_classes_and_threshold(tmp_path):
    net = dk.parse_cfg(write_cfg("yolov2-tiny", tmp_path / "t.cfg", width=320, height=224, classes=3, thresh=0.25))
    assert net.input_shape == (224, 320, 3)
    assert net.region.classes == 3 and net.region.thresh == 0.25 and net.region.grid == (7, 10)
    assert net.layers[-2].params["filters"] == 5 * (5 + 3)
    with pytest.raises(DetectorError, match="multiple of 32"):
        cfg_text("yolov2", width=100)


# ----------------------------------------------------------------------------- layers


def test_reorg_matches_opencv_and_is_not_space_to_depth(tmp_path):
    cfg = tmp_path / "reorg.cfg"
    cfg.write_text("[net]\nwidth=6\nheight=4\nchannels=8\n\n[reorg]\nstride=2\n")
    weights = tmp_path / "reorg.weights"
    net = dk.parse_cfg(cfg)
    dk.write_weights(weights, net, 0)  # just a header: no convolution
    model = dk.build_model(net)
    x = np.random.default_rng(1).standard_normal((2, 4, 6, 8)).astype(np.float32)
    (ref,) = _opencv(cfg, weights, x)
    assert ref.shape == (2, 32, 2, 3)
    mine = np.asarray(model(x)).transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(mine, ref)  # a pure permutation: bit-exact

    import tensorflow as tf

    s2d = tf.nn.space_to_depth(x, 2).numpy().transpose(0, 3, 1, 2)
    assert not np.allclose(s2d, ref)  # Darknet's channel order is not TensorFlow's


def test_small_network_with_every_layer_kind_matches_opencv(tmp_path):
    """Odd sizes, strided/padded convolutions, every activation, maxpool paddings,
    absolute and relative routes, reorg, and a v0.1 header (int32 ``seen``)."""
    cfg = tmp_path / "mini.cfg"
    cfg.write_text("""
[net]
width=28
height=24
channels=3

[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=1

[convolutional]
filters=12
size=3
stride=2
pad=1
activation=relu

[maxpool]
size=3
stride=2

[convolutional]
batch_normalize=1
filters=8
size=1
stride=1
pad=1
activation=logistic

[route]
layers=0

[convolutional]
batch_normalize=1
filters=4
size=5
stride=1
padding=1
activation=leaky

[maxpool]
size=3
stride=2
padding=3

[reorg]
stride=2

[route]
layers = -1, 4

[convolutional]
filters=10
size=1
stride=1
pad=1
activation=linear
""")
    net = dk.parse_cfg(cfg)
    shapes = [layer.out_shape for layer in net.layers]
    assert shapes == [(24, 28, 8), (24, 28, 8), (12, 14, 12), (6, 7, 12), (6, 7, 8), (24, 28, 8),
                      (22, 26, 4), (12, 14, 4), (6, 7, 16), (6, 7, 24), (6, 7, 10)]
    weights = tmp_path / "mini.weights"
    dk.write_weights(weights, net, np.random.default_rng(3), version=(0, 1, 0), seen=12345)
    assert weights.stat().st_size == 16 + 4 * net.parameter_count()
    model = dk.build_model(net)
    dk.load_weights(model, net, weights)
    x = _batch((24, 28))
    (ref,) = _opencv(cfg, weights, x)
    mine = np.asarray(model(x)).transpose(0, 3, 1, 2)
    _assert_close_to_scale(mine, ref)


# ----------------------------------------------------------------------------- YOLOv2


def _compare_with_opencv(cfg: Path, weights: Path, batch: np.ndarray) -> dict[str, float]:
    net = dk.parse_cfg(cfg)
    model = dk.build_model(net)
    dk.load_weights(model, net, weights)
    raw_ref, region_ref = _opencv(cfg, weights, batch, ["last_conv", "last"])
    raw = np.asarray(model(batch, training=False))
    n, gh, gw, ch = raw.shape
    assert raw_ref.shape == (n, ch, gh, gw)
    errors = {"raw": _assert_close_to_scale(raw.transpose(0, 3, 1, 2), raw_ref)}
    assert 0.3 < raw.std() < 10, "random weights should give moderate logits"

    region = net.region
    decoded = dk.region_decode(raw, region.anchors, region.classes)
    region_ref = region_ref.reshape(n, gh * gw * region.num, 5 + region.classes)
    np.testing.assert_allclose(decoded.xywh, region_ref[..., :4], rtol=RTOL, atol=1e-6)
    np.testing.assert_allclose(decoded.objectness, region_ref[..., 4], rtol=RTOL, atol=1e-6)
    errors["xywh"] = float(np.max(np.abs(decoded.xywh - region_ref[..., :4]) / np.abs(region_ref[..., :4])))

    # class scores: OpenCV keeps objectness·softmax > thresh that survive its per-class NMS
    for b in range(n):
        box_idx, cls_idx, kept = dk.nms(decoded.xyxy[b], decoded.scores[b], region.thresh, OPENCV_REGION_NMS,
                                        max_detections=10 ** 9)
        dense = np.zeros_like(decoded.scores[b])
        dense[box_idx, cls_idx] = kept
        ref_scores = region_ref[b, :, 5:]
        assert 20 < len(kept) < (decoded.scores[b] > region.thresh).sum(), "the comparison should exercise NMS"
        np.testing.assert_array_equal(dense > 0, ref_scores > 0)
        np.testing.assert_allclose(dense, ref_scores, rtol=RTOL, atol=1e-7)
    return errors


def test_yolov2_tiny_matches_opencv(yolo_files):
    cfg, weights = yolo_files("yolov2-tiny")
    errors = _compare_with_opencv(cfg, weights, _batch((416, 416)))
    assert errors["raw"] < 1e-4


def test_yolov2_matches_opencv(yolo_files):
    cfg, weights = yolo_files("yolov2")
    errors = _compare_with_opencv(cfg, weights, _batch((416, 416)))
    assert errors["raw"] < 1e-4


def test_backend_end_to_end_matches_opencv(yolo_files):
    """preprocess ≈ blobFromImage; infer → postprocess == OpenCV's region output (scores, classes,
    boxes clipped to the frame) for frames of different sizes in one batch."""
    cfg, weights = yolo_files("yolov2-tiny")
    backend = YoloBackend("yolov2-tiny-test", cfg, weights, list(COCO_CLASSES))
    assert backend.input_size == (416, 416)
    from skimage import data

    frames = [data.astronaut(), np.ascontiguousarray(data.chelsea()[:, ::-1])]  # 512×512 and 300×451
    batch, meta = backend.preprocess(frames)
    batch = np.asarray(batch)
    assert batch.shape == (2, 416, 416, 3) and batch.dtype == np.float32
    assert meta.tolist() == [[512, 512], [300, 451]]
    for frame, tensor in zip(frames, batch):
        blob = cv2.dnn.blobFromImage(frame, 1 / 255.0, (416, 416), swapRB=False, crop=False)[0].transpose(1, 2, 0)
        np.testing.assert_allclose(tensor, blob, atol=1.01 / 255)  # OpenCV rounds its resize to uint8

    raw = backend.infer(batch)
    detections = backend.postprocess(raw, meta, REGION_THRESH, OPENCV_REGION_NMS, max_detections=10 ** 6)
    (region_ref,) = _opencv(cfg, weights, batch)
    region_ref = region_ref.reshape(2, -1, 85)
    for b in range(2):
        cells, classes = np.nonzero(region_ref[b, :, 5:])
        xywh = region_ref[b, cells, :4]
        boxes = np.clip(np.concatenate([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], 1), 0, 1)
        ref = np.column_stack([classes, region_ref[b, cells, 5 + classes], boxes])
        got = detections[b]
        mine = np.array([[d.class_id, d.score, *d.box] for d in got])
        assert len(got) == len(ref) > 20
        assert all(d.class_name == COCO_CLASSES[d.class_id] for d in got)
        assert np.all(np.diff(mine[:, 1]) <= 0), "best first"
        assert np.all((mine[:, 2:] >= 0) & (mine[:, 2:] <= 1))
        # the same set (near-equal scores may come in either order): each detection has its twin
        # (x1 = x - w/2 cancels: the boxes' absolute error is that of w, ~1e-5 of the frame)
        same = ((mine[:, None, 0] == ref[None, :, 0])
                & np.isclose(mine[:, None, 1], ref[None, :, 1], rtol=RTOL, atol=1e-7)
                & np.all(np.isclose(mine[:, None, 2:], ref[None, :, 2:], rtol=0, atol=1e-4), axis=-1))
        assert same.any(axis=1).all() and same.any(axis=0).all()

    top = backend.postprocess(raw, meta, REGION_THRESH, OPENCV_REGION_NMS, max_detections=5)
    assert [[d.score for d in f] for f in top] == [[d.score for d in f][:5] for f in detections]
    assert backend.postprocess(raw, meta, 0.99, 0.5, 100) == [[], []]


# ----------------------------------------------------------------------------- errors


@pytest.fixture
def tiny_net(tmp_path):
    cfg = write_cfg("yolov2-tiny", tmp_path / "tiny.cfg", width=64, height=64, classes=2)
    net = dk.parse_cfg(cfg)
    weights = tmp_path / "tiny.weights"
    dk.write_weights(weights, net, 0)
    return cfg, net, weights


def test_truncated_weights_name_the_file_and_sizes(tiny_net):
    cfg, net, weights = tiny_net
    size = weights.stat().st_size
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(dk.DarknetError, match="truncated") as err:
        dk.read_weights(weights, net)
    assert str(weights) in str(err.value) and str(size) in str(err.value) and str(size - 100) in str(err.value)
    weights.write_bytes(b"\0" * 8)
    with pytest.raises(dk.DarknetError, match=f"{weights}.*truncated"):
        dk.read_weights(weights, net)


def test_oversized_weights_are_refused(tiny_net):
    cfg, net, weights = tiny_net
    weights.write_bytes(weights.read_bytes() + b"\0" * 8)
    with pytest.raises(dk.DarknetError, match="larger than expected") as err:
        dk.read_weights(weights, net)
    assert str(weights) in str(err.value)


def test_missing_weights_and_cfg_are_named(tmp_path, tiny_net):
    cfg, net, _ = tiny_net
    missing = tmp_path / "nope.weights"
    with pytest.raises(dk.DarknetError, match=f"{missing} does not exist"):
        dk.read_weights(missing, net)
    with pytest.raises(DetectorError, match=f"model 'tiny'.*{missing} does not exist"):
        YoloBackend("tiny", cfg, missing, ["a", "b"])
    with pytest.raises(dk.DarknetError, match=f"{tmp_path / 'nope.cfg'} does not exist"):
        dk.parse_cfg(tmp_path / "nope.cfg")


def test_wrong_header_is_not_a_darknet_file(tiny_net):
    cfg, net, weights = tiny_net
    size = weights.stat().st_size
    weights.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * (size - 8))  # e.g. a Keras .h5 file
    with pytest.raises(dk.DarknetError, match=f"{weights} is not a Darknet weights file"):
        dk.read_weights(weights, net)
    weights.write_bytes(struct.pack("<3i", 0, 1001, 0) + b"\0" * (size - 12))
    with pytest.raises(dk.DarknetError, match="transposed"):
        dk.read_weights(weights, net)


def test_corrupt_batch_norm_is_refused(tiny_net):
    cfg, net, weights = tiny_net
    data = bytearray(weights.read_bytes())
    n = net.layers[0].params["filters"]
    struct.pack_into("<f", data, 20 + 4 * 3 * n, -1.0)  # first rolling variance of layer 0
    weights.write_bytes(bytes(data))
    with pytest.raises(dk.DarknetError, match="negative batch-norm variance"):
        dk.load_weights(dk.build_model(net), net, weights)


def test_unknown_section_is_named(tmp_path):
    cfg = tmp_path / "yolov3ish.cfg"
    cfg.write_text(cfg_text("yolov2-tiny") + "\n[shortcut]\nfrom=-3\n")
    with pytest.raises(dk.DarknetError, match=r"yolov3ish.cfg:\d+: unsupported section \[shortcut\]"):
        dk.parse_cfg(cfg)


@pytest.mark.parametrize("change, message", [
    (("activation=linear", "activation=mish"), "unsupported activation=mish"),
    (("classes=80", "classes=81"), "expects 430 input channels"),
    (("size=2\nstride=1", "size=2\nstride=1\n\n[route]\nlayers=40"), "refers to layer 40"),
    (("[net]", "[net]\nfoo"), "expected key=value"),
])
def test_invalid_cfgs_are_explained(tmp_path, change, message):
    cfg = tmp_path / "bad.cfg"
    cfg.write_text(cfg_text("yolov2-tiny").replace(*change, 1))
    with pytest.raises(dk.DarknetError, match=message) as err:
        dk.parse_cfg(cfg)
    assert str(cfg) in str(err.value)


def test_backend_checks_class_names(tiny_net):
    cfg, net, weights = tiny_net
    with pytest.raises(DetectorError, match="2 classes but 3 class names"):
        YoloBackend("tiny", cfg, weights, ["a", "b", "c"])


def test_nms_is_class_aware_and_capped():
    boxes = np.array([[0, 0, 1, 1], [0, 0, 0.9, 1], [0.5, 0.5, 1, 1]], np.float32)
    scores = np.array([[0.9, 0.0], [0.8, 0.7], [0.6, 0.0]], np.float32)
    box_idx, cls_idx, kept = dk.nms(boxes, scores, 0.5, 0.5, 10)
    # box 1 / class 0 overlaps box 0 (IoU .9); box 2 (IoU .25) and box 1 / class 1 survive
    assert list(zip(box_idx.tolist(), cls_idx.tolist())) == [(0, 0), (1, 1), (2, 0)]
    np.testing.assert_allclose(kept, [0.9, 0.7, 0.6])
    assert dk.nms(boxes, scores, 0.5, 0.5, 2)[0].tolist() == [0, 1]
    assert dk.nms(boxes, scores, 0.5, 0.95, 10)[0].tolist() == [0, 1, 1, 2]
    assert dk.nms(boxes, scores, 0.5, 0.5, 0)[0].size == 0
