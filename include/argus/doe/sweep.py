"""A tuning sweep on the running stack: its folder, its benchmark points, its analysis and the
decision to promote its optimum.

Each design point runs a benchmark at its settings, one at a time, and records two responses:

* ``throughput``: frames per second over the measured window, after every executor has
  loaded its model (the warm-up);
* ``processing_time`` (seconds): in ``archive`` mode the time the detection stage takes over
  the sweep's fixed stretch of archived video (the talk's "processing time": a fixed amount
  of video, so it grows with the decoding rate, which takes more frames from it, and falls
  with executors); in ``pipeline`` mode the p95 end-to-end latency (capture -> HBase) of
  cameras fed live at the decoding rate.

A sweep lives in one folder, ``<state>/doe/<sweep-id>/`` (``ARGUS_DOE_DIR`` moves the parent)::

    design.json        the spec (factors, kind, mode, seconds, target, ...) and the plan in run order
    runs.csv           one row per point run: index, factors as run, responses, what was measured
    confirmation.csv   the confirmation run(s) at the optimum, same columns
    point-NN.log       each point's job log (archive mode)
    report.md, contour_*.png, analysis.json    from :func:`argus.doe.report.write_report`
    promotion.json     the promotion decision and its reasons

Rows are appended once per point index (:meth:`Sweep.append_run`), so a retried point never
adds a second row. No Airflow here: ``plugins/argus_airflow/operators/doe.py`` runs these
steps as tasks of ``argus_doe_nightly``.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import re
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from argus import config, process
from argus.config import ArgusConfig
from argus.doe.designs import KINDS, DesignError, Factor, make_design
from argus.doe.model import clean
from argus.stack.spark import SLOTS_PER_CORE
from argus.detect.detector import default_model_name

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
#: where archive-mode points find their video (uploaded once per size)
DOE_ARCHIVE_ROOT = "/argus/bench/doe"
_ARCHIVE_START_MS = 1_790_000_000_000

DESIGN_FILE, RUNS_FILE, CONFIRMATION_FILE = "design.json", "runs.csv", "confirmation.csv"
ANALYSIS_FILE, REPORT_FILE, PROMOTION_FILE = "analysis.json", "report.md", "promotion.json"


class SweepError(RuntimeError):
    """A sweep that cannot go on as asked (folder of another sweep, missing analysis, ...)."""


def sweeps_dir(cfg: ArgusConfig | None = None) -> Path:
    """The parent folder of every sweep: ``ARGUS_DOE_DIR``, else ``<state dir>/doe``."""
    return config.doe_dir() or (cfg or ArgusConfig()).state_dir / "doe"


def sweep_id_for(run_id: str) -> str:
    """A folder-safe sweep id from an Airflow run id (or any text): stable, so retries find their sweep."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", run_id).strip("-.") or "sweep"


# ---- the spec ---------------------------------------------------------------------------

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


# ---- the folder -------------------------------------------------------------------------

def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class Sweep:
    """A sweep's folder (see the module's docstring for its layout).

    :param path: the folder, ``<sweeps_dir>/<sweep-id>``.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @property
    def id(self) -> str:
        return self.path.name

    @classmethod
    def create(cls, path: str | Path, spec: SweepSpec) -> Sweep:
        """Make the design and write ``design.json``; if the folder already holds this spec's
        sweep (a retried plan task), it is returned as it is, design and runs kept.

        :raises SweepError: the folder holds a sweep of another spec.
        """
        sweep = cls(path)
        if (sweep.path / DESIGN_FILE).exists():
            stored = sweep.spec
            same = {**stored.to_dict(), "seed": None} == {**spec.to_dict(), "seed": None}
            if not same or (spec.seed is not None and spec.seed != stored.seed):
                raise SweepError(f"{sweep.path} holds another sweep ({stored.kind} over "
                                 f"{', '.join(f.name for f in stored.factors)}); use a new sweep id")
            return sweep
        design = make_design(spec.kind, spec.factors, center=spec.center, runs=spec.runs, seed=spec.seed,
                             model=spec.response_model)
        spec = SweepSpec.from_dict({**spec.to_dict(), "seed": design.seed})
        plan = design.to_frame()
        fixed = spec.fixed_settings()
        points = [{"index": i, "run": int(row.run), "point": row.point,
                   "settings": {**{f.name: _number(getattr(row, f.name)) for f in spec.factors}, **fixed}}
                  for i, row in enumerate(plan.itertuples(index=False))]
        sweep.path.mkdir(parents=True, exist_ok=True)
        doc = {"sweep_id": sweep.id, "created": _now(), "spec": spec.to_dict(),
               "design": {"kind": design.kind, "runs": design.n_runs, "seed": design.seed, "params": design.params,
                          "log_det": design.log_det(spec.response_model) if design.n_runs else None},
               "points": points}
        _write_atomic(sweep.path / DESIGN_FILE, json.dumps(clean(doc), indent=2) + "\n")
        return sweep

    # -- what was planned ------------------------------------------------------------------
    def _design(self) -> dict:
        try:
            return json.loads((self.path / DESIGN_FILE).read_text())
        except FileNotFoundError:
            raise SweepError(f"no sweep in {self.path} ({DESIGN_FILE} missing)") from None

    @property
    def spec(self) -> SweepSpec:
        return SweepSpec.from_dict(self._design()["spec"])

    @property
    def points(self) -> list[dict]:
        """The planned points in run order: ``index``, ``run`` (standard order), ``point``, ``settings``."""
        return self._design()["points"]

    def point(self, index: int) -> dict:
        points = self.points
        if not 0 <= index < len(points):
            raise SweepError(f"sweep {self.id} has points 0..{len(points) - 1}, not {index}")
        return points[index]

    # -- what was run ----------------------------------------------------------------------
    @contextmanager
    def _locked(self):
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _table(self, name: str) -> pd.DataFrame:
        path = self.path / name
        return pd.read_csv(path) if path.exists() and path.stat().st_size else pd.DataFrame()

    def runs(self) -> pd.DataFrame:
        """``runs.csv``: one row per point run, in the order they finished."""
        return self._table(RUNS_FILE)

    def confirmations(self) -> pd.DataFrame:
        """``confirmation.csv``: the confirmation runs."""
        return self._table(CONFIRMATION_FILE)

    def recorded(self, index: int, table: str = RUNS_FILE) -> dict | None:
        """The row recorded for point ``index`` (of ``runs.csv`` or ``confirmation.csv``), if any."""
        frame = self._table(table)
        if frame.empty:
            return None
        rows = frame[frame["index"] == index]
        return clean(rows.iloc[0].to_dict()) if len(rows) else None

    def append_run(self, index: int, row: Mapping, table: str = RUNS_FILE) -> bool:
        """Record point ``index``'s result; a second call for the same index changes nothing.

        :return: whether the row was added (False: the point was already recorded).
        """
        with self._locked():
            frame = self._table(table)
            if not frame.empty and (frame["index"] == index).any():
                return False
            new = pd.DataFrame([{"index": index, **{k: v for k, v in row.items() if k != "index"}}])
            frame = new if frame.empty else pd.concat([frame, new], ignore_index=True)
            _write_atomic(self.path / table, frame.to_csv(index=False))
            return True

    def pending(self) -> list[int]:
        """Indices of the planned points not run yet."""
        done = set(self.runs().get("index", pd.Series(dtype=int)).astype(int))
        return [p["index"] for p in self.points if p["index"] not in done]

    @property
    def report_path(self) -> Path:
        return self.path / REPORT_FILE

    def analysis(self) -> dict:
        try:
            return json.loads((self.path / ANALYSIS_FILE).read_text())
        except FileNotFoundError:
            raise SweepError(f"sweep {self.id} has not been analysed ({ANALYSIS_FILE} missing)") from None


def _number(value):
    value = float(value)
    return int(value) if value.is_integer() else value


# ---- one benchmark point ----------------------------------------------------------------

PointRunner = Callable[..., dict]


def run_point(settings: Mapping[str, float], mode: str, seconds: float, cfg: ArgusConfig | None = None, *,
              model: str | None = None, window_s: float = 4.0, cameras: int = 2, cores: int = 2,
              log_path: Path | None = None, timeout: float | None = None,
              on_start: Callable[[subprocess.Popen], None] | None = None) -> dict:
    """Run one benchmark at ``settings`` and return what was run and measured.

    Factors map to the benchmarks as: ``executors`` -> Spark executors sharing ``cores``
    (``cores // executors`` cores and TensorFlow threads each, one when executors outnumber
    the cores), ``batch_size`` -> frames per
    detector call, ``decoding_rate`` -> frames taken per second of video (archive: the job's
    ``--rate``; pipeline: each live camera's rate).

    :param settings: ``executors``, ``batch_size``, ``decoding_rate`` (whole numbers).
    :param mode: ``archive``: the reprocessing job over ``seconds`` of archived simulator video
        (:data:`DOE_ARCHIVE_ROOT`; the detection stage after every executor loaded its model
        is the measured window); ``pipeline``: :func:`argus.bench.live.bench_pipeline`
        with ``cameras`` live cameras for ``seconds``.
    :param seconds: see :class:`SweepSpec`.
    :param log_path: archive: where the job's log goes.
    :param timeout: archive: the job is killed after this many seconds.
    :param on_start: archive: called with the job's process as soon as it starts (to stop it).
    :return: the settings as run, ``throughput`` (frames/s), ``processing_time`` (s), the
        benchmark's own measures, ``mode``, ``model``, ``started`` and ``finished`` (UTC).
    """
    model = model or default_model_name()
    cfg = cfg or ArgusConfig()
    run = {k: int(round(float(settings[k]))) for k in FACTOR_NAMES}
    if run["executors"] > MAX_EXECUTORS_PER_CORE * cores:
        raise ValueError(f"{run['executors']} executors cannot share {cores} core(s)")
    # more executors than cores share them (one thread each), as the talk's executors shared a GPU:
    # one executor's decoding and Python work overlaps another's detection
    cores_per_executor = max(1, cores // run["executors"])
    started = _now()
    if mode == "archive":
        measured = _archive_point(run, seconds, cfg, model=model, window_s=window_s,
                                  cores_per_executor=cores_per_executor, log_path=log_path,
                                  timeout=timeout or 600 + 60 * seconds, on_start=on_start)
    elif mode == "pipeline":
        measured = _pipeline_point(run, seconds, model=model, cameras=cameras, cores_per_executor=cores_per_executor)
    else:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    return {**run, **measured, "mode": mode, "model": model, "cores_per_executor": cores_per_executor,
            "started": started, "finished": _now()}


def doe_archive(cfg: ArgusConfig, seconds: float) -> tuple[str, list[tuple[Path, str, int]]]:
    """Upload (once) the archive archive-mode points reprocess: ``ceil(seconds / 8)`` simulator
    clips filed under two cameras, in a folder of its own per size.

    :return: the archive root URL and (clip, camera, start ms) of each recording.
    """
    from argus.archive.layout import put
    from argus.archive.hdfs import webhdfs_client
    from argus.live.simulate import CLIP_SECONDS, ensure_clips

    recordings = max(1, math.ceil(seconds / CLIP_SECONDS - 1e-9))
    root = f"{DOE_ARCHIVE_ROOT}/{recordings}x{CLIP_SECONDS}s"
    clips = ensure_clips(cfg.cache_dir / "simulator")
    client = webhdfs_client(cfg)
    layout = [(clips[i % len(clips)], f"doe-{i % 2}", _ARCHIVE_START_MS + i * 600_000) for i in range(recordings)]
    for clip, camera, start in layout:
        put([clip], camera, client, start_ms=start, root=root)
    return f"{cfg.hdfs_uri}{root}", layout


def stop_point(proc: subprocess.Popen | None) -> None:
    """Stop a point's job (its whole process group: spark-submit and the driver)."""
    if proc is not None:
        process.stop_group(proc, timeout=20)


def _archive_point(run: dict, seconds: float, cfg: ArgusConfig, *, model: str, window_s: float,
                   cores_per_executor: int, log_path: Path | None, timeout: float,
                   on_start: Callable[[subprocess.Popen], None] | None) -> dict:
    from argus.archive.launcher import ReprocessJobSpec, parse_line
    from argus.live.simulate import CLIP_SECONDS

    root, layout = doe_archive(cfg, seconds)
    spec = ReprocessJobSpec(archive_root=root, model=model, rate_hz=float(run["decoding_rate"]), window_s=window_s,
                            batch_size=run["batch_size"], executors=run["executors"],
                            cores_per_executor=cores_per_executor, resume=False)
    proc = spec.start(cfg, log_path)
    if on_start is not None:
        on_start(proc)
    timer = threading.Timer(timeout, stop_point, args=(proc,))
    timer.daemon = True
    timer.start()
    result, tail = None, deque(maxlen=40)
    try:
        for line in proc.stdout:
            tail.append(line.rstrip())
            parsed = parse_line(line)
            if parsed and parsed[0] == "ARGUS_RESULT":
                result = parsed[1]
        returncode = proc.wait()
    finally:
        timer.cancel()
        stop_point(proc)
    if returncode != 0 or result is None:
        log = log_path.read_text()[-3000:] if log_path and log_path.exists() else ""
        raise RuntimeError(f"the reprocessing job at {run} ended with status {returncode} and "
                           f"{'no' if result is None else 'a'} summary\n" + "\n".join(tail) + "\n" + log)
    if result["failures"] or not result["frames"]:
        raise RuntimeError(f"the sweep's archive {root} could not be reprocessed: {result['failures']}")
    return {"throughput": float(result["fps"]), "processing_time": float(result["seconds"]),
            "frames": int(result["frames"]), "segments": int(result["segments_done"]),
            "total_seconds": float(result["total_seconds"]), "video_s": len(layout) * CLIP_SECONDS,
            "window_s": window_s, "archive_root": root}


def _pipeline_point(run: dict, seconds: float, *, model: str, cameras: int, cores_per_executor: int) -> dict:
    from argus.bench.live import bench_pipeline

    r = bench_pipeline(cameras, float(run["decoding_rate"]), seconds, model=model, batch=run["batch_size"],
                       executors=run["executors"], cores_per_executor=cores_per_executor)
    latency = r["latency_ms"]
    return {"throughput": float(r["fps"]), "processing_time": float(latency["p95"]) / 1000,
            "latency_p50_ms": latency["p50"], "latency_p95_ms": latency["p95"], "latency_p99_ms": latency["p99"],
            "frames_in": r["frames_in"], "frames_stored": r["frames_stored"], "bare_fps": r["bare_fps"],
            "cameras": cameras, "seconds": seconds}


def run_design_point(sweep: Sweep, index: int, cfg: ArgusConfig | None = None, *, runner: PointRunner = run_point,
                     confirmation: bool = False, **kwargs) -> tuple[dict, bool]:
    """Run point ``index`` of ``sweep`` (or confirmation run ``index`` at the analysed optimum)
    and record it, unless it is recorded already.

    :param runner: :func:`run_point` or a stand-in with its signature (tests).
    :param kwargs: passed to the runner (``on_start``, ``timeout``).
    :return: the recorded row and whether this call ran it.
    """
    table = CONFIRMATION_FILE if confirmation else RUNS_FILE
    done = sweep.recorded(index, table)
    if done is not None:
        return done, False
    spec = sweep.spec
    if confirmation:
        settings = {**optimum_settings(sweep), **spec.fixed_settings()}
        point = {"run": None, "point": "confirmation"}
    else:
        planned = sweep.point(index)
        settings, point = planned["settings"], {"run": planned["run"], "point": planned["point"]}
    log = sweep.path / (f"confirm-{index:02d}.log" if confirmation else f"point-{index:02d}.log")
    options = {**spec.bench_options(), **({"log_path": log} if spec.mode == "archive" else {}), **kwargs}
    row = runner(settings, spec.mode, spec.seconds, cfg, **options)
    row = {**point, **row}
    sweep.append_run(index, row, table)
    return sweep.recorded(index, table) or row, True


# ---- analysis, confirmation, promotion ---------------------------------------------------

def fit_sweep_response(runs: pd.DataFrame, factors: Sequence[Factor], response: str, model: str = "quadratic"):
    """:func:`argus.doe.model.fit_response`, except that a factor run at two levels only (an
    integer factor such as executors 1..2, whose centre rounds onto a face) has no square
    term: its curvature cannot be estimated, and with it the model matrix would be singular.
    The model is then named e.g. ``quadratic without executors^2``."""
    import numpy as np
    import statsmodels.formula.api as smf

    from argus.doe.designs import to_coded
    from argus.doe.model import ResponseModel, _column, fit_response
    from argus.doe.terms import model_matrix, model_terms

    flat = [i for i, f in enumerate(factors) if runs[f.name].nunique() < 3]
    if model != "quadratic" or not flat:
        return fit_response(runs, factors, response, model=model)
    terms = tuple(t for t in model_terms(len(factors), model) if not (len(t) == 2 and t[0] == t[1] and t[0] in flat))
    names = [f.name for f in factors]
    data = runs[[*names, response]].apply(pd.to_numeric, errors="raise")
    data = data[data[response].notna()].reset_index(drop=True)
    if len(data) <= len(terms):
        raise DesignError(f"{len(data)} runs of {response!r} cannot fit {len(terms)} terms and leave an error estimate")
    x = model_matrix(to_coded(data, factors).to_numpy(), terms)
    if np.linalg.matrix_rank(x) < len(terms):
        raise DesignError("the runs cannot separate all terms of the model (the model matrix is singular)")
    frame = pd.DataFrame(x[:, 1:], columns=[_column(t) for t in terms[1:]])
    frame["y"] = data[response].to_numpy(dtype=float)
    results = smf.ols("y ~ " + " + ".join(frame.columns[:-1]), data=frame).fit()
    label = f"{model} without " + ", ".join(f"{factors[i].name}^2" for i in flat)
    return ResponseModel(response, factors, label, terms, results, data)


def optimum_settings(sweep: Sweep) -> dict:
    """The analysed optimum's settings (factors varied only)."""
    optimum = sweep.analysis().get("optimum")
    if not optimum:
        raise SweepError(f"sweep {sweep.id}'s analysis has no optimum")
    return dict(optimum["settings"])


def analyse(sweep_dir: str | Path, latency_target: float | None = None, *, alpha: float | None = None,
            n_future: int | None = None) -> dict:
    """Fit ``throughput`` and ``processing_time``, find the settings that maximise throughput
    with ``processing_time <= latency_target``, compare the confirmation runs if there are
    any, and write the report.

    :param sweep_dir: the sweep's folder.
    :param latency_target: default the spec's.
    :param alpha: 1 - coverage of the intervals; default the spec's.
    :param n_future: prediction intervals for the mean of this many confirmation runs;
        default the spec's ``confirm_runs``.
    :return: ``sweep_id``, ``report``, ``runs``, ``fits`` (R², adjusted and predicted R², RMSE
        per response), ``optimum`` and ``confirmation`` (None before confirmation runs).
    """
    from argus.doe.optimum import maximize, optimize
    from argus.doe.report import write_report

    sweep = Sweep(sweep_dir)
    spec = sweep.spec
    target = spec.latency_target if latency_target is None else float(latency_target)
    constraint = f"processing_time<={target:g}"
    runs = sweep.runs()
    if runs.empty:
        raise SweepError(f"sweep {sweep.id} has no runs to analyse")
    missing = sweep.pending()
    if missing:
        raise SweepError(f"sweep {sweep.id}: point(s) {missing} not run")
    runs = runs.sort_values("index").reset_index(drop=True)
    models = {r: fit_sweep_response(runs, spec.factors, r, model=spec.response_model) for r in RESPONSES}
    best = optimize(models, spec.factors, objective=maximize("throughput"), constraints=[constraint],
                    alpha=spec.alpha if alpha is None else alpha,
                    n_future=spec.confirm_runs if n_future is None else n_future)
    confirmations = sweep.confirmations()
    checks = None
    if not confirmations.empty:
        checks = best.confirm({r: confirmations[r].astype(float).tolist() for r in RESPONSES})
    report = write_report(sweep.path, models, optimum=best, constraints=[constraint], confirmation=checks,
                          runs=runs, title=f"DOE sweep {sweep.id}",
                          source=f"{len(runs)} {spec.mode} benchmark runs of {spec.model}, {spec.kind} design, "
                                 f"seed {spec.seed}, {spec.seconds:g} s per run; processing_time target {target:g} s")
    analysis = json.loads((sweep.path / ANALYSIS_FILE).read_text())
    analysis.update(sweep_id=sweep.id, latency_target=target, mode=spec.mode, model=spec.model,
                    fixed=spec.fixed_settings(), confirm_runs=spec.confirm_runs)
    _write_atomic(sweep.path / ANALYSIS_FILE, json.dumps(clean(analysis), indent=2) + "\n")
    return clean({
        "sweep_id": sweep.id, "report": str(report), "runs": len(runs),
        "fits": {r: {"r2": m.r2, "adj_r2": m.adj_r2, "pred_r2": m.pred_r2, "rmse": m.rmse} for r, m in models.items()},
        "optimum": best.to_dict(),
        "confirmation": analysis.get("confirmation"),
    })


@dataclass(frozen=True)
class Promotion:
    """Whether a sweep's optimum may replace the streaming job's settings.

    :param promote: the optimum meets the target as predicted and every confirmation agrees.
    :param reasons: why not (empty when promoted).
    :param value: what to promote: ``executors``, ``batch_size``, ``decoding_rate``, the sweep
        id, the predicted and confirmed responses, the report and the time (also when refused,
        for the record).
    """

    promote: bool
    reasons: tuple[str, ...]
    value: dict

    def to_dict(self) -> dict:
        return clean({"promote": self.promote, "reasons": list(self.reasons), "value": self.value})


def decide_promotion(analysis: Mapping, latency_target: float | None = None, *, now: str | None = None) -> Promotion:
    """Promote only a confirmed optimum: it is predicted to meet ``processing_time <= target``,
    every confirmed response's observed mean lies in its prediction interval, and the observed
    processing time meets the target too.

    :param analysis: ``analysis.json`` of an analysed sweep (with its ``confirmation``).
    :param latency_target: default the one the analysis was made with.
    """
    target = float(latency_target if latency_target is not None else analysis["latency_target"])
    optimum = analysis.get("optimum") or {}
    confirmation = analysis.get("confirmation") or {}
    reasons = []
    if not optimum:
        reasons.append("the analysis found no optimum")
    elif not optimum.get("feasible", False):
        predicted = optimum["predictions"]["processing_time"]["mean"]
        reasons.append(f"no setting is predicted to meet processing_time <= {target:g} s "
                       f"(least infeasible predicts {predicted:.4g} s)")
    missing = [r for r in RESPONSES if r not in confirmation]
    if missing:
        reasons.append(f"no confirmation run for {', '.join(missing)}")
    for name, check in confirmation.items():
        if not check["agrees"]:
            lo, hi = check["interval"]
            reasons.append(f"confirmation disagrees on {name}: observed {check['observed']:.4g}, "
                           f"predicted {check['predicted']:.4g} (prediction interval {lo:.4g} .. {hi:.4g})")
    observed_time = confirmation.get("processing_time", {}).get("observed")
    if observed_time is not None and observed_time > target:
        reasons.append(f"the confirmation run's processing_time {observed_time:.4g} s exceeds the target {target:g} s")
    settings = {**(analysis.get("fixed") or {}), **(optimum.get("settings") or {})}
    value = {
        "executors": settings.get("executors"), "batch_size": settings.get("batch_size"),
        "decoding_rate": settings.get("decoding_rate"),
        "sweep_id": analysis.get("sweep_id"), "mode": analysis.get("mode"), "model": analysis.get("model"),
        "latency_target_s": target,
        "predicted": {k: p["mean"] for k, p in (optimum.get("predictions") or {}).items()},
        "prediction_interval": {k: p["prediction"] for k, p in (optimum.get("predictions") or {}).items()},
        "confirmed": {k: c["observed"] for k, c in confirmation.items()},
        "promoted_at": now or _now(),
    }
    return Promotion(not reasons, tuple(reasons), clean(value))


def promote(sweep_dir: str | Path, latency_target: float | None = None) -> Promotion:
    """:func:`decide_promotion` on the sweep's analysis; writes ``promotion.json``. Storing the
    promoted settings where the streaming job reads them is the caller's (an Airflow Variable)."""
    sweep = Sweep(sweep_dir)
    decision = decide_promotion(sweep.analysis(), latency_target)
    value = {**decision.value, "report": str(sweep.report_path)}
    decision = Promotion(decision.promote, decision.reasons, value)
    _write_atomic(sweep.path / PROMOTION_FILE, json.dumps(decision.to_dict(), indent=2) + "\n")
    return decision


__all__ = ["DOE_ARCHIVE_ROOT", "FACTOR_NAMES", "FIXED_DEFAULTS", "MAX_EXECUTORS_PER_CORE", "MODES", "RESPONSES", "Promotion", "Sweep",
           "SweepError", "SweepSpec", "analyse", "decide_promotion", "doe_archive", "optimum_settings", "promote",
           "fit_sweep_response", "run_design_point", "run_point", "stop_point", "sweep_id_for", "sweeps_dir"]
