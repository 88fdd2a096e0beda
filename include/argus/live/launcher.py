"""Launching the live detection job (jobs/stream_detect.py) as a supervised process.

The driver runs in client mode (Spark standalone cannot run a Python application in cluster
deploy mode), in its own session so that it outlives whoever launched it: an Airflow task
that defers, a CLI that exits. Which driver runs a query is decided by its lease in HBase
(argus.supervision), not by this process handle.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from argus import process
from argus.config import ArgusConfig
from argus.submit import submit_argv, submit_env


@dataclass
class StreamJobSpec:
    """What the streaming job runs with; defaults fit the local 2-core stack."""

    topic: str = "argus.frames"
    dlq_topic: str = "argus.frames.dlq"
    checkpoint: str | None = None  # default: hdfs://.../argus/checkpoints/<query_name>
    query_name: str = "argus_stream_detect"
    default_model: str = "centernet-coco"
    camera_models: dict[str, str] = field(default_factory=dict)
    batch_size: int = 8
    max_offsets_per_trigger: int = 200
    trigger_seconds: float = 1.0
    starting_offsets: str = "earliest"
    # One executor whose task takes both cores (TensorFlow with 2 threads) drained 0.79 x the
    # bare model on the 2-core stack, two 1-core executors 0.66 (docs/benchmarks.md).
    executors: int = 1
    cores_per_executor: int = 2
    #: cores each task (one Python worker, its TensorFlow threads) takes
    task_cpus: int = 2
    executor_memory: str = "2g"
    tasks_per_gpu: int = 0  # >0: executors take one GPU each and this many tasks share it
    #: the driver's lease on the query lapses this long after its last heartbeat
    lease_ttl_seconds: float = 15.0
    #: failures of the same micro-batch in a row before its failing records are isolated
    #: (argus.supervision.poison)
    poison_after_failures: int = 2

    @property
    def task_slots(self) -> int:
        """Tasks the executors run at once: each micro-batch gets this many."""
        return self.executors * max(1, self.cores_per_executor // self.task_cpus)

    def spark_conf(self) -> dict[str, str]:
        conf = {
            "spark.executor.cores": str(self.cores_per_executor),
            "spark.task.cpus": str(self.task_cpus),
            "spark.cores.max": str(self.executors * self.cores_per_executor),
            "spark.executor.memory": self.executor_memory,
            # tasks of a micro-batch are small: do not wait for locality
            "spark.locality.wait": "0s",
            # hand records to Python in small chunks, so that decoding and detection start
            # while the JVM is still fetching and converting the rest of the range
            "spark.sql.execution.arrow.maxRecordsPerBatch": str(max(16, 2 * self.batch_size)),
            # every micro-batch writes two small checkpoint files to HDFS; closing one often
            # finds the NameNode not yet told of the block, and the client then sleeps 400 ms
            # before asking again: 0.85 s of each batch. Ask again sooner, a few more times.
            "spark.hadoop.dfs.client.block.write.locateFollowingBlock.initial.delay.ms": "20",
            "spark.hadoop.dfs.client.block.write.locateFollowingBlock.retries": "10",
        }
        if self.tasks_per_gpu > 0:
            conf.update({
                "spark.executor.resource.gpu.amount": "1",
                "spark.task.resource.gpu.amount": f"{1 / self.tasks_per_gpu:.4f}",
            })
        return conf

    def checkpoint_location(self, cfg: ArgusConfig) -> str:
        return self.checkpoint or f"{cfg.hdfs_uri}/argus/checkpoints/{self.query_name}"

    def args(self, cfg: ArgusConfig, launch_id: str | None = None) -> list[str]:
        """The application's arguments; ``launch_id`` is recorded in the lease of the driver."""
        checkpoint = self.checkpoint_location(cfg)
        launch = ["--launch-id", launch_id] if launch_id else []
        return ["--bootstrap", cfg.kafka_bootstrap, "--topic", self.topic, "--dlq-topic", self.dlq_topic,
                "--checkpoint", checkpoint, "--query-name", self.query_name,
                "--default-model", self.default_model, "--camera-models", json.dumps(self.camera_models),
                "--batch-size", str(self.batch_size), "--max-offsets", str(self.max_offsets_per_trigger),
                "--trigger-seconds", str(self.trigger_seconds), "--starting-offsets", self.starting_offsets,
                "--tasks", str(self.task_slots),
                "--hbase-host", cfg.host, "--hbase-port", str(cfg.port("hbase_thrift")),
                "--hbase-admin-port", str(cfg.port("hbase_thrift2")),
                "--lease-ttl-seconds", str(self.lease_ttl_seconds),
                "--poison-after-failures", str(self.poison_after_failures), *launch]


class StreamJob:
    """A running streaming job (spark-submit in client mode, its own process group)."""

    def __init__(self, spec: StreamJobSpec, cfg: ArgusConfig | None = None, log_path: Path | None = None):
        self.spec, self.cfg = spec, cfg or ArgusConfig()
        self.log_path = log_path or self.cfg.state_dir / "logs" / f"{spec.query_name}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def application(self) -> Path:
        return self.cfg.root / "jobs" / "stream_detect.py"

    def command(self, launch_id: str | None = None, master: str | None = None) -> list[str]:
        """The spark-submit command line (client mode)."""
        return submit_argv(self.cfg, self.application, self.spec.args(self.cfg, launch_id), master=master,
                           conf=self.spec.spark_conf())

    def environment(self) -> dict[str, str]:
        return {**os.environ, **submit_env(self.cfg)}

    def start(self, launch_id: str | None = None, argv: list[str] | None = None,
              env: dict[str, str] | None = None) -> StreamJob:
        """Start the driver detached (own session, output to :attr:`log_path`).

        :param launch_id: recorded in the driver's lease, so a supervisor recognises its launch.
        :param argv: / :param env: a spark-submit command and its environment built elsewhere
            (e.g. by Airflow's SparkSubmitHook); by default :meth:`command` and :meth:`environment`.
        """
        argv = argv or self.command(launch_id)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("a") as log:
            self.proc = process.spawn_detached(argv, env=env or self.environment(), cwd=self.cfg.root, stdout=log)
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> None:
        if self.proc is not None:
            process.stop_group(self.proc, sig, timeout)

    def kill(self) -> None:
        """SIGKILL the driver's whole process group: a crash, as far as Spark can tell."""
        self.stop(signal.SIGKILL)

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""
