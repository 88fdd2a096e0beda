"""Smoke job: proves Spark reaches HDFS and Kafka, for `argus demo` and the integration tests.

    spark-submit jobs/smoke.py hdfs  hdfs://127.0.0.1:8020/path/file.txt
    spark-submit jobs/smoke.py kafka 127.0.0.1:9092 TOPIC

Prints one JSON line (prefixed ``ARGUS_RESULT``) with what it read.
"""

from __future__ import annotations

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


def main(argv: list[str]) -> int:
    spark = SparkSession.builder.appName(f"argus-smoke-{argv[0]}").getOrCreate()
    try:
        if argv[0] == "hdfs":
            result = summarize_lines(spark.read.text(argv[1]))
        elif argv[0] == "kafka":
            df = (spark.read.format("kafka")
                  .option("kafka.bootstrap.servers", argv[1])
                  .option("subscribe", argv[2])
                  .option("startingOffsets", "earliest")
                  .option("endingOffsets", "latest")
                  .load())
            result = summarize_kafka(df)
        else:
            raise SystemExit(f"unknown smoke mode {argv[0]!r}: use hdfs or kafka")
        print("ARGUS_RESULT " + json.dumps(result), flush=True)
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
