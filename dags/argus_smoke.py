"""argus_smoke: proves Airflow reaches HBase through the ``argus_hbase`` connection.

Writes a row keyed by the run id into ``argus_smoke`` and reads it back. Used by
``argus demo`` and the integration tests; safe to trigger any time (idempotent).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

from argus_airflow.hooks.hbase import HBaseHook

TABLE = "argus_smoke"


@dag(
    dag_id="argus_smoke",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    is_paused_upon_creation=False,
    tags=["argus", "smoke"],
    doc_md=__doc__,
)
def argus_smoke():
    @task
    def hbase_round_trip(run_id: str | None = None) -> dict:
        hook = HBaseHook()
        with hook.connection() as conn:
            if TABLE.encode() not in conn.tables():
                conn.create_table(TABLE, {"r": dict(max_versions=1)})
            table = conn.table(TABLE)
            table.put(run_id.encode(), {b"r:status": b"ok"})
            row = table.row(run_id.encode())
        if row.get(b"r:status") != b"ok":
            raise RuntimeError(f"row {run_id!r} did not read back from HBase: {row}")
        return {"table": TABLE, "row": run_id, "status": row[b"r:status"].decode()}

    hbase_round_trip(run_id="{{ run_id }}")


argus_smoke()
