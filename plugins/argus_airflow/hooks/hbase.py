"""Hook for HBase through its Thrift v1 server (happybase)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import happybase
from airflow.sdk import BaseHook


class HBaseHook(BaseHook):
    """Pooled happybase connections to an HBase Thrift server.

    Connection fields: host, port (default 9090); extra: ``transport`` (buffered|framed),
    ``protocol`` (binary|compact), ``table_prefix``, ``timeout_ms``, ``pool_size``.

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
            "port": int(conn.port or 9090),
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
            "placeholders": {"extra": '{"transport": "buffered", "protocol": "binary", "table_prefix": "argus"}'},
        }
