"""argus_doe_nightly: tunes the detection pipeline with a design of experiments, as the GTC 2019 talk did.

`plan` makes the design (FCCD by default) over executors, batch size and decoding rate;
`run_point` runs each point's benchmark (the archive reprocessing job over a fixed stretch of
video, or the live pipeline benchmark) one at a time and records throughput and processing
time; `analyse` fits a second-order surface per response and finds the settings that
maximise throughput within the latency target; `confirm` runs those settings; `promote`
stores them in the Variable `argus_stream_settings`, read by `argus_stream_detection`,
only when the confirmation agrees with the prediction. The report (fits, ANOVA, contour
plots, optimum, confirmation) is kept per sweep under `.argus/doe/<sweep-id>/` and linked
from the analyse, confirm and promote tasks ("DOE report").

Nightly at 02:00 UTC once unpaused (created paused: a sweep takes the cluster for a while;
a missed night is not run on unpausing). Params (validated before any task runs): mode,
design kind, factors and ranges, fixed settings, seconds per run, latency target, centre
points, runs, seed, model, segment length, cameras, cores per executor, confirmation runs.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import CronTriggerTimetable, dag

from argus_airflow.doe import doe_params
from argus_airflow.notifiers import failure_notifier
from argus_airflow.operators.doe import (
    DoeAnalyseOperator,
    DoeConfirmOperator,
    DoePlanOperator,
    DoePointOperator,
    DoePromoteOperator,
)


@dag(
    dag_id="argus_doe_nightly",
    # no start date and run_immediately=0: unpausing never starts a sweep for a night that has passed
    schedule=CronTriggerTimetable("0 2 * * *", timezone="UTC", run_immediately=timedelta(0)),
    catchup=False,
    max_active_runs=1,
    is_paused_upon_creation=True,
    params=doe_params(),
    default_args={"on_failure_callback": failure_notifier(), "retries": 1, "retry_delay": timedelta(minutes=1)},
    tags=["argus", "doe"],
    doc_md=__doc__,
)
def argus_doe_nightly():
    plan = DoePlanOperator(task_id="plan")
    # one point at a time, across runs too: points share the cluster and must not overlap
    points = DoePointOperator.partial(task_id="run_point", max_active_tis_per_dag=1,
                                      execution_timeout=timedelta(hours=1)).expand(index=plan.output)
    analyse = DoeAnalyseOperator(task_id="analyse")
    confirm = DoeConfirmOperator(task_id="confirm", max_active_tis_per_dag=1, execution_timeout=timedelta(hours=1))
    promote = DoePromoteOperator(task_id="promote")
    points >> analyse >> confirm >> promote


argus_doe_nightly()
