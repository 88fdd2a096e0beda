"""Argus' own converter from a TF.js *graph model* to a plain TensorFlow SavedModel.

A TF.js graph model is a ``model.json`` (``modelTopology``: a GraphDef in JSON form, with
``Const`` nodes that carry only dtype and shape; ``weightsManifest``: where each constant's
bytes lie in the ``.bin`` shards) plus the shards. The ``tensorflowjs`` pip package can
convert these back, but it does not import under the TensorFlow this project pins, so this
module does the three steps itself:

1. parse the topology into a :class:`tf.compat.v1.GraphDef`;
2. fill every ``Const`` from the shards, undoing weight quantization (uint8/uint16 affine,
   float16);
3. rewrite the ops that only TF.js knows (``_FusedConv2D``, ``FusedDepthwiseConv2dNative``,
   ``_FusedMatMul`` with their ``fused_ops`` chain, and ``Prelu``) into standard TF ops, so
   the graph runs in stock TensorFlow (whose own grappler re-fuses what its CPU kernels can).

The result is pruned to the requested outputs and saved as a SavedModel whose ``serve``
function takes a float32 ``[N, H, W, C]`` batch (N dynamic where the graph allows it).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from argus.detect.types import DetectorError

log = logging.getLogger(__name__)

#: Bumped when the conversion changes, so callers can invalidate converted caches.
CONVERTER_VERSION = "1"

#: Bytes per element of the dtypes TF.js writes into weight shards.
_NP_DTYPES: dict[str, np.dtype] = {
    "float32": np.dtype("<f4"),
    "int32": np.dtype("<i4"),
    "bool": np.dtype("bool"),
    "complex64": np.dtype("<c8"),
    "uint8": np.dtype("u1"),
    "uint16": np.dtype("<u2"),
    "float16": np.dtype("<f2"),
}

#: Attributes each standard op accepts (a fused node carries a superset of them).
_CONV_ATTRS = ("T", "strides", "padding", "explicit_paddings", "data_format", "dilations")
_BASE_OPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "_FusedConv2D": ("Conv2D", _CONV_ATTRS + ("use_cudnn_on_gpu",)),
    "FusedDepthwiseConv2dNative": ("DepthwiseConv2dNative", _CONV_ATTRS),
    "_FusedMatMul": ("MatMul", ("T", "transpose_a", "transpose_b")),
}

#: Activations that map one-to-one onto a TF op of the same name.
_PLAIN_ACTIVATIONS = {"Relu", "Relu6", "Elu", "Selu", "Sigmoid", "Tanh", "Softplus"}


# --------------------------------------------------------------------------- weights

def _read_weights(model_json: Path, manifest: list[dict]) -> dict[str, np.ndarray]:
    """Decode every weight of the manifest into a numpy array of its original dtype.

    Within one group, weights are laid out back to back across the group's shards taken
    in order, so the shards are concatenated first.
    """
    weights: dict[str, np.ndarray] = {}
    for group in manifest:
        data = b"".join((model_json.parent / p).read_bytes() for p in group["paths"])
        offset = 0
        for spec in group["weights"]:
            array, offset = _decode_weight(spec, data, offset)
            weights[spec["name"]] = array
        if offset != len(data):
            log.warning("weight group %s: %d bytes left over", group["paths"], len(data) - offset)
    return weights


def _decode_weight(spec: dict, data: bytes, offset: int) -> tuple[np.ndarray, int]:
    shape = [int(d) for d in spec.get("shape", [])]
    count = int(np.prod(shape, dtype=np.int64))
    dtype = spec["dtype"]
    if dtype == "string":
        # Each string is a little-endian uint32 byte length followed by its bytes.
        values = []
        for _ in range(count):
            size = int.from_bytes(data[offset:offset + 4], "little")
            values.append(data[offset + 4:offset + 4 + size])
            offset += 4 + size
        return np.array(values, dtype=object).reshape(shape), offset
    quant = spec.get("quantization")
    stored = _NP_DTYPES[quant["dtype"] if quant else dtype]
    end = offset + count * stored.itemsize
    if end > len(data):
        raise DetectorError(f"weight {spec['name']} runs past the end of its shards")
    raw = np.frombuffer(data, dtype=stored, count=count, offset=offset)
    if quant is None:
        array = raw.astype(stored.newbyteorder("="))
    elif quant["dtype"] == "float16":
        array = raw.astype(np.float32)
    elif quant["dtype"] in ("uint8", "uint16"):
        # Affine quantization: value = q * scale + min (TF.js' own dequantization).
        array = raw.astype(np.float32) * np.float32(quant["scale"]) + np.float32(quant["min"])
    else:
        raise DetectorError(f"weight {spec['name']}: unknown quantization {quant['dtype']!r}")
    original = quant.get("original_dtype", dtype) if quant else dtype
    if original == "int32" and array.dtype != np.int32:
        array = np.round(array).astype(np.int32)
    elif original == "bool" and array.dtype != np.bool_:
        array = array != 0
    return array.reshape(shape), end


# --------------------------------------------------------------------------- fused ops

def _attr_list_s(node, key: str) -> list[str]:
    if key not in node.attr:
        return []
    return [s.decode() for s in node.attr[key].list.s]


def _split_inputs(node) -> tuple[list[str], list[str]]:
    data = [i for i in node.input if not i.startswith("^")]
    control = [i for i in node.input if i.startswith("^")]
    return data, control


def _unfuse(node, new_node: Callable[..., Any]) -> list:
    """Replace one fused node by the chain of standard ops it stands for.

    The last op of the chain keeps the fused node's name, so its consumers need no change.
    """
    base_op, base_attrs = _BASE_OPS[node.op]
    data, control = _split_inputs(node)
    fused = _attr_list_s(node, "fused_ops")
    num_args = node.attr["num_args"].i if "num_args" in node.attr else len(data) - 2
    args = data[2:2 + num_args]
    attrs = {k: node.attr[k] for k in base_attrs if k in node.attr}
    dtype = node.attr["T"]
    out: list = []

    def step(op: str, inputs: list[str], **extra) -> str:
        out.append(new_node(f"{node.name}/{op.lower()}_{len(out)}", op, inputs, **extra))
        return out[-1].name

    current = step(base_op, data[:2] + control, **attrs)
    fmt = {"data_format": node.attr["data_format"]} if "data_format" in node.attr else {}
    for op in fused:
        if op == "BiasAdd":
            current = step("BiasAdd", [current, args.pop(0)], T=dtype, **fmt)
        elif op == "Add":  # residual add fused by grappler
            current = step("AddV2", [current, args.pop(0)], T=dtype)
        elif op == "FusedBatchNorm":
            scale, offset, mean, var = (args.pop(0) for _ in range(4))
            eps = node.attr["epsilon"].f if "epsilon" in node.attr else 1e-3
            current = step("FusedBatchNormV3", [current, scale, offset, mean, var], T=dtype,
                           U=dtype, epsilon=eps, is_training=False, **fmt)
        elif op in _PLAIN_ACTIVATIONS:
            current = step(op, [current], T=dtype)
        elif op == "LeakyRelu":
            alpha = node.attr["leakyrelu_alpha"].f if "leakyrelu_alpha" in node.attr else 0.2
            current = step("LeakyRelu", [current], T=dtype, alpha=alpha)
        elif op == "Prelu":
            out.extend(_prelu_nodes(f"{node.name}/prelu", current, args.pop(0), dtype, new_node))
            current = out[-1].name
        else:
            raise DetectorError(f"{node.name}: fused op {op!r} of {node.op} is not supported")
    out[-1].name = node.name
    return out


def _prelu_nodes(name: str, x: str, alpha: str, dtype, new_node) -> list:
    """PReLU without a Prelu op: relu(x) - alpha * relu(-x)."""
    neg = new_node(f"{name}/neg", "Neg", [x], T=dtype)
    neg_relu = new_node(f"{name}/neg_relu", "Relu", [neg.name], T=dtype)
    scaled = new_node(f"{name}/scaled", "Mul", [alpha, neg_relu.name], T=dtype)
    pos = new_node(f"{name}/pos", "Relu", [x], T=dtype)
    return [neg, neg_relu, scaled, pos, new_node(f"{name}/out", "Sub", [pos.name, scaled.name], T=dtype)]


# --------------------------------------------------------------------------- graph

def load_graph_def(model_json: Path, batch: bool = True):
    """The model's GraphDef with weights filled and fused ops rewritten into standard ops.

    With ``batch``, a leading dimension of 1 on the Placeholders is relaxed to unknown, so
    that graphs exported with a fixed batch of 1 can take any batch where their ops allow.
    """
    import tensorflow as tf
    from google.protobuf import json_format
    from tensorflow.core.framework import attr_value_pb2, node_def_pb2

    model_json = Path(model_json)
    spec = json.loads(model_json.read_text())
    if spec.get("format") not in (None, "graph-model"):
        raise DetectorError(f"{model_json.name} is a {spec.get('format')!r}, not a TF.js graph model")
    graph_def = tf.compat.v1.GraphDef()
    json_format.ParseDict(spec["modelTopology"], graph_def, ignore_unknown_fields=True)
    weights = _read_weights(model_json, spec.get("weightsManifest", []))

    def new_node(name: str, op: str, inputs: list[str], **attrs) -> Any:
        node = node_def_pb2.NodeDef(name=name, op=op, input=inputs)
        for key, value in attrs.items():
            if isinstance(value, attr_value_pb2.AttrValue):
                node.attr[key].CopyFrom(value)
            elif isinstance(value, bool):
                node.attr[key].b = value
            elif isinstance(value, float):
                node.attr[key].f = value
            else:
                raise TypeError(f"attr {key}={value!r}")
        return node

    nodes = []
    for node in graph_def.node:
        node.device = ""  # TF.js exports pin nodes to the exporter's devices
        if node.op == "Const" and node.name in weights:
            value = weights.pop(node.name)
            dtype = tf.as_dtype(node.attr["dtype"].type) if "dtype" in node.attr else None
            node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value, dtype=dtype))
        if node.op in _BASE_OPS:
            nodes.extend(_unfuse(node, new_node))
        elif node.op == "Prelu":  # TF.js' converter folds the PReLU pattern into this op
            data, control = _split_inputs(node)
            nodes.extend(_prelu_nodes(node.name + "/prelu", data[0], data[1], node.attr["T"], new_node))
            nodes[-1].name = node.name
            nodes[-1].input.extend(control)
        else:
            if batch and node.op == "Placeholder" and "shape" in node.attr:
                dims = node.attr["shape"].shape.dim
                if len(dims) > 0 and dims[0].size == 1:
                    dims[0].size = -1
            nodes.append(node)
    if weights:
        log.warning("%s: weights without a Const node: %s", model_json.name, sorted(weights)[:5])
    result = tf.compat.v1.GraphDef()
    result.versions.CopyFrom(graph_def.versions)
    result.library.CopyFrom(graph_def.library)
    result.node.extend(nodes)  # copies, so the parsed graph_def can go
    return result


def _tensor_name(name: str) -> str:
    return name if ":" in name else name + ":0"


def graph_function(graph_def, input_name: str, outputs: list[str]):
    """A concrete function ``images -> list of outputs`` over the pruned graph."""
    import tensorflow as tf

    wrapped = tf.compat.v1.wrap_function(lambda: tf.compat.v1.import_graph_def(graph_def, name=""), [])
    graph = wrapped.graph
    try:
        return wrapped.prune(graph.get_tensor_by_name(_tensor_name(input_name)),
                             [graph.get_tensor_by_name(_tensor_name(o)) for o in outputs])
    except KeyError as exc:
        raise DetectorError(f"tensor not in the graph: {exc}") from exc


def _serving_module(fn, outputs: list[str], shape: list[int | None], in_dtype):
    """The tf.Module saved as the SavedModel: one ``serve`` function, float32 in, dict out."""
    import tensorflow as tf

    module = tf.Module()

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32, name="images")])
    def serve(images):
        results = fn(tf.cast(images, in_dtype))
        return {name: tf.identity(t, name=_safe(name)) for name, t in zip(outputs, results)}

    module.serve = serve
    return module


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c == "_" else "_" for c in name)


def convert_graph_model(model_json: Path, out_dir: Path, outputs: list[str], input_name: str,
                        batch: bool = True) -> Path:
    """Convert a TF.js graph model into a SavedModel at ``out_dir`` and return ``out_dir``.

    The SavedModel's ``serve`` function (also the ``serving_default`` signature) takes a
    float32 ``[N, H, W, C]`` batch and returns a dict ``{output name: tensor}``. With
    ``batch``, N is left dynamic if a trial run at batch 2 succeeds; otherwise it stays at
    the graph's own batch. ``out_dir`` is replaced as a whole, so a crash mid-way never
    leaves a half-written model behind.
    """
    import tensorflow as tf

    model_json, out_dir = Path(model_json), Path(out_dir)
    graph_def = load_graph_def(model_json, batch=batch)
    placeholder = next((n for n in graph_def.node if n.name == input_name.split(":")[0]), None)
    if placeholder is None or placeholder.op != "Placeholder":
        raise DetectorError(f"{model_json.name}: no Placeholder named {input_name}")
    in_dtype = tf.as_dtype(placeholder.attr["dtype"].type)
    shape = [None if d.size < 0 else int(d.size) for d in placeholder.attr["shape"].shape.dim]
    fn = graph_function(graph_def, input_name, outputs)

    dynamic = batch and shape and shape[0] is None
    if dynamic:
        probe = tf.zeros([2] + [d or 32 for d in shape[1:]], in_dtype)
        try:  # the topology may still hard-code a batch of 1 (e.g. a Reshape)
            fn(probe)
        except (tf.errors.OpError, ValueError) as exc:
            log.warning("%s does not batch (%s); keeping batch 1", model_json.name,
                        str(exc).splitlines()[0][:200])
            graph_def = load_graph_def(model_json, batch=False)
            fn = graph_function(graph_def, input_name, outputs)
            shape[0], dynamic = 1, False

    module = _serving_module(fn, outputs, shape, in_dtype)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out_dir.name + ".", dir=out_dir.parent))
    tmp.chmod(0o755)  # mkdtemp's 0700 would hide a shared model cache from other users
    try:
        tf.saved_model.save(module, str(tmp), signatures={"serving_default": module.serve})
        (tmp / "argus_tfjs.json").write_text(json.dumps({
            "source": model_json.name, "converter_version": CONVERTER_VERSION,
            "input": input_name, "input_shape": shape, "outputs": outputs,
            "dynamic_batch": bool(dynamic),
        }, indent=2))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir
