"""Submitting Argus's Spark applications (jobs/) to the local cluster or ``local[*]``."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from argus import config
from argus.config import ArgusConfig
from argus.stack.jvm import find_java


def kafka_jars(cfg: ArgusConfig) -> list[str]:
    """Spark's Kafka connector and what the pyspark wheel lacks for it (from the jar cache)."""
    lib = cfg.jar_dir("spark-kafka")
    jars = sorted(str(p) for p in lib.glob("*.jar"))
    if not jars:
        raise FileNotFoundError(f"no Spark Kafka connector jars in {lib}: run `argus setup`")
    return jars


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def submit_env(cfg: ArgusConfig) -> dict[str, str]:
    """Environment for spark-submit: our venv's Python on driver and executors, loopback."""
    java = find_java()
    return {
        "SPARK_HOME": str(spark_home()),
        "JAVA_HOME": str(Path(java.executable).resolve().parents[1]),
        "SPARK_LOCAL_IP": cfg.host,
        "PYSPARK_PYTHON": str(cfg.venv_python),
        "PYSPARK_DRIVER_PYTHON": str(cfg.venv_python),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(cfg.root / "include"), config.variable("PYTHONPATH")])),
    }


def driver_conf(cfg: ArgusConfig) -> dict[str, str]:
    """Spark settings every Argus application gets: loopback driver, the venv's Python."""
    return {
        "spark.driver.host": cfg.host,
        "spark.driver.bindAddress": cfg.host,
        "spark.pyspark.python": str(cfg.venv_python),
        "spark.ui.showConsoleProgress": "false",
    }


def parse_result_line(line: str) -> tuple[str, dict] | None:
    """An application's ``ARGUS_<TAG> {json}`` output line as (tag, payload)."""
    tag, _, payload = line.strip().partition(" ")
    if not tag.startswith("ARGUS_") or not payload.startswith("{"):
        return None
    try:
        return tag, json.loads(payload)
    except json.JSONDecodeError:
        return None


def submit_argv(cfg: ArgusConfig, app: str | Path, args: list[str], *, master: str | None = None,
                conf: dict[str, str] | None = None, with_kafka: bool = True) -> list[str]:
    argv = [str(spark_home() / "bin" / "spark-submit"), "--master", master or cfg.spark_master_url]
    if with_kafka:
        argv += ["--jars", ",".join(kafka_jars(cfg))]
    settings = {**driver_conf(cfg), **(conf or {})}
    for key, value in settings.items():
        argv += ["--conf", f"{key}={value}"]
    return [*argv, str(app), *args]


@dataclass
class SubmitResult:
    returncode: int
    output: str
    result: dict | None


def submit(cfg: ArgusConfig, app: str | Path, args: list[str], *, timeout: float = 600, **kw) -> SubmitResult:
    """Run a Spark application to completion; parses its ``ARGUS_RESULT {json}`` line if any."""
    proc = subprocess.run(submit_argv(cfg, app, args, **kw), env=config.child_environment(**submit_env(cfg)),
                          capture_output=True, text=True, timeout=timeout, cwd=cfg.root)
    output = proc.stdout + proc.stderr
    result = None
    for line in proc.stdout.splitlines():
        parsed = parse_result_line(line)
        if parsed and parsed[0] == "ARGUS_RESULT":
            result = parsed[1]
    return SubmitResult(proc.returncode, output, result)


def json_argument(parse):
    """An argparse ``type`` for a job's ``--spec`` / ``--endpoints``: ``parse`` (a class's
    ``from_json``), whose validation error (the setting named, what was wrong) is the message
    argparse prints, not "invalid value"."""
    def convert(text: str):
        try:
            return parse(text)
        except ValueError as exc:  # json and pydantic errors are ValueErrors
            raise argparse.ArgumentTypeError(str(exc)) from exc
    return convert
