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
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from airflow.sdk import Param

from argus.archive.launcher import DATE_PATTERN
from argus.live.launcher import StreamJobSpec, job_schema
from argus.supervision.health import Thresholds
from argus.supervision.restart import RestartPolicy

log = logging.getLogger(__name__)

#: a camera id pattern: shell-style, at least one ``*``, no ``#`` (the row key separator)
CAMERA_PATTERN = r"^[^#]*\*[^#]*$"


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


def params_from(cls, instance: Any | None = None, **overrides: Param) -> dict[str, Param]:
    """One Param per setting of a settings class (a job spec, the SLOs, the restart policy):
    its JSON schema, with the value of ``instance`` (default: the class's defaults) as its
    default. ``overrides`` replace the Params whose schema is not the class's alone (the
    registries' cameras and models)."""
    instance = instance if instance is not None else cls()
    props = job_schema(cls)["properties"]
    built = {}
    for name, schema in props.items():
        if name in overrides:
            built[name] = overrides[name]
            continue
        schema = {k: v for k, v in schema.items() if k not in ("default", "title")}
        built[name] = Param(getattr(instance, name), title=name.replace("_", " ").capitalize(), **schema)
    return built


def object_param(cls, description: str) -> Param:
    """A settings class as one object-valued Param (its properties and constraints, no others)."""
    schema = job_schema(cls)
    properties = {name: {k: v for k, v in prop.items() if k not in ("default", "title")}
                  for name, prop in schema["properties"].items()}
    return Param(asdict(cls()), type="object", additionalProperties=False, description=description,
                 properties=properties)


# ---- the streaming job (argus_stream_detection) ----

def stream_job_params() -> dict[str, Param]:
    """Params of the streaming DAG: the :class:`~argus.live.launcher.StreamJobSpec` settings,
    plus ``thresholds`` (:class:`~argus.supervision.health.Thresholds`) and ``restart``
    (:class:`~argus.supervision.restart.RestartPolicy`)."""
    spec = StreamJobSpec()
    return {
        **params_from(StreamJobSpec, spec, camera_models=camera_models_param(),
                      default_model=model_param(spec.default_model, "model of the cameras not in camera_models")),
        "thresholds": object_param(Thresholds, "SLOs"),
        "restart": object_param(RestartPolicy, "restart backoff and when to give up"),
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
    return StreamSettings(spec, Thresholds.from_mapping(values.get("thresholds")), restart)


# ---- archive reprocessing (argus_archive_reprocess) ----

def archive_params() -> dict[str, Param]:
    """Params of the archive DAG: the :class:`~argus.archive.launcher.ReprocessJobSpec`
    settings a run chooses (the rest keep the spec's defaults)."""
    from argus.archive.launcher import ReprocessJobSpec

    chosen = ("since", "until", "cameras", "model", "rate_hz", "window_s", "executors", "archive_root")
    spec = ReprocessJobSpec()
    built = params_from(
        ReprocessJobSpec, spec, model=model_param(spec.model),
        since=Param(None, type=["null", "string"], pattern=DATE_PATTERN,
                    description="first day (YYYY-MM-DD, UTC); empty: the day before the run"),
        until=Param(None, type=["null", "string"], pattern=DATE_PATTERN,
                    description="last day, inclusive; empty: same as since"),
        cameras=Param([], type="array", uniqueItems=True, items={"type": "string", "enum": registry_camera_ids()},
                      description="camera ids of the camera registry; empty: every archived camera"))
    return {name: built[name] for name in chosen}
