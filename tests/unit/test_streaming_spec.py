"""How the streaming job is configured for Spark (no Spark started)."""

from __future__ import annotations

from argus.config import ArgusConfig
from argus.streaming import StreamJobSpec


def arg(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_defaults_give_one_task_both_cores_of_the_local_stack():
    spec = StreamJobSpec()
    conf = spec.spark_conf()
    assert conf["spark.executor.cores"] == "2" and conf["spark.cores.max"] == "2" and conf["spark.task.cpus"] == "2"
    args = spec.args(ArgusConfig())
    assert arg(args, "--min-partitions") == "1"
    assert arg(args, "--checkpoint").endswith("/argus/checkpoints/argus_stream_detect")
    assert arg(args, "--checkpoint").startswith("hdfs://")


def test_gpu_sharing_sets_fractional_task_amounts():
    conf = StreamJobSpec(tasks_per_gpu=4).spark_conf()
    assert conf["spark.executor.resource.gpu.amount"] == "1"
    assert float(conf["spark.task.resource.gpu.amount"]) == 0.25


def test_single_core_executors_split_kafka_ranges_over_all_cores():
    spec = StreamJobSpec(executors=2, cores_per_executor=1, task_cpus=1)
    assert spec.spark_conf()["spark.task.cpus"] == "1" and spec.spark_conf()["spark.cores.max"] == "2"
    assert arg(spec.args(ArgusConfig()), "--min-partitions") == "2"


def test_camera_models_travel_as_json():
    args = StreamJobSpec(camera_models={"gate-*": "ssdlite-person"}).args(ArgusConfig())
    assert arg(args, "--camera-models") == '{"gate-*": "ssdlite-person"}'
