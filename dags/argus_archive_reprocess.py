"""argus_archive_reprocess: detection over archived recordings on HDFS, with Spark.

Runs daily at 01:30 UTC over the previous day's recordings; trigger it by hand with a date
range, cameras, model, decoding rate and executors to re-analyse older archives (e.g. with a
new model). Results land in the live pipeline's HBase tables, marked `archive`; reruns
rewrite the same rows. Segments this model and rate already finished are skipped, so a
failed or killed run resumes where it stopped. Unreadable recordings are listed in the
task's summary (XCom) and sent to on-call as a warning; the rest of the run completes.

Params (validated before any task runs): `since`/`until` (YYYY-MM-DD, UTC; empty: the day
before the run), `cameras` (ids of the camera registry; empty: all), `model`, `rate_hz`,
`window_s`, `executors`, `archive_root` (empty: the deployment's archive).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag

from argus_airflow.notifiers import failure_notifier
from argus_airflow.operators.archive import ArchiveReprocessOperator
from argus_airflow.params import archive_params

# the day before the run (scheduled: the day that just ended) unless the trigger names one
DAY_BEFORE = "macros.ds_add(((logical_date or dag_run.run_after) | ds), -1)"


@dag(
    dag_id="argus_archive_reprocess",
    schedule="30 1 * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    is_paused_upon_creation=False,
    params=archive_params(),
    default_args={"on_failure_callback": failure_notifier(), "retries": 1, "retry_delay": timedelta(minutes=5)},
    tags=["argus", "archive"],
    doc_md=__doc__,
)
def argus_archive_reprocess():
    ArchiveReprocessOperator(
        task_id="reprocess",
        since=f"{{{{ params.since or {DAY_BEFORE} }}}}",
        until=f"{{{{ params.until or params.since or {DAY_BEFORE} }}}}",
        cameras="{{ params.cameras | join(',') }}",
        model="{{ params.model }}",
        rate_hz="{{ params.rate_hz }}",
        window_s="{{ params.window_s }}",
        executors="{{ params.executors }}",
        archive_root="{{ params.archive_root or '' }}",
        execution_timeout=timedelta(hours=12),
    )


argus_archive_reprocess()
