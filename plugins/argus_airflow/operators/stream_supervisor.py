"""Operator that keeps the never-ending streaming detection job running."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger
from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from argus import config
from argus.config import ArgusConfig
from argus.process import ProcessIdentity
from argus.submit import kafka_jars
from argus.live.launcher import StreamJob
from argus.supervision.control import fence, stop_stream
from argus.supervision.health import Health
from argus.supervision.process import driver_alive
from argus.supervision.restart import TooManyRestarts, healthy_seconds, recorded_failure
from argus.supervision.status import StreamStatusStore, now_ms
from argus_airflow.notifiers import ArgusAlert, send_alert
from argus_airflow.hooks.endpoints import airflow_endpoints
from argus_airflow.params import StreamSettings, stream_settings
from argus_airflow.triggers.stream_health import StreamHealthTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context


#: breaches that are events (``name@batch``), alerted once each
EVENT_BREACHES = ("skipped_offsets@", "isolated@")
#: event breaches remembered as alerted
EVENTS_KEPT = 100


class StreamSupervisorOperator(BaseOperator):
    """Start the streaming job, then watch it from the triggerer and restart it from its
    checkpoint when it dies or stalls; the task never succeeds (the stream never ends).

    - **One copy at most.** The driver holds a lease on its query in HBase (``argus:streams``);
      this operator starts a driver only when no live one holds it, and a retry of this task
      attaches to the running driver instead of submitting a second one. A copy started anyway
      exits at once (``EXIT_LEASE_HELD``). Before a restart the old driver is fenced: its lease
      is revoked (it stops itself at its next heartbeat) and, on this host, its process group
      is killed.
    - **Client mode, detached.** Spark standalone cannot run Python applications in cluster
      deploy mode, so the driver runs in client mode as a process of its own session
      (``start_new_session``) that outlives this task's process when it defers. That is also
      why the Spark provider's ``durable`` (``ResumableJobMixin``) cannot apply: it persists and
      re-polls a cluster-mode driver/application id (standalone REST submission, YARN, K8s
      pod), which a client-mode driver does not have. The lease plays that role here.
    - **No worker slot while watching.** Health is polled by :class:`StreamHealthTrigger` in
      the triggerer; the task only runs to start, restart and alert. Restart backoff waits in a
      ``TimeDeltaTrigger``, not in a worker.
    - **Alerts** (``argus_airflow.notifiers``): one on every restart (dead or stalled, with why),
      one when an SLO breach opens (lag, batch age, batch duration, throughput, offsets skipped
      because they could not be read: each skip once, as an error).
    - **Giving up** (:class:`~argus.supervision.restart.RestartPolicy`): only on the same
      recorded failure repeating, or a sustained restart rate; independent faults (a killed
      driver) keep being restarted with capped backoff, and a healthy period or a new stack
      start forgets the history. Once given up, the task stays deferred and pages critical
      every ``repage_s`` with what to do, until a person clears or fails it, or a driver runs
      again.

    :param stream: the job's settings, named like the DAG's params (:func:`stream_job_params`);
        by default the DAG run's params.
    :param spark_conn_id: Spark connection (master URL; deploy mode must be client).
    :param poll_interval: seconds between two health checks in the triggerer.
    :param alert_channels: alert channels; by default every configured one.
    """

    template_fields: Sequence[str] = ("stream",)
    ui_color = "#d6eaf8"

    def __init__(self, *, stream: Mapping[str, Any] | None = None, spark_conn_id: str = "argus_spark",
                 poll_interval: float = 5.0, alert_channels: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stream = stream
        self.spark_conn_id = spark_conn_id
        self.poll_interval = poll_interval
        self.alert_channels = alert_channels

    # ---- entry points (execute, then resumed from the triggers) ----

    def execute(self, context: Context) -> None:
        settings = self._settings(context)
        self._store().ensure_table()
        state: dict[str, Any] = {"restarts": [], "breaches": [], "launch_id": None, "launched_ms": None,
                                 "launcher": None}
        self._start_or_attach(settings, state, context)
        self._watch(settings, state)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None,
                         state: dict[str, Any] | None = None) -> None:
        settings = self._settings(context)
        state = dict(state or {})
        health = Health.from_dict(event["health"])
        if health.needs_restart:
            self._restart(settings, state, health, context)
        else:
            self._alert_breaches(settings, state, health, context)
        self._watch(settings, state)

    def relaunch(self, context: Context, event: Any = None, state: dict[str, Any] | None = None) -> None:
        """The restart backoff is over: start the driver again."""
        settings = self._settings(context)
        state = dict(state or {})
        self._start_or_attach(settings, state, context)
        self._watch(settings, state)

    def on_kill(self) -> None:
        settings = getattr(self, "_last_settings", None)
        if settings is None:
            return
        lease = stop_stream(self._store(), settings.spec.query_name, "airflow: task killed")
        self.log.info("Stopped streaming query %s (%s)", settings.spec.query_name,
                      lease.describe() if lease else "no driver was running")

    # ---- steps ----

    def _settings(self, context: Context) -> StreamSettings:
        values = dict(self.stream if self.stream is not None else context["params"])
        if self.stream is None:
            values.update(self._promoted(context, values))
        self._last_settings = stream_settings(values)
        return self._last_settings

    def _promoted(self, context: Context, values: dict[str, Any]) -> dict[str, Any]:
        """The DOE sweep's promoted executors and batch size (``argus_stream_settings``), for
        what the run's trigger did not set. The sweep splits a fixed number of cores between
        its executors, and so does this: the cores the params give, shared out."""
        from argus_airflow.doe import promoted_stream_settings, stream_overrides

        conf = getattr(context.get("dag_run"), "conf", None) or {}
        try:
            promoted = promoted_stream_settings()
        except Exception as exc:  # no Variable backend reachable: run with the params as given
            self.log.warning("could not read the promoted DOE settings (%s); using the run's params", exc)
            promoted = None
        overrides: dict[str, Any] = stream_overrides(conf, promoted, int(values.get("tasks_per_gpu", 0)))
        if "executors" in overrides:
            cores = int(values["executors"]) * int(values["cores_per_executor"])
            share = max(1, cores // overrides["executors"])
            for key in ("cores_per_executor", "task_cpus"):
                if key not in conf:
                    overrides[key] = share
        if overrides:
            self.log.info("applying the settings promoted by DOE sweep %s: %s",
                          (promoted or {}).get("sweep_id"), overrides)
        return overrides

    def _store(self) -> StreamStatusStore:
        return StreamStatusStore.from_endpoints(airflow_endpoints())

    def _watch(self, settings: StreamSettings, state: dict[str, Any]) -> None:
        store = self._store()
        self.defer(
            trigger=StreamHealthTrigger(
                query_name=settings.spec.query_name, hbase_host=store.host, hbase_port=store.port,
                thresholds=settings.thresholds.to_dict(), poll_interval=self.poll_interval,
                launch_id=state.get("launch_id"), launched_ms=state.get("launched_ms"),
                launcher=state.get("launcher"), open_breaches=state.get("breaches", [])),
            method_name="execute_complete", kwargs={"state": state})

    def _start_or_attach(self, settings: StreamSettings, state: dict[str, Any], context: Context) -> None:
        """Start the driver, unless a live one holds the lease: then supervise that one (a retry
        of this task, or a driver started by hand), never start a second."""
        query, store = settings.spec.query_name, self._store()
        lease = store.read(query).lease
        if lease is not None and lease.live(now_ms()) and driver_alive(lease) is not False:
            self.log.info("Streaming query %s already runs: %s; supervising it", query, lease.describe())
            state.update(launch_id=None, launched_ms=None, launcher=None)
            return
        if lease is not None:
            wait_s = (self._fence(store, query, context) - now_ms()) / 1000
            if wait_s >= 1:
                # its driver runs elsewhere and may not have noticed yet that it lost the lease
                self._defer_relaunch(state, wait_s)
        self._launch(settings, state, context)

    def _defer_relaunch(self, state: dict[str, Any], delay_s: float) -> None:
        state.update(launch_id=None, launched_ms=None, launcher=None)
        self.defer(trigger=TimeDeltaTrigger(timedelta(seconds=delay_s)), method_name="relaunch",
                   kwargs={"state": state})

    def _fence(self, store: StreamStatusStore, query: str, context: Context) -> int:
        fenced = fence(store, query, by=f"airflow:{context['dag'].dag_id}/{context['run_id']}")
        if fenced.lease is not None:
            self.log.info("Fenced the previous driver of %s: %s", query, fenced.lease.describe())
        return fenced.safe_at_ms

    def _launch(self, settings: StreamSettings, state: dict[str, Any], context: Context) -> None:
        """spark-submit the driver (client mode, its own session) and record the launch in ``state``."""
        from argus_airflow.hooks.spark import ArgusSparkSubmitHook

        cfg, spec, endpoints = ArgusConfig(), settings.spec, airflow_endpoints()
        launch_id = f"{context['run_id']}/{context['ti'].try_number}/{uuid.uuid4().hex[:8]}"
        job = StreamJob(spec, cfg, endpoints=endpoints)
        hook = ArgusSparkSubmitHook(conn_id=self.spark_conn_id, argus_config=cfg, conf=spec.spark_conf(),
                                    jars=",".join(kafka_jars(cfg)), name=f"argus-stream-detect:{spec.query_name}",
                                    application_args=spec.args(endpoints, launch_id))
        if hook._connection.get("deploy_mode") == "cluster":
            raise AirflowFailException(
                f"connection {self.spark_conn_id} asks for cluster deploy mode: the streaming job is a Python "
                "application, which Spark standalone runs in client mode only; set deploy-mode to client")
        # the hook builds the command (master from the connection); it does not run it: the driver
        # must outlive this task process, which ends when the task defers
        argv = hook._build_spark_submit_command(str(job.application))
        job.start(launch_id=launch_id, argv=argv, env=config.child_environment(**(hook._env or {})))
        launcher = ProcessIdentity.of(job.proc.pid)
        state.update(launch_id=launch_id, launched_ms=now_ms(), launcher=launcher and {
            "host": socket.gethostname(), "pid": launcher.pid, "start": launcher.start_ticks, "boot": launcher.boot})
        self.log.info("Started streaming query %s (launch %s, spark-submit pid %s, checkpoint %s, log %s)",
                      spec.query_name, launch_id, job.proc.pid, spec.checkpoint_location(endpoints), job.log_path)

    def _restart(self, settings: StreamSettings, state: dict[str, Any], health: Health, context: Context) -> None:
        query, policy = settings.spec.query_name, settings.restart
        now = now_ms()
        before = self._store().read(query)
        failure = recorded_failure(before) or ("stalled: no micro-batch while input is pending"
                                               if health.state == "stalled" else None)
        safe_at_ms = self._fence(self._store(), query, context)
        history = policy.history(self._since_stack_start(state), now, healthy_seconds(before))
        checkpoint = settings.spec.checkpoint_location(airflow_endpoints())
        details = {"query": query, "state": health.state, "reasons": "; ".join(health.reasons),
                   "checkpoint": checkpoint, "restarts_in_window": len(history), "kafka_lag": health.lag,
                   **({"failure": failure} if failure else {})}
        try:
            delay_s = policy.delay_s(history, now, failure)
        except TooManyRestarts as exc:
            self._give_up(settings, state, health, str(exc), details, context)  # defers: never returns
        # a driver elsewhere may run until its lease has surely lapsed
        delay_s = max(delay_s, (safe_at_ms - now_ms()) / 1000)
        state["restarts"] = [*history, {"ms": now, "failure": failure}]
        state["breaches"] = []  # judged afresh (events alerted stay in events_alerted)
        loop = [text for name, text in health.breaches.items() if name.startswith("crash_loop@")]
        self._alert(context, f"streaming query {query} {health.state} ({'; '.join(health.reasons)}): "
                             f"restarting from its checkpoint" + (f" in {delay_s:.0f}s" if delay_s >= 1 else ""),
                    "critical" if loop else "error",
                    {**details, "restart": len(state["restarts"]), "delay_s": round(delay_s, 1),
                     **({"crash_loop": loop[0]} if loop else {})})
        if delay_s >= 1:
            self._defer_relaunch(state, delay_s)
        self._launch(settings, state, context)

    def _since_stack_start(self, state: dict[str, Any]) -> list:
        """The restart history, forgotten when the stack has started anew since (``argus stack up``)."""
        from argus.stack.manager import stack_epoch

        epoch = stack_epoch()
        if state.get("stack_epoch") != epoch:
            state.update(stack_epoch=epoch, restarts=[])
        return state.get("restarts", [])

    def _give_up(self, settings: StreamSettings, state: dict[str, Any], health: Health, why: str,
                 details: dict[str, Any], context: Context) -> NoReturn:
        """Stop restarting; page now and every ``repage_s`` until a person acts (the task stays
        deferred: clearing it starts supervision afresh, marking it failed stops the pages)."""
        query = settings.spec.query_name
        given_up = state.get("given_up") or {"ms": now_ms(), "why": why, "pages": 0}
        given_up["pages"] += 1
        state["given_up"] = given_up
        log_path = StreamJob(settings.spec, ArgusConfig(), endpoints=airflow_endpoints()).log_path
        self._alert(context, f"streaming query {query} is down and no longer restarted: {why}"
                             + (f" (page {given_up['pages']})" if given_up["pages"] > 1 else ""), "critical",
                    {**details, "given_up_at_ms": given_up["ms"], "driver_log": str(log_path),
                     "what_to_do": (f"read the driver log {log_path} and fix the cause; then clear task "
                                    f"{self.task_id} of this DAG run to supervise it afresh (or start the job by "
                                    "hand: it is adopted), or mark the task failed to stop these pages")},
                    dedup_key=f"argus/stream/{query}/given_up")
        self.defer(trigger=TimeDeltaTrigger(timedelta(seconds=settings.restart.repage_s)), method_name="repage",
                   kwargs={"state": state})

    def repage(self, context: Context, event: Any = None, state: dict[str, Any] | None = None) -> None:
        """Given up: page again, unless a driver runs again (started by hand): then watch it."""
        settings = self._settings(context)
        state = dict(state or {})
        query = settings.spec.query_name
        lease = self._store().read(query).lease
        if lease is not None and lease.live(now_ms()) and driver_alive(lease) is not False:
            self.log.info("Streaming query %s runs again (%s): supervising it", query, lease.describe())
            state.update(given_up=None, restarts=[], launch_id=None, launched_ms=None, launcher=None)
            self._watch(settings, state)
        given_up = state.get("given_up") or {}
        self._give_up(settings, state, Health("dead", (given_up.get("why", ""),)), given_up.get("why", "given up"),
                      {"query": query}, context)

    def _alert_breaches(self, settings: StreamSettings, state: dict[str, Any], health: Health,
                        context: Context) -> None:
        query = settings.spec.query_name
        # events (one skip, one isolation: "name@batch") alert once, whatever verdicts come between
        events = [n for n in health.breaches if n.startswith(EVENT_BREACHES)]
        alerted = state.get("events_alerted", [])
        for name in sorted(set(events) - set(alerted)):
            self._alert(context, f"streaming query {query} breaches its SLO: {health.breaches[name]}", "error",
                        {"query": query, "slo": name, "kafka_lag": health.lag}, dedup_key=f"argus/stream/{query}/{name}")
        state["events_alerted"] = [*alerted, *sorted(set(events) - set(alerted))][-EVENTS_KEPT:]
        before = set(state.get("breaches", []))
        for name in sorted(set(health.breaches) - before - set(events)):
            # frames lost for good page as an error; the other SLOs warn
            severity = "error" if name.startswith("outage:") else "warning"
            self._alert(context, f"streaming query {query} breaches its SLO: {health.breaches[name]}", severity,
                        {"query": query, "slo": name, "kafka_lag": health.lag, "batch_age_s": health.batch_age_s},
                        dedup_key=f"argus/stream/{query}/{name}")
        for name in sorted(before - set(health.breaches)):
            self.log.info("Streaming query %s: SLO %s is met again", query, name)
        state["breaches"] = sorted(set(health.breaches) - set(events))

    def _alert(self, context: Context, summary: str, severity: str, details: dict[str, Any],
               dedup_key: str | None = None) -> None:
        alert = ArgusAlert.from_context(context, summary=summary, severity=severity, **details)
        if dedup_key:
            alert.dedup_key = dedup_key
        results = send_alert(alert, self.alert_channels)
        if "sent" in results.values():
            self.log.info("Alert %r: %s", summary, results)
        else:  # send_alert logged it whole and kept it in the outbox
            self.log.warning("Alert %r reached no channel: %s", summary, results or "none is configured")
