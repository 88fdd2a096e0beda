"""The Airflow side of stream supervision without the stack: params -> job settings, the
param schemas, and the health trigger over an in-memory status store."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import time
from dataclasses import fields

import jsonschema
import pytest

from argus.live.launcher import StreamJobSpec
from argus.supervision.health import Thresholds
from argus.supervision.restart import RestartPolicy

from stream_fakes import PROGRESS, MemoryStatusStore, keeper


@pytest.fixture(autouse=True)
def local_connections_env(monkeypatch):
    """The local stack's connections, as `argus stack up` creates them (the operator resolves
    the services' endpoints from them)."""
    from argus.config import ArgusConfig
    from argus.stack.airflow import local_connections
    from airflow_connections import connection_env

    for name, value in connection_env(local_connections(ArgusConfig())).items():
        monkeypatch.setenv(name, value)


@pytest.fixture(scope="module")
def plugin(airflow_home):
    import argus_airflow.params as params
    import argus_airflow.triggers.stream_health as trigger

    return params, trigger


def test_every_job_setting_is_a_param_and_defaults_give_the_default_spec(plugin):
    params, _ = plugin
    ps = params.stream_job_params()
    assert {f.name for f in fields(StreamJobSpec)} <= set(ps)
    defaults = {name: p.value for name, p in ps.items()}
    settings = params.stream_settings(defaults)
    assert settings.spec == StreamJobSpec()
    assert settings.thresholds == Thresholds() and settings.restart == RestartPolicy()


def test_params_map_onto_the_spec_thresholds_and_restart_policy(plugin):
    params, _ = plugin
    settings = params.stream_settings({
        "topic": "t", "query_name": "q1", "camera_models": {"sim-000": "blazeface"}, "batch_size": 4,
        "executors": 2, "cores_per_executor": 1, "task_cpus": 1, "tasks_per_gpu": 4, "trigger_seconds": 0.5,
        "thresholds": {"max_lag_records": 10}, "restart": {"base_s": 1, "max_restarts": 2}, "unrelated": 1})
    spec = settings.spec
    assert (spec.topic, spec.query_name, spec.camera_models, spec.batch_size) == ("t", "q1", {"sim-000": "blazeface"}, 4)
    assert spec.spark_conf()["spark.task.resource.gpu.amount"] == "0.2500"
    assert settings.thresholds == Thresholds(max_lag_records=10)
    assert settings.restart == RestartPolicy(base_s=1, max_restarts=2)
    with pytest.raises(ValueError, match="task_cpus"):
        params.stream_settings({"cores_per_executor": 1, "task_cpus": 2})


def test_camera_keys_are_registry_ids_or_patterns(plugin, tmp_path, monkeypatch):
    params, _ = plugin
    registry = tmp_path / "cameras.yaml"
    registry.write_text("cameras:\n  - {id: gate-1, url: rtsp://x}\n  - {id: lobby-2, url: /v.mp4}\n")
    monkeypatch.setenv("ARGUS_CAMERAS", str(registry))
    schema = params.camera_models_param().schema
    check = lambda value: jsonschema.validate(value, schema)  # noqa: E731
    check({"gate-1": "blazeface", "lobby-*": "ssdlite-person"})
    with pytest.raises(jsonschema.ValidationError, match=r"'gate-9' is not one of \['gate-1', 'lobby-2'\]"):
        check({"gate-9": "blazeface"})
    with pytest.raises(jsonschema.ValidationError, match="'no-such-model' is not one of"):
        check({"gate-1": "no-such-model"})


def test_the_repository_registry_lists_the_simulator_cameras(plugin, monkeypatch):
    params, _ = plugin
    monkeypatch.delenv("ARGUS_CAMERAS", raising=False)
    assert params.registry_camera_ids() == ["sim-000", "sim-001", "sim-002"]


def make_trigger(trigger_module, store, **kw):
    trig = trigger_module.StreamHealthTrigger(**{"query_name": "q", "hbase_host": "h", "hbase_port": 1,
                                                 "thresholds": Thresholds(stall_s=60).to_dict(), "poll_interval": 0.05,
                                                 **kw})
    trig._store = lambda: store
    return trig


async def first_event(trig, timeout: float):
    async def first():
        async for event in trig.run():
            return event
    try:
        return await asyncio.wait_for(first(), timeout)
    except asyncio.TimeoutError:
        return None


def test_trigger_serializes_to_its_kwargs(plugin):
    _, trigger = plugin
    trig = make_trigger(trigger, None, launch_id="L", launched_ms=5, open_breaches=["lag"])
    path, kwargs = trig.serialize()
    assert path == "argus_airflow.triggers.stream_health.StreamHealthTrigger"
    assert json.loads(json.dumps(kwargs))["open_breaches"] == ["lag"]
    assert trigger.StreamHealthTrigger(**kwargs).serialize() == (path, kwargs)
    # kwargs of a newer supervisor (rolling upgrade: the triggerer still runs this version)
    assert trigger.StreamHealthTrigger(**kwargs, from_the_future=1).serialize() == (path, kwargs)


def test_trigger_is_silent_while_healthy_and_fires_when_the_driver_dies(plugin):
    _, trigger = plugin
    store = MemoryStatusStore()
    k, _ = keeper(store)
    k.acquire()
    k.record_progress(PROGRESS)
    assert asyncio.run(first_event(make_trigger(trigger, store), 0.5)) is None

    k.release("failed", "StreamingQueryException: boom")
    event = asyncio.run(first_event(make_trigger(trigger, store), 2))
    assert event.payload["health"]["state"] == "dead"
    assert "boom" in event.payload["health"]["reasons"][0]
    assert event.payload["lease"]["owner"] == k.owner


def test_trigger_fires_when_the_open_breaches_change(plugin):
    _, trigger = plugin
    store = MemoryStatusStore()
    k, _ = keeper(store)
    k.acquire()
    lagging = json.loads(json.dumps(PROGRESS))
    lagging["sources"][0]["latestOffset"] = {"argus.frames": {"0": 0, "1": 99_999}}
    k.record_progress(lagging)
    event = asyncio.run(first_event(make_trigger(trigger, store), 2))
    assert event.payload["health"]["state"] == "healthy" and list(event.payload["health"]["breaches"]) == ["lag"]
    # already alerted on: silent
    assert asyncio.run(first_event(make_trigger(trigger, store, open_breaches=["lag"]), 0.5)) is None


def test_trigger_waits_for_its_launch_then_gives_up(plugin):
    _, trigger = plugin
    store = MemoryStatusStore()
    launched = int(time.time() * 1000)
    assert asyncio.run(first_event(make_trigger(trigger, store, launch_id="L9", launched_ms=launched), 0.5)) is None
    event = asyncio.run(first_event(make_trigger(trigger, store, launch_id="L9", launched_ms=launched - 3_600_000), 2))
    assert event.payload["health"]["state"] == "dead" and "never took the lease" in event.payload["health"]["reasons"][0]
    # a launcher process that is gone (this host, a pid that no longer runs) is dead at once
    from argus.process import boot_id

    gone = {"host": socket.gethostname(), "pid": os.getpid(), "start": 0, "boot": boot_id()}
    event = asyncio.run(first_event(make_trigger(trigger, store, launch_id="L9", launched_ms=launched, launcher=gone), 2))
    assert "exited before it took the lease" in event.payload["health"]["reasons"][0]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_trigger_names_an_unreadable_status_row_once_and_lets_the_driver_renew_after_it(plugin):
    _, trigger = plugin
    store = MemoryStatusStore()
    k, _ = keeper(store, ttl_s=0.5)
    k.acquire()
    k.record_progress(PROGRESS)
    store.fail = True  # the Thrift2 server is gone: neither the supervisor nor the driver reaches the row
    event = asyncio.run(first_event(make_trigger(trigger, store, hbase_host="127.0.0.1", hbase_port=_closed_port()), 2))
    health = event.payload["health"]
    assert health["state"] == "healthy" and list(health["breaches"]) == ["outage:hbase-thrift2"]
    assert "HBase Thrift2 server is down (HBase unreachable)" in health["breaches"]["outage:hbase-thrift2"]
    # alerted on: silent for as long as the row stays unreadable, and no restart verdict
    assert asyncio.run(first_event(make_trigger(trigger, store, open_breaches=["outage:hbase-thrift2"]), 0.5)) is None

    time.sleep(0.6)  # the lease lapsed meanwhile: its heartbeat could not reach HBase either
    store.fail = False
    threading.Timer(0.2, k.renew).start()  # the driver renews soon after the return
    event = asyncio.run(first_event(make_trigger(trigger, store, open_breaches=["outage:hbase-thrift2"]), 2))
    assert event.payload["health"]["state"] == "healthy" and event.payload["health"]["breaches"] == {}


def test_trigger_judges_a_lease_not_renewed_after_the_outage_dead(plugin, monkeypatch):
    _, trigger = plugin
    monkeypatch.setattr(trigger, "RENEW_GRACE_MS", 200)
    store = MemoryStatusStore()
    k, _ = keeper(store, ttl_s=0.3)
    k.acquire()
    time.sleep(0.4)
    started = time.monotonic()
    event = asyncio.run(first_event(make_trigger(trigger, store, open_breaches=["outage:hbase"]), 3))
    assert event.payload["health"]["state"] == "dead" and "heartbeat" in event.payload["health"]["reasons"][0]
    assert time.monotonic() - started >= 0.5  # after the lease TTL and the grace, not at once


# ---- the operator's decisions (start or attach, restart with backoff, alerts), no Spark ----

class OperatorHarness:
    """A StreamSupervisorOperator over an in-memory status row; launches and alerts recorded."""

    def __init__(self, params_values: dict | None = None):
        from argus_airflow.operators.stream_supervisor import StreamSupervisorOperator

        self.store = MemoryStatusStore()
        self.launches: list[str] = []
        self.alerts: list[tuple[str, str, dict, str | None]] = []
        self.op = StreamSupervisorOperator(task_id="supervise_stream", stream={
            "query_name": "q", "restart": {"base_s": 10, "max_restarts": 2, "window_s": 3600},
            **(params_values or {})})
        self.op._store = lambda: self.store
        self.op._launch = self._launch
        self.op._alert = lambda context, summary, severity, details, dedup_key=None: self.alerts.append(
            (summary, severity, details, dedup_key))
        ti = type("TI", (), {"try_number": 1, "dag_id": "argus_stream_detection", "task_id": "supervise_stream",
                             "run_id": "r1"})()
        self.context = {"dag": type("Dag", (), {"dag_id": "argus_stream_detection"})(), "run_id": "r1", "ti": ti}

    def _launch(self, settings, state, context):
        self.launches.append(settings.spec.query_name)
        state.update(launch_id=f"L{len(self.launches)}", launched_ms=int(time.time() * 1000), launcher=None)

    def call(self, method: str, **kwargs):
        from airflow.sdk.exceptions import TaskDeferred

        with pytest.raises(TaskDeferred) as deferred:
            getattr(self.op, method)(self.context, **kwargs)
        return deferred.value

    def remote_lease(self, **kw):
        """A driver on another host holds the lease (nothing here gets killed)."""
        from argus.supervision.status import Lease

        now = int(time.time() * 1000)
        lease = Lease(**{"owner": "other:1:x", "host": "elsewhere", "pid": 1, "pid_start": 0.0, "pgid": 1,
                         "acquired_ms": now, "heartbeat_ms": now, "ttl_ms": 15_000, **kw})
        self.store.check_and_put("q", self.store.read("q").lease_raw, {"lease": lease.encode()})
        return lease


def dead_event():
    return {"health": {"state": "dead", "reasons": ["driver process 7 on vm is gone"], "breaches": {}, "lag": 3,
                       "batch_age_s": None, "owner": "other:1:x"}, "lease": None}


def test_operator_starts_the_job_then_watches_from_the_triggerer(plugin):
    h = OperatorHarness()
    deferred = h.call("execute")
    assert h.launches == ["q"]
    assert type(deferred.trigger).__name__ == "StreamHealthTrigger" and deferred.method_name == "execute_complete"
    assert deferred.trigger.launch_id == "L1" and deferred.kwargs["state"]["launch_id"] == "L1"


def test_operator_attaches_to_a_live_driver_instead_of_starting_a_second(plugin):
    h = OperatorHarness()
    h.remote_lease()
    deferred = h.call("execute")
    assert h.launches == [] and deferred.trigger.launch_id is None


def test_a_dead_driver_is_fenced_alerted_and_restarted_at_once_then_with_backoff_then_given_up(plugin):
    h = OperatorHarness()
    h.remote_lease(heartbeat_ms=int(time.time() * 1000) - 60_000)  # expired: it has fenced itself
    state = h.call("execute").kwargs["state"]
    assert h.launches == ["q"] and h.store.read("q").lease.revoked_by == "airflow:argus_stream_detection/r1"

    deferred = h.call("execute_complete", event=dead_event(), state=state)
    assert h.launches == ["q", "q"] and deferred.method_name == "execute_complete"
    summary, severity, details, _ = h.alerts[-1]
    assert severity == "error" and "q dead (driver process 7 on vm is gone): restarting from its checkpoint" in summary
    assert details["checkpoint"].endswith("/argus/checkpoints/q") and details["restart"] == 1

    # the second restart within the window waits base_s in a TimeDeltaTrigger, not in the worker
    deferred = h.call("execute_complete", event=dead_event(), state=deferred.kwargs["state"])
    assert deferred.method_name == "relaunch" and type(deferred.trigger).__name__ == "TimeDeltaTrigger"
    assert len(h.launches) == 2 and "restarting from its checkpoint in 10s" in h.alerts[-1][0]
    deferred = h.call("relaunch", state=deferred.kwargs["state"])
    assert len(h.launches) == 3 and deferred.method_name == "execute_complete"

    # the limit reached: no more restarts, a critical page with what to do, and again later
    deferred = h.call("execute_complete", event=dead_event(), state=deferred.kwargs["state"])
    assert len(h.launches) == 3 and deferred.method_name == "repage"
    wait = (deferred.trigger.moment.timestamp() - time.time())
    assert 1790 < wait <= 1800
    summary, severity, details, dedup = h.alerts[-1]
    assert severity == "critical" and "no longer restarted: 2 restarts within 3600s" in summary
    assert "clear task supervise_stream" in details["what_to_do"] and dedup == "argus/stream/q/given_up"
    deferred = h.call("repage", state=deferred.kwargs["state"])
    assert deferred.method_name == "repage" and "(page 2)" in h.alerts[-1][0] and len(h.launches) == 3
    # a person starts the job by hand: the next page finds it running and watches it instead
    h.remote_lease()
    deferred = h.call("repage", state=deferred.kwargs["state"])
    assert deferred.method_name == "execute_complete" and deferred.kwargs["state"]["given_up"] is None
    assert len(h.alerts) == 4  # two restarts, two pages; none once it runs again


def test_independent_faults_keep_being_restarted_a_repeated_failure_gives_up(plugin):
    h = OperatorHarness({"restart": {"base_s": 1, "max_delay_s": 4}})
    state = h.call("execute").kwargs["state"]
    # six driver kills within the hour: no failure recorded, each is restarted (backoff capped)
    delays = []
    for _ in range(6):
        deferred = h.call("execute_complete", event=dead_event(), state=state)
        state = deferred.kwargs["state"]
        delays.append(h.alerts[-1][2]["delay_s"])
        if deferred.method_name == "relaunch":
            state = h.call("relaunch", state=state).kwargs["state"]
    assert len(h.launches) == 7 and delays == [0, 1, 2, 4, 4, 4]
    assert all(a[1] == "error" for a in h.alerts)
    # the same recorded failure, three times in a row: a loop, given up
    h.store.rows["q"] = {**h.store.rows.get("q", {}), b"failing": json.dumps(
        {"batch": 12, "attempts": 1, "error": "ValueError: bad checkpoint 3"}).encode()}
    for _ in range(2):
        deferred = h.call("execute_complete", event=dead_event(), state=state)
        state = h.call("relaunch", state=deferred.kwargs["state"]).kwargs["state"] \
            if deferred.method_name == "relaunch" else deferred.kwargs["state"]
    deferred = h.call("execute_complete", event=dead_event(), state=state)
    assert deferred.method_name == "repage"
    assert "the same failure 3 times in a row (limit 3): micro-batch 12: ValueError: bad checkpoint #" in h.alerts[-1][0]


def test_restart_history_is_forgotten_after_a_healthy_period_and_a_new_stack_start(plugin, tmp_path, monkeypatch):
    from argus.supervision.restart import RestartPolicy

    policy = RestartPolicy(base_s=10, healthy_reset_s=600)
    now = int(time.time() * 1000)
    busy = [{"ms": now - 300_000, "failure": None}, {"ms": now - 200_000, "failure": None}]
    assert policy.delay_s(busy, now) == 20
    # the last driver ran for 11 minutes before it died: it was healthy, start afresh
    assert policy.delay_s([{"ms": now - 1_200_000, "failure": None}, {"ms": now - 660_000, "failure": None}], now) == 0
    # a new `argus stack up`: the supervisor forgets what came before
    monkeypatch.setenv("ARGUS_STATE_DIR", str(tmp_path))
    h = OperatorHarness()
    state = {"restarts": busy, "stack_epoch": "old"}
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "stack-epoch").write_text("1796320000.000 kafka\n")
    assert h.op._since_stack_start(state) == [] and state["stack_epoch"] == "1796320000.000 kafka"
    state["restarts"] = busy
    assert h.op._since_stack_start(state) == busy


def test_each_breach_alerts_once_per_episode(plugin):
    h = OperatorHarness()
    state = h.call("execute").kwargs["state"]
    health = {"state": "healthy", "reasons": [], "lag": 7000, "batch_age_s": 2.0, "owner": "o",
              "breaches": {"lag": "Kafka lag 7000 records > 5000"}}
    deferred = h.call("execute_complete", event={"health": health, "lease": None}, state=state)
    assert [(a[1], a[3]) for a in h.alerts] == [("warning", "argus/stream/q/lag")]
    assert deferred.trigger.open_breaches == ["lag"]
    # the same breach again (e.g. after a triggerer restart): no second alert; then it clears
    deferred = h.call("execute_complete", event={"health": health, "lease": None}, state=deferred.kwargs["state"])
    assert len(h.alerts) == 1
    deferred = h.call("execute_complete", event={"health": {**health, "breaches": {}}, "lease": None},
                      state=deferred.kwargs["state"])
    assert deferred.trigger.open_breaches == [] and len(h.alerts) == 1 and len(h.launches) == 1


def test_promoted_doe_settings_apply_where_the_trigger_set_nothing(plugin, monkeypatch):
    import argus_airflow.doe as doe
    from argus_airflow.operators.stream_supervisor import StreamSupervisorOperator

    params, _ = plugin
    defaults = {name: p.value for name, p in params.stream_job_params().items()}
    monkeypatch.setattr(doe, "promoted_stream_settings", lambda: {"executors": 2, "batch_size": 4, "sweep_id": "s1"})
    op = StreamSupervisorOperator(task_id="supervise_stream")
    run = type("Run", (), {"conf": {}})()
    spec = op._settings({"params": defaults, "dag_run": run}).spec
    # the promoted executors share the cores the params give (1 executor x 2 cores)
    assert (spec.executors, spec.batch_size, spec.cores_per_executor, spec.task_cpus) == (2, 4, 1, 1)
    run.conf = {"batch_size": 16}  # what the trigger sets wins
    spec = op._settings({"params": {**defaults, "batch_size": 16}, "dag_run": run}).spec
    assert (spec.executors, spec.batch_size) == (2, 16)
    monkeypatch.setattr(doe, "promoted_stream_settings", lambda: None)
    assert op._settings({"params": defaults, "dag_run": run}).spec == StreamJobSpec()


def test_an_outage_alerts_once_as_an_error_naming_the_service(plugin):
    h = OperatorHarness()
    state = h.call("execute").kwargs["state"]
    health = {"state": "healthy", "reasons": [], "lag": None, "batch_age_s": 40.0, "owner": "o",
              "breaches": {"outage:kafka": "Kafka is down (Kafka does not answer; the query waits); ..."}}
    for _ in range(3):  # polled again and again while it lasts
        state = h.call("execute_complete", event={"health": health, "lease": None}, state=state).kwargs["state"]
    assert [(a[1], a[3]) for a in h.alerts] == [("error", "argus/stream/q/outage:kafka")]
    assert "Kafka is down" in h.alerts[0][0] and h.launches == ["q"]


def test_a_restart_budget_that_would_give_up_before_isolation_is_refused(plugin):
    params, _ = plugin
    with pytest.raises(ValueError, match="same_failure_limit .2. must exceed poison_after_failures .2."):
        params.stream_settings({"poison_after_failures": 2, "restart": {"same_failure_limit": 2}})


def test_an_event_breach_alerts_once_whatever_verdicts_come_between(plugin):
    h = OperatorHarness()
    state = h.call("execute").kwargs["state"]
    skip = {"state": "healthy", "reasons": [], "lag": 0, "batch_age_s": 1.0, "owner": "o",
            "breaches": {"skipped_offsets@4": "micro-batch 4 skipped 5 offset(s) ..."}}
    starting = {**skip, "state": "starting", "breaches": {}}
    for health in (skip, starting, skip, skip):
        state = h.call("execute_complete", event={"health": health, "lease": None}, state=state).kwargs["state"]
    assert [(a[1], a[3]) for a in h.alerts] == [("error", "argus/stream/q/skipped_offsets@4")]
