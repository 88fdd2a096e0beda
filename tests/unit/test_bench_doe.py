"""argus bench doe with a stand-in benchmark: both designs interleaved in one order, the
grid's best and the FCCD optimum measured side by side, confirmation, and resuming."""

from __future__ import annotations

import json

import numpy as np
import pytest

from argus.bench.doe import RESULT_FILE, SIDE_BY_SIDE_FILE, bench_doe
from argus.doe.designs import Factor

FACTORS = (Factor("executors", 1, 3, integer=True), Factor("batch_size", 1, 15, integer=True),
           Factor("decoding_rate", 1, 9, integer=True))


class Surface:
    """Throughput peaks inside the region (executors 2, batch 10, rate 6); processing time
    grows with the rate. Records every call's settings, and the sweep it was for, in order."""

    def __init__(self, noise=0.05):
        self.calls, self.sweeps, self.rng, self.noise = [], [], np.random.default_rng(3), noise

    def __call__(self, settings, mode, seconds, cfg=None, **options):
        e, b, r = (int(settings[k]) for k in ("executors", "batch_size", "decoding_rate"))
        self.calls.append((e, b, r))
        self.sweeps.append(options["log_path"].parent.name)
        fps = 30 - 3 * (e - 2) ** 2 - 0.05 * (b - 10) ** 2 - 0.3 * (r - 6) ** 2 + self.rng.normal(0, self.noise)
        return {"executors": e, "batch_size": b, "decoding_rate": r, "throughput": fps,
                "processing_time": seconds * r / fps, "mode": mode}


@pytest.fixture
def sweeps(tmp_path, monkeypatch):
    monkeypatch.setenv("ARGUS_DOE_DIR", str(tmp_path))
    return tmp_path


def test_fccd_finds_the_grid_best_and_both_are_measured_side_by_side(sweeps):
    bench = Surface()
    result = bench_doe(FACTORS, seconds=24, repeats=2, comparison_id="cmp", runner=bench)
    assert result["runs"] == {"fccd": 20, "grid": 27, "side_by_side": 4}
    assert len(bench.calls) == 20 + 27 + 4
    # the two designs' points are interleaved, not one design after the other
    order = bench.sweeps[:47]
    assert set(order[:20]) == {"fccd", "grid"} and set(order[-20:]) == {"fccd", "grid"}
    assert result["grid"]["best"] == {"executors": 2, "batch_size": 8, "decoding_rate": 5}
    assert result["fccd"]["optimum"]["executors"] == 2
    assert abs(result["fccd"]["optimum"]["decoding_rate"] - 6) <= 1
    # side by side alternates the settings: AB then BA
    side = [tuple(c) for c in bench.calls[-4:]]
    opt = tuple(result["fccd"]["optimum"][k] for k in ("executors", "batch_size", "decoding_rate"))
    assert side[0] == side[3] == opt and side[1] == side[2] == (2, 8, 5)
    assert result["ratio"] == pytest.approx(np.mean(result["side_by_side"]["fccd_optimum"])
                                            / np.mean(result["side_by_side"]["grid_best"]), rel=1e-3)
    assert result["met"] is True and result["fccd"]["confirmation"]["throughput"]["agrees"]
    assert json.loads((sweeps / "cmp" / RESULT_FILE).read_text())["ratio"] == result["ratio"]


def test_a_second_run_resumes_and_runs_nothing_again(sweeps):
    bench = Surface()
    first = bench_doe(FACTORS, seconds=24, repeats=1, comparison_id="again", runner=bench)
    calls = len(bench.calls)
    second = bench_doe(FACTORS, seconds=24, repeats=1, comparison_id="again", runner=bench)
    assert len(bench.calls) == calls
    assert second["ratio"] == pytest.approx(first["ratio"]) and (sweeps / "again" / SIDE_BY_SIDE_FILE).exists()


def test_the_grid_best_must_meet_the_processing_time_target(sweeps):
    result = bench_doe(FACTORS, seconds=24, latency_target=5.0, repeats=1, comparison_id="target", runner=Surface())
    best = result["grid"]["best"]
    assert result["grid"]["best_processing_time"] <= 5.0 and best["decoding_rate"] < 9
    assert result["fccd"]["feasible"]


def test_no_side_by_side_runs_is_refused_before_anything_runs(sweeps):
    bench = Surface()
    with pytest.raises(ValueError, match="repeats must be at least 1"):
        bench_doe(FACTORS, repeats=0, comparison_id="none", runner=bench)
    assert bench.calls == [] and not (sweeps / "none").exists()
