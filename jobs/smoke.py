"""Smoke job: proves Spark reaches HDFS and Kafka, for `argus demo` and the integration tests.

    spark-submit jobs/smoke.py [--hdfs hdfs://127.0.0.1:8020/path/file.txt]
                               [--kafka-bootstrap 127.0.0.1:9092 --topic TOPIC]

Prints one JSON line, prefixed ``ARGUS_RESULT``, with what it read from each source.
"""

from __future__ import annotations

import argparse
import json
import sys

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F


def summarize_lines(df: DataFrame) -> dict:
    rows = [r.value for r in df.collect()]
    return {"count": len(rows), "lines": rows[:20]}


def summarize_kafka(df: DataFrame) -> dict:
    rows = df.select(F.col("key").cast("string").alias("key"), F.length("value").alias("size")).collect()
    return {"count": len(rows), "keys": sorted({r.key for r in rows}), "bytes": sum(r.size for r in rows)}


def read_topic(spark: SparkSession, bootstrap: str, topic: str) -> DataFrame:
    """The whole topic as a batch, through Spark's Kafka source."""
    return (spark.read.format("kafka")
            .option("kafka.bootstrap.servers", bootstrap)
            .option("subscribe", topic)
            .option("startingOffsets", "earliest")
            .option("endingOffsets", "latest")
            .load())


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hdfs", help="text file to read (hdfs:// or file://)")
    parser.add_argument("--kafka-bootstrap")
    parser.add_argument("--topic")
    args = parser.parse_args(argv)
    if not args.hdfs and not args.topic:
        parser.error("nothing to read: give --hdfs and/or --kafka-bootstrap with --topic")

    spark = SparkSession.builder.appName("argus-smoke").getOrCreate()
    try:
        result = {}
        if args.hdfs:
            result["hdfs"] = summarize_lines(spark.read.text(args.hdfs))
        if args.topic:
            result["kafka"] = summarize_kafka(read_topic(spark, args.kafka_bootstrap, args.topic))
        print("ARGUS_RESULT " + json.dumps(result), flush=True)
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
