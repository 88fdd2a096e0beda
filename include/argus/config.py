"""Where Argus keeps things and which loopback ports its local stack uses.

Everything is derived from three roots, each overridable from the environment so that a
test run, a CI clone and a user's checkout never step on each other:

- ``ARGUS_HOME``: the project checkout (dags/, plugins/, jobs/, include/jvm/ poms);
- ``ARGUS_STATE_DIR``: per-stack state (configs, data, logs, pid files), default ``.argus/``;
- ``ARGUS_CACHE_DIR``: downloads that can be rebuilt (Maven jars, models), default ``.cache/``.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

#: where the Airflow api-server serves the Argus console (plugins/argus_console_plugin.py)
CONSOLE_PATH = "/argus"

#: Default loopback ports. Each can be moved with ``ARGUS_PORT_<NAME>`` (e.g. ARGUS_PORT_KAFKA).
DEFAULT_PORTS: dict[str, int] = {
    "kafka": 9092,
    "kafka_controller": 9093,
    "zookeeper": 2181,
    "hbase_master": 16000,
    "hbase_regionserver": 16020,
    "hbase_master_info": 16010,  # master web UI
    "hbase_regionserver_info": 16030,  # region server web UI and /jmx (region metrics)
    "hbase_thrift": 9090,
    "hbase_thrift2": 9091,
    "hdfs_namenode": 8020,
    "hdfs_http": 9870,
    "hdfs_datanode": 9866,
    "hdfs_datanode_http": 9864,
    "hdfs_datanode_ipc": 9867,
    "hdfs_datanode_proxy": 9869,
    "spark_master": 7077,
    "spark_master_ui": 8081,
    "spark_worker_ui": 8082,
    "airflow_api": 8080,
}


def _project_root() -> Path:
    env = os.environ.get("ARGUS_HOME")
    if env:
        return Path(env).resolve()
    # include/argus/config.py -> the checkout root (editable install, the supported layout)
    here = Path(__file__).resolve().parents[2]
    if (here / "pyproject.toml").exists():
        return here
    return Path.cwd().resolve()


@dataclass(frozen=True)
class ArgusConfig:
    """Paths and ports of one local Argus stack."""

    root: Path = field(default_factory=_project_root)
    host: str = field(default_factory=lambda: os.environ.get("ARGUS_BIND_HOST", "127.0.0.1"))

    @cached_property
    def state_dir(self) -> Path:
        return Path(os.environ.get("ARGUS_STATE_DIR", self.root / ".argus")).resolve()

    @cached_property
    def cache_dir(self) -> Path:
        return Path(os.environ.get("ARGUS_CACHE_DIR", self.root / ".cache")).resolve()

    @cached_property
    def ports(self) -> dict[str, int]:
        return {
            name: int(os.environ.get(f"ARGUS_PORT_{name.upper()}", default))
            for name, default in DEFAULT_PORTS.items()
        }

    @cached_property
    def detector_plugins(self) -> tuple[str, ...]:
        """Modules that register detector backends of their own (``ARGUS_DETECTOR_PLUGINS``,
        comma-separated; see argus.detect.backends)."""
        return tuple(m.strip() for m in os.environ.get("ARGUS_DETECTOR_PLUGINS", "").split(",") if m.strip())

    @property
    def cameras_file(self) -> Path:
        """The camera registry: ``ARGUS_CAMERAS``, else ``cameras.yaml`` at the project root."""
        return Path(os.environ.get("ARGUS_CAMERAS") or self.root / "cameras.yaml")

    def port(self, name: str) -> int:
        return self.ports[name]

    # Folders inside the state dir, one per concern.
    def log_file(self, service: str) -> Path:
        return self.state_dir / "logs" / f"{service}.log"

    def pid_file(self, service: str) -> Path:
        return self.state_dir / "run" / f"{service}.pid"

    def conf_dir(self, service: str) -> Path:
        return self.state_dir / "conf" / service

    def data_dir(self, service: str) -> Path:
        return self.state_dir / "data" / service

    def jar_dir(self, pom: str) -> Path:
        return self.cache_dir / "jvm" / pom / "lib"

    @property
    def venv_python(self) -> Path:
        """The interpreter Spark executors and Airflow tasks must use (the one running Argus)."""
        return Path(os.environ.get("PYSPARK_PYTHON", sys.executable))

    # Service endpoints that clients (tests, jobs, DAG connections) use.
    @property
    def kafka_bootstrap(self) -> str:
        return f"{self.host}:{self.port('kafka')}"

    @property
    def hdfs_uri(self) -> str:
        return f"hdfs://{self.host}:{self.port('hdfs_namenode')}"

    @property
    def webhdfs_url(self) -> str:
        return f"http://{self.host}:{self.port('hdfs_http')}"

    @property
    def spark_master_url(self) -> str:
        return f"spark://{self.host}:{self.port('spark_master')}"

    @property
    def airflow_url(self) -> str:
        return f"http://{self.host}:{self.port('airflow_api')}"

    @property
    def console_url(self) -> str:
        """The Argus console, served by the Airflow api-server."""
        return f"{self.airflow_url}{CONSOLE_PATH}"


# ---- settings read from the environment (the one place Argus reads it) ----
# Each ARGUS_* variable has one function here; the rest of the engine calls them. Third-party
# programs' own variables (Keras's KERAS_BACKEND, CUDA's CUDA_VISIBLE_DEVICES, XLA's, JAVA_HOME
# for the JVMs) are read where those libraries need them, and said so there.

def variable(name: str) -> str | None:
    """A variable the user named in a config file (a model's ``weights_env``); None if unset or empty."""
    return os.environ.get(name) or None


def child_environment(**extra: str) -> dict[str, str]:
    """The environment a process Argus starts inherits: this one's, plus ``extra``."""
    return {**os.environ, **extra}


def model_registry_file() -> Path | None:
    """``ARGUS_MODEL_REGISTRY``: a registry file merged over the built-in ``models.yaml``."""
    value = os.environ.get("ARGUS_MODEL_REGISTRY")
    return Path(value) if value else None


def doe_dir() -> Path | None:
    """``ARGUS_DOE_DIR``: where sweeps are kept (default: ``<state dir>/doe``)."""
    value = os.environ.get("ARGUS_DOE_DIR")
    return Path(value) if value else None


def airflow_password() -> str | None:
    """``ARGUS_AIRFLOW_PASSWORD``: the local Airflow's admin password (default: a random one)."""
    return os.environ.get("ARGUS_AIRFLOW_PASSWORD") or None


def java_home() -> str | None:
    """``JAVA_HOME``, the JDK the stack's JVMs run on (default: ``java`` on PATH)."""
    return os.environ.get("JAVA_HOME") or None


def spark_worker_resources(default_cores: int) -> tuple[str, str]:
    """(cores, memory) the local Spark worker offers: ``ARGUS_SPARK_WORKER_CORES`` (default:
    ``default_cores``) and ``ARGUS_SPARK_WORKER_MEMORY`` (default 6g)."""
    return (os.environ.get("ARGUS_SPARK_WORKER_CORES", str(default_cores)),
            os.environ.get("ARGUS_SPARK_WORKER_MEMORY", "6g"))


def cpu_threads_override() -> int | None:
    """``ARGUS_CPU_THREADS``: CPU threads of each model process (default: the Spark task's cores)."""
    value = os.environ.get("ARGUS_CPU_THREADS")
    return max(1, int(value)) if value else None


def set_cpu_threads(threads: int) -> None:
    """Set ``ARGUS_CPU_THREADS`` for this process and the workers it starts (benchmarks)."""
    os.environ["ARGUS_CPU_THREADS"] = str(threads)


def gpu_memory_mb() -> int | None:
    """``ARGUS_GPU_MEMORY_MB``: GPU memory each model process may take (default: on demand)."""
    value = os.environ.get("ARGUS_GPU_MEMORY_MB")
    return int(value) if value else None


def mixed_precision() -> bool:
    """``ARGUS_MIXED_PRECISION=1``: run models in float16 where the device supports it."""
    return os.environ.get("ARGUS_MIXED_PRECISION", "0") == "1"


def map_tiles_url() -> str | None:
    """``ARGUS_MAP_TILES``: a tile server for the console's map (``https://tiles.example/{z}/{x}/{y}.png``);
    without it the map shows the offline base map only."""
    return os.environ.get("ARGUS_MAP_TILES") or None


def airflow_connection_in_environment(conn_id: str) -> bool:
    """Whether connection ``conn_id`` is defined as an ``AIRFLOW_CONN_<ID>`` variable."""
    return f"AIRFLOW_CONN_{conn_id.upper()}" in os.environ
