"""Launching archive reprocessing (jobs/batch_reprocess.py) on the Spark cluster."""

from __future__ import annotations

import json
import subprocess
from dataclasses import asdict, field, replace
from pathlib import Path
from typing import Annotated

from pydantic import Field
from pydantic.dataclasses import dataclass

from argus import config, process
from argus.archive.layout import ARCHIVE_ROOT
from argus.config import ArgusConfig
from argus.detect.detector import default_model_name
from argus.endpoints import Endpoints
from argus.store.crops import DEFAULT_CROP_PX
from argus.live.launcher import MAX_EXECUTORS, MEMORY_PATTERN
from argus.submit import SubmitResult, parse_result_line, submit, submit_argv, submit_env

JOB = Path("jobs") / "batch_reprocess.py"


DATE_PATTERN = r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"


@dataclass
class ReprocessJobSpec:
    """One reprocessing run: the one definition of the archive job's settings (the DAG's
    Params, the CLI and ``jobs/batch_reprocess.py --spec`` are made from it; constructing one
    validates it). Each executor runs one task at a time with ``cores_per_executor``
    TensorFlow threads, so ``executors`` is the run's parallelism.
    """

    archive_root: Annotated[str | None, Field(
        description="archive root URL; empty: hdfs://<namenode>/argus/archive",
        pattern=r"^(hdfs|file)://\S+$")] = None
    since: Annotated[str | None, Field(description="first day (YYYY-MM-DD, UTC); empty: unbounded",
                                       pattern=DATE_PATTERN)] = None
    until: Annotated[str | None, Field(description="last day, inclusive; empty: unbounded",
                                       pattern=DATE_PATTERN)] = None
    cameras: Annotated[tuple[str, ...], Field(description="camera ids; empty: every archived camera")] = ()
    model: Annotated[str, Field(description="Detection model of the model registry", min_length=1)] = field(
        default_factory=default_model_name)
    rate_hz: Annotated[float, Field(description="decoding rate (frames per second of video)", gt=0, le=60)] = 1.0
    window_s: Annotated[float, Field(description="segment length (s): the unit of work and resume",
                                     ge=1, le=3600)] = 10.0
    batch_size: Annotated[int, Field(description="frames per detector call", ge=1, le=64)] = 8
    crop_px: Annotated[int, Field(
        description="a crop JPEG of each detection is stored (c:jpg), at most this many pixels a side; 0: none",
        ge=0, le=512)] = DEFAULT_CROP_PX
    executors: Annotated[int, Field(description="Spark executors (one core each)", ge=1, le=MAX_EXECUTORS)] = 2
    cores_per_executor: Annotated[int, Field(description="cores of each executor", ge=1, le=64)] = 1
    executor_memory: Annotated[str, Field(description="memory of each executor, e.g. 2g",
                                          pattern=MEMORY_PATTERN)] = "2g"
    resume: Annotated[bool, Field(description="skip segments this model and rate already finished")] = True
    progress_s: Annotated[float, Field(description="interval of the progress lines (s)", gt=0)] = 5.0

    def __post_init__(self):
        if self.window_s < 1 / self.rate_hz:
            raise ValueError(f"segment window {self.window_s}s is shorter than one sampling interval")

    def root(self, endpoints: Endpoints | None) -> str:
        """The archive root: the spec's, else the stack's HDFS archive (``endpoints`` needed then)."""
        if self.archive_root:
            return self.archive_root
        if endpoints is None:
            raise ValueError("no archive_root and no endpoints to find HDFS by")
        return f"{endpoints.hdfs_uri}{ARCHIVE_ROOT}"

    @classmethod
    def from_json(cls, text: str) -> ReprocessJobSpec:
        return cls(**json.loads(text))

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    def spark_conf(self) -> dict[str, str]:
        return {
            "spark.executor.cores": str(self.cores_per_executor),
            "spark.task.cpus": str(self.cores_per_executor),
            "spark.cores.max": str(self.executors * self.cores_per_executor),
            "spark.executor.memory": self.executor_memory,
            "spark.locality.wait": "0s",
            # start only when every executor is up, so that the warm-up loads a model on each
            "spark.scheduler.minRegisteredResourcesRatio": "1.0",
            "spark.scheduler.maxRegisteredResourcesWaitingTime": "120s",
            # a segment is minutes of work at most; a failed one is retried, then reported
            "spark.task.maxFailures": "2",
        }

    def args(self, endpoints: Endpoints) -> list[str]:
        """The application's arguments: this spec whole (its root resolved) and where the services are."""
        spec = replace(self, archive_root=self.root(endpoints))
        return ["--spec", spec.to_json(), "--endpoints", endpoints.to_json()]

    def argv(self, cfg: ArgusConfig, endpoints: Endpoints | None = None) -> list[str]:
        """The spark-submit command; :param endpoints: default: the local stack's (``cfg``)."""
        endpoints = endpoints or Endpoints.from_config(cfg)
        return submit_argv(cfg, cfg.root / JOB, self.args(endpoints), master=endpoints.spark_master,
                           conf=self.spark_conf(), with_kafka=False)

    def run(self, cfg: ArgusConfig | None = None, timeout: float = 3600,
            endpoints: Endpoints | None = None) -> SubmitResult:
        """Run to completion; ``result`` is the job's summary (None if it crashed)."""
        cfg = cfg or ArgusConfig()
        endpoints = endpoints or Endpoints.from_config(cfg)
        return submit(cfg, cfg.root / JOB, self.args(endpoints), master=endpoints.spark_master,
                      conf=self.spark_conf(), with_kafka=False, timeout=timeout)

    def start(self, cfg: ArgusConfig | None = None, log_path: Path | None = None,
              endpoints: Endpoints | None = None) -> subprocess.Popen:
        """Start without waiting, in its own process group (stdout: the job's lines)."""
        cfg = cfg or ArgusConfig()
        log = open(log_path, "a") if log_path else subprocess.DEVNULL  # noqa: SIM115 - handed to the child
        return process.spawn_detached(self.argv(cfg, endpoints), env=config.child_environment(**submit_env(cfg)), cwd=cfg.root,
                                      stdout=subprocess.PIPE, stderr=log, text=True)


def parse_line(line: str) -> tuple[str, dict] | None:
    """``ARGUS_PROGRESS {...}`` / ``ARGUS_RESULT {...}`` lines of the job's output."""
    return parse_result_line(line)
