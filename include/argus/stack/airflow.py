"""Airflow 3 on SQLite: api-server, scheduler, dag-processor and triggerer, loading the
project's dags/ and plugins/, with the connections for the local services created.

Secrets (fernet key, JWT secret, the admin password) are generated on first start and kept
in the state dir with owner-only permissions; nothing secret is in the code or the DAGs.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import urllib.request
from pathlib import Path

from argus import config
from argus.config import ArgusConfig
from argus.stack.jvm import SetupError
from argus.stack.service import Service, StackContext, listening

ADMIN_USER = "admin"
SQLITE_BUSY_TIMEOUT_S = 60


def airflow_home(cfg: ArgusConfig) -> Path:
    return cfg.state_dir / "airflow"


def _secrets(cfg: ArgusConfig) -> dict[str, str]:
    """Per-stack secrets, made once (so restarts keep sessions, tokens and encrypted fields)."""
    path = airflow_home(cfg) / "secrets.json"
    if path.exists():
        return json.loads(path.read_text())
    from cryptography.fernet import Fernet

    values = {
        "fernet_key": Fernet.generate_key().decode(),
        "secret_key": secrets.token_urlsafe(32),
        "jwt_secret": secrets.token_urlsafe(64),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(json.dumps(values))
    return values


def _passwords_file(cfg: ArgusConfig) -> Path:
    return airflow_home(cfg) / "simple_auth_manager_passwords.json"


def airflow_login(cfg: ArgusConfig) -> tuple[str, str] | None:
    """(user, password) of the local Airflow UI, once the stack has made them."""
    try:
        return ADMIN_USER, json.loads(_passwords_file(cfg).read_text())[ADMIN_USER]
    except (FileNotFoundError, KeyError, ValueError):
        return None


def _ensure_password(cfg: ArgusConfig) -> None:
    path = _passwords_file(cfg)
    if airflow_login(cfg):
        return
    password = config.airflow_password() or secrets.token_urlsafe(12)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(json.dumps({ADMIN_USER: password}))


def airflow_env(cfg: ArgusConfig) -> dict[str, str]:
    """The environment every Airflow process of the local stack runs with."""
    home = airflow_home(cfg)
    keys = _secrets(cfg)
    api = cfg.airflow_url
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(cfg.root / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(cfg.root / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        # 2 cores: a few concurrent tasks at most
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__FERNET_KEY": keys["fernet_key"],
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(_passwords_file(cfg)),
        # SQLite lets one writer in at a time and makes the others wait its busy timeout,
        # 5 s by default; on 2 cores, while the JVMs start, the dag-processor's and the
        # scheduler's writes outlast that, and the API answered a trigger with a 500
        # "Database error" (seen in CI). Waiting longer is all a single-host SQLite can do.
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}?timeout={SQLITE_BUSY_TIMEOUT_S}",
        "AIRFLOW__API__HOST": cfg.host,
        "AIRFLOW__API__PORT": str(cfg.port("airflow_api")),
        "AIRFLOW__API__BASE_URL": api,
        "AIRFLOW__API__SECRET_KEY": keys["secret_key"],
        "AIRFLOW__API_AUTH__JWT_SECRET": keys["jwt_secret"],
        # new DAG files show up within seconds, not the default 5 minutes
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
        # new and modified DAG files are parsed at the next refresh anyway; re-parsing every
        # file every 30 s (the default) took ~15% of a core here, which benchmarks felt
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "300",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(cfg.state_dir / "logs" / "airflow-tasks"),
        # the Argus engine and services, as seen from tasks
        "ARGUS_HOME": str(cfg.root),
        "ARGUS_STATE_DIR": str(cfg.state_dir),
        "PYSPARK_PYTHON": str(cfg.venv_python),
    }


def local_connections(cfg: ArgusConfig) -> dict[str, dict]:
    """The Airflow connections of the local stack, in ``airflow connections import`` format.

    The one place they are declared; deployments elsewhere define the same ids.
    """
    return {
        "argus_hbase": {"conn_type": "hbase", "host": cfg.host, "port": cfg.port("hbase_thrift"),
                        "description": "HBase Thrift v1 server (happybase)",
                        "extra": json.dumps({"transport": "buffered", "protocol": "binary",
                                             "admin_port": cfg.port("hbase_thrift2"),
                                             "info_port": cfg.port("hbase_regionserver_info"),
                                             "hbase_conf_dir": str(cfg.conf_dir("hbase"))})},
        "argus_kafka": {"conn_type": "kafka", "description": "Kafka brokers",
                        "extra": json.dumps({"bootstrap.servers": cfg.kafka_bootstrap})},
        "argus_spark": {"conn_type": "spark", "host": f"spark://{cfg.host}", "port": cfg.port("spark_master"),
                        "description": "Spark standalone master",
                        "extra": json.dumps({"deploy-mode": "client"})},
        "argus_hdfs": {"conn_type": "webhdfs", "host": cfg.host, "port": cfg.port("hdfs_http"),
                       "description": f"HDFS through WebHDFS; Spark uses {cfg.hdfs_uri}",
                       "extra": json.dumps({"namenode_uri": cfg.hdfs_uri})},
    }


def _airflow() -> str:
    return str(Path(sys.executable).parent / "airflow")


def _health(cfg: ArgusConfig) -> dict | None:
    try:
        with urllib.request.urlopen(f"{cfg.airflow_url}/api/v2/monitor/health", timeout=3) as resp:
            return json.load(resp)
    except (OSError, ValueError):
        return None


class _AirflowComponent(Service):
    group = "airflow"
    command: str = ""
    health_key: str = ""
    requires = ("airflow-api-server",)
    startup_timeout = 180.0
    # setproctitle rewrites the command line ("airflow api_server -- host:..."), keeping this word
    marker = "airflow"

    def env(self, ctx: StackContext) -> dict[str, str]:
        return airflow_env(ctx.cfg)

    def argv(self, ctx: StackContext) -> list[str]:
        return [_airflow(), self.command]

    def ready(self, ctx: StackContext) -> bool:
        health = _health(ctx.cfg)
        return bool(health) and health.get(self.health_key, {}).get("status") == "healthy"


class AirflowApiServerService(_AirflowComponent):
    name = "airflow-api-server"
    command = "api-server"
    ports = ("airflow_api",)
    requires = ()
    data = ("airflow",)
    startup_timeout = 240.0

    def url(self, cfg):
        return cfg.airflow_url

    def reset(self, cfg: ArgusConfig) -> None:
        import shutil

        # the metadata DB and logs go; the secrets and the admin password stay
        shutil.rmtree(airflow_home(cfg) / "logs", ignore_errors=True)
        (airflow_home(cfg) / "airflow.db").unlink(missing_ok=True)

    def prepare(self, ctx: StackContext) -> None:
        cfg = ctx.cfg
        _ensure_password(cfg)
        env = config.child_environment(**airflow_env(cfg))
        log = cfg.log_file(self.name)
        log.parent.mkdir(parents=True, exist_ok=True)
        conns = airflow_home(cfg) / "connections.json"
        conns.write_text(json.dumps(local_connections(cfg), indent=2))
        with log.open("a") as out:
            for argv in ([_airflow(), "db", "migrate"],
                         [_airflow(), "connections", "import", "--overwrite", str(conns)]):
                out.write(f"\n==== argus: {' '.join(argv)}\n")
                out.flush()
                proc = subprocess.run(argv, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=600,
                                      cwd=airflow_home(cfg))
                if proc.returncode != 0:
                    raise SetupError(f"airflow: `{' '.join(argv[1:3])}` failed (exit {proc.returncode}); log: {log}")

    def ready(self, ctx: StackContext) -> bool:
        if not listening(ctx.cfg.host, ctx.cfg.port("airflow_api")):
            return False
        health = _health(ctx.cfg)
        return bool(health) and health.get("metadatabase", {}).get("status") == "healthy"


class _LogServingComponent(_AirflowComponent):
    # Airflow's serve-logs sub-process binds every interface (hard-coded in 3.3). Everything
    # here shares one machine and one log folder, from which the api-server reads task
    # logs directly, so it is not started: nothing of Argus listens beyond loopback.
    def argv(self, ctx: StackContext) -> list[str]:
        return [*super().argv(ctx), "--skip-serve-logs"]


class AirflowSchedulerService(_LogServingComponent):
    name = "airflow-scheduler"
    command = "scheduler"
    health_key = "scheduler"


class AirflowDagProcessorService(_AirflowComponent):
    name = "airflow-dag-processor"
    command = "dag-processor"
    health_key = "dag_processor"


class AirflowTriggererService(_LogServingComponent):
    name = "airflow-triggerer"
    command = "triggerer"
    health_key = "triggerer"


AIRFLOW_SERVICES: tuple[Service, ...] = (
    AirflowApiServerService(),
    AirflowSchedulerService(),
    AirflowDagProcessorService(),
    AirflowTriggererService(),
)
