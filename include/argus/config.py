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
