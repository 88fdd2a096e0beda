"""Detector backends by model family: each registers itself with :func:`register`, and a
model of the registry (``models.yaml``) is loaded by its family's factory.

Families outside Argus come from plugin modules named in ``ARGUS_DETECTOR_PLUGINS``
(:attr:`argus.config.ArgusConfig.detector_plugins`), imported once before the first lookup;
a plugin module calls :func:`register` at import.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from argus.detect.types import Backend, DetectorError

if TYPE_CHECKING:
    from argus.detect.registry import ModelSpec

Factory = Callable[["ModelSpec", int], Backend]


@dataclass(frozen=True)
class BackendFamily:
    """:param factory: (model spec, CPU threads) -> loaded backend.
    :param framework: what it runs in (``tensorflow``, or ``keras`` for the Keras backend)."""

    factory: Factory
    framework: str


_FAMILIES: dict[str, BackendFamily] = {}
_plugins_loaded = False
_lock = threading.Lock()


def register(family: str, framework: str = "tensorflow") -> Callable[[Factory], Factory]:
    """Decorator: ``factory`` loads the models of ``family``."""
    def add(factory: Factory) -> Factory:
        _FAMILIES[family] = BackendFamily(factory, framework)
        return factory
    return add


def _load_plugins() -> None:
    global _plugins_loaded
    with _lock:
        if _plugins_loaded:
            return
        _plugins_loaded = True
        from argus.config import ArgusConfig

        for module in ArgusConfig().detector_plugins:
            try:
                importlib.import_module(module)
            except Exception as exc:  # name the plugin: a typo must not look like a bad model file
                raise DetectorError(f"detector plugin {module!r} (ARGUS_DETECTOR_PLUGINS) failed to import: "
                                    f"{type(exc).__name__}: {exc}") from exc


def families() -> tuple[str, ...]:
    _load_plugins()
    return tuple(_FAMILIES)


def family(name: str) -> BackendFamily:
    _load_plugins()
    try:
        return _FAMILIES[name]
    except KeyError:
        raise DetectorError(f"no backend for family {name!r} (known: {', '.join(_FAMILIES)})") from None


# ---- the families that ship with Argus ----
@register("centernet")
def _centernet(spec: ModelSpec, threads: int) -> Backend:
    from argus.detect.centernet import CenterNetBackend, ensure_centernet
    from argus.detect.detector import models_dir

    return CenterNetBackend(ensure_centernet(models_dir()), threads=threads)


@register("tf-od-api")
def _ssd(spec: ModelSpec, threads: int) -> Backend:
    from argus.detect.detector import model_files
    from argus.detect.ssd import SsdBackend

    (graph,) = model_files(spec).values()
    return SsdBackend(spec.name, graph, spec.classes, spec.input_size)


@register("blazeface")
def _blazeface(spec: ModelSpec, threads: int) -> Backend:
    from argus.detect.blazeface import BlazeFaceBackend
    from argus.detect.detector import model_files

    (tflite,) = model_files(spec).values()
    return BlazeFaceBackend(spec.name, tflite, spec.classes, spec.input_size, spec.options["anchors"], threads)


@register("yolov2", framework="keras")
def _yolov2(spec: ModelSpec, threads: int) -> Backend:
    from argus.detect.detector import darknet_files
    from argus.detect.yolo import YoloBackend

    cfg, weights = darknet_files(spec)
    return YoloBackend(spec.name, cfg, weights, list(spec.classes), threads=threads)
