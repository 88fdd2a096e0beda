"""How the streaming job is configured for Spark (no Spark started)."""

from __future__ import annotations

import json

from dataclasses import replace

import pytest

from argus.config import ArgusConfig
from argus.endpoints import Endpoints
from argus.live.launcher import StreamJob, StreamJobSpec


def arg(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def job_argv(spec: StreamJobSpec, endpoints: Endpoints | None = None) -> tuple[dict, Endpoints]:
    """What the job receives: its spec (parsed back as the job does) and its endpoints."""
    args = spec.args(endpoints or Endpoints.from_config(ArgusConfig()))
    return json.loads(arg(args, "--spec")), Endpoints.from_json(arg(args, "--endpoints"))


def test_defaults_give_one_task_both_cores_of_the_local_stack():
    spec = StreamJobSpec()
    conf = spec.spark_conf()
    assert conf["spark.executor.cores"] == "2" and conf["spark.cores.max"] == "2" and conf["spark.task.cpus"] == "2"
    assert spec.task_slots == 1
    sent, _ = job_argv(spec)
    assert sent["checkpoint"].startswith("hdfs://") and sent["checkpoint"].endswith("/argus/checkpoints/argus_stream_detect")


def test_the_job_gets_its_spec_whole_and_each_service_where_it_is():
    endpoints = Endpoints(kafka_bootstrap="kafka-1:9092,kafka-2:9092", hbase_host="hbase-thrift", hbase_port=9090,
                          hbase_admin_host="hbase-thrift2", hbase_admin_port=9091, hdfs_uri="hdfs://namenode:8020",
                          webhdfs_url="http://namenode:9870", spark_master="spark://spark-master:7077")
    spec = StreamJobSpec(batch_size=4, camera_models={"gate-*": "ssdlite-person"})
    sent, where = job_argv(spec, endpoints)
    assert StreamJobSpec.from_json(json.dumps(sent)) == replace(spec, checkpoint="hdfs://namenode:8020/argus/checkpoints/argus_stream_detect")
    assert where == endpoints
    assert StreamJob(spec, ArgusConfig(), endpoints=endpoints).command()[2] == "spark://spark-master:7077"


def test_a_setting_out_of_its_range_is_refused_with_its_name():
    with pytest.raises(ValueError, match="batch_size"):
        StreamJobSpec(batch_size=0)
    with pytest.raises(ValueError, match="task_cpus"):
        StreamJobSpec(cores_per_executor=1, task_cpus=2)
    with pytest.raises(ValueError, match="kafka_bootstrap"):
        Endpoints(kafka_bootstrap="no port", hbase_host="h", hbase_admin_host="h", hdfs_uri="hdfs://n:1",
                  webhdfs_url="http://n:2", spark_master="local[2]")


def test_gpu_sharing_sets_fractional_task_amounts():
    conf = StreamJobSpec(tasks_per_gpu=4).spark_conf()
    assert conf["spark.executor.resource.gpu.amount"] == "1"
    assert float(conf["spark.task.resource.gpu.amount"]) == 0.25


def test_single_core_executors_split_kafka_ranges_over_all_cores():
    spec = StreamJobSpec(executors=2, cores_per_executor=1, task_cpus=1)
    assert spec.spark_conf()["spark.task.cpus"] == "1" and spec.spark_conf()["spark.cores.max"] == "2"
    assert spec.task_slots == 2


def test_records_reach_python_in_chunks_of_a_few_detector_batches():
    assert StreamJobSpec(batch_size=8).spark_conf()["spark.sql.execution.arrow.maxRecordsPerBatch"] == "16"
    assert StreamJobSpec(batch_size=1).spark_conf()["spark.sql.execution.arrow.maxRecordsPerBatch"] == "16"


def test_the_driver_logs_where_each_micro_batch_spent_its_time():
    from argus.bench.live import micro_batches
    from argus.supervision.driver import progress_line

    progress = {"batchId": 7, "numInputRows": 12, "inputRowsPerSecond": 16.0, "processedRowsPerSecond": 20.5,
                "durationMs": {"addBatch": 410, "walCommit": 35, "triggerExecution": 520}}
    line = progress_line(progress)
    assert line == {"batch": 7, "rows": 12, "input_rps": 16.0, "processed_rps": 20.5,
                    "ms": {"addBatch": 410, "walCommit": 35, "triggerExecution": 520}}
    idle = progress_line({"batchId": 8, "numInputRows": 0, "durationMs": {"triggerExecution": 3}})
    job = {"batch": 7, "stored": 12, "detections": 30, "collect_ms": 380, "task_ms": 300, "wait_ms": 40}
    warm_up = progress_line({"batchId": 6, "numInputRows": 4, "durationMs": {"addBatch": 30000}})
    log = "\n".join(["ARGUS_PROGRESS " + json.dumps(warm_up),  # its ARGUS_BATCH came before the cut
                     "noise", "ARGUS_PROGRESS " + json.dumps(line), "ARGUS_PROGRESS " + json.dumps(idle),
                     "ARGUS_PROGRESS {truncated", "ARGUS_BATCH " + json.dumps(job)])
    summary = micro_batches(log)
    assert summary["batches"] == 1 and summary["rows"]["p50"] == 12
    assert summary["ms"]["addBatch"] == {"p50": 410.0, "p95": 410.0}
    assert summary["ms"]["collect"]["p50"] == 380 and summary["ms"]["wait"]["p95"] == 40


def test_checkpoint_commits_do_not_wait_out_the_hdfs_clients_400_ms_retry():
    conf = StreamJobSpec().spark_conf()
    assert int(conf["spark.hadoop.dfs.client.block.write.locateFollowingBlock.initial.delay.ms"]) <= 50
