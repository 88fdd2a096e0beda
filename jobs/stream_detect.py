"""Live detection: Kafka frames -> batched detection -> HBase, bad frames -> dead-letter topic.

    spark-submit jobs/stream_detect.py --spec '<StreamJobSpec JSON>' --endpoints '<Endpoints JSON>' \\
        [--launch-id ID]

The spec is :class:`argus.live.launcher.StreamJobSpec` whole (the launcher writes it, with
its checkpoint resolved); the endpoints say where Kafka, HBase and HDFS are
(:class:`argus.endpoints.Endpoints`). The job has no settings of its own.

The Kafka source gives each micro-batch a bounded offset range (``maxOffsetsPerTrigger``)
and the checkpoint records it before the batch runs: after a crash the query restarts from
the checkpoint and replays the unfinished range, whose HBase writes land on the same row
keys. Detection, HBase writes and dead letters happen on the executors (``mapInPandas``
with executor-cached models); the driver only sees one summary row per record.

Before anything else the driver takes the query's lease in HBase (``argus:streams``, row =
query name) and renews it every few seconds; a second copy of the query exits at once with
status 3 (``EXIT_LEASE_HELD``) and starts nothing, and a driver that loses its lease exits
with status 4. The query's progress goes to the same row (argus.supervision), where the
Airflow supervisor reads it. SIGTERM stops the query between micro-batches and releases
the lease.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from dataclasses import replace

from pyspark.sql import Column, DataFrame, Row, SparkSession

from argus.endpoints import Endpoints
from argus.submit import json_argument
from argus.live.launcher import StreamJobSpec
from argus.live.message import MAX_MESSAGE_BYTES

from argus.live.pipeline import (READ_STATUS, DeadLetter, KafkaRecord, PipelineConfig, process_stream, records_from_pandas,
                            send_dead_letters, tally, write_tracked)
from argus.supervision.driver import EXIT_LEASE_HELD, LeaseKeeper, status_listener
from argus.supervision.offsets import PartitionRead, SkipDetector
from argus.supervision.outage import OutageWaiter, probe_services, probe_status_store, service_name
from argus.supervision.poison import BatchFailures, isolate, ranges
from argus.supervision.status import LeaseHeld, StreamStatusStore, now_ms

#: what each task returns: counts per status and the offsets read per partition
#: (argus.live.pipeline.tally), not a row per record
TALLY_SCHEMA = ("status string, n long, detections long, partition int, first long, last long, "
                "task int, task_ms long, wait_ms long")
TALLY_COLUMNS = [f.split()[0] for f in TALLY_SCHEMA.split(", ")]
_EMPTY_TALLY = dict.fromkeys(TALLY_COLUMNS)
RECORD_COLUMNS = ("key", "value", "headers", "topic", "partition", "offset", "timestamp")
#: a batch that fails right after an outage is run again this many times before it counts as
#: failing: the executors' pooled connections to the restarted service fail once each
RETRIES_AFTER_OUTAGE = 3
#: a query that fails this soon after a service was seen down is started again (the failure
#: took the HDFS client's retries to surface, and the service may be back by then); at most
#: QUERY_RESTARTS times within the window, 0, 1, 3, 7 ... s apart
QUERY_RESTART_WINDOW_S = 120
QUERY_RESTARTS = 5
#: Kafka offset ranges per task before coalescing: the finer, the more even the tasks
SPLITS_PER_TASK = 4


def detect_partitions(cfg: PipelineConfig):
    """The mapInPandas function: a task's pandas chunks of Kafka rows -> its counts per
    status, with the task (its partition), its time in Python and how much of it went
    waiting for the first chunk."""

    def run(chunks):
        import pandas as pd
        from pyspark import TaskContext

        start, first = time.time(), []

        def records():
            for pdf in chunks:
                if not first:
                    first.append(time.time())
                yield records_from_pandas(pdf)

        # chunks arrive as Spark converts them (spark.sql.execution.arrow.maxRecordsPerBatch
        # rows each): decoding starts on the first while the JVM still fetches the rest
        rows = tally(process_stream(records(), cfg))
        end = time.time()
        context = TaskContext.get()
        timing = {"task": context.partitionId() if context else 0, "task_ms": int((end - start) * 1000),
                  "wait_ms": int(((first or [end])[0] - start) * 1000)}
        yield pd.DataFrame([{**r, **timing} for r in rows], columns=TALLY_COLUMNS)

    return run


def read_frames(spark: SparkSession, spec: StreamJobSpec, endpoints: Endpoints) -> DataFrame:
    tasks = spec.task_slots
    return (spark.readStream.format("kafka")
            .option("kafka.bootstrap.servers", endpoints.kafka_bootstrap)
            .option("subscribe", spec.topic)
            .option("startingOffsets", spec.starting_offsets)
            # bounded from the first batch: a backlog must not become one giant micro-batch
            .option("maxOffsetsPerTrigger", spec.max_offsets_per_trigger)
            # cameras are keys: a few busy cameras can pile onto one Kafka partition, and a
            # micro-batch lasts as long as its biggest task. With several tasks, ranges are cut
            # into SPLITS_PER_TASK equal pieces per task (in proportion to each partition's
            # share), which coalesce() then deals out evenly
            .option("minPartitions", tasks * SPLITS_PER_TASK if tasks > 1 else 1)
            .option("includeHeaders", "true")
            .option("kafka.max.partition.fetch.bytes", str(MAX_MESSAGE_BYTES))
            .option("failOnDataLoss", "false")
            # Kafka restarting must not fail the query while it plans a batch: ask again for
            # up to two minutes (the default gives up after 3 tries 10 ms apart)
            .option("fetchOffset.numRetries", "120")
            .option("fetchOffset.retryIntervalMs", "1000")
            .load())


def track_frames(spark: SparkSession, spec: StreamJobSpec, endpoints: Endpoints) -> DataFrame:
    """The tracking query's plan: the detected frames (``spec.tracking_topic``), grouped by
    camera, each camera's tracker kept in Spark's state (``applyInPandasWithState``: in the
    query's checkpoint, so a restarted driver resumes the same tracks)."""
    import pandas as pd
    from pyspark.sql import functions as F

    from argus.track.stream import MESSAGE_SCHEMA, TRACKED_COLUMNS, track_camera

    def per_camera(key, chunks, state):
        frames = [row for pdf in chunks for row in pdf.to_dict("records")]
        rows, saved = track_camera(key[0], frames, state.get[0] if state.exists else None)
        state.update((saved,))
        yield pd.DataFrame(rows, columns=list(TRACKED_COLUMNS))

    messages = (spark.readStream.format("kafka")
                .option("kafka.bootstrap.servers", endpoints.kafka_bootstrap)
                .option("subscribe", spec.tracking_topic)
                .option("startingOffsets", "earliest")
                .option("failOnDataLoss", "false")
                .option("fetchOffset.numRetries", "120").option("fetchOffset.retryIntervalMs", "1000")
                .load()
                .select(F.from_json(F.col("value").cast("string"), MESSAGE_SCHEMA).alias("m")).select("m.*")
                .where(F.col("camera_id").isNotNull()))
    return messages.groupBy("camera_id").applyInPandasWithState(
        per_camera, ", ".join(f"{name} {kind}" for name, kind in TRACKED_COLUMNS.items()), "state string",
        "append", "NoTimeout")


def write_tracks(cfg: PipelineConfig):
    """The tracking query's foreachBatch: each partition's rows stored by its executor."""
    def write(batch: DataFrame, batch_id: int) -> None:
        batch.foreachPartition(lambda rows: write_tracked(rows, cfg))

    return write


def run_pipeline(frames: DataFrame, cfg: PipelineConfig, tasks: int) -> list:
    """One Spark job: the tasks validate, detect, write to HBase and dead-letter themselves,
    and return their counts. One task per slot: more Kafka partitions than slots would queue
    tasks one after the other, each paying Spark's and Python's per-task cost (coalesce
    merges, no shuffle)."""
    return (frames.select(*RECORD_COLUMNS)
            .coalesce(tasks)
            .mapInPandas(detect_partitions(cfg), TALLY_SCHEMA)
            .collect())


def write_batch(cfg: PipelineConfig, tasks: int, skips: SkipDetector, failures: BatchFailures,
                outages: OutageWaiter, keeper: LeaseKeeper, topic: str, stop: threading.Event):
    def run(batch: DataFrame, batch_id: int) -> None:
        _hold(keeper)
        started = time.time()
        if failures.must_isolate(batch_id):
            tallies = isolate_batch(batch, batch_id, cfg, tasks, failures, topic)
        else:
            settling = 0  # retries left while the clients' pooled connections catch up after an outage
            while True:
                _hold(keeper)  # a suspended driver (its lease not renewed) runs no attempt
                attempt_ms = now_ms()
                try:
                    tallies = run_pipeline(batch, cfg, tasks)
                    break
                except Exception as exc:
                    if stop.is_set():  # the query is stopping: its jobs were cancelled, no failure of the batch
                        raise
                    if keeper.suspended:  # its Spark jobs were cancelled: run it again once renewed
                        continue
                    down = outages.probe()
                    if down is not None:  # not the batch's fault: wait for the service, run it again
                        outages.wait_out(down, exc)
                        settling = RETRIES_AFTER_OUTAGE
                        continue
                    if outages.seen_since(attempt_ms):  # it failed on a service that is back by now
                        settling = max(settling, RETRIES_AFTER_OUTAGE)
                    if settling:
                        settling -= 1
                        time.sleep(2)
                        continue
                    failing = failures.failed(batch_id, exc)
                    print("ARGUS_BATCH_FAILED " + json.dumps(failing), flush=True)
                    raise
            failures.passed(batch_id)
        counts: dict[str, int] = {}
        for t in tallies:
            if t.status != READ_STATUS:
                counts[t.status] = counts.get(t.status, 0) + t.n
        # what was read of each partition: checked against the planned range by the listener
        skips.record(batch_id, [(t.partition, PartitionRead(t.first, t.last, t.n))
                                for t in tallies if t.status == READ_STATUS])
        # where addBatch went: the Spark job (collect_ms) and, inside it, the slowest task's
        # time in Python (task_ms) and its wait for the first records (wait_ms); how many
        # tasks had records
        print("ARGUS_BATCH " + json.dumps({"batch": batch_id, **counts,
                                           "detections": sum(t.detections for t in tallies),
                                           "tasks": len({t.task for t in tallies if t.status != READ_STATUS}),
                                           "collect_ms": int((time.time() - started) * 1000),
                                           "task_ms": max((t.task_ms or 0 for t in tallies), default=0),
                                           "wait_ms": max((t.wait_ms or 0 for t in tallies), default=0)}), flush=True)

    return run


def _hold(keeper: LeaseKeeper) -> None:
    if not keeper.hold():
        raise RuntimeError(f"the lease of {keeper.query!r} was lost while the driver was suspended")


def isolate_batch(batch: DataFrame, batch_id: int, cfg: PipelineConfig, tasks: int, failures: BatchFailures,
                  topic: str) -> list:
    """The batch failed ``failures.after`` times in a row: run it in halves, bisecting down to
    the records that fail alone, dead-letter those from here and store the rest."""
    keys = sorted((r.partition, r.offset) for r in batch.select("partition", "offset").collect())
    print("ARGUS_ISOLATING " + json.dumps({"batch": batch_id, "records": len(keys),
                                           "after_failures": failures.attempts(batch_id)}), flush=True)
    tallies: list = []

    def run(part: list[tuple[int, int]]) -> None:
        tallies.extend(t for t in run_pipeline(batch.filter(_among(part)), cfg, tasks) if t.status != READ_STATUS)

    poison = isolate(keys, run, lambda: services_answer(cfg))
    letters = [DeadLetter(_read_back(batch, key, topic), f"failed its micro-batch {failures.after} times and "
                          f"again alone, so it was isolated: {why}", "isolate") for key, why in poison]
    send_dead_letters(letters, cfg)
    entry = failures.isolated(batch_id, poison, topic)
    print("ARGUS_ISOLATED " + json.dumps(entry), flush=True)
    # every record was read: stored, dead-lettered by its task, or isolated here
    isolated = [Row(**{**_EMPTY_TALLY, "status": "isolated", "n": len(poison), "detections": 0})] if poison else []
    reads = tally([{"status": "isolated", "detections": 0, "partition": p, "offset": o} for p, o in keys])
    return [*tallies, *isolated, *(Row(**{**_EMPTY_TALLY, **r}) for r in reads if r["status"] == READ_STATUS)]


def _among(part: list[tuple[int, int]]) -> Column:
    from pyspark.sql import functions as F

    cond = None
    for partition, first, last in ranges(part):
        this = (F.col("partition") == partition) & F.col("offset").between(first, last)
        cond = this if cond is None else cond | this
    return cond


def _read_back(batch: DataFrame, key: tuple[int, int], topic: str) -> KafkaRecord:
    """The isolated record itself, for its dead letter; if even reading it fails, a letter
    that says where it was (its offset stays readable in Kafka until retention)."""
    try:
        pdf = batch.filter(_among([key])).select(*RECORD_COLUMNS).toPandas()
        return next(records_from_pandas(pdf))
    except Exception:
        return KafkaRecord(None, b"", [], topic, key[0], key[1], 0)


def services_answer(cfg: PipelineConfig) -> None:
    """Raise unless every service answers: a record is only ever blamed while they do."""
    down = probe_services(cfg.endpoints)
    if down is not None:
        raise RuntimeError(f"{service_name(down)} does not answer")


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--spec", required=True, type=json_argument(StreamJobSpec.from_json), help="the job's StreamJobSpec, JSON")
    p.add_argument("--endpoints", required=True, type=json_argument(Endpoints.from_json), help="where the services are, JSON")
    p.add_argument("--launch-id", default=None, help="the supervisor's id of this launch (recorded in the lease)")
    args = p.parse_args(argv)
    spec, endpoints = args.spec, args.endpoints
    if spec.checkpoint is None:
        spec = replace(spec, checkpoint=spec.checkpoint_location(endpoints))

    # a renewal that HBase cannot answer fails within a third of the lease's TTL (twice, with
    # the store's one reconnect): the driver suspends itself soon after its lease lapses
    store = StreamStatusStore.from_endpoints(endpoints, timeout_ms=max(1000, int(spec.lease_ttl_seconds * 1000 / 3)))
    store.ensure_table()
    job = {"topic": spec.topic, "dlq_topic": spec.dlq_topic, "checkpoint": spec.checkpoint,
           "trigger_seconds": spec.trigger_seconds,
           "max_offsets": spec.max_offsets_per_trigger, "batch_size": spec.batch_size,
           "default_model": spec.default_model, "starting_offsets": spec.starting_offsets}
    keeper = LeaseKeeper(store, spec.query_name, ttl_s=spec.lease_ttl_seconds, launch_id=args.launch_id, job=job,
                         name_outage=lambda: probe_status_store(endpoints.hbase_admin_host, endpoints.hbase_admin_port))
    try:
        keeper.acquire()
    except LeaseHeld as exc:
        print(f"ARGUS_LEASE_HELD {exc}; this copy exits without starting anything", file=sys.stderr, flush=True)
        return EXIT_LEASE_HELD
    keeper.start()
    print(f"ARGUS_LEASE {json.dumps({'query': spec.query_name, 'owner': keeper.owner})}", flush=True)
    try:
        run_query(spec, endpoints, keeper)
    except BaseException as exc:
        keeper.release("failed", f"{type(exc).__name__}: {exc}")
        raise
    keeper.release("stopped", "stopped on request")
    return 0


def run_query(spec: StreamJobSpec, endpoints: Endpoints, keeper: LeaseKeeper) -> None:
    """Run the query until it fails or SIGTERM asks it to stop (between micro-batches). A
    query that fails while a service is down (HDFS under its checkpoint, say) is started
    again from its checkpoint once the service answers, by this same driver."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    cfg = PipelineConfig.of(spec, endpoints)
    spark = SparkSession.builder.appName(f"argus-stream-detect:{spec.query_name}").getOrCreate()
    keeper.on_suspend = spark.sparkContext.cancelAllJobs  # a suspended driver's batch stops where it is
    skips = SkipDetector()
    failures = BatchFailures(keeper, spec.poison_after_failures)
    outages = OutageWaiter(keeper.write, lambda: probe_services(endpoints))
    outages.start_watching(keeper, stop)  # a source blocked on Kafka fails no batch: the watchdog notices
    spark.streams.addListener(status_listener(keeper, spec.query_name, skips))

    def start():
        query = (read_frames(spark, spec, endpoints).writeStream
                 .queryName(spec.query_name)
                 .foreachBatch(write_batch(cfg, spec.task_slots, skips, failures, outages, keeper, spec.topic, stop))
                 .option("checkpointLocation", spec.checkpoint)
                 .trigger(processingTime=f"{spec.trigger_seconds} seconds")
                 .start())
        keeper.attach(query, app_id=spark.sparkContext.applicationId, ui_url=spark.sparkContext.uiWebUrl)
        return query

    restarts: list[float] = []

    def restart(exc: BaseException):
        """The query failed: start it again from its checkpoint if a service was (or is) down,
        else raise ``exc``; a few times in a row at most, further apart each time."""
        while True:
            restarts[:] = [t for t in restarts if t > time.monotonic() - QUERY_RESTART_WINDOW_S] + [time.monotonic()]
            if len(restarts) > QUERY_RESTARTS:
                raise exc
            down = outages.probe()
            if down is not None:
                outages.wait_out(down, exc)
            elif not outages.seen_since(now_ms() - QUERY_RESTART_WINDOW_S * 1000):
                raise exc  # every service answers, and none was down lately: the query's own failure
            _hold(keeper)
            time.sleep(min(2 ** (len(restarts) - 1), 30) - 1)
            print("ARGUS_QUERY_RESTARTED " + json.dumps({"after": down or "a recent outage",
                                                         "restart": len(restarts)}), flush=True)
            try:
                return start()
            except Exception as again:  # noqa: BLE001 - judged like the first failure
                exc = again

    query = start()
    tracking = None
    if spec.tracking_topic:
        from argus.live.topics import ensure_topic

        ensure_topic(endpoints.kafka_bootstrap, spec.tracking_topic)
        # the state store has a partition each: Spark's default 200 cost a minute a batch here
        spark.conf.set("spark.sql.shuffle.partitions", str(spec.tracking_partitions))
        tracking = (track_frames(spark, spec, endpoints).writeStream
                    .queryName(f"{spec.query_name}_tracks")
                    .foreachBatch(write_tracks(cfg))
                    .option("checkpointLocation", f"{spec.checkpoint.rstrip('/')}-tracks")
                    .trigger(processingTime=f"{spec.trigger_seconds} seconds")
                    .start())
    while True:
        if tracking is not None and not tracking.isActive and not stop.is_set():
            # the driver fails, and the supervisor restarts it (both queries, from their checkpoints)
            raise RuntimeError(f"the tracking query {spec.query_name}_tracks stopped: {tracking.exception()}")
        try:
            if query.awaitTermination(1):
                if tracking is not None:
                    tracking.stop()
                return
        except Exception as exc:  # the query failed: its own fault, or a service's?
            if stop.is_set():
                raise
            query = restart(exc)
            continue
        if stop.is_set():
            query.stop()
            if tracking is not None:
                tracking.stop()

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
