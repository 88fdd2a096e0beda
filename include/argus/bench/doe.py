"""``argus bench doe``: does the 20-run FCCD find the setting a full 3-level grid (27 runs) finds?

Both designs are run as sweeps (:mod:`argus.doe.sweep`) in one session on the same stack,
their points interleaved in one random order drawn from the seed, so that whatever drifts
on the machine touches both alike. Then:

* the FCCD's runs are fitted (quadratic response surfaces) and optimised as the nightly DAG
  does: maximum throughput with ``processing_time <= latency_target``;
* the grid's best is the grid setting with the highest measured throughput among those that
  met the target;
* the grid's best is the largest of 27 noisy measurements, so it is biased upwards: the two
  settings are measured again side by side, alternating, ``repeats`` times each. The figure
  of merit is the ratio of their mean throughputs (goal: >= 0.95); the ratio to the grid's
  single best measurement is reported too. The side-by-side runs at the FCCD optimum are
  also the FCCD sweep's confirmation runs.

Everything lands in one folder (``<sweeps dir>/<comparison id>/``: ``fccd/`` and ``grid/``
sweeps with their reports, ``side_by_side.csv``, ``comparison.json``); running the command
again with the same ``--id`` resumes where it stopped, running only what is missing.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from argus.config import ArgusConfig
from argus.doe.designs import Factor
from argus.doe.model import clean
from argus.doe.analysis import analyse
from argus.doe.points import run_design_point, run_point
from argus.doe.spec import FACTOR_NAMES, SweepSpec
from argus.doe.sweep import CONFIRMATION_FILE, Sweep, sweeps_dir
from argus.detect.detector import default_model_name

#: the talk's ranges: executors per device, batch size, decoding rate (Hz)
TALK_FACTORS = (Factor("executors", 1, 3, integer=True, unit="executors"),
                Factor("batch_size", 1, 15, integer=True, unit="frames"),
                Factor("decoding_rate", 1, 9, integer=True, unit="Hz"))
GOAL = 0.95
SIDE_BY_SIDE_FILE, RESULT_FILE = "side_by_side.csv", "comparison.json"

Progress = Callable[[str], None]


def _settings(row) -> dict:
    return {k: int(round(float(row[k]))) for k in FACTOR_NAMES}


def _side_by_side(folder: Path) -> pd.DataFrame:
    path = folder / SIDE_BY_SIDE_FILE
    return pd.read_csv(path) if path.exists() and path.stat().st_size else pd.DataFrame()


def bench_doe(factors: Sequence[Factor] = TALK_FACTORS, *, seconds: float = 24.0, latency_target: float | None = None,
              repeats: int = 3, seed: int = 2019, comparison_id: str | None = None, model: str | None = None,
              window_s: float = 4.0, cores: int = 2, cfg: ArgusConfig | None = None,
              progress: Progress | None = None, runner=run_point) -> dict:
    """Run the FCCD and the 3-level grid interleaved, then both optima side by side.

    :param factors: the factors and their ranges (default the talk's).
    :param seconds: seconds of archived video each point reprocesses (archive mode).
    :param latency_target: the processing-time target (s); default ``seconds``: the video is
        processed at least as fast as it was recorded.
    :param repeats: side-by-side runs of each optimum.
    :param seed: seed of both designs' run orders and of their interleaving.
    :param comparison_id: folder name under the sweeps dir; an existing one is resumed.
    :param runner: :func:`argus.doe.points.run_point` or a stand-in (tests).
    :return: what was run, both optima, the side-by-side measures and the ratios.
    """
    model = model or default_model_name()
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, not {repeats}")
    cfg = cfg or ArgusConfig()
    say = progress or (lambda _msg: None)
    target = float(seconds if latency_target is None else latency_target)
    comparison_id = comparison_id or "bench-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    folder = sweeps_dir(cfg) / comparison_id
    common = dict(factors=tuple(factors), mode="archive", seconds=seconds, latency_target=target, seed=seed,
                  model=model, window_s=window_s, cores=cores)
    fccd = Sweep.create(folder / "fccd", SweepSpec(kind="fccd", center=6, confirm_runs=repeats, **common))
    grid = Sweep.create(folder / "grid", SweepSpec(kind="ff3", center=0, **common))

    # one order for both designs' points, so that drift over the session is shared
    queue = [(fccd, i) for i in fccd.pending()] + [(grid, i) for i in grid.pending()]
    random.Random(seed).shuffle(queue)
    total = len(fccd.points) + len(grid.points)
    for sweep, index in queue:
        done = total - len(fccd.pending()) - len(grid.pending())
        row, _ = run_design_point(sweep, index, cfg, runner=runner)
        say(f"[{done + 1}/{total}] {sweep.id} point {index}: {_settings(row)} -> "
            f"{row['throughput']:.2f} frames/s, {row['processing_time']:.1f} s")

    fccd_analysis = analyse(fccd.path)
    fccd_opt = {k: int(v) for k, v in fccd_analysis["optimum"]["settings"].items()}
    fccd_opt = {**fccd.spec.fixed_settings(), **fccd_opt}
    runs = grid.runs()
    feasible = runs[runs["processing_time"].astype(float) <= target]
    pool = feasible if len(feasible) else runs
    best_row = pool.loc[pool["throughput"].astype(float).idxmax()]
    grid_best = _settings(best_row)

    # alternate the two settings (AB, BA, ...) so that neither always runs first
    pair = [("fccd_optimum", fccd_opt), ("grid_best", grid_best)] if fccd_opt != grid_best \
        else [("fccd_optimum", fccd_opt)]
    plan = [item for r in range(repeats) for item in (pair if r % 2 == 0 else pair[::-1])]
    measured = _side_by_side(folder)
    for n, (label, settings) in enumerate(plan):
        if not measured.empty and (measured["n"] == n).any():
            continue
        row = runner(settings, "archive", seconds, cfg, **fccd.spec.bench_options(),
                     log_path=folder / f"side-{n:02d}.log")
        row = {"n": n, "label": label, **row}
        measured = pd.concat([measured, pd.DataFrame([row])], ignore_index=True)
        measured.to_csv(folder / SIDE_BY_SIDE_FILE, index=False)
        say(f"side by side {n + 1}/{len(plan)}: {label} {settings} -> {row['throughput']:.2f} frames/s")

    # the runs at the FCCD optimum confirm the sweep's prediction
    at_opt = measured[measured["label"] == "fccd_optimum"].reset_index(drop=True)
    for i, row in at_opt.iterrows():
        fccd.append_run(i, {"run": None, "point": "confirmation", **row.drop(["n", "label"]).to_dict()},
                        CONFIRMATION_FILE)
    fccd_analysis = analyse(fccd.path)
    grid_analysis = analyse(grid.path)

    fps_opt = at_opt["throughput"].astype(float)
    at_best = measured[measured["label"] == "grid_best"]["throughput"].astype(float)
    if fccd_opt == grid_best:
        at_best = fps_opt
    grid_fps = runs.set_index(runs[list(FACTOR_NAMES)].astype(int).apply(tuple, axis=1))["throughput"].astype(float)
    key = tuple(fccd_opt[k] for k in FACTOR_NAMES)
    ranked = grid_fps.rank(ascending=False, method="min")
    result = {
        "comparison_id": comparison_id, "folder": str(folder), "mode": "archive", "model": model,
        "seconds_per_run": seconds, "latency_target_s": target, "seed": seed, "cores": cores,
        "factors": [f.to_dict() for f in factors],
        "runs": {"fccd": len(fccd.runs()), "grid": len(runs), "side_by_side": len(measured)},
        "fccd": {"optimum": fccd_opt, "predicted": fccd_analysis["optimum"]["predictions"],
                 "feasible": fccd_analysis["optimum"]["feasible"], "fits": fccd_analysis["fits"],
                 "confirmation": fccd_analysis.get("confirmation"), "report": fccd_analysis["report"],
                 "grid_measurement": float(grid_fps[key]) if key in grid_fps.index else None,
                 "grid_rank": int(ranked[key]) if key in ranked.index else None},
        "grid": {"best": grid_best, "best_throughput": float(best_row["throughput"]),
                 "best_processing_time": float(best_row["processing_time"]),
                 "feasible_points": len(feasible), "model_optimum": grid_analysis["optimum"]["settings"],
                 "fits": grid_analysis["fits"], "report": grid_analysis["report"]},
        "side_by_side": {"fccd_optimum": fps_opt.round(3).tolist(), "grid_best": at_best.round(3).tolist(),
                         "fccd_optimum_mean": float(fps_opt.mean()), "grid_best_mean": float(at_best.mean())},
        "ratio": float(fps_opt.mean() / at_best.mean()),
        "ratio_to_grid_best_measurement": float(fps_opt.mean() / float(best_row["throughput"])),
        "goal": GOAL,
    }
    result["met"] = result["ratio"] >= GOAL
    result = clean(result)
    (folder / RESULT_FILE).write_text(json.dumps(result, indent=2) + "\n")
    return result


__all__ = ["GOAL", "TALK_FACTORS", "bench_doe"]
