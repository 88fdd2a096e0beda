"""Spark submit hook for Argus's applications in ``jobs/``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook

from argus import config
from argus.config import ArgusConfig
from argus.submit import driver_conf, parse_result_line, spark_home, submit_env


class ArgusSparkSubmitHook(SparkSubmitHook):
    """The Spark provider's submit hook, set up for Argus: the project's Python on driver
    and executors, pyspark's ``spark-submit``, and the jobs' ``ARGUS_PROGRESS`` /
    ``ARGUS_RESULT`` lines kept (``events``, ``result``) while they are logged as usual.

    :param conn_id: a ``spark`` connection (default ``argus_spark``: the standalone master).
    :param argus_config: where the project and its ports are; default from the environment.
    """

    default_conn_name = "argus_spark"

    def __init__(self, *, conn_id: str = default_conn_name, argus_config: ArgusConfig | None = None,
                 conf: dict[str, Any] | None = None, env_vars: dict[str, Any] | None = None, **kwargs: Any):
        cfg = argus_config or ArgusConfig()
        env = {**submit_env(cfg), "PATH": os.pathsep.join([str(spark_home() / "bin"), config.variable("PATH") or ""])}
        super().__init__(conn_id=conn_id, conf={**driver_conf(cfg), **(conf or {})},
                         env_vars={**env, **(env_vars or {})}, **kwargs)
        self.events: list[tuple[str, dict]] = []

    def _process_spark_submit_log(self, itr: Iterator[Any]) -> None:
        def keep(lines):
            for line in lines:
                parsed = parse_result_line(line)
                if parsed:
                    self.events.append(parsed)
                yield line

        super()._process_spark_submit_log(keep(itr))

    @property
    def result(self) -> dict | None:
        """The application's last ``ARGUS_RESULT`` payload."""
        return next((payload for tag, payload in reversed(self.events) if tag == "ARGUS_RESULT"), None)
