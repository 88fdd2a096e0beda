"""CPU threads and GPU sharing for the process that runs a model.

Must run before the framework executes anything: thread pools and GPU memory settings are
fixed at first use. Spark executors call it once per Python worker.

- Framework: TensorFlow for the bundled graph models; the Keras-built YOLOv2 runs on the Keras 3
  backend Keras is set to (``KERAS_BACKEND``, else ``keras.json``: ``jax``, ``torch``, ...).
- CPU: ``ARGUS_CPU_THREADS``, else the cores Spark gave this task, else all cores.
- GPU: only the GPU Spark assigned to the task is made visible; ``ARGUS_GPU_MEMORY_MB``
  caps this process's share (several processes then fit on one GPU), otherwise memory
  grows on demand instead of the framework's default of grabbing it all (TensorFlow, JAX).
- ``ARGUS_MIXED_PRECISION=1``: float16 compute for Keras models (GPUs with tensor cores).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

from argus import config

log = logging.getLogger(__name__)
_configured: dict[str, DeviceConfig] = {}  # by framework: one process can hold TF graphs and a JAX model


@dataclass(frozen=True)
class DeviceConfig:
    cpu_threads: int
    gpus: tuple[str, ...]
    gpu_memory_mb: int | None
    mixed_precision: bool
    backend: str = "tensorflow"


def _spark_task():
    try:
        from pyspark import TaskContext

        return TaskContext.get()
    except ImportError:
        return None


def cpu_threads() -> int:
    threads = config.cpu_threads_override()
    if threads:
        return threads
    task = _spark_task()
    if task is not None:
        try:
            return max(1, int(task.cpus()))
        except Exception:  # older Spark: no cpus()
            pass
    return os.cpu_count() or 1


def keras_backend() -> str:
    """The Keras 3 backend this process runs models with, found as Keras finds it:
    ``KERAS_BACKEND``, else ``backend`` in ``$KERAS_HOME/keras.json`` (``~/.keras``), else
    TensorFlow."""
    name = os.environ.get("KERAS_BACKEND", "")  # Keras's own variables, read as Keras reads them
    if not name:
        home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
        try:
            with open(os.path.join(home, "keras.json")) as f:
                name = str(json.load(f).get("backend", ""))
        except (OSError, ValueError, AttributeError):
            name = ""
    return name or "tensorflow"


def gpu_total_mb(index: str = "0") -> int | None:
    """Total memory of one GPU in MiB, from ``nvidia-smi`` (None where it cannot tell)."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits",
                              "-i", index], capture_output=True, text=True, timeout=20, check=True).stdout
        return int(out.split()[0])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


#: what :func:`gpu_usage` asks nvidia-smi for, in its order
GPU_QUERY = ("index", "name", "utilization.gpu", "memory.used", "memory.total")


def parse_gpu_usage(csv_text: str) -> list[dict[str, Any]]:
    """nvidia-smi's ``--query-gpu`` CSV (:data:`GPU_QUERY`, no header, no units) as one dict
    per device; a value nvidia-smi cannot tell (``[N/A]``) is None."""
    def number(text: str) -> float | None:
        try:
            return float(text)
        except ValueError:
            return None

    out = []
    for line in csv_text.strip().splitlines():
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != len(GPU_QUERY):
            continue
        out.append({"index": cells[0], "name": cells[1], "utilization_pct": number(cells[2]),
                    "memory_used_mb": number(cells[3]), "memory_total_mb": number(cells[4])})
    return out


def gpu_usage(timeout_s: float = 5.0) -> list[dict[str, Any]] | None:
    """Utilization and memory of each GPU of this host, from ``nvidia-smi``; None where the
    host has no nvidia-smi (no GPU to show), and raises ``RuntimeError`` where it fails."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(["nvidia-smi", f"--query-gpu={','.join(GPU_QUERY)}", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=timeout_s, check=True).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise RuntimeError(f"nvidia-smi failed: {exc}") from None
    return parse_gpu_usage(out)


def memory_fraction(memory_mb: int, total_mb: int | None) -> float | None:
    """``ARGUS_GPU_MEMORY_MB`` as the fraction of the GPU that JAX and PyTorch take (None: unknown)."""
    if not total_mb or total_mb <= 0:
        return None
    return round(min(1.0, max(memory_mb, 1) / total_mb), 4)


def _first_visible_gpu() -> str:
    # CUDA's own variable: which GPUs this process sees
    return (os.environ.get("CUDA_VISIBLE_DEVICES") or "0").split(",")[0].strip() or "0"


def _configure_tensorflow(threads: int, memory: int | None) -> tuple[str, ...]:
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(min(2, threads))
    except RuntimeError:  # TensorFlow already initialised in this process: keep its pools
        log.warning("TensorFlow was initialised before argus configured it; thread settings unchanged")
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            if memory:
                tf.config.set_logical_device_configuration(
                    gpu, [tf.config.LogicalDeviceConfiguration(memory_limit=int(memory))])
            else:
                tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:
            log.warning("GPU %s already initialised; memory settings unchanged", gpu.name)
    return tuple(g.name for g in gpus)


def xla_memory_env(memory_mb: int | None, total_mb: int | None) -> dict[str, str]:
    """The XLA client settings for a JAX process: a pool of ``memory_mb`` when the GPU's size
    is known, else memory taken on demand (JAX's default takes 75% of the GPU up front)."""
    fraction = memory_fraction(memory_mb, total_mb) if memory_mb else None
    if fraction is not None:
        return {"XLA_PYTHON_CLIENT_MEM_FRACTION": str(fraction)}
    return {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"}


def _configure_jax(memory: int | None) -> tuple[str, ...]:
    memory_mb = int(memory) if memory else None
    settings = xla_memory_env(memory_mb, gpu_total_mb(_first_visible_gpu()) if memory_mb else None)
    if memory_mb and "XLA_PYTHON_CLIENT_MEM_FRACTION" not in settings:
        log.warning("ARGUS_GPU_MEMORY_MB=%s: the GPU's size is unknown (nvidia-smi); JAX takes memory on demand",
                    memory)
    if "XLA_CLIENT_MEM_FRACTION" in os.environ:  # set by hand (jaxlib refuses both names at once)
        settings.pop("XLA_PYTHON_CLIENT_MEM_FRACTION", None)
    for name, value in settings.items():  # read when XLA's GPU client starts (first JAX op), not at import
        os.environ.setdefault(name, value)
    # CPU threads are XLA's own choice here: JAX is for GPU machines, where they matter little
    import jax

    return tuple(str(d) for d in jax.devices() if d.platform == "gpu")


def _configure_torch(threads: int, memory: int | None) -> tuple[str, ...]:
    import torch

    torch.set_num_threads(threads)
    if not torch.cuda.is_available():
        return ()
    gpus = tuple(f"cuda:{i}" for i in range(torch.cuda.device_count()))
    if memory:
        for i in range(len(gpus)):
            total = torch.cuda.get_device_properties(i).total_memory // 2**20
            torch.cuda.set_per_process_memory_fraction(memory_fraction(int(memory), total), i)
    return gpus


def framework_for(family: str) -> str:
    """The framework a model family runs in, as its backend registered it
    (:mod:`argus.detect.backends`): the Keras backend for the Keras-built YOLOv2, TensorFlow
    for the graph models (CenterNet, SSD, BlazeFace)."""
    from argus.detect.backends import family as backend_family

    framework = backend_family(family).framework
    return keras_backend() if framework == "keras" else framework


def configure_devices(framework: str | None = None) -> DeviceConfig:
    """Apply thread and GPU settings for ``framework`` (default: the Keras backend) once per
    process; later calls for the same framework return the first result."""
    framework = framework or keras_backend()
    if framework in _configured:
        return _configured[framework]
    task = _spark_task()
    if task is not None and "gpu" in (task.resources() or {}):
        # the frameworks read it when they start: the GPU Spark gave this task is the only one they see
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(task.resources()["gpu"].addresses)
    threads = cpu_threads()
    memory = config.gpu_memory_mb()
    if framework == "jax":
        gpus = _configure_jax(memory)
    elif framework == "torch":
        gpus = _configure_torch(threads, memory)
    else:
        gpus = _configure_tensorflow(threads, memory)
    mixed = config.mixed_precision()
    if mixed:
        import keras

        keras.mixed_precision.set_global_policy("mixed_float16")
    _configured[framework] = DeviceConfig(threads, gpus, int(memory) if memory else None, mixed, framework)
    return _configured[framework]
