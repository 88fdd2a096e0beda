"""argus_hbase_maintenance: nightly housekeeping of Argus's HBase tables, off-peak.

Runs at 03:00 UTC: makes sure the tables exist, records region statistics, puts the
families' TTL and max versions back to the schema where they drifted, major-compacts the
tables one at a time (merging each store's files into one and dropping expired cells and
deletes) and records region statistics again. The compaction task's XCom has the store
files per region before and after, for each table.

Params (validated before any task runs): `tables` (Argus tables, default all),
`compaction_timeout_minutes` (longest wait for one table, 1-240), `fix_ttl_drift`
(false: only report drift).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag
from airflow.timetables.trigger import CronTriggerTimetable

from argus_airflow.notifiers import failure_notifier
from argus_airflow.operators.hbase import (
    HBaseCreateTablesOperator, HBaseMajorCompactOperator, HBaseRegionStatsOperator, HBaseTTLHousekeepingOperator,
    known_tables,
)

TABLES = "{{ params.tables | join(',') }}"


@dag(
    dag_id="argus_hbase_maintenance",
    schedule=CronTriggerTimetable("0 3 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    is_paused_upon_creation=False,
    dagrun_timeout=timedelta(hours=6),
    params={
        "tables": Param(known_tables(), type="array", minItems=1, uniqueItems=True,
                        items={"type": "string", "enum": known_tables()},
                        description="Argus tables to maintain"),
        "compaction_timeout_minutes": Param(30, type="integer", minimum=1, maximum=240,
                                            description="longest wait for one table's major compaction"),
        "fix_ttl_drift": Param(True, type="boolean",
                               description="apply the schema's TTL and versions where they drifted; false: report"),
    },
    default_args={"on_failure_callback": failure_notifier(), "retries": 1, "retry_delay": timedelta(minutes=10)},
    tags=["argus", "hbase", "maintenance"],
    doc_md=__doc__,
)
def argus_hbase_maintenance():
    ensure_tables = HBaseCreateTablesOperator(task_id="ensure_tables", tables=TABLES)
    stats_before = HBaseRegionStatsOperator(task_id="region_stats_before", tables=TABLES)
    ttl = HBaseTTLHousekeepingOperator(task_id="ttl_housekeeping", tables=TABLES, fix="{{ params.fix_ttl_drift }}")
    compact = HBaseMajorCompactOperator(task_id="major_compaction", tables=TABLES,
                                        timeout_minutes="{{ params.compaction_timeout_minutes }}",
                                        execution_timeout=timedelta(hours=5))
    stats_after = HBaseRegionStatsOperator(task_id="region_stats_after", tables=TABLES)
    ensure_tables >> stats_before >> ttl >> compact >> stats_after


argus_hbase_maintenance()
