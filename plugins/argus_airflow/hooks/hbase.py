"""Hook for HBase: data through its Thrift v1 server (happybase), administration through its
Thrift2 server, region metrics from the region servers' ``/jmx``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import happybase
from airflow.sdk import BaseHook

from argus.config import DEFAULT_PORTS

if TYPE_CHECKING:
    from argus.store.maintenance import HBaseMaintenance, MaintenanceAdmin, MajorCompactorTool, RegionServerJmx


class HBaseHook(BaseHook):
    """Pooled happybase connections to an HBase Thrift server, and HBase administration.

    Connection fields: host, port (default: ``DEFAULT_PORTS["hbase_thrift"]``); extra: ``transport`` (buffered|framed),
    ``protocol`` (binary|compact), ``table_prefix``, ``timeout_ms``, ``pool_size``;
    for administration: ``admin_host`` / ``admin_port`` (the Thrift2 server; default: the
    same host, ``DEFAULT_PORTS["hbase_thrift2"]``),
    ``info_port`` (the region servers' info port, whose ``/jmx`` has region metrics,
    default 16030), ``hbase_conf_dir`` (an HBase client configuration for the
    ``MajorCompactor`` JVM; default: the local stack's).

    :param hbase_conn_id: Airflow connection id of type ``hbase``.
    """

    conn_name_attr = "hbase_conn_id"
    default_conn_name = "argus_hbase"
    conn_type = "hbase"
    hook_name = "HBase (Thrift)"

    def __init__(self, hbase_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hbase_conn_id = hbase_conn_id
        self._pool: happybase.ConnectionPool | None = None

    def _connection_kwargs(self) -> dict[str, Any]:
        conn = self.get_connection(self.hbase_conn_id)
        extra = conn.extra_dejson
        kwargs: dict[str, Any] = {
            "host": conn.host or "127.0.0.1",
            "port": int(conn.port or DEFAULT_PORTS["hbase_thrift"]),
            "transport": extra.get("transport", "buffered"),
            "protocol": extra.get("protocol", "binary"),
            "timeout": int(extra.get("timeout_ms", 60_000)),
        }
        if extra.get("table_prefix"):
            kwargs["table_prefix"] = extra["table_prefix"]
        return kwargs

    def get_pool(self) -> happybase.ConnectionPool:
        if self._pool is None:
            extra = self.get_connection(self.hbase_conn_id).extra_dejson
            self._pool = happybase.ConnectionPool(size=int(extra.get("pool_size", 4)), **self._connection_kwargs())
        return self._pool

    @contextmanager
    def connection(self):
        """A pooled connection; the pool replaces it if the Thrift server dropped it."""
        with self.get_pool().connection() as conn:
            yield conn

    def get_conn(self) -> happybase.Connection:
        """A new, unpooled connection (the caller closes it)."""
        return happybase.Connection(**self._connection_kwargs())

    # ---- administration ----
    def _extra(self) -> dict[str, Any]:
        return self.get_connection(self.hbase_conn_id).extra_dejson

    def get_admin(self) -> MaintenanceAdmin:
        """A Thrift2 admin client (the caller closes it)."""
        from argus.store.maintenance import MaintenanceAdmin

        kw = self._connection_kwargs()
        extra = self._extra()
        return MaintenanceAdmin(extra.get("admin_host") or kw["host"], int(extra.get("admin_port") or DEFAULT_PORTS["hbase_thrift2"]),
                                timeout_ms=kw["timeout"])

    def get_region_server_jmx(self) -> RegionServerJmx:
        from argus.store.maintenance import RegionServerJmx

        return RegionServerJmx(info_port=int(self._extra().get("info_port") or DEFAULT_PORTS["hbase_regionserver_info"]))

    def get_major_compactor(self, servers: int = 1) -> MajorCompactorTool:
        """HBase's MajorCompactor in a JVM (Java and the HBase jars of the local stack).

        :param servers: region servers compacting at once."""
        from argus.store.maintenance import MajorCompactorTool

        return MajorCompactorTool.from_config(conf_dir=self._extra().get("hbase_conf_dir"), servers=servers)

    @contextmanager
    def maintenance(self, compactor_servers: int | None = None) -> Iterator[HBaseMaintenance]:
        """:class:`~argus.store.maintenance.HBaseMaintenance` on this connection.

        :param compactor_servers: region servers compacting at once; None: no compactions
            (nothing then needs Java)."""
        from argus.store.maintenance import HBaseMaintenance

        compactor = None if compactor_servers is None else self.get_major_compactor(compactor_servers)
        with self.connection() as conn, self.get_admin() as admin:
            yield HBaseMaintenance(conn, admin, self.get_region_server_jmx(), compactor)

    def test_connection(self) -> tuple[bool, str]:
        try:
            with self.connection() as conn:
                tables = conn.tables()
        except Exception as exc:
            return False, f"HBase Thrift server unreachable: {exc}"
        return True, f"connected; {len(tables)} tables"

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": ["schema", "login", "password"],
            "relabeling": {"host": "Thrift host", "port": "Thrift port"},
            "placeholders": {"extra": '{"transport": "buffered", "protocol": "binary", "admin_port": '
                                      f'{DEFAULT_PORTS["hbase_thrift2"]}, '
                                      f'"info_port": {DEFAULT_PORTS["hbase_regionserver_info"]}}}'},
        }
