"""The nightly tuning sweep's Airflow side: its params and the promoted settings.

``argus_doe_nightly`` stores the confirmed optimum in the Airflow Variable
:data:`STREAM_SETTINGS_VARIABLE` (JSON); the streaming DAG reads it with
:func:`promoted_stream_settings` and applies it with :func:`stream_overrides` to the
settings its trigger left unset.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow.sdk import Param

from argus.doe.spec import FACTOR_NAMES, FIXED_DEFAULTS, MODES

#: Airflow Variable holding the last confirmed optimum (JSON)
STREAM_SETTINGS_VARIABLE = "argus_stream_settings"
#: the design kinds the DAG offers: those that can estimate a quadratic surface
DESIGN_KINDS = ("fccd", "ff3", "lhs", "d-optimal")
#: natural bounds of each factor's range, as the params' JSON schema enforces them
FACTOR_BOUNDS = {"executors": (1, 64), "batch_size": (1, 64), "decoding_rate": (1, 30)}
FACTOR_DESCRIPTIONS = {
    "executors": "Spark executors, cores_per_executor cores each (the talk's executors per GPU; "
                 "see docs/doe.md for GPU deployments)",
    "batch_size": "frames per detector call",
    "decoding_rate": "frames taken per second of video (Hz)",
}
#: the talk's factors and ranges (3 executors share the 2-core stack's cores as the talk's shared
#: a GPU; docs/benchmarks.md: 2-3 executors beat 1)
DEFAULT_FACTORS = {"executors": {"low": 1, "high": 3}, "batch_size": {"low": 1, "high": 15},
                   "decoding_rate": {"low": 1, "high": 9}}


def _range_schema(name: str) -> dict[str, Any]:
    lo, hi = FACTOR_BOUNDS[name]
    bound = {"type": "integer", "minimum": lo, "maximum": hi}
    return {"type": "object", "required": ["low", "high"], "additionalProperties": False,
            "description": FACTOR_DESCRIPTIONS[name], "properties": {"low": bound, "high": bound}}


def doe_params() -> dict[str, Param]:
    """Params of ``argus_doe_nightly`` (:meth:`argus.doe.spec.SweepSpec.from_params` reads them).

    JSON schema cannot compare two values, so ``low < high`` is checked by the plan task,
    before any point runs."""
    from argus_airflow.params import model_param

    return {
        "mode": Param("archive", type="string", enum=list(MODES), title="Benchmark",
                      description="archive: reprocess a fixed stretch of archived video per point; "
                                  "pipeline: the live streaming benchmark"),
        "design_kind": Param("fccd", type="string", enum=list(DESIGN_KINDS), title="Design",
                             description="face-centred central composite, 3-level factorial, "
                                         "Latin hypercube or D-optimal"),
        "factors": Param(DEFAULT_FACTORS, type="object", title="Factors and ranges", minProperties=2,
                         additionalProperties=False, description="the factors varied, each {low, high} "
                         "(low < high); the others are held at 'fixed'",
                         properties={name: _range_schema(name) for name in FACTOR_NAMES}),
        "fixed": Param(dict(FIXED_DEFAULTS), type="object", additionalProperties=False,
                       description="settings of the factors not varied",
                       properties={name: {"type": "integer", "minimum": FACTOR_BOUNDS[name][0],
                                          "maximum": FACTOR_BOUNDS[name][1]} for name in FACTOR_NAMES}),
        "seconds_per_run": Param(16, type="number", minimum=4, maximum=3600,
                                 description="archive: seconds of video each point reprocesses (whole 8-s clips); "
                                             "pipeline: the measured live window"),
        "latency_target_s": Param(10.0, type="number", exclusiveMinimum=0,
                                  description="the optimum must keep processing_time (s) at or below this"),
        "center_points": Param(3, type="integer", minimum=0, maximum=12,
                               description="centre runs (fccd; extra centre runs for ff3)"),
        "runs": Param(None, type=["null", "integer"], minimum=6, maximum=200,
                      description="runs of an lhs / d-optimal design; empty: the design's default"),
        "seed": Param(None, type=["null", "integer"], minimum=0, maximum=2**32 - 1,
                      description="seed of the design and run order; empty: drawn and recorded"),
        "model": model_param(),
        "window_s": Param(4, type="number", minimum=1, maximum=600, description="archive: segment length (s)"),
        "cameras": Param(2, type="integer", minimum=1, maximum=64, description="pipeline: live cameras"),
        "cores": Param(2, type="integer", minimum=1, maximum=256,
                       description="cores every point's executors share, cores // executors each "
                                   "(as the talk's executors share one GPU)"),
        "confirm_runs": Param(1, type="integer", minimum=1, maximum=5,
                              description="confirmation runs at the optimum"),
    }


def promoted_stream_settings() -> dict | None:
    """The last promoted optimum (``executors``, ``batch_size``, ``decoding_rate``,
    ``sweep_id``, ``predicted``, ``confirmed``, ``promoted_at``, ...), or None if no sweep
    has promoted one. Call it inside a task (it reads an Airflow Variable)."""
    from airflow.sdk import Variable

    value = Variable.get(STREAM_SETTINGS_VARIABLE, default=None, deserialize_json=True)
    return value if isinstance(value, dict) else None


def stream_overrides(conf: Mapping[str, Any] | None, promoted: Mapping[str, Any] | None,
                     tasks_per_gpu: int = 0) -> dict[str, int]:
    """Streaming-job settings to take from a promoted optimum: ``batch_size`` and ``executors``
    where the run's trigger (its ``conf``) did not set them.

    The sweep's ``executors`` factor is the talk's "executors per GPU". On a CPU stack it is
    the number of Spark executors; on a GPU deployment (``tasks_per_gpu`` > 0, each executor
    owning one GPU) it is the number of tasks sharing each GPU, so it goes to ``tasks_per_gpu``.

    :param conf: the DAG run's conf (what the trigger set explicitly).
    :param promoted: :func:`promoted_stream_settings`.
    :param tasks_per_gpu: the run's ``tasks_per_gpu`` (0: no GPU).
    """
    if not promoted:
        return {}
    conf = conf or {}
    wanted = {"batch_size": promoted.get("batch_size"),
              ("tasks_per_gpu" if tasks_per_gpu > 0 else "executors"): promoted.get("executors")}
    return {k: int(v) for k, v in wanted.items() if v is not None and k not in conf}


def store_promoted(value: Mapping[str, Any], variable: str = STREAM_SETTINGS_VARIABLE) -> None:
    """Write ``value`` to the Variable (inside a task)."""
    from airflow.sdk import Variable

    Variable.set(variable, dict(value), serialize_json=True,
                 description=f"confirmed optimum of DOE sweep {value.get('sweep_id')} (argus_doe_nightly)")


__all__ = ["DEFAULT_FACTORS", "DESIGN_KINDS", "STREAM_SETTINGS_VARIABLE", "doe_params", "promoted_stream_settings",
           "store_promoted", "stream_overrides"]
