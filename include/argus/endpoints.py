"""Where each service is: the one description of the endpoints every job and client uses.

Each service has its own host and port, so that Kafka on one machine and HBase on another
are described as such (the compose deployment gives each its own hostname). An
:class:`Endpoints` is resolved in one of two places and handed on whole:

- outside Airflow, :meth:`Endpoints.from_config` (the local stack: ``ArgusConfig``, i.e. the
  ``ARGUS_*`` environment);
- inside Airflow, ``argus_airflow.hooks.endpoints.airflow_endpoints`` (the connections
  ``argus_kafka``, ``argus_hbase``, ``argus_hdfs``, ``argus_spark``).

The streaming and archive jobs receive it as JSON (``--endpoints``) and never guess a host.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

from pydantic import Field
from pydantic.dataclasses import dataclass

from argus.config import DEFAULT_PORTS, ArgusConfig

Port = Annotated[int, Field(ge=1, le=65535)]
Host = Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9._:\[\]-]+$")]


@dataclass(frozen=True)
class Endpoints:
    """The services' addresses.

    :param kafka_bootstrap: Kafka bootstrap servers, ``host:port[,host:port...]``.
    :param hbase_host: / :param hbase_port: the HBase Thrift v1 server (data, happybase).
    :param hbase_admin_host: / :param hbase_admin_port: the Thrift2 server (tables, status).
    :param hdfs_uri: the NameNode, ``hdfs://host:port`` (Spark, checkpoints).
    :param webhdfs_url: WebHDFS, ``http://host:port`` (Python clients).
    :param spark_master: ``spark://host:port``, or ``local[N]``.
    """

    kafka_bootstrap: Annotated[str, Field(pattern=r"^[^,\s]+:\d+(,[^,\s]+:\d+)*$")]
    hbase_host: Host
    hbase_admin_host: Host
    hdfs_uri: Annotated[str, Field(pattern=r"^hdfs://[^/\s]+$")]
    webhdfs_url: Annotated[str, Field(pattern=r"^https?://[^/\s]+$")]
    spark_master: Annotated[str, Field(pattern=r"^(spark://\S+|local(\[[0-9*]+\])?)$")]
    hbase_port: Port = DEFAULT_PORTS["hbase_thrift"]
    hbase_admin_port: Port = DEFAULT_PORTS["hbase_thrift2"]

    @classmethod
    def from_config(cls, cfg: ArgusConfig | None = None) -> Endpoints:
        """The local stack's endpoints (every service on ``cfg.host``, at its configured port)."""
        cfg = cfg or ArgusConfig()
        return cls(kafka_bootstrap=cfg.kafka_bootstrap, hbase_host=cfg.host, hbase_port=cfg.port("hbase_thrift"),
                   hbase_admin_host=cfg.host, hbase_admin_port=cfg.port("hbase_thrift2"), hdfs_uri=cfg.hdfs_uri,
                   webhdfs_url=cfg.webhdfs_url, spark_master=cfg.spark_master_url)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Endpoints:
        return cls(**json.loads(text))
