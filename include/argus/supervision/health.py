"""How healthy a streaming query is, from its status row alone (no Spark, no Airflow).

:func:`assess` is pure: the same status, clock and thresholds always give the same verdict,
so it is tested on recorded progress JSON and used unchanged by the Airflow trigger.

- **dead**: no live driver (no lease, a released/revoked/expired lease, the local driver
  process gone, or a launched driver that never took the lease) -> restart.
- **stalled**: a driver heartbeats but no micro-batch completed for ``stall_s`` while input
  is pending -> restart.
- **breaches** (SLOs; alert, no restart): Kafka lag over ``max_lag_records``; last micro-batch
  older than ``max_batch_age_s`` while input is pending; last batch longer than
  ``max_batch_duration_factor`` x the trigger interval; input rows/s above processed rows/s
  for ``sustain_batches`` batches in a row; offsets the source skipped (``s:skipped``), one
  breach per skip.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Annotated, Any

from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass as pydantic_dataclass

from argus.supervision.offsets import offsets_json as _offsets
from argus.supervision.status import StreamStatus

HEALTHY, STARTING, DEAD, STALLED = "healthy", "starting", "dead", "stalled"


@pydantic_dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class Thresholds:
    """Service levels of the streaming query, and when it counts as stalled.

    :param max_lag_records: Kafka records behind the latest offsets (summed over partitions).
    :param max_batch_age_s: seconds since the last completed micro-batch, while input is pending.
    :param max_batch_duration_factor: a micro-batch may take this many trigger intervals.
    :param sustain_batches: input rate above processing rate for this many batches in a row.
    :param stall_s: no micro-batch for this long while input is pending: restart.
    :param start_timeout_s: a launched driver must take the lease within this time.
    """

    max_lag_records: Annotated[int, Field(ge=0, description="Kafka records behind")] = 5000
    max_batch_age_s: Annotated[float, Field(gt=0, description="age of the last micro-batch while input is pending")] = 120.0
    max_batch_duration_factor: Annotated[float, Field(ge=1, description="micro-batch duration / trigger interval")] = 5.0
    sustain_batches: Annotated[int, Field(ge=1, le=20, description="batches in a row with input rate > processing rate")] = 5
    stall_s: Annotated[float, Field(gt=0, description="no micro-batch this long while input is pending: restart")] = 600.0
    start_timeout_s: Annotated[float, Field(gt=0, description="a launched driver must take its lease within this time")] = 300.0

    @classmethod
    def from_mapping(cls, values: dict[str, Any] | None) -> Thresholds:
        names = {f.name for f in fields(cls)}
        unknown = set(values or {}) - names
        if unknown:
            raise ValueError(f"unknown threshold(s): {', '.join(sorted(unknown))}")
        return cls(**(values or {}))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Health:
    """The verdict: ``state`` (healthy, starting, dead, stalled), why, and the open SLO breaches.

    :param breaches: breach name (``lag``, ``batch_age``, ``batch_duration``, ``throughput``)
        -> what was measured against which threshold.
    """

    state: str
    reasons: tuple[str, ...] = ()
    breaches: dict[str, str] = field(default_factory=dict)
    lag: int | None = None
    batch_age_s: float | None = None
    owner: str | None = None

    @property
    def needs_restart(self) -> bool:
        return self.state in (DEAD, STALLED)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "reasons": list(self.reasons)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Health:
        return cls(**{**data, "reasons": tuple(data.get("reasons", ()))})


def kafka_lag(progress: dict[str, Any] | None) -> int | None:
    """Records between what the last micro-batch read up to and the latest offsets, summed
    over the Kafka sources and partitions of a ``StreamingQueryProgress``; None if unknown."""
    if not progress:
        return None
    total, known = 0, False
    for source in progress.get("sources") or []:
        latest, end = _offsets(source.get("latestOffset")), _offsets(source.get("endOffset"))
        for topic, partitions in latest.items():
            if not isinstance(partitions, dict):
                continue
            for partition, offset in partitions.items():
                done = end.get(topic, {}).get(partition)
                if done is None:
                    continue
                known = True
                total += max(0, int(offset) - int(done))
    return total if known else None


def summarize(progress: dict[str, Any], at_ms: int) -> dict[str, Any]:
    """The few numbers of a progress event that sustained SLOs look at (``s:recent`` entries)."""
    return {
        "batch": progress.get("batchId"),
        "ms": at_ms,
        "rows": progress.get("numInputRows", 0),
        "in_rps": progress.get("inputRowsPerSecond"),
        "done_rps": progress.get("processedRowsPerSecond"),
        "duration_ms": (progress.get("durationMs") or {}).get("triggerExecution"),
        "lag": kafka_lag(progress),
    }


def _dead(reason: str, status: StreamStatus, lag: int | None = None) -> Health:
    reasons, breaches = [reason], {}
    failing = status.failing or {}
    if failing.get("attempts"):
        batch, attempts, after = failing.get("batch"), int(failing["attempts"]), failing.get("after")
        reasons.append(f"micro-batch {batch} failed {attempts} time(s) in a row ({failing.get('error')}); "
                       f"its failing records are isolated after {after}")
        if attempts >= 2:  # the same batch again: a crash loop, an SLO breach in itself
            breaches[f"crash_loop@{batch}"] = (f"crash loop: micro-batch {batch} failed {attempts} times in a row: "
                                               f"{failing.get('error')}")
    return Health(DEAD, tuple(reasons), breaches, lag=lag, owner=status.lease.owner if status.lease else None)


def assess(status: StreamStatus, now_ms: int, thresholds: Thresholds, *, launch_id: str | None = None,
           launched_ms: int | None = None, launcher_alive: bool | None = None,
           driver_alive: bool | None = None) -> Health:
    """Judge a query's health at ``now_ms``.

    :param status: the query's status row.
    :param now_ms: the clock (ms since the epoch).
    :param thresholds: SLOs and stall limits.
    :param launch_id: / :param launched_ms: the supervisor's latest launch, if it launched one:
        until a driver of that launch holds the lease the query is *starting*, then *dead* after
        ``start_timeout_s``.
    :param launcher_alive: whether that launch's spark-submit still runs, when the caller can
        tell; False before its driver took the lease makes the query dead at once.
    :param driver_alive: whether the lease holder's process exists, when the caller can tell
        (same host); False makes the query dead at once instead of after the lease TTL.
    """
    lease = status.lease
    lag = kafka_lag(status.progress)
    if launch_id is not None and (lease is None or lease.launch_id != launch_id):
        waited = (now_ms - (launched_ms or now_ms)) / 1000
        if launcher_alive is False:
            return _dead(f"the driver launched {waited:.0f}s ago exited before it took the lease", status, lag)
        if waited <= thresholds.start_timeout_s:
            return Health(STARTING, (f"driver launched {waited:.0f}s ago, not holding the lease yet",), lag=lag)
        return _dead(f"the driver launched {waited:.0f}s ago never took the lease", status, lag)
    if lease is None:
        return _dead("no driver holds the lease", status, lag)
    if lease.revoked_by:
        return _dead(f"lease revoked by {lease.revoked_by}", status, lag)
    if lease.released:
        state = status.state or {}
        return _dead(f"driver {state.get('state', 'stopped')}: {state.get('message') or 'lease released'}", status, lag)
    if lease.expired(now_ms):
        return _dead(f"driver heartbeat {(now_ms - lease.heartbeat_ms) / 1000:.0f}s old "
                     f"(lease TTL {lease.ttl_ms / 1000:.0f}s)", status, lag)
    if driver_alive is False:
        return _dead(f"driver process {lease.pid} on {lease.host} is gone", status, lag)

    qstatus = status.query_status or {}
    pending = bool(lag) or bool(qstatus.get("isDataAvailable"))
    last_batch = max(status.batch_ms or 0, status.idle_ms or 0) or lease.acquired_ms
    age_s = max(0.0, (now_ms - last_batch) / 1000)
    outage = status.outage or {}
    if outage.get("service") and int(outage.get("since_ms", 0)) >= lease.acquired_ms:  # the driver waits for a service on purpose: a restart would not help
        since_s = (now_ms - int(outage.get("since_ms", now_ms))) / 1000
        return Health(HEALTHY, (), {f"outage:{outage['service']}": (
            f"{outage.get('name', outage['service'])} is down ({outage.get('error')}); the stream waits for it "
            f"since {since_s:.0f}s and resumes by itself")}, lag=lag, batch_age_s=age_s, owner=lease.owner)
    if pending and age_s > thresholds.stall_s:
        return Health(STALLED, (f"no micro-batch for {age_s:.0f}s while input is pending "
                                f"(stall limit {thresholds.stall_s:.0f}s)",), lag=lag, batch_age_s=age_s,
                      owner=lease.owner)

    breaches: dict[str, str] = {}
    if lag is not None and lag > thresholds.max_lag_records:
        breaches["lag"] = f"Kafka lag {lag} records > {thresholds.max_lag_records}"
    if pending and age_s > thresholds.max_batch_age_s:
        breaches["batch_age"] = f"last micro-batch {age_s:.0f}s ago > {thresholds.max_batch_age_s:.0f}s"
    trigger_s = float(status.job.get("trigger_seconds") or 0)
    duration_ms = ((status.progress or {}).get("durationMs") or {}).get("triggerExecution")
    # a driver's first micro-batch loads the models and may take long: judge from the second on
    if (trigger_s > 0 and duration_ms and len(status.recent) >= 2
            and duration_ms > thresholds.max_batch_duration_factor * trigger_s * 1000):
        breaches["batch_duration"] = (f"last micro-batch took {duration_ms / 1000:.1f}s > "
                                      f"{thresholds.max_batch_duration_factor:g} x trigger {trigger_s:g}s")
    recent = [r for r in status.recent if r.get("rows")][-thresholds.sustain_batches:]
    if len(recent) >= thresholds.sustain_batches and all(
            (r.get("in_rps") or 0) > (r.get("done_rps") or 0) for r in recent):
        breaches["throughput"] = (f"input rows/s above processed rows/s for the last {len(recent)} batches "
                                  f"(last: {recent[-1].get('in_rps') or 0:.1f} > {recent[-1].get('done_rps') or 0:.1f})")
    breaches.update(skipped_breach(status, now_ms))
    breaches.update(isolated_breach(status, now_ms))
    return Health(HEALTHY, (), breaches, lag=lag, batch_age_s=age_s, owner=lease.owner)


#: a skip of offsets, or an isolation, stays an open breach this long (alerted once, when it opens)
SKIPPED_BREACH_S = 900.0


def _newest(events: dict[str, Any] | None, now_ms: int) -> dict[str, Any] | None:
    """The newest entry of an event column (``{"total", "recent": [...]}``), unless it is
    older than :data:`SKIPPED_BREACH_S`."""
    recent = (events or {}).get("recent") or []
    if not recent or now_ms - int(recent[-1].get("ms", 0)) > SKIPPED_BREACH_S * 1000:
        return None
    return recent[-1]


def skipped_breach(status: StreamStatus, now_ms: int) -> dict[str, str]:
    """The newest skip of unreadable offsets (``s:skipped``), as a breach named after its batch
    so that each skip alerts once."""
    last = _newest(status.skipped, now_ms)
    if last is None:
        return {}
    return {f"skipped_offsets@{last.get('batch')}": (
        f"micro-batch {last.get('batch')} skipped {last.get('skipped')} offset(s) it could not read "
        f"(deleted or past retention): {last.get('text')}; {status.skipped.get('total')} skipped in all")}


def isolated_breach(status: StreamStatus, now_ms: int) -> dict[str, str]:
    """The newest records isolated from a poison micro-batch (``s:isolated``), as a breach
    named after its batch."""
    from argus.supervision.poison import describe as describe_isolated

    last = _newest(status.isolated, now_ms)
    if last is None:
        return {}
    return {f"isolated@{last.get('batch')}": (
        f"micro-batch {last.get('batch')} kept failing; {len(last.get('records', []))} record(s) that failed it "
        f"alone were dead-lettered (stage isolate): {describe_isolated(last)}")}
