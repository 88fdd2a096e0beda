"""Supervision of the streaming job without Spark or HBase: health verdicts on a progress
recorded from Spark 4 (tests/unit/data/stream_progress.json), restart backoff, and the lease
protocol against an in-memory status store with HBase's checkAndPut semantics."""

from __future__ import annotations

import copy
import json
import os
import socket
import threading
import time

import pytest

from argus.supervision.health import DEAD, HEALTHY, STALLED, STARTING, Thresholds, assess, kafka_lag, summarize
from argus.supervision.restart import RestartPolicy, TooManyRestarts
from argus.supervision.status import Lease, LeaseHeld, StreamStatus
from stream_fakes import PROGRESS, MemoryStatusStore, keeper

NOW = 1_800_000_000_000
T = Thresholds(max_lag_records=100, max_batch_age_s=30, max_batch_duration_factor=3, sustain_batches=3,
               stall_s=120, start_timeout_s=60)


def progress(latest: dict[str, int] | None = None, end: dict[str, int] | None = None, duration_ms: int = 1197,
             in_rps: float = 4.8, done_rps: float = 9.0) -> dict:
    p = copy.deepcopy(PROGRESS)
    src = p["sources"][0]
    if latest is not None:
        src["latestOffset"] = {"argus.frames": latest}
    if end is not None:
        src["endOffset"] = {"argus.frames": end}
    p["durationMs"]["triggerExecution"] = duration_ms
    p["inputRowsPerSecond"], p["processedRowsPerSecond"] = in_rps, done_rps
    return p


def lease(**kw) -> Lease:
    values = dict(owner="vm:1:abc", host="elsewhere", pid=1, pid_start=0.0, acquired_ms=NOW - 600_000,
                  heartbeat_ms=NOW - 2000, ttl_ms=15_000, launch_id="L1")
    values.update(kw)
    return Lease(**values)


def status(p: dict | None = None, *, batch_age_s: float = 2, recent: list | None = None, data_available=False,
           **lease_kw) -> StreamStatus:
    p = PROGRESS if p is None else p
    return StreamStatus(query="q", lease=lease(**lease_kw), progress=p, batch_ms=NOW - int(batch_age_s * 1000),
                        recent=recent if recent is not None else [summarize(p, NOW - 3000), summarize(p, NOW - 2000)],
                        job={"trigger_seconds": 1.0}, query_status={"isDataAvailable": data_available})


# ---- Kafka lag ----

def test_lag_of_the_recorded_progress_is_zero_when_caught_up():
    assert kafka_lag(PROGRESS) == 0


def test_lag_sums_latest_minus_end_over_partitions():
    assert kafka_lag(progress(latest={"0": 50, "1": 120}, end={"0": 40, "1": 20})) == 110


def test_lag_reads_offsets_given_as_json_text_and_ignores_unknown_partitions():
    p = progress()
    p["sources"][0]["latestOffset"] = json.dumps({"argus.frames": {"0": 9, "1": 30, "7": 5}})
    assert kafka_lag(p) == 19
    assert kafka_lag(None) is None and kafka_lag({"sources": []}) is None


# ---- assess ----

def test_a_heartbeating_driver_with_recent_batches_is_healthy():
    health = assess(status(), NOW, T)
    assert health.state == HEALTHY and health.breaches == {} and not health.needs_restart
    assert health.lag == 0 and health.owner == "vm:1:abc"


@pytest.mark.parametrize("kw, fragment", [
    ({"heartbeat_ms": NOW - 20_000}, "heartbeat 20s old"),
    ({"revoked_by": "airflow:x"}, "revoked by airflow:x"),
    ({"released": True}, "failed: boom"),
])
def test_a_driver_without_a_live_lease_is_dead(kw, fragment):
    s = status(**kw)
    s.state = {"state": "failed", "message": "boom"}
    health = assess(s, NOW, T)
    assert health.state == DEAD and health.needs_restart
    assert fragment in health.reasons[0]


def test_no_lease_at_all_is_dead():
    health = assess(StreamStatus(query="q"), NOW, T)
    assert health.state == DEAD and "no driver" in health.reasons[0]


def test_a_vanished_local_process_is_dead_before_its_lease_expires():
    health = assess(status(), NOW, T, driver_alive=False)
    assert health.state == DEAD and "process 1 on elsewhere is gone" in health.reasons[0]


def test_a_launch_is_starting_until_its_driver_takes_the_lease_then_dead_after_the_timeout():
    old = status(heartbeat_ms=NOW - 60_000, launch_id="L0")  # the killed predecessor's lease
    assert assess(old, NOW, T, launch_id="L1", launched_ms=NOW - 30_000).state == STARTING
    late = assess(old, NOW, T, launch_id="L1", launched_ms=NOW - 61_000)
    assert late.state == DEAD and "never took the lease" in late.reasons[0]
    assert assess(status(launch_id="L1"), NOW, T, launch_id="L1", launched_ms=NOW - 30_000).state == HEALTHY
    # its spark-submit already exited (e.g. refused by a live lease, or a bad command): dead at once
    early = assess(old, NOW, T, launch_id="L1", launched_ms=NOW - 5000, launcher_alive=False)
    assert early.state == DEAD and "exited before it took the lease" in early.reasons[0]


def test_no_batch_for_the_stall_limit_while_input_is_pending_is_stalled():
    lagging = progress(latest={"0": 0, "1": 50})
    health = assess(status(lagging, batch_age_s=121), NOW, T)
    assert health.state == STALLED and health.needs_restart and "121s" in health.reasons[0]
    # same age, nothing pending: an idle query, not a stalled one
    assert assess(status(batch_age_s=121), NOW, T).state == HEALTHY
    # nothing read yet but Spark says data is available (first batch hanging)
    assert assess(status(batch_age_s=121, data_available=True), NOW, T).state == STALLED


def test_lag_over_its_threshold_is_a_breach():
    health = assess(status(progress(latest={"0": 0, "1": 121})), NOW, T)
    assert health.state == HEALTHY and set(health.breaches) == {"lag"}
    assert health.breaches["lag"] == "Kafka lag 101 records > 100"


def test_an_old_last_batch_with_pending_input_is_a_breach():
    health = assess(status(progress(latest={"0": 0, "1": 30}), batch_age_s=45), NOW, T)
    assert set(health.breaches) == {"batch_age"} and "45s ago > 30s" in health.breaches["batch_age"]


def test_a_slow_batch_is_a_breach_but_not_the_first_of_a_driver():
    slow = progress(duration_ms=3500)
    assert set(assess(status(slow), NOW, T).breaches) == {"batch_duration"}
    assert assess(status(slow, recent=[summarize(slow, NOW)]), NOW, T).breaches == {}


def test_input_faster_than_processing_must_be_sustained_to_breach():
    behind = progress(in_rps=10, done_rps=6)
    ahead = progress(in_rps=5, done_rps=6)
    two = [summarize(ahead, NOW - 3000), summarize(behind, NOW - 2000), summarize(behind, NOW - 1000)]
    assert assess(status(behind, recent=two), NOW, T).breaches == {}
    three = [summarize(behind, NOW - i * 1000) for i in (3, 2, 1)]
    assert set(assess(status(behind, recent=three), NOW, T).breaches) == {"throughput"}


def test_health_round_trips_through_a_trigger_event():
    from argus.supervision.health import Health

    health = assess(status(progress(latest={"0": 0, "1": 500})), NOW, T)
    assert Health.from_dict(json.loads(json.dumps(health.to_dict()))) == health


def test_thresholds_refuse_unknown_names():
    assert Thresholds.from_mapping({"stall_s": 5}).stall_s == 5
    with pytest.raises(ValueError, match="max_lagg"):
        Thresholds.from_mapping({"max_lagg": 5})


# ---- restart policy ----

def test_backoff_is_immediate_then_exponential_then_capped():
    policy = RestartPolicy(base_s=10, factor=2, max_delay_s=35, max_restarts=10, window_s=3600)
    delays = [policy.delay_s([NOW - 1000] * n, NOW) for n in range(5)]
    assert delays == [0, 10, 20, 35, 35]


def test_too_many_restarts_in_the_window_fail_and_old_ones_age_out():
    policy = RestartPolicy(max_restarts=3, window_s=600)
    recent = [NOW - 100_000, NOW - 50_000, NOW - 1000]
    with pytest.raises(TooManyRestarts, match="3 restarts within 600s"):
        policy.delay_s(recent, NOW)
    assert policy.delay_s([NOW - 700_000, *recent[1:]], NOW) == policy.base_s * policy.factor


# ---- the lease protocol (HBase checkAndPut semantics, in memory) ----

def test_one_driver_holds_the_lease_a_second_is_refused():
    store = MemoryStatusStore()
    first, _ = keeper(store, launch_id="L1", job={"trigger_seconds": 2})
    held = first.acquire()
    assert (held.host, held.pid, held.pgid) == (socket.gethostname(), os.getpid(), os.getpgid(0))
    second, _ = keeper(store)
    with pytest.raises(LeaseHeld, match="already running: lease held by") as err:
        second.acquire()
    assert err.value.holder.owner == first.owner
    s = store.read("q")
    assert s.lease.launch_id == "L1" and s.job == {"trigger_seconds": 2} and s.state["state"] == "starting"


def test_an_expired_lease_is_taken_over_and_its_old_holder_is_fenced():
    store = MemoryStatusStore()
    old, old_lost = keeper(store, ttl_s=0.05)
    old.acquire()
    time.sleep(0.1)
    new, _ = keeper(store)
    new.acquire()
    assert store.read("q").lease.owner == new.owner
    # the old driver's writes are refused and it learns it lost the lease
    assert not old.record_progress(PROGRESS)
    assert old_lost and "taken over" in old_lost[0]
    assert not old.renew()
    assert store.read("q").progress is None


def test_heartbeats_renew_and_progress_is_recorded():
    store = MemoryStatusStore()
    k, lost = keeper(store)
    first = k.acquire()
    time.sleep(0.01)
    assert k.renew(app_id="app-1") and k.record_progress(PROGRESS) and k.set_state("running")
    s = store.read("q")
    assert s.lease.heartbeat_ms > first.heartbeat_ms and s.lease.app_id == "app-1"
    assert s.progress["batchId"] == 3 and s.batch_ms and s.recent[-1]["batch"] == 3 and s.state["state"] == "running"
    assert not lost


def test_a_revoked_lease_stops_its_holder_and_frees_the_query():
    store = MemoryStatusStore()
    k, lost = keeper(store)
    k.acquire()
    assert store.revoke("q", "airflow:test").owner == k.owner
    assert not k.renew() and "revoked by airflow:test" in lost[0]
    other, _ = keeper(store)
    other.acquire()  # a revoked lease is free at once


def test_release_marks_the_query_stopped_and_frees_the_lease():
    store = MemoryStatusStore()
    k, lost = keeper(store)
    k.acquire()
    k.release("stopped", "stopped on request")
    s = store.read("q")
    assert s.lease.released and s.state == {**s.state, "state": "stopped", "message": "stopped on request"}
    assert assess(s, int(time.time() * 1000), T).state == DEAD
    keeper(store)[0].acquire()
    assert not lost


def _wait(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_driver_that_cannot_renew_for_a_whole_ttl_suspends_itself_and_cancels_its_batch(capsys):
    store = MemoryStatusStore()
    cancelled = []
    k, lost = keeper(store, ttl_s=0.3, heartbeat_s=0.05, on_suspend=lambda: cancelled.append(True),
                     name_outage=lambda: "hbase-thrift2")
    k.acquire()
    k.start()
    store.fail = True
    time.sleep(0.2)
    assert not k.suspended  # within its TTL: it may still renew
    _wait(lambda: k.suspended)
    assert cancelled == [True] and not lost
    assert '"service": "hbase-thrift2"' in capsys.readouterr().out  # ARGUS_LEASE_SUSPENDED names it
    store.fail = False
    k.release()


def test_a_driver_that_cannot_renew_because_hbase_is_down_holds_its_batches_and_runs_on_after():
    store = MemoryStatusStore()
    k, lost = keeper(store, ttl_s=0.3, heartbeat_s=0.05, name_outage=lambda: "hbase")
    k.acquire()
    k.start()
    store.fail = True
    _wait(lambda: k.suspended)
    time.sleep(0.5)  # well past the TTL: still not fenced, since nobody can take the lease over
    assert not lost
    held = []
    waiter = threading.Thread(target=lambda: held.append(k.hold()))
    waiter.start()
    time.sleep(0.2)
    assert held == []  # no micro-batch while the lease is not renewed
    store.fail = False
    waiter.join(5)
    assert held == [True] and not k.suspended and not lost
    assert store.read("q").lease.owner == k.owner
    k.release()


def test_a_driver_whose_lease_was_taken_during_the_outage_exits_when_hbase_returns():
    store = MemoryStatusStore()
    k, lost = keeper(store, ttl_s=0.3, heartbeat_s=0.05, name_outage=lambda: 1 / 0)  # a failing probe changes nothing
    k.acquire()
    k.start()
    store.fail = True
    _wait(lambda: k.suspended)
    taken = Lease.decode(store.rows["q"][b"lease"])
    store.rows["q"][b"lease"] = Lease(**{**taken.__dict__, "owner": "elsewhere:1:new"}).encode()
    store.fail = False
    _wait(lambda: lost)
    assert "taken over" in lost[0] and k.hold() is False


def test_a_renewal_written_although_its_answer_timed_out_is_still_this_drivers_lease():
    class LostAnswers(MemoryStatusStore):
        drop = False

        def check_and_put(self, query, expected_lease, values):
            ok = super().check_and_put(query, expected_lease, values)
            if self.drop:
                self.drop = False
                raise OSError("timed out")  # HBase wrote it; the answer never came back
            return ok

    store = LostAnswers()
    k, lost = keeper(store)
    k.acquire()
    store.drop = True
    with pytest.raises(OSError):
        k.renew()
    assert k.renew() and not lost  # the row holds its newer lease: taken as the current one
    assert k.write({"idle_ms": 1}) and store.read("q").lease.owner == k.owner


def test_a_live_lease_whose_holder_process_is_gone_from_this_host_is_taken_over():
    store = MemoryStatusStore()
    from argus.process import boot_id

    dead = Lease(owner="vm:1:dead", host=socket.gethostname(), pid=os.getpid(), pid_start=0,  # not our start time
                 pgid=None, acquired_ms=int(time.time() * 1000), heartbeat_ms=int(time.time() * 1000), ttl_ms=60_000,
                 boot=boot_id())
    store.check_and_put("q", None, {"lease": dead.encode()})
    new, _ = keeper(store)
    assert new.acquire().owner == new.owner and store.read("q").lease.owner == new.owner
    # a lease of an older version (no boot: its pid_start was wall-clock seconds) is not judged
    # from here: it must lapse first, so a live old driver is never doubled
    old = Lease(owner="vm:1:old", host=socket.gethostname(), pid=os.getpid(), pid_start=0, pgid=None,
                acquired_ms=int(time.time() * 1000), heartbeat_ms=int(time.time() * 1000), ttl_ms=60_000)
    other = MemoryStatusStore()
    other.check_and_put("q", None, {"lease": old.encode()})
    with pytest.raises(LeaseHeld):
        keeper(other)[0].acquire()


# ---- offsets the source skipped because they could not be read ----

def test_skipped_ranges_are_the_planned_offsets_no_task_read():
    from argus.supervision.offsets import PartitionRead, skipped_ranges

    start = json.dumps({"t": {"0": 100, "1": 50, "2": 10, "3": 7}})
    end = {"t": {"0": 120, "1": 60, "2": 20, "3": 7, "4": 9}}
    reads = {0: PartitionRead(110, 119, 10), 1: PartitionRead(50, 59, 10), 3: PartitionRead(0, 0, 0)}
    assert skipped_ranges(start, end, reads) == [
        {"topic": "t", "partition": 0, "ranges": [[100, 109]], "missing": 10, "planned": [100, 119]},
        # nothing of partition 2 was read; 3 planned nothing; 4 is new (no start): not judged
        {"topic": "t", "partition": 2, "ranges": [[10, 19]], "missing": 10, "planned": [10, 19]},
    ]


def test_skip_detector_merges_the_tasks_reads_of_a_batch_and_checks_its_progress():
    from argus.supervision.offsets import PartitionRead, SkipDetector, describe

    skips = SkipDetector()
    # two tasks read pieces of partition 0 (ranges are split per task); offsets 0-4 are gone
    skips.record(7, [(0, PartitionRead(5, 9, 5)), (0, PartitionRead(10, 14, 5))])
    batch = {"batchId": 7, "sources": [{"startOffset": {"t": {"0": 0}}, "endOffset": {"t": {"0": 15}}}]}
    found = skips.check(batch)
    assert describe(found) == "t/0 [0-4] (5 offsets)"
    assert skips.check(batch) == []  # reported once
    assert skips.check({"batchId": 8, "sources": batch["sources"]}) == []  # a batch with no tasks of ours


def test_a_skip_is_an_slo_breach_named_after_its_batch_for_a_while():
    from argus.supervision.health import SKIPPED_BREACH_S

    skipped = {"total": 12, "recent": [{"batch": 3, "ms": NOW - 5_000, "skipped": 5, "text": "t/0 [0-4] (5 offsets)"}]}
    status = StreamStatus("q", lease=lease(), progress=progress(latest={"0": 10}, end={"0": 10}), batch_ms=NOW,
                          skipped=skipped)
    health = assess(status, NOW, T)
    assert health.state == HEALTHY
    assert "t/0 [0-4] (5 offsets)" in health.breaches["skipped_offsets@3"] and "12 skipped in all" in \
        health.breaches["skipped_offsets@3"]
    assert "skipped_offsets@3" not in assess(status, NOW + int(SKIPPED_BREACH_S * 1000) + 10_000, T).breaches


def test_the_keeper_keeps_skips_across_drivers():
    store = MemoryStatusStore()
    first, _ = keeper(store)
    first.acquire()
    first.record_skipped(3, [{"topic": "t", "partition": 0, "ranges": [[0, 4]], "missing": 5, "planned": [0, 9]}])
    first.release()
    second, _ = keeper(store)
    second.acquire()
    entry = second.record_skipped(9, [{"topic": "t", "partition": 1, "ranges": [[7, 7]], "missing": 1,
                                       "planned": [7, 8]}])
    assert entry["text"] == "t/1 [7-7] (1 offsets)"
    row = store.read("q").skipped
    assert row["total"] == 6 and [e["batch"] for e in row["recent"]] == [3, 9]


# ---- poison micro-batches ----

def test_isolate_bisects_down_to_the_records_that_fail_alone():
    from argus.supervision.poison import isolate, ranges

    keys = [(0, o) for o in range(10)] + [(1, o) for o in range(5)]
    poison = {(0, 6), (1, 2)}
    runs, stored = [], set()

    def run(part):
        runs.append(len(part))
        if poison & set(part):
            raise RuntimeError("An error occurred while calling o91.collectToPython.\n: org.apache.spark.SparkException: "
                               "Job aborted due to stage failure: Task 0 in stage 3.0 failed 1 times, most recent "
                               "failure: Lost task 0.0 in stage 3.0 (TID 7) (127.0.0.1 executor 0): "
                               "org.apache.spark.SparkException: Python worker exited unexpectedly (crashed). "
                               "Consider setting ...\n\tat org.apache.spark.api.python.BasePythonRunner")
        stored.update(part)

    found = isolate(keys, run, healthy=lambda: None)
    assert found == [((0, 6), "SparkException: Python worker exited unexpectedly (crashed)."),
                     ((1, 2), "SparkException: Python worker exited unexpectedly (crashed).")]
    assert stored == set(keys) - poison  # everything else stored once isolated
    assert len(runs) < 2 * len(keys)
    assert ranges([(0, 1), (0, 2), (0, 4), (1, 4), (1, 5)]) == [(0, 1, 2), (0, 4, 4), (1, 4, 5)]


def test_isolate_blames_no_record_while_a_service_is_down():
    from argus.supervision.poison import isolate

    def run(part):
        raise ConnectionError("HBase Thrift server unreachable")

    def healthy():
        raise ConnectionError("HBase Thrift server unreachable")

    with pytest.raises(ConnectionError):
        isolate([(0, 1), (0, 2)], run, healthy)


def test_failures_of_the_same_batch_count_across_drivers_until_it_is_isolated():
    from argus.supervision.poison import BatchFailures

    store = MemoryStatusStore()
    first, _ = keeper(store)
    first.acquire()
    failures = BatchFailures(first, after=2)
    assert not failures.must_isolate(7)
    failures.failed(7, RuntimeError("boom"))
    first.release("failed")
    second, _ = keeper(store)
    second.acquire()
    failures = BatchFailures(second, after=2)
    assert failures.attempts(7) == 1 and not failures.must_isolate(7)
    failing = failures.failed(7, RuntimeError("boom"))
    assert failing["attempts"] == 2 and failures.must_isolate(7)
    assert failures.attempts(8) == 0  # another batch starts from zero
    # the dead verdict says so, and the second failure in a row is a crash loop
    second.release("failed", "RuntimeError: boom")
    health = assess(store.read("q"), now_ms_(), T)
    assert health.state == DEAD and "micro-batch 7 failed 2 time(s) in a row (RuntimeError: boom)" in health.reasons[1]
    assert "crash loop: micro-batch 7 failed 2 times" in health.breaches["crash_loop@7"]
    third, _ = keeper(store)
    third.acquire()
    failures = BatchFailures(third, after=2)
    entry = failures.isolated(7, [((0, 12), "Python worker exited")], "argus.frames")
    assert store.read("q").failing == {} and store.read("q").isolated["total"] == 1
    assert entry["records"] == [{"partition": 0, "offset": 12, "reason": "Python worker exited"}]
    status = store.read("q")
    healthy = assess(StreamStatus("q", lease=lease(heartbeat_ms=now_ms_()), progress=PROGRESS, batch_ms=now_ms_(),
                                  isolated=status.isolated), now_ms_(), T)
    assert "argus.frames/0/12 (Python worker exited)" in healthy.breaches["isolated@7"]


def now_ms_() -> int:
    return int(time.time() * 1000)


# ---- dependency outages ----

def test_an_outage_is_recorded_waited_out_and_cleared():
    from argus.supervision.outage import OutageWaiter

    written, answers, slept = [], iter(["hbase-thrift", "kafka", None]), []
    waiter = OutageWaiter(written.append, lambda: next(answers), sleep=slept.append)
    over = waiter.wait_out("hbase-thrift", ConnectionRefusedError("[Errno 111] Connection refused"))
    assert written[0]["outage"]["service"] == "hbase-thrift" and "Connection refused" in written[0]["outage"]["error"]
    assert written[1]["outage"]["service"] == "kafka"  # another service went down meanwhile: named
    assert written[-1]["outage"] == {} and written[-1]["last_outage"] == over
    assert slept == [0.5, 1.0, 2.0] and over["seconds"] >= 0


def test_a_driver_waiting_out_an_outage_is_not_restarted_and_the_service_is_named():
    outage = {"service": "hbase-thrift", "name": "HBase Thrift server", "since_ms": NOW - 500_000,
              "error": "TTransportException: Could not connect"}
    waiting = StreamStatus("q", lease=lease(heartbeat_ms=NOW - 1000), progress=progress(latest={"0": 500}, end={"0": 10}),
                           batch_ms=NOW - 700_000, outage=outage)
    health = assess(waiting, NOW, T)
    # an outage recorded before this driver took the lease is stale: a stall is a stall
    stale = StreamStatus("q", lease=lease(heartbeat_ms=NOW - 1000), progress=progress(latest={"0": 500}, end={"0": 10}),
                         batch_ms=NOW - 700_000, outage={**outage, "since_ms": NOW - 650_000})
    assert assess(stale, NOW, T).state == STALLED
    assert health.state == HEALTHY and not health.needs_restart  # no stall verdict while it waits
    assert "HBase Thrift server is down (TTransportException: Could not connect)" in health.breaches["outage:hbase-thrift"]


def test_the_heartbeat_watchdog_names_an_outage_no_failed_batch_reported():
    from argus.supervision.outage import OutageWaiter

    class Quiet:
        def __init__(self, s):
            self.s = s

        def quiet_s(self):
            return self.s

    written, answers = [], iter(["kafka", "kafka", None])
    waiter = OutageWaiter(written.append, lambda: next(answers), sleep=lambda s: None)
    waiter.watch(Quiet(3))  # the query showed life 3 s ago: nothing probed
    assert written == []
    waiter.watch(Quiet(20))
    waiter.watch(Quiet(25))  # still down: recorded once
    assert [w["outage"]["service"] for w in written] == ["kafka"]
    waiter.watch(Quiet(30))  # answers again
    assert written[-1]["outage"] == {} and written[-1]["last_outage"]["service"] == "kafka"


def test_waiting_out_an_outage_the_watchdog_noticed_records_it_once(capsys):
    from argus.supervision.outage import OutageWaiter

    class Quiet:
        def quiet_s(self):
            return 60

    written, answers = [], iter(["hdfs", "hdfs", None])
    waiter = OutageWaiter(written.append, lambda: next(answers), sleep=lambda s: None)
    waiter.watch(Quiet())  # the query hung on HDFS: the watchdog noticed first
    over = waiter.wait_out("hdfs", OSError("Call From x to namenode failed on connection exception"))
    assert [w["outage"].get("service") for w in written] == ["hdfs", None]
    assert over["since_ms"] == written[0]["outage"]["since_ms"] and over["name"] == "HDFS"
    assert capsys.readouterr().out.count("ARGUS_OUTAGE") == 1


class _JmxServer:
    """A NameNode's /jmx as far as the probe reads it."""

    def __init__(self, info):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                body = json.dumps({"beans": [info]}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.info = info
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_hdfs_answers_only_out_of_safe_mode_with_a_datanode_that_heartbeats():
    from argus.supervision.outage import _hdfs_answers

    info = {"Safemode": "", "LiveNodes": json.dumps({"127.0.0.1:9866": {"lastContact": 1}})}
    jmx = _JmxServer(info)
    try:
        assert _hdfs_answers(jmx.url, 2)
        info["LiveNodes"] = json.dumps({"127.0.0.1:9866": {"lastContact": 40}})  # stopped, not yet dead to it
        assert not _hdfs_answers(jmx.url, 2)
        info.update(Safemode="Safe mode is ON.", LiveNodes=json.dumps({"127.0.0.1:9866": {"lastContact": 1}}))
        assert not _hdfs_answers(jmx.url, 2)
        info.update(Safemode="", LiveNodes="{not json")  # an answer it cannot read: no answer, no exception
        assert not _hdfs_answers(jmx.url, 2)
    finally:
        jmx.close()
    assert not _hdfs_answers(f"http://127.0.0.1:{_closed_port()}", 2)


def test_an_unreadable_status_row_is_blamed_on_thrift2_or_on_hbase_behind_it():
    from argus.supervision.outage import probe_status_store

    assert probe_status_store("127.0.0.1", _closed_port(), 1) == "hbase-thrift2"
    with socket.socket() as silent:  # takes connections, answers nothing: HBase behind it is down
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        assert probe_status_store("127.0.0.1", silent.getsockname()[1], 1) == "hbase"


def test_probe_services_names_the_first_service_of_the_pipeline_that_does_not_answer(monkeypatch):
    from argus.endpoints import Endpoints
    from argus.supervision import outage

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    port = silent.getsockname()[1]
    answers = {"kafka": True, "hbase": True, "thrift2": True, "hdfs": True}
    monkeypatch.setattr(outage, "_kafka_answers", lambda *a: answers["kafka"])
    monkeypatch.setattr(outage, "_hbase_answers", lambda *a: answers["hbase"])
    monkeypatch.setattr(outage, "_thrift2_answers", lambda *a: answers["thrift2"])
    monkeypatch.setattr(outage, "_hdfs_answers", lambda *a: answers["hdfs"])
    where = Endpoints(kafka_bootstrap="127.0.0.1:1", hbase_host="127.0.0.1", hbase_port=port,
                      hbase_admin_host="127.0.0.1", hbase_admin_port=port, hdfs_uri="hdfs://127.0.0.1:1",
                      webhdfs_url="http://127.0.0.1:1", spark_master="local[1]")
    try:
        assert outage.probe_services(where, 1) is None
        for service, key in (("hdfs", "hdfs"), ("hbase-thrift2", "thrift2"), ("hbase", "hbase"), ("kafka", "kafka")):
            answers[key] = False
            assert outage.probe_services(where, 1) == service
        answers["kafka"] = True
        closed = Endpoints(**{**where.__dict__, "hbase_port": _closed_port()})
        assert outage.probe_services(closed, 1) == "hbase-thrift"  # the Thrift server takes no connection
    finally:
        silent.close()


def test_isolation_stops_when_too_many_records_fail_alone():
    from argus.supervision.poison import isolate, max_poison

    def run(part):
        raise RuntimeError("RetriesExhaustedException: region server unreachable")

    keys = [(0, o) for o in range(40)]
    with pytest.raises(RuntimeError, match="not poison records"):
        isolate(keys, run, healthy=lambda: None)
    assert max_poison(40) == 4 and max_poison(5) == 2


def test_a_stall_loop_is_no_healthy_period():
    from argus.supervision.restart import RestartPolicy, healthy_seconds

    policy = RestartPolicy(healthy_reset_s=600)
    restarts = [{"ms": NOW - 1_300_000, "failure": None}, {"ms": NOW - 650_000, "failure": None}]
    # the last driver ran 650 s but completed no micro-batch: still in a loop
    stuck = StreamStatus("q", lease=lease(acquired_ms=NOW - 640_000), batch_ms=None)
    assert healthy_seconds(stuck) == 0 and len(policy.history(restarts, NOW, healthy_seconds(stuck))) == 2
    worked = StreamStatus("q", lease=lease(acquired_ms=NOW - 640_000), batch_ms=NOW - 5_000)
    assert policy.history(restarts, NOW, healthy_seconds(worked)) == []
