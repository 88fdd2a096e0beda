"""docker-compose.yaml: the multi-host deployment is well-formed and self-consistent.

Docker engines don't run on the build machines: the file is validated against the Compose
Specification's JSON schema (tests/data/compose-spec.json, see tests/data/README.md), and
where the compose plugin exists, `docker compose config` checks it as well.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from argus.config import ArgusConfig
from argus.stack.airflow import local_connections

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yaml"
SCHEMA = Path(__file__).resolve().parent / "data" / "compose-spec.json"
REQUIRED = {
    "kafka", "zookeeper", "hdfs-namenode", "hdfs-datanode", "hbase-master", "hbase-regionserver",
    "hbase-thrift", "spark-master", "spark-worker", "postgres", "airflow-api-server",
    "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def _depends(svc: dict) -> list[str]:
    deps = svc.get("depends_on", [])
    return list(deps) if isinstance(deps, (list, dict)) else []


def test_every_platform_service_is_defined(compose):
    assert REQUIRED <= set(compose["services"])


def test_references_point_at_defined_services_volumes_networks_secrets(compose):
    services = compose["services"]
    volumes, networks = set(compose.get("volumes", {})), set(compose.get("networks", {}))
    secrets = set(compose.get("secrets", {}))
    for name, svc in services.items():
        for dep in _depends(svc):
            assert dep in services, f"{name} depends on undefined service {dep}"
        for net in svc.get("networks", []):
            assert net in networks, f"{name} uses undefined network {net}"
        for sec in svc.get("secrets", []):
            assert sec in secrets, f"{name} uses undefined secret {sec}"
        for vol in svc.get("volumes", []):
            source = vol.split(":")[0]
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in volumes, f"{name} uses undefined volume {source}"
        build = svc.get("build")
        if build:
            assert (ROOT / build["context"] / build["dockerfile"]).exists(), f"{name}: missing Dockerfile"


def test_published_ports_bind_loopback_only(compose):
    for name, svc in compose["services"].items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_spark_workers_reserve_gpus_and_airflow_runs_on_postgres(compose):
    worker = compose["services"]["spark-worker"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    assert "gpu.discoveryScript" in worker["environment"]["SPARK_WORKER_OPTS"]
    for component in ("airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"):
        env = compose["services"][component]["environment"]
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")


def test_no_secret_is_written_in_the_file(compose):
    secret_key = re.compile(r"PASSWORD|SECRET|FERNET|JWT")
    for name, svc in compose["services"].items():
        env = svc.get("environment") or {}
        for key, value in (env.items() if isinstance(env, dict) else []):
            if secret_key.search(key):
                assert str(value).startswith(("${", "/run/secrets/")), f"{name}: {key} is written in the file"
    conn = compose["services"]["airflow-scheduler"]["environment"]["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert ":${POSTGRES_PASSWORD" in conn


def test_airflow_connections_match_the_local_stack(compose):
    env = compose["services"]["airflow-scheduler"]["environment"]
    declared = {k.removeprefix("AIRFLOW_CONN_").lower(): json.loads(v) for k, v in env.items()
                if k.startswith("AIRFLOW_CONN_")}
    local = local_connections(ArgusConfig())
    assert set(declared) == set(local)
    for conn_id, conn in local.items():
        assert declared[conn_id]["conn_type"] == conn["conn_type"]


def test_jobs_launched_by_airflow_find_each_service_at_its_own_host(compose, airflow_home, monkeypatch):
    from argus_airflow.hooks.endpoints import airflow_endpoints

    from argus.archive.launcher import ReprocessJobSpec
    from argus.endpoints import Endpoints
    from argus.live.launcher import StreamJobSpec

    env = compose["services"]["airflow-scheduler"]["environment"]
    for name, value in env.items():
        if name.startswith("AIRFLOW_CONN_"):
            monkeypatch.setenv(name, value)
    endpoints = airflow_endpoints()
    assert endpoints == Endpoints(kafka_bootstrap="kafka:9092", hbase_host="hbase-thrift", hbase_port=9090,
                                  hbase_admin_host="hbase-thrift2", hbase_admin_port=9091,
                                  hdfs_uri="hdfs://hdfs-namenode:8020", webhdfs_url="http://hdfs-namenode:9870",
                                  spark_master="spark://spark-master:7077")
    stream = StreamJobSpec().args(endpoints)
    assert Endpoints.from_json(stream[stream.index("--endpoints") + 1]) == endpoints
    assert json.loads(stream[stream.index("--spec") + 1])["checkpoint"].startswith("hdfs://hdfs-namenode:8020/")
    archive = ReprocessJobSpec().args(endpoints)
    assert json.loads(archive[archive.index("--spec") + 1])["archive_root"] == "hdfs://hdfs-namenode:8020/argus/archive"


def schema_errors(document: dict) -> list[str]:
    """Where ``document`` breaks the Compose Specification (its schema is draft 7)."""
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
    return [f"{'/'.join(map(str, e.absolute_path)) or '<top>'}: {e.message}"
            for e in sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.absolute_path)))]


def test_the_file_follows_the_compose_specification(compose):
    assert schema_errors(compose) == []


@pytest.mark.parametrize("break_it, where", [
    (lambda c: c["services"]["kafka"].update(restart_policy="always"), "services/kafka"),
    (lambda c: c["services"]["kafka"].update(ports="127.0.0.1:9092:9092"), "services/kafka/ports"),
    (lambda c: c["services"]["spark-worker"]["deploy"]["resources"]["reservations"]["devices"][0].update(
        capabilities="gpu"), "services/spark-worker/deploy/resources/reservations/devices/0/capabilities"),
    (lambda c: c.update(volume={}), "<top>"),
])
def test_the_schema_check_catches_a_broken_file(break_it, where):
    broken = yaml.safe_load(COMPOSE.read_text())
    break_it(broken)
    errors = schema_errors(broken)
    assert errors and all(e.startswith(f"{where}: ") for e in errors), errors
