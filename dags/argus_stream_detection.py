"""argus_stream_detection: keeps the live detection job (Kafka -> Spark -> HBase) running.

Trigger it once; its one task never ends. It starts `jobs/stream_detect.py` (Spark client
mode, detached) unless a driver already holds the query's lease, then watches the query
from the triggerer: a dead or stalled driver is fenced and restarted from its checkpoint
with backoff, and every restart and SLO breach (Kafka lag, batch age, batch duration,
throughput) is alerted. Mark the run failed to stop the job.

Params (validated before any task runs): topic, cameras -> models (ids of the camera
registry or patterns with `*`), default model, batch size, executors, cores, tasks per GPU,
trigger interval, offsets per trigger, checkpoint, SLO thresholds, restart backoff.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag

from argus_airflow.notifiers import failure_notifier
from argus_airflow.operators.stream_supervisor import StreamSupervisorOperator
from argus_airflow.params import stream_job_params


@dag(
    dag_id="argus_stream_detection",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    is_paused_upon_creation=False,
    params=stream_job_params(),
    default_args={
        "on_failure_callback": failure_notifier(),
        # a retry attaches to the running driver (its lease), it never starts a second one
        "retries": 2,
        "retry_delay": timedelta(seconds=30),
    },
    tags=["argus", "streaming"],
    doc_md=__doc__,
)
def argus_stream_detection():
    StreamSupervisorOperator(task_id="supervise_stream")


argus_stream_detection()
