"""Darknet (YOLOv2) networks in Keras 3: ``.cfg`` parser, model builder, ``.weights``
reader/writer and the region-layer decode.

Supported sections are those of YOLOv2 and YOLOv2-tiny: ``[net]``, ``[convolutional]``
(batch_normalize, filters, size, stride, pad/padding, activation linear/leaky/relu/logistic),
``[maxpool]``, ``[route]``, ``[reorg]`` and a final ``[region]``. Anything else is refused
with an error naming the section, its line and the file.

Semantics follow Darknet (pjreddie) and, where they differ in details, OpenCV's importer
(``cv2.dnn.readNetFromDarknet``), which the unit tests compare against numerically:

- maxpool pads ``padding = size - 1`` by default, ``padding // 2`` before and the rest
  after, with -inf; output ``(in + padding - size) // stride + 1`` (a 2×2 stride-1 pool
  keeps 13×13).
- reorg is Darknet's ``reorg_cpu(..., forward=0)``, *not* ``space_to_depth``: the NCHW
  buffer [C, H, W] is read as [C/s², H·s, W·s], gathered as
  ``out[(dy·s + dx)·C/s² + c, j, i] = in_view[c, j·s + dy, i·s + dx]`` into a
  [C, H, W] buffer, which the next layer reads as [C·s², H/s, W/s].
- batch norm at inference: ``gamma · (x - mean) / (sqrt(var) + 1e-6) + beta``, folded
  into the convolution when the weights are loaded.

The Keras model takes NHWC float32 images in [0, 1] (RGB, as Darknet reads images) and
returns the raw input of the region layer, NHWC [N, gh, gw, num·(coords + 1 + classes)].
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from argus.detect.types import DetectorError

BN_EPSILON = 1e-6  # Darknet's normalize_cpu: (x - mean) / (sqrt(var) + .000001f)
LEAKY_SLOPE = 0.1
ACTIVATIONS = ("linear", "leaky", "relu", "logistic")
_SECTION_ALIASES = {
    "net": "net", "network": "net",
    "convolutional": "convolutional", "conv": "convolutional",
    "maxpool": "maxpool", "max": "maxpool",
    "route": "route", "reorg": "reorg", "region": "region",
}


class DarknetError(DetectorError):
    """A Darknet cfg or weights file that cannot be used; the message names the file."""


# --------------------------------------------------------------------------- cfg


@dataclass
class Section:
    """One ``[type]`` block of a cfg file, as written (keys and values stripped of whitespace)."""

    type: str
    options: dict[str, str]
    line: int
    index: int = -1  # Darknet layer index (the [net] section has -1)


@dataclass
class Layer:
    """A resolved layer: its parameters and output shape (height, width, channels)."""

    index: int
    type: str
    section: Section
    out_shape: tuple[int, int, int]
    in_shape: tuple[int, int, int] | None = None
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.type}_{self.index}"


@dataclass
class Region:
    anchors: np.ndarray  # [num, 2] (w, h) in grid cells
    classes: int
    coords: int
    num: int
    softmax: bool
    thresh: float
    grid: tuple[int, int]  # (gh, gw)


@dataclass
class DarknetNetwork:
    path: Path
    net: Section
    layers: list[Layer]
    region: Region | None
    input_shape: tuple[int, int, int]  # (height, width, channels)

    @property
    def height(self) -> int:
        return self.input_shape[0]

    @property
    def width(self) -> int:
        return self.input_shape[1]

    @property
    def convolutions(self) -> list[Layer]:
        return [layer for layer in self.layers if layer.type == "convolutional"]

    def parameter_count(self) -> int:
        """float32 values in the weights file after its header."""
        return sum(_conv_value_count(layer) for layer in self.convolutions)


def _conv_value_count(layer: Layer) -> int:
    p = layer.params
    n, c, k = p["filters"], layer.in_shape[2], p["size"]
    return n * (4 if p["batch_normalize"] else 1) + n * c * k * k


def _read_sections(path: Path, text: str) -> list[Section]:
    sections: list[Section] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = "".join(raw.split())  # Darknet strips every blank, inside values too
        if not line or line[0] in "#;":
            continue
        if line[0] == "[":
            if not line.endswith("]"):
                raise DarknetError(f"{path}:{lineno}: malformed section header {raw.strip()!r}")
            sections.append(Section(line[1:-1].lower(), {}, lineno))
            continue
        if not sections:
            raise DarknetError(f"{path}:{lineno}: option {raw.strip()!r} before the first section")
        key, sep, value = line.partition("=")
        if not sep or not key:
            raise DarknetError(f"{path}:{lineno}: expected key=value, got {raw.strip()!r}")
        sections[-1].options[key] = value
    return sections


class _Options:
    """Typed access to a section's options with errors naming file, line and key."""

    def __init__(self, path: Path, section: Section):
        self.path, self.section = path, section

    def where(self) -> str:
        return f"{self.path}:{self.section.line}: [{self.section.type}]"

    def _get(self, key: str, default: Any, conv):
        value = self.section.options.get(key)
        if value is None:
            if default is _REQUIRED:
                raise DarknetError(f"{self.where()} needs {key}=")
            return default
        try:
            return conv(value)
        except ValueError:
            raise DarknetError(f"{self.where()} has an invalid {key}={value!r}") from None

    def int(self, key: str, default: Any = None) -> int:
        return self._get(key, default, int)

    def float(self, key: str, default: Any = None) -> float:
        return self._get(key, default, float)

    def str(self, key: str, default: Any = None) -> str:
        return self._get(key, default, str)

    def ints(self, key: str, default: Any = None) -> list[int]:
        return self._get(key, default, lambda v: [int(x) for x in v.split(",") if x])

    def floats(self, key: str, default: Any = None) -> list[float]:
        return self._get(key, default, lambda v: [float(x) for x in v.split(",") if x])

    def fail(self, message: str) -> DarknetError:
        return DarknetError(f"{self.where()} {message}")


_REQUIRED = object()


def parse_cfg(path: str | Path, text: str | None = None) -> DarknetNetwork:
    """Parse and resolve a Darknet cfg (shapes of every layer, route targets, region).

    :param text: the cfg's content, when it is not read from ``path`` (``path`` then only
        names it in errors).
    """
    path = Path(path)
    if text is None:
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise DarknetError(f"Darknet cfg {path} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise DarknetError(f"cannot read Darknet cfg {path}: {exc}") from exc
    sections = _read_sections(path, text)
    if not sections:
        raise DarknetError(f"{path} has no sections: not a Darknet cfg")
    for section in sections:
        kind = _SECTION_ALIASES.get(section.type)
        if kind is None:
            raise DarknetError(
                f"{path}:{section.line}: unsupported section [{section.type}] (Argus reads the YOLOv2 "
                f"sections: net, convolutional, maxpool, route, reorg, region)")
        section.type = kind
    net, body = sections[0], sections[1:]
    if net.type != "net":
        raise DarknetError(f"{path}:{net.line}: the first section must be [net], not [{net.type}]")
    opts = _Options(path, net)
    shape = (opts.int("height", 0), opts.int("width", 0), opts.int("channels", 0))
    if min(shape) <= 0:
        raise opts.fail(f"needs positive height, width and channels (got {shape[0]}, {shape[1]}, {shape[2]})")
    input_shape = shape

    layers: list[Layer] = []
    region: Region | None = None
    for index, section in enumerate(body):
        section.index = index
        opts = _Options(path, section)
        if section.type == "net":
            raise opts.fail("appears twice")
        if region is not None:
            raise opts.fail("follows [region]: the region layer must be the last one")
        if section.type == "region":
            region = _region(opts, shape)
            layers.append(Layer(index, "region", section, shape, shape, {}))
            continue
        builder = {"convolutional": _convolutional, "maxpool": _maxpool, "route": _route, "reorg": _reorg}
        layer = builder[section.type](opts, index, shape, layers)
        layers.append(layer)
        shape = layer.out_shape
    if not layers:
        raise DarknetError(f"{path} has no layers after [net]")
    return DarknetNetwork(path, net, layers, region, input_shape)


def _convolutional(opts: _Options, index: int, shape, layers) -> Layer:
    h, w, c = shape
    filters = opts.int("filters", 1)
    size = opts.int("size", 1)
    stride = opts.int("stride", 1)
    pad = opts.int("pad", 0)
    padding = size // 2 if pad else opts.int("padding", 0)
    activation = opts.str("activation", "logistic")  # Darknet's default
    bn = opts.int("batch_normalize", 0) != 0
    for key in ("groups", "dilation"):
        if opts.int(key, 1) != 1:
            raise opts.fail(f"has {key}={opts.int(key)}: only 1 is supported")
    for key in ("binary", "xnor"):
        if opts.int(key, 0):
            raise opts.fail(f"has {key}=1: binary convolutions are not supported")
    if activation not in ACTIVATIONS:
        raise opts.fail(f"has unsupported activation={activation} (supported: {', '.join(ACTIVATIONS)})")
    if filters <= 0 or size <= 0 or stride <= 0 or padding < 0:
        raise opts.fail(f"has invalid filters/size/stride/padding ({filters}/{size}/{stride}/{padding})")
    out_h = (h + 2 * padding - size) // stride + 1
    out_w = (w + 2 * padding - size) // stride + 1
    if out_h <= 0 or out_w <= 0:
        raise opts.fail(f"of size {size} does not fit its {h}x{w} input")
    return Layer(index, "convolutional", opts.section, (out_h, out_w, filters), shape,
                 dict(filters=filters, size=size, stride=stride, padding=padding, activation=activation,
                      batch_normalize=bn))


def _maxpool(opts: _Options, index: int, shape, layers) -> Layer:
    h, w, c = shape
    stride = opts.int("stride", 1)
    size = opts.int("size", stride)
    padding = opts.int("padding", size - 1)
    if size <= 0 or stride <= 0 or padding < 0:
        raise opts.fail(f"has invalid size/stride/padding ({size}/{stride}/{padding})")
    out_h = (h + padding - size) // stride + 1
    out_w = (w + padding - size) // stride + 1
    if out_h <= 0 or out_w <= 0:
        raise opts.fail(f"of size {size} does not fit its {h}x{w} input")
    return Layer(index, "maxpool", opts.section, (out_h, out_w, c), shape,
                 dict(size=size, stride=stride, padding=padding))


def _route(opts: _Options, index: int, shape, layers) -> Layer:
    refs = opts.ints("layers", _REQUIRED)
    if not refs:
        raise opts.fail("has an empty layers=")
    sources = []
    for ref in refs:
        src = index + ref if ref < 0 else ref
        if not 0 <= src < index:
            raise opts.fail(f"refers to layer {ref} (= {src}), which is not an earlier layer (0..{index - 1})")
        sources.append(src)
    shapes = [layers[s].out_shape for s in sources]
    if len({s[:2] for s in shapes}) != 1:
        raise opts.fail(f"concatenates layers {sources} of different sizes {[s[:2] for s in shapes]}")
    return Layer(index, "route", opts.section, (shapes[0][0], shapes[0][1], sum(s[2] for s in shapes)), None,
                 dict(sources=sources))


def _reorg(opts: _Options, index: int, shape, layers) -> Layer:
    h, w, c = shape
    stride = opts.int("stride", 1)
    if opts.int("reverse", 0) or opts.int("flatten", 0) or opts.int("extra", 0):
        raise opts.fail("with reverse/flatten/extra is not supported")
    if stride <= 0 or h % stride or w % stride or c % (stride * stride):
        raise opts.fail(f"with stride={stride} needs height and width divisible by {stride} and channels by "
                        f"{stride * stride}; the input is {h}x{w}x{c}")
    return Layer(index, "reorg", opts.section, (h // stride, w // stride, c * stride * stride), shape,
                 dict(stride=stride))


def _region(opts: _Options, shape) -> Region:
    classes = opts.int("classes", 20)
    coords = opts.int("coords", 4)
    num = opts.int("num", 1)
    softmax = opts.int("softmax", 0) != 0
    anchors = opts.floats("anchors", [0.5] * (2 * num))
    if coords != 4:
        raise opts.fail(f"has coords={coords}: only 4 is supported")
    if not softmax or opts.str("tree", "") or opts.str("map", ""):
        raise opts.fail("without softmax=1 (or with a softmax tree, YOLO9000) is not supported")
    if len(anchors) != 2 * num:
        raise opts.fail(f"has {len(anchors)} anchor values for num={num} (expected {2 * num})")
    expected = num * (coords + 1 + classes)
    if shape[2] != expected:
        raise opts.fail(f"expects {expected} input channels (num={num} x (coords={coords} + 1 + classes={classes})),"
                        f" but the layer before it gives {shape[2]}")
    return Region(np.asarray(anchors, np.float32).reshape(num, 2), classes, coords, num, softmax,
                  opts.float("thresh", 0.5), (shape[0], shape[1]))


# --------------------------------------------------------------------------- Keras model


@functools.cache
def _keras_layers():
    """Custom layers, defined lazily so that parsing cfgs does not import Keras."""
    import keras
    from keras import ops

    class DarknetReorg(keras.layers.Layer):
        """Darknet's reorg (see the module docstring); NHWC in and out."""

        def __init__(self, stride: int, **kwargs):
            super().__init__(**kwargs)
            self.stride = stride

        def call(self, x):
            s = self.stride
            _, h, w, c = x.shape
            x = ops.transpose(x, (0, 3, 1, 2))                     # NCHW, the buffer Darknet sees
            x = ops.reshape(x, (-1, c // (s * s), h, s, w, s))     # read as [C/s², H·s, W·s]
            x = ops.transpose(x, (0, 3, 5, 1, 2, 4))               # [dy, dx, c, j, i]
            x = ops.reshape(x, (-1, c * s * s, h // s, w // s))    # next layer reads [C·s², H/s, W/s]
            return ops.transpose(x, (0, 2, 3, 1))

        def compute_output_shape(self, shape):
            s = self.stride
            return (shape[0], shape[1] // s, shape[2] // s, shape[3] * s * s)

        def get_config(self):
            return {**super().get_config(), "stride": self.stride}

    class DarknetMaxPool(keras.layers.Layer):
        """Max pooling with Darknet's padding: ``padding // 2`` before, the rest after (-inf)."""

        def __init__(self, size: int, stride: int, pads: tuple[int, int, int, int], **kwargs):
            super().__init__(**kwargs)
            self.size, self.stride, self.pads = size, stride, tuple(pads)
            self._pool = keras.layers.MaxPooling2D(size, stride, padding="valid", dtype=self.dtype_policy)

        def call(self, x):
            top, bottom, left, right = self.pads
            if any(self.pads):
                x = ops.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=float("-inf"))
            return self._pool(x)

        def compute_output_shape(self, shape):
            top, bottom, left, right = self.pads
            oh = (shape[1] + top + bottom - self.size) // self.stride + 1
            ow = (shape[2] + left + right - self.size) // self.stride + 1
            return (shape[0], oh, ow, shape[3])

        def get_config(self):
            return {**super().get_config(), "size": self.size, "stride": self.stride, "pads": list(self.pads)}

    return DarknetReorg, DarknetMaxPool


def _pool_pads(in_size: int, out_size: int, size: int, stride: int, padding: int) -> tuple[int, int]:
    """Padding before/after one axis so that a 'valid' pool yields exactly Darknet's output."""
    before = padding // 2
    after = max(0, (out_size - 1) * stride + size - before - in_size)
    return before, after


def build_model(network: DarknetNetwork):
    """The Keras functional model of ``network`` (weights uninitialised: see :func:`load_weights`).

    Input NHWC float32 [N, H, W, C] in [0, 1]; output the last layer before ``[region]``
    (for YOLOv2, the raw [N, gh, gw, num·(5 + classes)] logits), always float32.
    Convolution layers are named ``conv_<darknet index>``, without batch-norm layers: the
    loader folds batch norm into the convolution.
    """
    import keras

    reorg_cls, maxpool_cls = _keras_layers()
    inputs = keras.Input(shape=network.input_shape, name="image")
    outputs: list[Any] = []
    x = inputs
    for layer in network.layers:
        p = layer.params
        if layer.type == "region":
            break
        if layer.type == "convolutional":
            k, s, pad = p["size"], p["stride"], p["padding"]
            if s == 1 and 2 * pad == k - 1:
                conv_padding = "same"
            else:
                conv_padding = "valid"
                if pad:
                    x = keras.layers.ZeroPadding2D(pad, name=f"pad_{layer.index}")(x)
            x = keras.layers.Conv2D(p["filters"], k, strides=s, padding=conv_padding, use_bias=True,
                                    name=f"conv_{layer.index}")(x)
            if p["activation"] == "leaky":
                x = keras.layers.LeakyReLU(negative_slope=LEAKY_SLOPE, name=f"leaky_{layer.index}")(x)
            elif p["activation"] == "relu":
                x = keras.layers.ReLU(name=f"relu_{layer.index}")(x)
            elif p["activation"] == "logistic":
                x = keras.layers.Activation("sigmoid", name=f"logistic_{layer.index}")(x)
        elif layer.type == "maxpool":
            (ih, iw, _), (oh, ow, _) = layer.in_shape, layer.out_shape
            top, bottom = _pool_pads(ih, oh, p["size"], p["stride"], p["padding"])
            left, right = _pool_pads(iw, ow, p["size"], p["stride"], p["padding"])
            x = maxpool_cls(p["size"], p["stride"], (top, bottom, left, right), name=f"maxpool_{layer.index}")(x)
        elif layer.type == "route":
            srcs = [outputs[i] for i in p["sources"]]
            x = srcs[0] if len(srcs) == 1 else keras.layers.Concatenate(axis=-1, name=f"route_{layer.index}")(srcs)
        elif layer.type == "reorg":
            x = reorg_cls(p["stride"], name=f"reorg_{layer.index}")(x)
        outputs.append(x)
    x = keras.layers.Activation("linear", dtype="float32", name="raw")(x)
    model = keras.Model(inputs, x, name=network.path.stem.replace(".", "_") or "darknet")
    model.darknet_network = network
    return model


# --------------------------------------------------------------------------- weights


@dataclass
class ConvWeights:
    """One convolution's parameters as stored by Darknet."""

    biases: np.ndarray                 # [n] (beta with batch norm)
    weights: np.ndarray                # [n, c, k, k]
    scales: np.ndarray | None = None   # gamma
    mean: np.ndarray | None = None
    variance: np.ndarray | None = None

    def folded(self) -> tuple[np.ndarray, np.ndarray]:
        """(Keras kernel [k, k, c, n], bias [n]) with batch norm folded in, as float32."""
        kernel = self.weights.astype(np.float64).transpose(2, 3, 1, 0)
        bias = self.biases.astype(np.float64)
        if self.scales is not None:
            factor = self.scales.astype(np.float64) / (np.sqrt(self.variance.astype(np.float64)) + BN_EPSILON)
            kernel = kernel * factor
            bias = bias - self.mean.astype(np.float64) * factor
        return kernel.astype(np.float32), bias.astype(np.float32)


def _header_size(major: int, minor: int) -> int:
    return 12 + (8 if major * 10 + minor >= 2 else 4)


def read_weights(path: str | Path, network: DarknetNetwork) -> list[ConvWeights]:
    """The convolution parameters of ``network`` from a Darknet ``.weights`` file.

    The file must hold exactly what the cfg needs: a shorter one is truncated, a longer one
    belongs to another cfg; both errors name the file and the expected and actual sizes.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        f = path.open("rb")
    except FileNotFoundError:
        raise DarknetError(f"Darknet weights file {path} does not exist") from None
    except OSError as exc:
        raise DarknetError(f"cannot read Darknet weights file {path}: {exc}") from exc
    with f:
        head = f.read(12)
        if len(head) < 12:
            raise DarknetError(f"Darknet weights file {path} is truncated: {size} bytes, shorter than the "
                               f"12-byte header")
        major, minor, revision = struct.unpack("<3i", head)
        # Darknet files have no magic number: a version (major.minor.revision) far from the
        # real ones (0.1.0, 0.2.0, 0.2.5...) means another format (e.g. an HDF5 or ONNX file)
        if not (0 <= major <= 10000 and 0 <= minor <= 10000 and 0 <= revision <= 1000000):
            raise DarknetError(f"{path} is not a Darknet weights file: its header (version {major}.{minor}."
                               f"{revision}, first bytes {head[:8].hex()}) is not a Darknet version")
        if major > 1000 or minor > 1000:
            raise DarknetError(f"{path} is a transposed Darknet weights file (version {major}.{minor}), "
                               f"which is not supported")
        header = _header_size(major, minor)
        count = network.parameter_count()
        expected = header + 4 * count
        if size != expected:
            what = "is truncated" if size < expected else "is larger than expected (does it belong to this cfg?)"
            raise DarknetError(
                f"Darknet weights file {path} {what}: {network.path.name} needs {expected} bytes "
                f"({header}-byte header + {count} float32 parameters), the file has {size} bytes")
        f.seek(header)
        values = np.fromfile(f, dtype="<f4", count=count)
    if values.size != count:  # the file changed under us
        raise DarknetError(f"Darknet weights file {path} is truncated: read {values.size} of {count} parameters")
    out, offset = [], 0

    def take(n: int) -> np.ndarray:
        nonlocal offset
        chunk = values[offset:offset + n]
        offset += n
        return chunk

    for layer in network.convolutions:
        p = layer.params
        n, c, k = p["filters"], layer.in_shape[2], p["size"]
        biases = take(n)
        scales = mean = variance = None
        if p["batch_normalize"]:
            scales, mean, variance = take(n), take(n), take(n)
        weights = take(n * c * k * k).reshape(n, c, k, k)
        out.append(ConvWeights(biases, weights, scales, mean, variance))
    return out


def load_weights(model, network: DarknetNetwork, path: str | Path) -> None:
    """Set the convolutions of ``model`` (from :func:`build_model`) from a ``.weights`` file."""
    for layer, params in zip(network.convolutions, read_weights(path, network), strict=True):
        if params.variance is not None and np.any(params.variance < 0):
            raise DarknetError(f"Darknet weights file {path} is corrupt: layer {layer.index} has a negative "
                               f"batch-norm variance")
        kernel, bias = params.folded()
        if not (np.all(np.isfinite(kernel)) and np.all(np.isfinite(bias))):
            raise DarknetError(f"Darknet weights file {path} is corrupt: layer {layer.index} has non-finite "
                               f"parameters")
        model.get_layer(f"conv_{layer.index}").set_weights([kernel, bias])


def write_weights(path: str | Path, model_or_layers, rng: np.random.Generator | int | None = None, *,
                  version: tuple[int, int, int] = (0, 2, 0), seen: int = 0, gain: float = 1.0) -> int:
    """Write randomly initialised Darknet weights for a network; returns the file size.

    :param model_or_layers: a :class:`DarknetNetwork`, a model from :func:`build_model`, a
        list of its :class:`Layer`, or a cfg path.
    :param rng: a numpy Generator or seed.
    :param version: header (major, minor, revision); ``seen`` is int64 from version 0.2 on.

    Weights are He-normal (times ``gain``, and halved for the last, linear convolution) so
    that activations neither explode nor vanish through YOLOv2's 23 convolutions; batch norm
    gets gamma in [0.8, 1.2], small beta and mean, variance in [0.5, 1.5].
    """
    if isinstance(model_or_layers, (str, Path)):
        model_or_layers = parse_cfg(model_or_layers)
    network = getattr(model_or_layers, "darknet_network", model_or_layers)
    layers = network.layers if isinstance(network, DarknetNetwork) else list(network)
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    convs = [layer for layer in layers if layer.type == "convolutional"]
    major, minor, revision = version
    with Path(path).open("wb") as f:
        f.write(struct.pack("<3i", major, minor, revision))
        f.write(struct.pack("<q" if major * 10 + minor >= 2 else "<i", seen))
        for i, layer in enumerate(convs):
            p = layer.params
            n, c, k = p["filters"], layer.in_shape[2], p["size"]
            fan_in = c * k * k
            std = gain * np.sqrt(2.0 / ((1 + LEAKY_SLOPE ** 2) * fan_in))
            if i == len(convs) - 1 and p["activation"] == "linear":
                std *= 0.5
            if p["batch_normalize"]:
                parts = [rng.normal(0.0, 0.1, n), rng.uniform(0.8, 1.2, n), rng.normal(0.0, 0.1, n),
                         rng.uniform(0.5, 1.5, n)]
            else:
                parts = [rng.normal(0.0, 0.5, n)]
            parts.append(rng.standard_normal(n * fan_in, dtype=np.float32) * np.float32(std))
            for part in parts:
                np.asarray(part, "<f4").tofile(f)
        return f.tell()


# --------------------------------------------------------------------------- region decode


@dataclass
class RegionOutput:
    """Decoded region layer, cells in OpenCV's/Darknet's order ``(row, col, anchor)``.

    ``xywh``: [N, A, 4] box centre and size, normalised to the input; ``objectness`` [N, A];
    ``class_probs`` [N, A, classes] (softmax); ``scores`` = objectness · class_probs.
    """

    xywh: np.ndarray
    objectness: np.ndarray
    class_probs: np.ndarray

    @property
    def scores(self) -> np.ndarray:
        return self.objectness[..., None] * self.class_probs

    @property
    def xyxy(self) -> np.ndarray:
        xy, wh = self.xywh[..., :2], self.xywh[..., 2:]
        return np.concatenate([xy - wh / 2, xy + wh / 2], axis=-1)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


def region_decode(raw, anchors, classes: int, coords: int = 4) -> RegionOutput:
    """Decode raw region input [N, gh, gw, num·(coords + 1 + classes)] (NHWC) over the batch.

    x = (col + σ(tx)) / gw, y = (row + σ(ty)) / gh, w = e^tw · anchor_w / gw,
    h = e^th · anchor_h / gh, objectness σ(to), classes softmax.
    """
    raw = np.asarray(raw, dtype=np.float32)
    anchors = np.asarray(anchors, np.float32).reshape(-1, 2)
    n, gh, gw, channels = raw.shape
    num = anchors.shape[0]
    if channels != num * (coords + 1 + classes):
        raise ValueError(f"region input has {channels} channels, expected {num} x ({coords} + 1 + {classes})")
    t = raw.reshape(n, gh, gw, num, coords + 1 + classes)
    col = np.arange(gw, dtype=np.float32)[None, None, :, None]
    row = np.arange(gh, dtype=np.float32)[None, :, None, None]
    with np.errstate(over="ignore"):
        x = (col + _sigmoid(t[..., 0])) / gw
        y = (row + _sigmoid(t[..., 1])) / gh
        w = np.exp(t[..., 2]) * anchors[:, 0] / gw
        h = np.exp(t[..., 3]) * anchors[:, 1] / gh
    objectness = _sigmoid(t[..., 4])
    logits = t[..., coords + 1:]
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probs = e / e.sum(axis=-1, keepdims=True)
    cells = gh * gw * num
    return RegionOutput(np.stack([x, y, w, h], axis=-1).reshape(n, cells, 4).astype(np.float32),
                        objectness.reshape(n, cells).astype(np.float32),
                        probs.reshape(n, cells, classes).astype(np.float32))


def nms(boxes: np.ndarray, scores: np.ndarray, score_threshold: float, iou_threshold: float,
        max_detections: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Class-aware greedy NMS of one frame.

    :param boxes: [A, 4] xyxy; :param scores: [A, classes].
    :returns: (box index, class index, score) of the kept detections, best first: a box
        survives unless a better one *of the same class* overlaps it with IoU > ``iou_threshold``.
    """
    if max_detections <= 0:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0, np.float32)
    box_idx, cls_idx = np.nonzero((scores >= score_threshold) & (scores > 0))
    cand = scores[box_idx, cls_idx]
    order = np.argsort(-cand, kind="stable")
    box_idx, cls_idx, cand = box_idx[order], cls_idx[order], cand[order]
    b = boxes[box_idx].astype(np.float64)
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    remaining = np.arange(len(cand))
    kept: list[int] = []
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        while remaining.size and len(kept) < max_detections:
            best, rest = remaining[0], remaining[1:]
            kept.append(best)
            same = rest[cls_idx[rest] == cls_idx[best]]
            if same.size:
                iw = np.minimum(b[same, 2], b[best, 2]) - np.maximum(b[same, 0], b[best, 0])
                ih = np.minimum(b[same, 3], b[best, 3]) - np.maximum(b[same, 1], b[best, 1])
                inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
                iou = inter / (area[same] + area[best] - inter)
                suppressed = same[iou > iou_threshold]
                rest = rest[~np.isin(rest, suppressed)] if suppressed.size else rest
            remaining = rest
    kept_arr = np.asarray(kept, np.int64)
    return box_idx[kept_arr], cls_idx[kept_arr], cand[kept_arr]
