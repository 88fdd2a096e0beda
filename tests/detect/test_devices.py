"""The settings of a model process (CPU threads, framework, GPU memory), and the Keras-built
YOLOv2 on a second Keras 3 backend (JAX on the CPU here; GPU machines without TensorFlow
run it so)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from argus.detect import darknet as dk
from argus.detect.devices import cpu_threads, framework_for, keras_backend, memory_fraction, xla_memory_env
from argus.detect.yolo import YoloBackend, write_cfg

ROOT = Path(__file__).resolve().parents[2]


def test_threads_follow_the_environment_then_the_machine(monkeypatch):
    monkeypatch.setenv("ARGUS_CPU_THREADS", "3")
    assert cpu_threads() == 3
    monkeypatch.setenv("ARGUS_CPU_THREADS", "0")
    assert cpu_threads() == 1
    monkeypatch.delenv("ARGUS_CPU_THREADS")
    assert cpu_threads() == (os.cpu_count() or 1)  # no Spark task in this process


def test_keras_backend_is_found_as_keras_finds_it(monkeypatch, tmp_path):
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert keras_backend() == "tensorflow"  # no setting anywhere
    (tmp_path / "keras.json").write_text(json.dumps({"backend": "torch", "floatx": "float32"}))
    assert keras_backend() == "torch"
    monkeypatch.setenv("KERAS_BACKEND", "jax")  # the environment wins, as in Keras
    assert keras_backend() == "jax"


def test_each_model_family_runs_in_its_framework(monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert framework_for("yolov2") == "jax"  # Keras-built
    for family in ("centernet", "tf-od-api", "blazeface"):  # TensorFlow graphs, whatever Keras runs on
        assert framework_for(family) == "tensorflow"


def test_memory_cap_as_a_fraction_of_the_gpu():
    assert memory_fraction(16000, 143771) == pytest.approx(0.1113, abs=1e-4)
    assert memory_fraction(200_000, 81559) == 1.0  # a cap above the GPU's size is the whole GPU
    assert memory_fraction(4000, None) is None


def test_xla_takes_a_capped_pool_or_grows_on_demand():
    assert xla_memory_env(16000, 80000) == {"XLA_PYTHON_CLIENT_MEM_FRACTION": "0.2"}
    # no cap, or a GPU of unknown size: never JAX's default of 75% of the GPU per process
    assert xla_memory_env(None, 80000) == {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    assert xla_memory_env(16000, None) == {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"}


_ON_JAX = """
import json, sys
import numpy as np
from argus.detect.devices import configure_devices
from argus.detect.yolo import YoloBackend
devices = configure_devices()
backend = YoloBackend("tiny", sys.argv[1], sys.argv[2], ["a", "b"])
frames = list(np.load(sys.argv[3]))
batch, sizes = backend.preprocess(frames)
raw = np.asarray(backend.infer(batch))
np.save(sys.argv[4], raw)
dets = backend.postprocess(raw, sizes, 0.0, 0.45, 5)
print(json.dumps({"backend": devices.backend, "type": type(batch).__module__, "detections": [len(d) for d in dets]}))
"""


def test_yolov2_runs_on_jax_as_on_tensorflow(tmp_path):
    cfg = write_cfg("yolov2-tiny", tmp_path / "tiny.cfg", width=96, height=64, classes=2)
    weights = tmp_path / "tiny.weights"
    dk.write_weights(weights, cfg, rng=3)
    rng = np.random.default_rng(0)
    frames = np.stack([rng.integers(0, 255, (120, 160, 3), dtype=np.uint8) for _ in range(3)])
    np.save(tmp_path / "frames.npy", frames)

    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "include"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", _ON_JAX, str(cfg), str(weights), str(tmp_path / "frames.npy"),
                           str(tmp_path / "jax.npy")], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["backend"] == "jax"
    assert report["type"].startswith("jax")  # resized in JAX: on a GPU the batch stays there

    on_tf = YoloBackend("tiny", cfg, weights, ["a", "b"])
    batch, sizes = on_tf.preprocess(list(frames))
    expected = np.asarray(on_tf.infer(batch))
    got = np.load(tmp_path / "jax.npy")
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-3 * np.abs(expected).max())
    assert report["detections"] == [len(d) for d in on_tf.postprocess(expected, sizes, 0.0, 0.45, 5)]
    assert min(report["detections"]) > 0
