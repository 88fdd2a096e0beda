"""A sweep (argus.doe spec, sweep, points, analysis, promotion) with a stand-in benchmark: the
folder, idempotent points, analysis of known surfaces, and promotion only of a confirmed optimum; the DAG's params and promoted settings."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest

from argus.doe.designs import DesignError, Factor
from argus.doe.analysis import analyse, fit_sweep_response
from argus.doe.points import run_design_point
from argus.doe.promotion import decide_promotion, promote
from argus.doe.spec import SweepError, SweepSpec
from argus.doe.sweep import CONFIRMATION_FILE, RUNS_FILE, Sweep, sweep_id_for

PARAMS = {"mode": "archive", "design_kind": "fccd", "seconds_per_run": 16, "latency_target_s": 4.0,
          "center_points": 3, "seed": 11, "model": "centernet-coco",
          "factors": {"executors": {"low": 1, "high": 2}, "batch_size": {"low": 1, "high": 15},
                      "decoding_rate": {"low": 1, "high": 9}},
          "fixed": {"executors": 1, "batch_size": 8, "decoding_rate": 1}}


def true_throughput(e, b, r):
    return 20 + 8 * e + 1.5 * r - 0.1 * r ** 2 + 0.4 * b - 0.02 * b ** 2 + 0.3 * e * r


def true_processing_time(e, b, r):
    return 0.3 + 0.5 * r - 0.15 * e * r + 0.01 * b


class FakeBench:
    """A benchmark whose responses are known surfaces plus a little noise; counts its calls."""

    def __init__(self, noise: float = 0.05, seed: int = 0, shift: float = 0.0):
        self.calls: list[dict] = []
        self.rng = np.random.default_rng(seed)
        self.noise, self.shift = noise, shift

    def __call__(self, settings, mode, seconds, cfg=None, **options):
        e, b, r = (float(settings[k]) for k in ("executors", "batch_size", "decoding_rate"))
        self.calls.append({"settings": dict(settings), "mode": mode, "seconds": seconds, **options})
        eps = self.rng.normal(0, self.noise, 2)
        return {"executors": int(e), "batch_size": int(b), "decoding_rate": int(r),
                "throughput": true_throughput(e, b, r) + eps[0] + self.shift,
                "processing_time": true_processing_time(e, b, r) + eps[1] * 0.1, "frames": 100, "mode": mode}


@pytest.fixture
def spec() -> SweepSpec:
    return SweepSpec.from_params(PARAMS)


def run_all(sweep: Sweep, bench) -> None:
    for p in sweep.points:
        run_design_point(sweep, p["index"], runner=bench)


def test_spec_from_params_round_trips(spec):
    assert [f.name for f in spec.factors] == ["executors", "batch_size", "decoding_rate"]
    assert all(f.integer for f in spec.factors)
    assert spec.constraint == "processing_time<=4"
    assert SweepSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    two = SweepSpec.from_params({**PARAMS, "factors": {"batch_size": {"low": 2, "high": 8},
                                                       "decoding_rate": {"low": 1, "high": 5}},
                                 "fixed": {"executors": 2}})
    assert two.fixed_settings() == {"executors": 2}


@pytest.mark.parametrize("change, message", [
    ({"factors": {"executors": {"low": 2, "high": 1}, "batch_size": {"low": 1, "high": 8}}}, "low < high"),
    ({"factors": {"gpus": {"low": 1, "high": 2}, "batch_size": {"low": 1, "high": 8}}}, "unknown factor"),
    ({"factors": {"executors": {"low": 1, "high": 5}, "batch_size": {"low": 1, "high": 8}}}, "cannot share 2 core"),
    ({"mode": "live"}, "mode must be"),
    ({"design_kind": "plackett"}, "design kind"),
])
def test_spec_rejects_what_cannot_run(change, message):
    with pytest.raises(DesignError, match=message):
        SweepSpec.from_params({**PARAMS, **change})


def test_create_writes_the_plan_and_is_idempotent(tmp_path, spec):
    sweep = Sweep.create(tmp_path / "s1", spec)
    points = sweep.points
    assert len(points) == 8 + 6 + 3 and [p["index"] for p in points] == list(range(17))
    assert {p["point"] for p in points} == {"factorial", "axial", "center"}
    assert all(set(p["settings"]) == {"executors", "batch_size", "decoding_rate"} for p in points)
    # a retried plan task finds the same sweep
    again = Sweep.create(tmp_path / "s1", SweepSpec.from_params({**PARAMS}))
    assert again.points == points and again.spec.seed == 11
    # a drawn seed is recorded, and a retry without a seed keeps it
    drawn = Sweep.create(tmp_path / "s2", SweepSpec.from_params({**PARAMS, "seed": None}))
    assert drawn.spec.seed is not None
    assert Sweep.create(tmp_path / "s2", SweepSpec.from_params({**PARAMS, "seed": None})).points == drawn.points
    with pytest.raises(SweepError, match="another sweep"):
        Sweep.create(tmp_path / "s1", SweepSpec.from_params({**PARAMS, "design_kind": "lhs"}))


def test_factors_not_varied_are_held_at_fixed(tmp_path):
    params = {**PARAMS, "design_kind": "lhs", "runs": 8,
              "factors": {"batch_size": {"low": 2, "high": 8}, "decoding_rate": {"low": 1, "high": 5}},
              "fixed": {"executors": 2, "batch_size": 99}}
    sweep = Sweep.create(tmp_path / "s", SweepSpec.from_params(params))
    assert len(sweep.points) == 8
    assert {p["settings"]["executors"] for p in sweep.points} == {2}
    assert all(2 <= p["settings"]["batch_size"] <= 8 for p in sweep.points)


def test_append_run_is_idempotent_per_point(tmp_path, spec):
    sweep = Sweep.create(tmp_path / "s", spec)
    assert sweep.append_run(3, {"throughput": 1.0, "processing_time": 2.0})
    assert not sweep.append_run(3, {"throughput": 9.0, "processing_time": 9.0})
    runs = sweep.runs()
    assert len(runs) == 1 and runs.loc[0, "throughput"] == 1.0
    assert sweep.recorded(3)["processing_time"] == 2.0 and sweep.recorded(4) is None
    assert 3 not in sweep.pending() and len(sweep.pending()) == len(sweep.points) - 1


def test_a_retried_point_runs_its_benchmark_once(tmp_path, spec):
    sweep = Sweep.create(tmp_path / "s", spec)
    bench = FakeBench()
    row, ran = run_design_point(sweep, 5, runner=bench)
    again, ran_again = run_design_point(sweep, 5, runner=bench)
    assert ran and not ran_again and len(bench.calls) == 1
    assert again["throughput"] == pytest.approx(row["throughput"])
    assert len(sweep.runs()) == 1
    call = bench.calls[0]
    assert call["settings"] == sweep.point(5)["settings"]
    assert call["mode"] == "archive" and call["seconds"] == 16 and call["cores"] == 2
    assert call["log_path"] == sweep.path / "point-05.log"
    assert row["point"] == sweep.point(5)["point"] and row["run"] == sweep.point(5)["run"]


def test_analysis_finds_the_constrained_optimum_of_known_surfaces(tmp_path, spec):
    sweep = Sweep.create(tmp_path / "s", spec)
    with pytest.raises(SweepError, match="no runs"):
        analyse(sweep.path)
    run_design_point(sweep, 0, runner=FakeBench())
    with pytest.raises(SweepError, match=r"point\(s\) \[1, 2, .*\] not run"):
        analyse(sweep.path)
    run_all(sweep, FakeBench())
    summary = analyse(sweep.path)

    # executors 1..2 is run at two levels only: no executors^2 term, the rest is quadratic
    assert summary["fits"]["throughput"]["r2"] > 0.99 and summary["fits"]["processing_time"]["r2"] > 0.99
    analysis = sweep.analysis()
    assert analysis["fits"]["throughput"]["model"] == "quadratic without executors^2"
    assert analysis["latency_target"] == 4.0 and analysis["confirmation"] is None

    grid = [dict(zip(("executors", "batch_size", "decoding_rate"), p, strict=True))
            for p in itertools.product(range(1, 3), range(1, 16), range(1, 10))]
    feasible = [g for g in grid if true_processing_time(**{k[0]: v for k, v in zip("ebr", g.values())}) <= 4.0]
    best = max(feasible, key=lambda g: true_throughput(*g.values()))
    assert summary["optimum"]["feasible"]
    assert summary["optimum"]["settings"] == best
    assert summary["optimum"]["predictions"]["processing_time"]["mean"] <= 4.0
    report = (sweep.path / "report.md").read_text()
    assert "## Optimum" in report and "processing_time<=4" in report
    assert len(list(sweep.path.glob("contour_*.png"))) == 6


def test_fit_without_squares_of_two_level_factors():
    rng = np.random.default_rng(1)
    runs = pd.DataFrame([{"a": a, "b": b} for a in (1, 2) for b in (1, 5, 9) for _ in range(2)])
    runs["y"] = 3 * runs.a + (runs.b - 5) ** 2 + rng.normal(0, 0.01, len(runs))
    factors = (Factor("a", 1, 2, integer=True), Factor("b", 1, 9, integer=True))
    model = fit_sweep_response(runs, factors, "y")
    assert model.labels == ("Intercept", "a", "b", "a:b", "b^2")
    assert model.predict({"a": 2, "b": 5}) == pytest.approx(6, abs=0.05)


def confirm_with(sweep: Sweep, bench) -> dict:
    for i in range(sweep.spec.confirm_runs):
        run_design_point(sweep, i, runner=bench, confirmation=True)
    return analyse(sweep.path)


def test_promotes_only_a_confirmed_optimum(tmp_path, spec):
    sweep = Sweep.create(tmp_path / "s", spec)
    run_all(sweep, FakeBench())
    analyse(sweep.path)
    before = promote(sweep.path)
    assert not before.promote and any("no confirmation run" in r for r in before.reasons)

    bench = FakeBench(noise=0.0)  # the true surface: inside the prediction interval
    summary = confirm_with(sweep, bench)
    optimum = sweep.analysis()["optimum"]["settings"]
    assert bench.calls[0]["settings"] == optimum and bench.calls[0]["log_path"] == sweep.path / "confirm-00.log"
    assert all(c["agrees"] for c in summary["confirmation"].values())
    decision = promote(sweep.path)
    assert decision.promote and decision.reasons == ()
    value = decision.value
    assert {k: value[k] for k in optimum} == optimum
    assert value["sweep_id"] == sweep.id and value["report"] == str(sweep.report_path)
    assert set(value["predicted"]) == set(value["confirmed"]) == {"throughput", "processing_time"}
    assert json.loads((sweep.path / "promotion.json").read_text())["promote"] is True
    assert "## Confirmation" in sweep.report_path.read_text()
    assert len(sweep.confirmations()) == 1 and (sweep.path / CONFIRMATION_FILE).exists()


def test_a_disagreeing_confirmation_is_not_promoted(tmp_path, spec):
    sweep = Sweep.create(tmp_path / "s", spec)
    run_all(sweep, FakeBench())
    analyse(sweep.path)
    confirm_with(sweep, FakeBench(shift=-10.0))  # the system got slower since the sweep
    decision = promote(sweep.path)
    assert not decision.promote
    assert any(r.startswith("confirmation disagrees on throughput") for r in decision.reasons)


def test_no_promotion_when_nothing_meets_the_target(tmp_path):
    sweep = Sweep.create(tmp_path / "s", SweepSpec.from_params({**PARAMS, "latency_target_s": 0.05}))
    run_all(sweep, FakeBench())
    summary = analyse(sweep.path)
    assert not summary["optimum"]["feasible"]
    confirm_with(sweep, FakeBench(seed=3))
    decision = promote(sweep.path)
    assert not decision.promote
    assert any("no setting is predicted to meet processing_time <= 0.05" in r for r in decision.reasons)


def test_decide_promotion_checks_the_observed_target():
    analysis = {"latency_target": 1.0, "sweep_id": "x", "fixed": {"decoding_rate": 3},
                "optimum": {"feasible": True, "settings": {"executors": 2, "batch_size": 4},
                            "predictions": {"throughput": {"mean": 30.0, "prediction": [28.0, 32.0]},
                                            "processing_time": {"mean": 0.9, "prediction": [0.7, 1.1]}}},
                "confirmation": {"throughput": {"agrees": True, "observed": 31.0, "predicted": 30.0,
                                                "interval": [28.0, 32.0]},
                                 "processing_time": {"agrees": True, "observed": 1.05, "predicted": 0.9,
                                                     "interval": [0.7, 1.1]}}}
    decision = decide_promotion(analysis, now="2026-11-27T02:30:00+00:00")
    assert not decision.promote and decision.reasons == (
        "the confirmation run's processing_time 1.05 s exceeds the target 1 s",)
    assert decision.value["executors"] == 2 and decision.value["decoding_rate"] == 3
    assert decide_promotion(analysis, latency_target=1.1).promote


def test_sweep_id_is_folder_safe_and_stable():
    run_id = "manual__2026-11-27T02:00:00.123456+00:00"
    assert sweep_id_for(run_id) == sweep_id_for(run_id) == "manual__2026-11-27T02-00-00.123456-00-00"
    assert "/" not in sweep_id_for("../../etc/passwd") and not sweep_id_for("../x").startswith(".")


def test_runs_table_keeps_one_row_per_point_under_concurrent_appends(tmp_path, spec):
    from concurrent.futures import ThreadPoolExecutor

    sweep = Sweep.create(tmp_path / "s", spec)
    with ThreadPoolExecutor(8) as pool:
        added = list(pool.map(lambda i: sweep.append_run(i % 4, {"throughput": float(i)}), range(16)))
    assert sum(added) == 4
    assert sorted(pd.read_csv(sweep.path / RUNS_FILE)["index"]) == [0, 1, 2, 3]


# ---- the Airflow side: params and promoted settings -----------------------------------

@pytest.fixture
def doe_plugin(airflow_home):
    from argus_airflow import doe

    return doe


def test_dag_params_defaults_make_a_valid_spec(doe_plugin):
    params = {k: p.value for k, p in doe_plugin.doe_params().items()}
    spec = SweepSpec.from_params(params)
    assert spec.kind == "fccd" and spec.mode == "archive" and len(spec.factors) == 3


@pytest.mark.parametrize("name, value", [
    ("design_kind", "ff2"),
    ("mode", "live"),
    ("seconds_per_run", 1),
    ("latency_target_s", 0),
    ("factors", {"executors": {"low": 0, "high": 2}, "batch_size": {"low": 1, "high": 15}}),
    ("factors", {"executors": {"low": 1, "high": 2}}),
    ("factors", {"executors": {"low": 1, "high": 2}, "gpus": {"low": 1, "high": 2}}),
    ("center_points", -1),
])
def test_dag_params_reject_bad_values(doe_plugin, name, value):
    from airflow.sdk.exceptions import ParamValidationError

    param = doe_plugin.doe_params()[name]
    with pytest.raises(ParamValidationError):
        param.resolve(value)


def test_stream_overrides_fill_only_what_the_trigger_left_unset(doe_plugin):
    promoted = {"executors": 2, "batch_size": 4, "decoding_rate": 3, "sweep_id": "s"}
    assert doe_plugin.stream_overrides({}, promoted) == {"executors": 2, "batch_size": 4}
    assert doe_plugin.stream_overrides({"batch_size": 16}, promoted) == {"executors": 2}
    assert doe_plugin.stream_overrides({}, promoted, tasks_per_gpu=2) == {"tasks_per_gpu": 2, "batch_size": 4}
    assert doe_plugin.stream_overrides({"executors": 1}, None) == {}


# ---- the report pages of the api-server plugin --------------------------------------------

def test_report_pages_serve_a_sweep_and_nothing_else(airflow_home, tmp_path, spec):
    from fastapi.testclient import TestClient

    from argus_airflow.doe_reports import create_app

    sweep = Sweep.create(tmp_path / "night-1", spec)
    (tmp_path / "secret.txt").write_text("no")
    client = TestClient(create_app(tmp_path, authorize=False))
    assert client.get("/sweeps/night-1/report").status_code == 404  # not analysed yet
    run_all(sweep, FakeBench())
    analyse(sweep.path)

    index = client.get("/sweeps/")
    assert index.status_code == 200 and "night-1/report" in index.text and "analysed" in index.text
    page = client.get("/sweeps/night-1/report")
    assert page.status_code == 200 and "<h2>Optimum</h2>" in page.text and "<table>" in page.text
    png = page.text.split("<img src=\"")[1].split('"')[0]
    assert client.get(f"/sweeps/night-1/{png}").headers["content-type"] == "image/png"
    assert client.get("/sweeps/night-1/runs.csv").text.startswith("index,")
    for path in ("/sweeps/night-1/../secret.txt", "/sweeps/night-1/%2e%2e%2fsecret.txt", "/sweeps/../secret.txt",
                 "/sweeps/night-1/.lock", "/sweeps/nope/report", "/sweeps/night-1/design.py"):
        assert client.get(path).status_code == 404, path


def test_report_pages_need_an_airflow_login(airflow_home, tmp_path):
    from fastapi.testclient import TestClient

    from argus_airflow.doe_reports import create_app

    assert TestClient(create_app(tmp_path)).get("/sweeps/").status_code == 401


def test_report_link_points_at_the_sweeps_page(airflow_home):
    from argus_airflow.operators.doe import DoeAnalyseOperator, DoeReportLink

    class Key:  # the link reads the run id only
        run_id = "scheduled__2026-11-27T02:00:00+00:00"

    link = DoeReportLink().get_link(DoeAnalyseOperator(task_id="analyse"), ti_key=Key())
    assert link.endswith("/argus-doe/sweeps/scheduled__2026-11-27T02-00-00-00-00/report")


def test_dag_runs_points_one_at_a_time_and_never_a_missed_night(airflow_home):
    from datetime import timedelta
    from pathlib import Path

    from airflow.dag_processing.dagbag import DagBag

    path = Path(__file__).resolve().parents[2] / "dags" / "argus_doe_nightly.py"
    bag = DagBag(dag_folder=str(path))
    assert bag.import_errors == {}
    dag = bag.dags["argus_doe_nightly"]
    assert [t.task_id for t in dag.topological_sort()] == ["plan", "run_point", "analyse", "confirm", "promote"]
    assert dag.task_dict["run_point"].max_active_tis_per_dag == 1 and dag.max_active_runs == 1
    assert dag.is_paused_upon_creation and not dag.catchup and dag.start_date is None
    assert dag.timetable.run_immediately == timedelta(0)
    assert {link.name for link in dag.task_dict["analyse"].operator_extra_links} == {"DOE report"}


def test_promoted_stream_settings_reads_the_variable(doe_plugin, monkeypatch):
    from airflow.sdk import Variable

    stored = {}
    monkeypatch.setattr(Variable, "get", classmethod(
        lambda cls, key, default=None, deserialize_json=False: stored.get(key, default)))
    monkeypatch.setattr(Variable, "set", classmethod(
        lambda cls, key, value, description=None, serialize_json=False: stored.__setitem__(key, value)))
    assert doe_plugin.promoted_stream_settings() is None
    doe_plugin.store_promoted({"executors": 2, "batch_size": 4, "sweep_id": "s"})
    assert doe_plugin.promoted_stream_settings() == {"executors": 2, "batch_size": 4, "sweep_id": "s"}
    assert set(stored) == {doe_plugin.STREAM_SETTINGS_VARIABLE}
