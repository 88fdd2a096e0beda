"""Airflow Params (JSON schema) of the Argus DAGs: cameras of the registry, models, and the
streaming job's settings.

A run triggered with a value that breaks a schema is refused by the API before any task runs
(HTTP 400, "Invalid input for param <name>: ..."). The enums are built when the DAG file is
parsed, from the camera registry (``ARGUS_CAMERAS``, default ``<repo>/cameras.yaml``) and the
model registry (``argus.detect.default_registry()``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from airflow.sdk import Param

from argus.live.launcher import StreamJobSpec
from argus.supervision.health import Thresholds
from argus.supervision.restart import RestartPolicy

log = logging.getLogger(__name__)

#: a Kafka topic name (Kafka's own rule)
TOPIC_PATTERN = r"^[A-Za-z0-9._-]{1,249}$"
#: a camera id pattern: shell-style, at least one ``*``, no ``#`` (the row key separator)
CAMERA_PATTERN = r"^[^#]*\*[^#]*$"
MAX_EXECUTORS = 64


def registry_camera_ids(path: str | Path | None = None) -> list[str]:
    """Camera ids of the registry (``ARGUS_CAMERAS``, else ``cameras.yaml`` at the project
    root); none when there is no registry file (a broken one raises)."""
    from argus.live.cameras import camera_registry_path, load_cameras

    path = Path(path) if path else camera_registry_path()
    if not path.exists():
        return []
    return [camera.id for camera in load_cameras(path)]


def model_names() -> list[str]:
    """Models of the model registry (``ARGUS_MODEL_REGISTRY`` extends the built-in one)."""
    from argus.detect import default_registry

    return sorted(default_registry().models)


def default_model_name() -> str:
    from argus.detect import default_registry

    return default_registry().default


def camera_key_schema(camera_ids: list[str] | None = None) -> dict[str, Any]:
    """JSON schema of a camera reference: a registry camera id, or a shell pattern with ``*``.

    Written as if/then/else rather than anyOf so that a wrong id is reported as
    "'gate-9' is not one of [<the registry's ids>]". A registry that cannot be read leaves
    patterns only (and a warning): the DAG must still load, or a running supervisor could
    not resume to restart its job.
    """
    if camera_ids is None:
        try:
            camera_ids = registry_camera_ids()
        except Exception as exc:
            log.warning("camera registry unreadable, DAG params accept camera patterns only: %s", exc)
            camera_ids = []
    return {"type": "string", "if": {"pattern": r"\*"}, "then": {"pattern": CAMERA_PATTERN},
            "else": {"enum": camera_ids}}


def model_param(default: str | None = None, description: str = "Detection model of the model registry") -> Param:
    return Param(default or default_model_name(), type="string", enum=model_names(), title="Model",
                 description=description)


def camera_models_param(default: dict[str, str] | None = None) -> Param:
    """Camera -> model: keys are camera ids of the registry or patterns such as ``gate-*``."""
    return Param(default or {}, type="object", title="Camera models",
                 description="camera id (from the camera registry) or pattern with * -> model; "
                             "other cameras run the default model",
                 propertyNames=camera_key_schema(), additionalProperties={"enum": model_names()})


def kafka_topic_param(default: str, description: str) -> Param:
    return Param(default, type="string", pattern=TOPIC_PATTERN, description=description)


# ---- the streaming job (argus_stream_detection) ----

def _number(value, kind: str, minimum, maximum, description: str, exclusive_minimum: bool = False) -> Param:
    bounds = {"exclusiveMinimum" if exclusive_minimum else "minimum": minimum, "maximum": maximum}
    return Param(value, type=kind, description=description, **bounds)


def stream_job_params() -> dict[str, Param]:
    """Params of the streaming DAG; names are :class:`~argus.live.launcher.StreamJobSpec` fields,
    plus ``thresholds`` (:class:`~argus.supervision.health.Thresholds`) and ``restart``
    (:class:`~argus.supervision.restart.RestartPolicy`)."""
    spec, thr, restart = StreamJobSpec(), Thresholds(), RestartPolicy()
    return {
        "topic": kafka_topic_param(spec.topic, "Kafka topic of the frames"),
        "dlq_topic": kafka_topic_param(spec.dlq_topic, "dead-letter topic for rejected frames"),
        "query_name": Param(spec.query_name, type="string", pattern=r"^[A-Za-z0-9_]{1,64}$",
                            description="streaming query name: one lease, one status row, one checkpoint"),
        "checkpoint": Param(spec.checkpoint, type=["null", "string"], pattern=r"^(hdfs|file)://\S+$|^/\S+$",
                            description="checkpoint location; null: hdfs://<namenode>/argus/checkpoints/<query_name>"),
        "camera_models": camera_models_param(),
        "default_model": model_param(spec.default_model, "model of the cameras not in camera_models"),
        "batch_size": _number(spec.batch_size, "integer", 1, 64, "frames per detector call"),
        "executors": _number(spec.executors, "integer", 1, MAX_EXECUTORS, "Spark executors"),
        "cores_per_executor": _number(spec.cores_per_executor, "integer", 1, 64, "cores of each executor"),
        "task_cpus": _number(spec.task_cpus, "integer", 1, 64,
                             "cores of each Spark task (TensorFlow threads); at most cores_per_executor"),
        "executor_memory": Param(spec.executor_memory, type="string", pattern=r"^[1-9][0-9]*[mgMG]$",
                                 description="memory of each executor, e.g. 2g"),
        "tasks_per_gpu": _number(spec.tasks_per_gpu, "integer", 0, 8,
                                 "tasks sharing one GPU per executor; 0: no GPU"),
        "trigger_seconds": _number(spec.trigger_seconds, "number", 0.2, 60, "micro-batch trigger interval (s)"),
        "max_offsets_per_trigger": _number(spec.max_offsets_per_trigger, "integer", 1, 100_000,
                                           "most Kafka records per micro-batch"),
        "starting_offsets": Param(spec.starting_offsets, type="string", enum=["earliest", "latest"],
                                  description="where a query without a checkpoint starts"),
        "lease_ttl_seconds": _number(spec.lease_ttl_seconds, "number", 3, 300,
                                     "the driver is taken for dead this long after its last heartbeat"),
        "poison_after_failures": _number(spec.poison_after_failures, "integer", 1, 10,
                                         "failures of the same micro-batch in a row before the records that fail "
                                         "it are isolated and dead-lettered"),
        "thresholds": Param(thr.to_dict(), type="object", additionalProperties=False, description="SLOs", properties={
            "max_lag_records": {"type": "integer", "minimum": 0, "description": "Kafka records behind"},
            "max_batch_age_s": {"type": "number", "exclusiveMinimum": 0,
                                "description": "age of the last micro-batch while input is pending"},
            "max_batch_duration_factor": {"type": "number", "minimum": 1,
                                          "description": "micro-batch duration / trigger interval"},
            "sustain_batches": {"type": "integer", "minimum": 1, "maximum": 20,
                                "description": "batches in a row with input rate > processing rate"},
            "stall_s": {"type": "number", "exclusiveMinimum": 0,
                        "description": "no micro-batch this long while input is pending: restart"},
            "start_timeout_s": {"type": "number", "exclusiveMinimum": 0,
                                "description": "a launched driver must take its lease within this time"},
        }),
        "restart": Param(restart.to_dict(), type="object", additionalProperties=False,
                         description="restart backoff", properties={
            "base_s": {"type": "number", "minimum": 0},
            "factor": {"type": "number", "minimum": 1},
            "max_delay_s": {"type": "number", "minimum": 0},
            "max_restarts": {"type": "integer", "minimum": 1,
                             "description": "restarts within window_s before giving up (a sustained rate)"},
            "window_s": {"type": "number", "exclusiveMinimum": 0},
            "same_failure_limit": {"type": "integer", "minimum": 1,
                                   "description": "restarts in a row for the same recorded failure before giving up"},
            "healthy_reset_s": {"type": "number", "exclusiveMinimum": 0,
                                "description": "a driver that ran this long was healthy: the history starts afresh"},
            "repage_s": {"type": "number", "minimum": 60, "description": "once given up, page again this often"},
        }),
    }


@dataclass(frozen=True)
class StreamSettings:
    spec: StreamJobSpec
    thresholds: Thresholds
    restart: RestartPolicy


def stream_settings(values: Mapping[str, Any]) -> StreamSettings:
    """The job spec, SLOs and restart policy from the DAG's params (or any such mapping):
    keys named like :class:`StreamJobSpec` fields go to the spec, ``thresholds`` and
    ``restart`` to their classes; anything else is ignored."""
    values = {k: values[k] for k in values}
    names = {f.name for f in fields(StreamJobSpec)}
    spec = StreamJobSpec(**{k: v for k, v in values.items() if k in names})
    restart = RestartPolicy(**(values.get("restart") or {}))
    if restart.same_failure_limit <= spec.poison_after_failures:
        raise ValueError(f"restart.same_failure_limit ({restart.same_failure_limit}) must exceed poison_after_failures "
                         f"({spec.poison_after_failures}): the supervisor would give up before the driver that "
                         "isolates the failing records runs")
    if spec.task_cpus > spec.cores_per_executor:
        raise ValueError(f"task_cpus ({spec.task_cpus}) must not exceed cores_per_executor ({spec.cores_per_executor})")
    return StreamSettings(spec, Thresholds.from_mapping(values.get("thresholds")), restart)


# ---- archive reprocessing (argus_archive_reprocess) ----

DATE_PATTERN = r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"


def archive_params() -> dict[str, Param]:
    """Params of the archive DAG (:class:`~argus.archive.launcher.ReprocessJobSpec` settings)."""
    from argus.archive.launcher import ReprocessJobSpec

    spec = ReprocessJobSpec()
    return {
        "since": Param(None, type=["null", "string"], pattern=DATE_PATTERN,
                       description="first day (YYYY-MM-DD, UTC); empty: the day before the run"),
        "until": Param(None, type=["null", "string"], pattern=DATE_PATTERN,
                       description="last day, inclusive; empty: same as since"),
        "cameras": Param([], type="array", uniqueItems=True, items={"type": "string", "enum": registry_camera_ids()},
                         description="camera ids of the camera registry; empty: every archived camera"),
        "model": model_param(spec.model),
        "rate_hz": _number(spec.rate_hz, "number", 0, 60, "decoding rate (frames per second of video)",
                           exclusive_minimum=True),
        "window_s": _number(spec.window_s, "number", 1, 3600, "segment length (s): the unit of work and resume"),
        "executors": _number(spec.executors, "integer", 1, MAX_EXECUTORS, "Spark executors (one core each)"),
        "archive_root": Param(None, type=["null", "string"], pattern=r"^(hdfs|file)://\S+$",
                              description="archive root URL; empty: hdfs://<namenode>/argus/archive"),
    }

