"""Launching the live detection job (jobs/stream_detect.py) as a supervised process.

The driver runs in client mode (Spark standalone cannot run a Python application in cluster
deploy mode), in its own session so that it outlives whoever launched it: an Airflow task
that defers, a CLI that exits. Which driver runs a query is decided by its lease in HBase
(argus.supervision), not by this process handle.
"""

from __future__ import annotations

import json
import signal
import subprocess
from dataclasses import asdict, field, replace
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, TypeAdapter
from pydantic.dataclasses import dataclass

from argus import config, process
from argus.config import ArgusConfig
from argus.detect.detector import default_model_name
from argus.endpoints import Endpoints
from argus.live.message import DLQ_TOPIC, FRAMES_TOPIC
from argus.store.crops import DEFAULT_CROP_PX, DEFAULT_LIVE_VIEW_PX
from argus.submit import submit_argv, submit_env


TOPIC_PATTERN = r"^[A-Za-z0-9._-]{1,249}$"  # Kafka's own rule for a topic name
#: a Spark memory size such as ``2g``
MEMORY_PATTERN = r"^[1-9][0-9]*[mgMG]$"
MAX_EXECUTORS = 64


def _setting(description: str, **constraints):
    return Field(description=description, **constraints)


@dataclass
class StreamJobSpec:
    """What the streaming job runs with: the one definition of its settings. Defaults fit the
    local 2-core stack. The DAG's Params are made from it (:func:`job_schema`), the launcher
    hands it whole to ``jobs/stream_detect.py`` (``--spec``), which makes the executors'
    :class:`~argus.live.pipeline.PipelineConfig` from it. Constructing one validates it."""

    topic: Annotated[str, _setting("Kafka topic of the frames", pattern=TOPIC_PATTERN)] = FRAMES_TOPIC
    dlq_topic: Annotated[str, _setting("dead-letter topic for rejected frames", pattern=TOPIC_PATTERN)] = DLQ_TOPIC
    checkpoint: Annotated[str | None, _setting(
        "checkpoint location; null: hdfs://<namenode>/argus/checkpoints/<query_name>",
        pattern=r"^(hdfs|file)://\S+$|^/\S+$")] = None
    query_name: Annotated[str, _setting("streaming query name: one lease, one status row, one checkpoint",
                                        pattern=r"^[A-Za-z0-9_]{1,64}$")] = "argus_stream_detect"
    default_model: Annotated[str, _setting("model of the cameras not in camera_models", min_length=1)] = field(
        default_factory=default_model_name)
    camera_models: Annotated[dict[str, str], _setting(
        "camera id (from the camera registry) or pattern with * -> model; other cameras run the default model"
    )] = field(default_factory=dict)
    batch_size: Annotated[int, _setting("frames per detector call", ge=1, le=64)] = 8
    crop_px: Annotated[int, _setting(
        "a crop JPEG of each detection is stored (c:jpg), at most this many pixels a side; 0: none",
        ge=0, le=512)] = DEFAULT_CROP_PX
    live_view_px: Annotated[int, _setting(
        "each camera's newest frame is kept once a second (argus:live, the console's live wall), at most this "
        "wide; 0: not kept", ge=0, le=1920)] = DEFAULT_LIVE_VIEW_PX
    max_offsets_per_trigger: Annotated[int, _setting("most Kafka records per micro-batch", ge=1, le=100_000)] = 200
    trigger_seconds: Annotated[float, _setting("micro-batch trigger interval (s)", ge=0.2, le=60)] = 1.0
    starting_offsets: Annotated[Literal["earliest", "latest"], _setting(
        "where a query without a checkpoint starts")] = "earliest"
    # One executor whose task takes both cores (TensorFlow with 2 threads) drained 0.79 x the
    # bare model on the 2-core stack, two 1-core executors 0.66 (docs/benchmarks.md).
    executors: Annotated[int, _setting("Spark executors", ge=1, le=MAX_EXECUTORS)] = 1
    cores_per_executor: Annotated[int, _setting("cores of each executor", ge=1, le=64)] = 2
    task_cpus: Annotated[int, _setting("cores of each Spark task (TensorFlow threads); at most cores_per_executor",
                                       ge=1, le=64)] = 2
    executor_memory: Annotated[str, _setting("memory of each executor, e.g. 2g", pattern=MEMORY_PATTERN)] = "2g"
    tasks_per_gpu: Annotated[int, _setting("tasks sharing one GPU per executor; 0: no GPU", ge=0, le=8)] = 0
    lease_ttl_seconds: Annotated[float, _setting(
        "the driver is taken for dead this long after its last heartbeat", ge=3, le=300)] = 15.0
    poison_after_failures: Annotated[int, _setting(
        "failures of the same micro-batch in a row before the records that fail it are isolated and "
        "dead-lettered (argus.supervision.poison)", ge=1, le=10)] = 2
    tracking: Annotated[bool, _setting(
        "follow objects per camera: a second streaming query in the same driver tracks each camera's "
        "detections (d:tid, argus:tracks), its state in the checkpoint")] = False
    tracking_partitions: Annotated[int, _setting(
        "state partitions of the tracking query (cameras are spread over them; fixed by its checkpoint's "
        "first run)", ge=1, le=200)] = 4
    detections_topic: Annotated[str | None, _setting(
        "Kafka topic the detected frames go to for the tracker; null: <topic>.detections",
        pattern=TOPIC_PATTERN)] = None

    def __post_init__(self):
        if self.task_cpus > self.cores_per_executor:
            raise ValueError(f"task_cpus ({self.task_cpus}) must not exceed cores_per_executor "
                             f"({self.cores_per_executor})")

    @classmethod
    def from_json(cls, text: str) -> StreamJobSpec:
        return cls(**json.loads(text))

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @property
    def tracking_topic(self) -> str | None:
        """Where detected frames go for the tracker (None when tracking is off)."""
        return (self.detections_topic or f"{self.topic}.detections") if self.tracking else None

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

    def checkpoint_location(self, endpoints: Endpoints) -> str:
        return self.checkpoint or f"{endpoints.hdfs_uri}/argus/checkpoints/{self.query_name}"

    def args(self, endpoints: Endpoints, launch_id: str | None = None) -> list[str]:
        """The application's arguments: this spec whole (its checkpoint resolved) and where the
        services are; ``launch_id`` is recorded in the lease of the driver."""
        spec = replace(self, checkpoint=self.checkpoint_location(endpoints))
        launch = ["--launch-id", launch_id] if launch_id else []
        return ["--spec", spec.to_json(), "--endpoints", endpoints.to_json(), *launch]


def job_schema(cls) -> dict:
    """The JSON schema of a job spec class (a property per setting, with its constraints and
    description): what the DAG Params are made from."""
    return TypeAdapter(cls).json_schema()


class StreamJob:
    """A running streaming job (spark-submit in client mode, its own process group)."""

    def __init__(self, spec: StreamJobSpec, cfg: ArgusConfig | None = None, log_path: Path | None = None,
                 endpoints: Endpoints | None = None):
        """:param endpoints: where the services are; default: the local stack's (``cfg``)."""
        self.spec, self.cfg = spec, cfg or ArgusConfig()
        self.endpoints = endpoints or Endpoints.from_config(self.cfg)
        self.log_path = log_path or self.cfg.state_dir / "logs" / f"{spec.query_name}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def application(self) -> Path:
        return self.cfg.root / "jobs" / "stream_detect.py"

    def command(self, launch_id: str | None = None, master: str | None = None) -> list[str]:
        """The spark-submit command line (client mode)."""
        return submit_argv(self.cfg, self.application, self.spec.args(self.endpoints, launch_id),
                           master=master or self.endpoints.spark_master, conf=self.spec.spark_conf())

    def environment(self) -> dict[str, str]:
        return config.child_environment(**submit_env(self.cfg))

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
