"""Launching archive reprocessing (jobs/batch_reprocess.py) on the Spark cluster."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from argus import process
from argus.archive.layout import ARCHIVE_ROOT
from argus.config import ArgusConfig
from argus.submit import SubmitResult, parse_result_line, submit, submit_argv, submit_env

JOB = Path("jobs") / "batch_reprocess.py"


@dataclass
class ReprocessJobSpec:
    """One reprocessing run. Each executor runs one task at a time with ``cores_per_executor``
    TensorFlow threads, so ``executors`` is the run's parallelism.

    :param archive_root: ``hdfs://`` or ``file://`` URL; default: the stack's HDFS archive.
    :param since: / :param until: dates (YYYY-MM-DD, UTC), inclusive; None: unbounded.
    """

    archive_root: str | None = None
    since: str | None = None
    until: str | None = None
    cameras: tuple[str, ...] = ()
    model: str = "centernet-coco"
    rate_hz: float = 1.0
    window_s: float = 10.0
    batch_size: int = 8
    executors: int = 2
    cores_per_executor: int = 1
    executor_memory: str = "2g"
    resume: bool = True
    progress_s: float = 5.0

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

    def args(self, cfg: ArgusConfig) -> list[str]:
        root = self.archive_root or f"{cfg.hdfs_uri}{ARCHIVE_ROOT}"
        argv = ["--archive-root", root, "--webhdfs", cfg.webhdfs_url, "--model", self.model,
                "--rate", f"{self.rate_hz:g}", "--window", f"{self.window_s:g}", "--batch-size", str(self.batch_size),
                "--hbase-host", cfg.host, "--hbase-port", str(cfg.port("hbase_thrift")),
                "--hbase-admin-port", str(cfg.port("hbase_thrift2"))]
        if self.since:
            argv += ["--since", self.since]
        if self.until:
            argv += ["--until", self.until]
        if self.cameras:
            argv += ["--cameras", ",".join(self.cameras)]
        if not self.resume:
            argv.append("--no-resume")
        if self.progress_s != 5.0:
            argv += ["--progress-seconds", f"{self.progress_s:g}"]
        return argv

    def argv(self, cfg: ArgusConfig) -> list[str]:
        return submit_argv(cfg, cfg.root / JOB, self.args(cfg), conf=self.spark_conf(), with_kafka=False)

    def run(self, cfg: ArgusConfig | None = None, timeout: float = 3600) -> SubmitResult:
        """Run to completion; ``result`` is the job's summary (None if it crashed)."""
        cfg = cfg or ArgusConfig()
        return submit(cfg, cfg.root / JOB, self.args(cfg), conf=self.spark_conf(), with_kafka=False, timeout=timeout)

    def start(self, cfg: ArgusConfig | None = None, log_path: Path | None = None) -> subprocess.Popen:
        """Start without waiting, in its own process group (stdout: the job's lines)."""
        cfg = cfg or ArgusConfig()
        log = open(log_path, "a") if log_path else subprocess.DEVNULL  # noqa: SIM115 - handed to the child
        return process.spawn_detached(self.argv(cfg), env={**os.environ, **submit_env(cfg)}, cwd=cfg.root,
                                      stdout=subprocess.PIPE, stderr=log, text=True)


def parse_line(line: str) -> tuple[str, dict] | None:
    """``ARGUS_PROGRESS {...}`` / ``ARGUS_RESULT {...}`` lines of the job's output."""
    return parse_result_line(line)
