"""The services' endpoints inside Airflow: read from the connections, each service its own.

``argus stack up`` creates the connections for the local stack; a deployment defines the same
ids (the compose file does it with ``AIRFLOW_CONN_*``), and the jobs launched from Airflow
then read and write where they point.
"""

from __future__ import annotations

from urllib.parse import urlparse

from airflow.providers.apache.kafka.hooks.base import KafkaBaseHook
from airflow.sdk import BaseHook

from argus.config import DEFAULT_PORTS
from argus.endpoints import Endpoints

KAFKA_CONN_ID = "argus_kafka"
HBASE_CONN_ID = "argus_hbase"
HDFS_CONN_ID = "argus_hdfs"
SPARK_CONN_ID = "argus_spark"


def airflow_endpoints(*, kafka_conn_id: str = KAFKA_CONN_ID, hbase_conn_id: str = HBASE_CONN_ID,
                      hdfs_conn_id: str = HDFS_CONN_ID, spark_conn_id: str = SPARK_CONN_ID) -> Endpoints:
    """:class:`~argus.endpoints.Endpoints` from the Airflow connections.

    :param kafka_conn_id: a ``kafka`` connection (the Kafka provider's: ``bootstrap.servers``
        in its extra).
    :param hbase_conn_id: an ``hbase`` connection: host and port of the Thrift v1 server;
        extra ``admin_host`` / ``admin_port`` for the Thrift2 server (default: the same host, the Thrift2 port of ``DEFAULT_PORTS``).
    :param hdfs_conn_id: a ``webhdfs`` connection: host and port of WebHDFS; extra
        ``namenode_uri`` (``hdfs://host:port``; default: the same host, port 8020).
    :param spark_conn_id: a ``spark`` connection: ``spark://host`` and port, or ``local[N]``.
    """
    kafka = KafkaBaseHook(kafka_config_id=kafka_conn_id).get_connection(kafka_conn_id)
    bootstrap = kafka.extra_dejson.get("bootstrap.servers")
    if not bootstrap:
        raise ValueError(f"connection {kafka_conn_id} has no bootstrap.servers in its extra")
    hbase = BaseHook.get_connection(hbase_conn_id)
    hbase_extra = hbase.extra_dejson
    hbase_host = hbase.host or "127.0.0.1"
    hdfs = BaseHook.get_connection(hdfs_conn_id)
    hdfs_host = hdfs.host or "127.0.0.1"
    namenode = hdfs.extra_dejson.get("namenode_uri") or f"hdfs://{hdfs_host}:{DEFAULT_PORTS['hdfs_namenode']}"
    spark = BaseHook.get_connection(spark_conn_id)
    return Endpoints(
        kafka_bootstrap=bootstrap,
        hbase_host=hbase_host, hbase_port=int(hbase.port or DEFAULT_PORTS["hbase_thrift"]),
        hbase_admin_host=hbase_extra.get("admin_host") or hbase_host,
        hbase_admin_port=int(hbase_extra.get("admin_port") or DEFAULT_PORTS["hbase_thrift2"]),
        hdfs_uri=namenode.rstrip("/"),
        webhdfs_url=f"http://{hdfs_host}:{int(hdfs.port or DEFAULT_PORTS['hdfs_http'])}",
        spark_master=_spark_master(spark.host or "", spark.port),
    )


def _spark_master(host: str, port: int | None) -> str:
    if host.startswith("local"):
        return host
    url = urlparse(host if "://" in host else f"spark://{host}")
    return f"spark://{url.hostname or '127.0.0.1'}:{port or url.port or DEFAULT_PORTS['spark_master']}"
