"""Operator that reprocesses video archives on HDFS (``jobs/batch_reprocess.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from argus.config import ArgusConfig
from argus.archive.launcher import JOB, ReprocessJobSpec


class ArchiveReprocessOperator(BaseOperator):
    """Runs archive reprocessing on the Spark cluster and returns the job's summary (segments,
    frames, detections, frames/s, failures) as its XCom. Unreadable recordings do not fail
    the task (the rest is processed and stored); they are listed in the summary and sent to
    on-call as one warning. Finished segments are skipped, so a retry resumes.

    :param since: / :param until: first and last date (YYYY-MM-DD, UTC); templated.
    :param cameras: camera ids; empty: every camera in the archive.
    :param model: registry model; :param rate_hz: decoding rate; :param window_s: segment length.
    :param executors: Spark executors (one task each, ``cores_per_executor`` threads).
    :param archive_root: ``hdfs://`` or ``file://`` URL; default: the stack's archive.
    :param spark_conn_id: the ``spark`` connection.
    """

    template_fields: Sequence[str] = ("since", "until", "cameras", "model", "rate_hz", "executors", "window_s",
                                      "archive_root")
    ui_color = "#e8f0fe"

    def __init__(self, *, since: str | None = None, until: str | None = None, cameras: Sequence[str] | None = None,
                 model: str | None = None, rate_hz: float | str | None = None, window_s: float | str | None = None,
                 executors: int | str | None = None, cores_per_executor: int | None = None,
                 batch_size: int | None = None, archive_root: str | None = None, resume: bool = True,
                 spark_conn_id: str = "argus_spark", **kwargs: Any):
        """Settings left None take :class:`~argus.archive.launcher.ReprocessJobSpec`'s defaults."""
        super().__init__(**kwargs)
        self.since, self.until, self.cameras = since, until, cameras
        self.model, self.rate_hz, self.window_s = model, rate_hz, window_s
        self.executors, self.cores_per_executor, self.batch_size = executors, cores_per_executor, batch_size
        self.archive_root, self.resume, self.spark_conn_id = archive_root, resume, spark_conn_id
        self._hook = None

    def spec(self) -> ReprocessJobSpec:
        """The run's spec (rendered templates are strings: the spec's validation converts them)."""
        given = {"archive_root": self.archive_root or None, "since": self.since or None,
                 "until": self.until or None, "cameras": self._camera_ids(), "model": self.model,
                 "rate_hz": self.rate_hz, "window_s": self.window_s, "batch_size": self.batch_size,
                 "executors": self.executors, "cores_per_executor": self.cores_per_executor, "resume": self.resume}
        return ReprocessJobSpec(**{k: v for k, v in given.items() if v is not None})

    def _camera_ids(self) -> tuple[str, ...]:
        if isinstance(self.cameras, str):  # a rendered template: "a,b"
            return tuple(c.strip() for c in self.cameras.split(",") if c.strip())
        return tuple(self.cameras or ())

    def execute(self, context) -> dict:
        from argus_airflow.hooks.spark import ArgusSparkSubmitHook

        from argus_airflow.hooks.endpoints import airflow_endpoints

        cfg, spec = ArgusConfig(), self.spec()
        if spec.since and spec.until and spec.since > spec.until:
            raise ValueError(f"since ({spec.since}) is after until ({spec.until})")
        self.log.info("reprocessing %s..%s, cameras %s, %s at %g Hz on %d executor(s)", spec.since, spec.until,
                      ", ".join(spec.cameras) or "all", spec.model, spec.rate_hz, spec.executors)
        self._hook = ArgusSparkSubmitHook(conn_id=self.spark_conn_id, argus_config=cfg, conf=spec.spark_conf(),
                                          application_args=spec.args(airflow_endpoints()), name="argus-batch-reprocess")
        self._hook.submit(str(cfg.root / JOB))
        summary = self._hook.result
        if summary is None:
            raise RuntimeError("the reprocessing job ended without a summary (see the log above)")
        self.log.info("%d segment(s) done, %d skipped, %d failed; %d frames, %d detections at %.1f frames/s",
                      summary["segments_done"], summary["segments_skipped"], summary["segments_failed"],
                      summary["frames"], summary["detections"], summary["fps"])
        if summary["failures"]:
            self._report_failures(context, summary)
        return summary

    def _report_failures(self, context, summary: dict) -> None:
        from argus_airflow.notifiers import ArgusAlert, send_alert

        for failure in summary["failures"]:
            self.log.warning("not processed: %s: %s", failure["path"], failure["error"])
        paths = [f["path"] for f in summary["failures"]]
        send_alert(ArgusAlert.from_context(
            context, summary=f"{len(paths)} archive recording(s) could not be reprocessed", severity="warning",
            failures=summary["failures"][:20], job=summary.get("job")))

    def on_kill(self) -> None:
        if self._hook is not None:
            self._hook.on_kill()
