"""Spark standalone: one master and one worker, run from the pyspark wheel's own jars.

The wheel has ``bin/spark-class`` but no ``sbin/start-master.sh``: the daemons are started
with spark-class directly. ``local[*]`` needs none of this and stays available.
"""

from __future__ import annotations

import json
import os
import urllib.request

from argus import config
from argus.submit import spark_home, submit_env
from argus.stack.service import Service, StackContext, listening


#: task slots the local worker offers per core (``ARGUS_SPARK_WORKER_CORES`` overrides the total)
SLOTS_PER_CORE = 2


def worker_slots() -> int:
    """Slots the local Spark worker offers: :data:`SLOTS_PER_CORE` per core of this machine."""
    return SLOTS_PER_CORE * (os.cpu_count() or 2)


def spark_env(ctx: StackContext) -> dict[str, str]:
    """Environment for the Spark daemons: spark-submit's, plus their state dirs."""
    cfg = ctx.cfg
    data = cfg.data_dir("spark")
    return {
        **submit_env(cfg),
        "SPARK_LOCAL_DIRS": str(data / "local"),
        "SPARK_WORKER_DIR": str(data / "work"),
        "SPARK_LOG_DIR": str(cfg.state_dir / "logs"),
        "SPARK_DAEMON_MEMORY": "384m",
    }


def master_json(ctx: StackContext) -> dict | None:
    url = f"http://{ctx.cfg.host}:{ctx.cfg.port('spark_master_ui')}/json/"
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return json.load(resp)
    except (OSError, ValueError):
        return None


class SparkMasterService(Service):
    name = "spark-master"
    marker = "org.apache.spark.deploy.master.Master"
    group = "spark"
    ports = ("spark_master", "spark_master_ui")
    startup_timeout = 120.0
    data = ("spark",)

    def url(self, cfg):
        return f"http://{cfg.host}:{cfg.port('spark_master_ui')}"

    def env(self, ctx: StackContext) -> dict[str, str]:
        # the REST submission server only serves cluster deploy mode, which standalone
        # Spark does not offer to Python applications: keep its port closed
        return {**spark_env(ctx), "SPARK_MASTER_OPTS": "-Dspark.master.rest.enabled=false"}

    def argv(self, ctx: StackContext) -> list[str]:
        cfg = ctx.cfg
        return [str(spark_home() / "bin" / "spark-class"), self.marker,
                "--host", cfg.host, "--port", str(cfg.port("spark_master")),
                "--webui-port", str(cfg.port("spark_master_ui"))]

    def ready(self, ctx: StackContext) -> bool:
        return listening(ctx.cfg.host, ctx.cfg.port("spark_master")) and master_json(ctx) is not None


class SparkWorkerService(Service):
    name = "spark-worker"
    marker = "org.apache.spark.deploy.worker.Worker"
    group = "spark"
    ports = ("spark_worker_ui",)
    requires = ("spark-master",)
    startup_timeout = 120.0

    def url(self, cfg):
        return f"http://{cfg.host}:{cfg.port('spark_worker_ui')}"

    def env(self, ctx: StackContext) -> dict[str, str]:
        return spark_env(ctx)

    def argv(self, ctx: StackContext) -> list[str]:
        cfg = ctx.cfg
        # slots, not cores: every Argus job caps itself with spark.cores.max, and two slots per
        # core let executors share cores (the DOE's 3 executors on 2 cores, as the talk's shared
        # a GPU) and a reprocessing job start while the streaming job holds the machine's cores
        cores, memory = config.spark_worker_resources(worker_slots())
        return [str(spark_home() / "bin" / "spark-class"), self.marker,
                "--host", cfg.host, "--cores", cores, "--memory", memory,
                "--webui-port", str(cfg.port("spark_worker_ui")), cfg.spark_master_url]

    def ready(self, ctx: StackContext) -> bool:
        state = master_json(ctx)
        return bool(state) and any(
            w.get("state") == "ALIVE" and w.get("host") == ctx.cfg.host for w in state.get("workers", [])
        )
