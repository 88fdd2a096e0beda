"""CPU threads and GPU sharing for the process that runs a model.

Must run before TensorFlow executes anything: thread pools and GPU memory settings are
fixed at first use. Spark executors call it once per Python worker.

- CPU: ``ARGUS_CPU_THREADS``, else the cores Spark gave this task, else all cores.
- GPU: only the GPU Spark assigned to the task is made visible; ``ARGUS_GPU_MEMORY_MB``
  caps this process's share (several processes then fit on one GPU), otherwise memory
  grows on demand instead of TensorFlow's default of grabbing it all.
- ``ARGUS_MIXED_PRECISION=1``: float16 compute for Keras models (GPUs with tensor cores).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

log = logging.getLogger(__name__)
_configured: DeviceConfig | None = None


@dataclass(frozen=True)
class DeviceConfig:
    cpu_threads: int
    gpus: tuple[str, ...]
    gpu_memory_mb: int | None
    mixed_precision: bool


def _spark_task():
    try:
        from pyspark import TaskContext

        return TaskContext.get()
    except ImportError:
        return None


def cpu_threads() -> int:
    env = os.environ.get("ARGUS_CPU_THREADS")
    if env:
        return max(1, int(env))
    task = _spark_task()
    if task is not None:
        try:
            return max(1, int(task.cpus()))
        except Exception:  # older Spark: no cpus()
            pass
    return os.cpu_count() or 1


def configure_devices() -> DeviceConfig:
    """Apply thread and GPU settings once per process; later calls return the first result."""
    global _configured
    if _configured is not None:
        return _configured
    task = _spark_task()
    if task is not None and "gpu" in (task.resources() or {}):
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(task.resources()["gpu"].addresses)
    import tensorflow as tf

    threads = cpu_threads()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(min(2, threads))
    except RuntimeError:  # TensorFlow already initialised in this process: keep its pools
        log.warning("TensorFlow was initialised before argus configured it; thread settings unchanged")
    memory = os.environ.get("ARGUS_GPU_MEMORY_MB")
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
    mixed = os.environ.get("ARGUS_MIXED_PRECISION", "0") == "1"
    if mixed:
        import keras

        keras.mixed_precision.set_global_policy("mixed_float16")
    _configured = DeviceConfig(threads, tuple(g.name for g in gpus), int(memory) if memory else None, mixed)
    return _configured
