"""What a tuning sweep varies, how its points run and what it optimises (:class:`SweepSpec`).

Each design point runs a benchmark at its settings, one at a time, and records two responses:

* ``throughput``: frames per second over the measured window, after every executor has
  loaded its model (the warm-up);
* ``processing_time`` (seconds): in ``archive`` mode the time the detection stage takes over
  the sweep's fixed stretch of archived video (the talk's "processing time": a fixed amount
  of video, so it grows with the decoding rate, which takes more frames from it, and falls
  with executors); in ``pipeline`` mode the p95 end-to-end latency (capture -> HBase) of
  cameras fed live at the decoding rate.

The sweep's steps: :mod:`argus.doe.sweep` (its folder), :mod:`argus.doe.points` (running a
point), :mod:`argus.doe.analysis` (fits and optimum), :mod:`argus.doe.promotion` (whether the
optimum replaces the streaming job's settings). No Airflow here:
``plugins/argus_airflow/operators/doe.py`` runs these steps as tasks of ``argus_doe_nightly``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

from argus.detect.detector import default_model_name
from argus.doe.designs import KINDS, DesignError, Factor
from argus.doe.model import clean
from argus.stack.spark import SLOTS_PER_CORE

MODES = ("archive", "pipeline")
RESPONSES = ("throughput", "processing_time")
#: the talk's factors; ``executors`` are Spark executors here (on a GPU deployment: tasks per GPU)
FACTOR_NAMES = ("executors", "batch_size", "decoding_rate")
FACTOR_UNITS = {"executors": "executors", "batch_size": "frames", "decoding_rate": "Hz"}
#: settings of the factors a sweep does not vary
FIXED_DEFAULTS = {"executors": 1, "batch_size": 8, "decoding_rate": 1}
#: executors may outnumber the cores they share (the talk ran up to 3 executors on one GPU),
#: up to as many per core as the local Spark worker offers slots
MAX_EXECUTORS_PER_CORE = SLOTS_PER_CORE


class SweepError(RuntimeError):
    """A sweep that cannot go on as asked (folder of another sweep, missing analysis, ...)."""


@dataclass(frozen=True)
class SweepSpec:
    """What a sweep varies, how each point runs, and what it optimises.

    :param factors: the factors varied (names from :data:`FACTOR_NAMES`), with their ranges.
    :param kind: design kind (:data:`argus.doe.designs.KINDS`).
    :param mode: ``archive`` (the reprocessing job over a fixed stretch of video) or
        ``pipeline`` (the streaming benchmark, ``argus.bench.live``).
    :param seconds: archive: seconds of archived video each point reprocesses (whole 8-s
        simulator clips, at least one); pipeline: the measured live window.
    :param latency_target: the optimum must keep ``processing_time`` (s) at or below this.
    :param center: centre points (see :func:`make_design`).
    :param runs: runs of an ``lhs`` / ``d-optimal`` design.
    :param seed: seed of the design; drawn and recorded when ``None``.
    :param model: detection model of every point.
    :param fixed: settings of the factors not varied (default :data:`FIXED_DEFAULTS`).
    :param window_s: archive: segment length (the unit of work of the job).
    :param cameras: pipeline: cameras fed live.
    :param cores: cores every point's executors share: each of ``executors`` executors gets
        ``cores // executors`` (as the talk's executors share one GPU), so a point never takes
        more of the machine than another.
    :param confirm_runs: confirmation runs at the optimum (prediction intervals are for their mean).
    :param response_model: ``quadratic``, ``interaction`` or ``linear``.
    :param alpha: 1 - coverage of the prediction intervals the confirmation is judged by.
    """

    factors: tuple[Factor, ...]
    kind: str = "fccd"
    mode: str = "archive"
    seconds: float = 16.0
    latency_target: float = 10.0
    center: int | None = None
    runs: int | None = None
    seed: int | None = None
    model: str = field(default_factory=default_model_name)
    fixed: dict = field(default_factory=dict)
    window_s: float = 4.0
    cameras: int = 2
    cores: int = 2
    confirm_runs: int = 1
    response_model: str = "quadratic"
    alpha: float = 0.05

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise DesignError(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.kind not in KINDS:
            raise DesignError(f"design kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        unknown = [f.name for f in self.factors if f.name not in FACTOR_NAMES]
        if unknown:
            raise DesignError(f"unknown factor(s) {', '.join(unknown)}; a sweep varies {', '.join(FACTOR_NAMES)}")
        if not self.factors:
            raise DesignError("a sweep varies at least one factor")
        if self.seconds <= 0 or self.latency_target <= 0 or self.confirm_runs < 1:
            raise DesignError("seconds and latency_target must be > 0, confirm_runs >= 1")
        most = max([int(f.high) for f in self.factors if f.name == "executors"]
                   or [int(self.fixed_settings().get("executors", 1))])
        if most > MAX_EXECUTORS_PER_CORE * self.cores:
            raise DesignError(f"{most} executors cannot share {self.cores} core(s): at most "
                              f"{MAX_EXECUTORS_PER_CORE} executors per core")

    def fixed_settings(self) -> dict:
        """Settings of the factors not varied."""
        varied = {f.name for f in self.factors}
        values = {**FIXED_DEFAULTS, **self.fixed}
        return {k: v for k, v in values.items() if k not in varied and k in FACTOR_NAMES}

    @property
    def constraint(self) -> str:
        return f"processing_time<={self.latency_target:g}"

    @classmethod
    def from_params(cls, params: Mapping) -> SweepSpec:
        """From ``argus_doe_nightly``'s params: ``factors`` maps a factor name to ``{low, high}``;
        ``design_kind``, ``mode``, ``seconds_per_run``, ``latency_target_s``, ``center_points``,
        ``runs``, ``seed``, ``model``, ``fixed``, ``window_s``, ``cameras``, ``cores``, ``confirm_runs``."""
        factors = []
        for name, rng in (params.get("factors") or {}).items():
            try:
                low, high = float(rng["low"]), float(rng["high"])
            except (KeyError, TypeError, ValueError):
                raise DesignError(f"factor {name!r}: give its range as {{low, high}}") from None
            factors.append(Factor(name, low, high, integer=True, unit=FACTOR_UNITS.get(name, "")))
        factors.sort(key=lambda f: FACTOR_NAMES.index(f.name) if f.name in FACTOR_NAMES else len(FACTOR_NAMES))
        optional = {"center": params.get("center_points"), "runs": params.get("runs"), "seed": params.get("seed")}
        return cls(factors=tuple(factors), kind=params.get("design_kind", "fccd"), mode=params.get("mode", "archive"),
                   seconds=float(params.get("seconds_per_run", 16.0)),
                   latency_target=float(params.get("latency_target_s", 10.0)),
                   model=params.get("model") or default_model_name(), fixed=dict(params.get("fixed") or {}),
                   window_s=float(params.get("window_s", 4.0)), cameras=int(params.get("cameras", 2)),
                   cores=int(params.get("cores", 2)),
                   confirm_runs=int(params.get("confirm_runs", 1)),
                   **{k: (int(v) if v is not None else None) for k, v in optional.items()})

    def to_dict(self) -> dict:
        data = asdict(self)
        data["factors"] = [f.to_dict() for f in self.factors]
        return clean(data)

    @classmethod
    def from_dict(cls, data: Mapping) -> SweepSpec:
        data = dict(data)
        data["factors"] = tuple(Factor(**f) for f in data["factors"])
        return cls(**data)

    def bench_options(self) -> dict:
        """Keyword arguments of :func:`run_point` besides the settings, mode and seconds."""
        return {"model": self.model, "window_s": self.window_s, "cameras": self.cameras, "cores": self.cores}
