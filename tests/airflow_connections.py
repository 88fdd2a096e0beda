"""Airflow connections as environment variables, for tests that resolve them in-process."""

from __future__ import annotations

import json


def connection_env(connections: dict[str, dict]) -> dict[str, str]:
    """``AIRFLOW_CONN_*`` variables (Airflow's JSON form) for connections such as
    :func:`argus.stack.airflow.local_connections` returns."""
    out = {}
    for conn_id, conn in connections.items():
        conn = dict(conn)
        if isinstance(conn.get("extra"), str):
            conn["extra"] = json.loads(conn["extra"])
        out[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(conn)
    return out
