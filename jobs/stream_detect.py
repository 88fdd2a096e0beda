"""Live detection: Kafka frames -> batched detection -> HBase, bad frames -> dead-letter topic.

    spark-submit jobs/stream_detect.py --bootstrap 127.0.0.1:9092 --checkpoint hdfs://.../ckpt \\
        [--topic argus.frames] [--trigger-seconds 1] [--max-offsets 200] [--batch-size 8] \\
        [--camera-models '{"gate-*": "ssdlite-person"}'] [--default-model centernet-coco]

The Kafka source gives each micro-batch a bounded offset range (``maxOffsetsPerTrigger``)
and the checkpoint records it before the batch runs: after a crash the query restarts from
the checkpoint and replays the unfinished range, whose HBase writes land on the same row
keys. Detection, HBase writes and dead letters happen on the executors (``mapInPandas``
with executor-cached models); the driver only sees one summary row per record.
"""

from __future__ import annotations

import argparse
import json
import sys

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from argus.pipeline import PipelineConfig, process_records, records_from_pandas

SUMMARY_SCHEMA = (
    "status string, camera_id string, seq long, capture_ts_ms long, model string, detections int, "
    "reason string, partition int, offset long, kafka_ms long, read_ms long, detected_ms long, written_ms long"
)


def detect_partitions(cfg: PipelineConfig):
    """The mapInPandas function: each pandas chunk of Kafka rows -> summary rows."""

    def run(chunks):
        import pandas as pd

        for pdf in chunks:
            rows = process_records(list(records_from_pandas(pdf)), cfg)
            yield pd.DataFrame(rows, columns=[f.split()[0] for f in SUMMARY_SCHEMA.split(", ")])

    return run


def read_frames(spark: SparkSession, args) -> DataFrame:
    return (spark.readStream.format("kafka")
            .option("kafka.bootstrap.servers", args.bootstrap)
            .option("subscribe", args.topic)
            .option("startingOffsets", args.starting_offsets)
            # bounded from the first batch: a backlog must not become one giant micro-batch
            .option("maxOffsetsPerTrigger", args.max_offsets)
            # cameras are keys: a few busy cameras can pile onto one Kafka partition, and a
            # micro-batch lasts as long as its biggest task; split ranges across the cores
            .option("minPartitions", args.min_partitions)
            .option("includeHeaders", "true")
            .option("kafka.max.partition.fetch.bytes", str(16 * 2**20))
            .option("failOnDataLoss", "false")
            .load())


def write_batch(cfg: PipelineConfig):
    def run(batch: DataFrame, batch_id: int) -> None:
        summary = (batch.select("key", "value", "headers", "topic", "partition", "offset", "timestamp")
                   .mapInPandas(detect_partitions(cfg), SUMMARY_SCHEMA)
                   .groupBy("status").agg(F.count("*").alias("n"), F.sum("detections").alias("detections"))
                   .collect())
        counts = {r.status: (r.n, r.detections) for r in summary}
        print("ARGUS_BATCH " + json.dumps({"batch": batch_id, **{k: v[0] for k, v in counts.items()},
                                           "detections": sum(v[1] or 0 for v in counts.values())}), flush=True)

    return run


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", default="argus.frames")
    p.add_argument("--dlq-topic", default="argus.frames.dlq")
    p.add_argument("--checkpoint", required=True, help="checkpoint location (hdfs:// or a local path)")
    p.add_argument("--trigger-seconds", type=float, default=1.0)
    p.add_argument("--max-offsets", type=int, default=200, help="maxOffsetsPerTrigger")
    p.add_argument("--starting-offsets", default="earliest")
    p.add_argument("--min-partitions", type=int, default=2,
                   help="Spark tasks per micro-batch at least (set to the executors' total cores)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--default-model", default="centernet-coco")
    p.add_argument("--camera-models", default="{}", help="JSON: camera id or pattern -> model")
    p.add_argument("--hbase-host", default="127.0.0.1")
    p.add_argument("--hbase-port", type=int, default=9090)
    p.add_argument("--hbase-admin-port", type=int, default=9091)
    p.add_argument("--query-name", default="argus_stream_detect")
    args = p.parse_args(argv)

    cfg = PipelineConfig(kafka_bootstrap=args.bootstrap, hbase_host=args.hbase_host, hbase_port=args.hbase_port,
                         hbase_admin_port=args.hbase_admin_port, dlq_topic=args.dlq_topic,
                         default_model=args.default_model, camera_models=json.loads(args.camera_models),
                         batch_size=args.batch_size)
    spark = SparkSession.builder.appName("argus-stream-detect").getOrCreate()
    query = (read_frames(spark, args).writeStream
             .queryName(args.query_name)
             .foreachBatch(write_batch(cfg))
             .option("checkpointLocation", args.checkpoint)
             .trigger(processingTime=f"{args.trigger_seconds} seconds")
             .start())
    query.awaitTermination()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
