"""argus_doe_nightly through the real Airflow on the real stack: a short FCCD sweep (9 archive
reprocessing runs over 8 s of video, one at a time, about a minute each) is planned, run,
analysed and confirmed, and its optimum is promoted to the Variable argus_stream_settings only
if the confirmation agrees with the prediction. Invalid params are refused before any run
exists."""

from __future__ import annotations

import json
import time
from datetime import datetime

import pytest

from argus.doe.sweep import Sweep, sweep_id_for, sweeps_dir
from argus.archive.reprocess import expected_frames
from argus.live.simulate import CLIP_FPS, CLIP_SECONDS
from airflow_checks import assert_trigger_refused

DAG = "argus_doe_nightly"
VARIABLE = "argus_stream_settings"
# the talk's two strongest factors, batch size held: a face-centred CCD with one centre run,
# 4 factorial + 4 axial + 1 = 9 runs (three factors would be 15 runs, over 15 minutes here)
SWEEP = {"mode": "archive", "design_kind": "fccd", "center_points": 1, "seed": 7, "seconds_per_run": 8,
         "latency_target_s": 3.0, "window_s": 4, "model": "centernet-coco", "confirm_runs": 1,
         "factors": {"executors": {"low": 1, "high": 2}, "decoding_rate": {"low": 1, "high": 5}},
         "fixed": {"batch_size": 4}}
RUNS = 9
pytestmark = pytest.mark.timeout(2400)


@pytest.fixture(scope="module")
def client(airflow):
    airflow.wait_for_dag(DAG, timeout=240)
    return airflow


def variable(client) -> dict | None:
    resp = client.request("GET", f"/variables/{VARIABLE}")
    if resp.status_code == 404:
        return None
    resp.raise_for_status()
    return resp.json()


def restore_variable(client, before: dict | None) -> None:
    if before is None:
        client.request("DELETE", f"/variables/{VARIABLE}")
    else:
        client.request("PATCH", f"/variables/{VARIABLE}", json={k: before[k] for k in ("key", "value", "description")})


@pytest.fixture(scope="module")
def sweep_run(client, cfg):
    """One sweep, triggered by hand. The DAG is created paused (nightly sweeps take the
    cluster), and a paused DAG's manual runs stay queued: it is unpaused for the run (its
    timetable never starts a missed night on unpausing) and left as it was."""
    paused = client.get_dag(DAG)["is_paused"]
    before = variable(client)
    client.unpause(DAG)
    t0 = time.monotonic()
    run = None
    try:
        run = client.trigger(DAG, SWEEP)
        done = client.wait_for_run(DAG, run["dag_run_id"], timeout=1800)
        print(f"[doe] sweep {run['dag_run_id']} {done['state']} after {time.monotonic() - t0:.0f}s", flush=True)
        after = variable(client)
        yield done, before, after
    finally:
        path = f"/dags/{DAG}/dagRuns/{run['dag_run_id']}" if run else None
        if path and client._json("GET", path)["state"] not in ("success", "failed"):
            # interrupted: stop the sweep rather than leave it to resume when the DAG is unpaused
            client._json("PATCH", path, json={"state": "failed"})
        if paused:
            client._json("PATCH", f"/dags/{DAG}", json={"is_paused": True})
        restore_variable(client, before)


def ended(ti: dict) -> datetime:
    return datetime.fromisoformat(ti["end_date"])


def test_the_sweep_runs_every_point_once_and_one_at_a_time(client, sweep_run):
    done, _, _ = sweep_run
    tis = client.task_instances(DAG, done["dag_run_id"])
    assert done["state"] == "success", [(t["task_id"], t.get("map_index"), t["state"]) for t in tis]
    points = sorted((t for t in tis if t["task_id"] == "run_point"), key=lambda t: t["start_date"])
    assert len(points) == RUNS and all(t["state"] == "success" for t in points)
    for a, b in zip(points, points[1:]):
        assert ended(a) <= datetime.fromisoformat(b["start_date"]), "two points overlapped"

    sweep = Sweep(sweeps_dir() / sweep_id_for(done["dag_run_id"]))
    table = sweep.runs()
    assert sorted(table["index"]) == list(range(RUNS)) and table["mode"].eq("archive").all()
    assert set(table["batch_size"]) == {4}
    assert (table["throughput"] > 0).all() and (table["processing_time"] > 0).all()
    # 8 s of video (one simulator clip) at each point's rate
    assert table["frames"].tolist() == [expected_frames(CLIP_SECONDS, CLIP_FPS, r) for r in table["decoding_rate"]]
    assert set(table["executors"]) == {1, 2} and set(table["cores_per_executor"]) == {1, 2}
    assert sorted(client.xcom(DAG, done["dag_run_id"], "plan")) == list(range(RUNS))


def test_the_report_is_stored_per_sweep_and_linked(client, sweep_run):
    done, _, _ = sweep_run
    sweep = Sweep(sweeps_dir() / sweep_id_for(done["dag_run_id"]))
    summary = client.xcom(DAG, done["dag_run_id"], "analyse")
    assert summary["report"] == str(sweep.report_path) and sweep.report_path.exists()
    assert {"throughput", "processing_time"} == set(summary["fits"])
    assert len(list(sweep.path.glob("contour_*.png"))) == 2  # each response over executors x rate
    report = sweep.report_path.read_text()
    assert "## Optimum" in report and "## Confirmation" in report
    links = client._json("GET", f"/dags/{DAG}/dagRuns/{done['dag_run_id']}/taskInstances/analyse/links")
    assert links["extra_links"]["DOE report"].endswith(f"/argus-doe/sweeps/{sweep.id}/report")


def test_promotes_only_a_confirmed_optimum(client, sweep_run):
    done, before, after = sweep_run
    sweep = Sweep(sweeps_dir() / sweep_id_for(done["dag_run_id"]))
    decision = client.xcom(DAG, done["dag_run_id"], "promote")
    confirmation = sweep.analysis()["confirmation"]
    assert set(confirmation) == {"throughput", "processing_time"}
    confirmed = all(c["agrees"] for c in confirmation.values())
    feasible = sweep.analysis()["optimum"]["feasible"]
    met = confirmation["processing_time"]["observed"] <= SWEEP["latency_target_s"]
    print(f"[doe] optimum {sweep.analysis()['optimum']['settings']}, confirmation "
          f"{ {k: (round(c['observed'], 3), [round(x, 3) for x in c['interval']]) for k, c in confirmation.items()} }, "
          f"promoted: {decision['promote']} {decision['reasons']}", flush=True)
    assert decision["promote"] == (confirmed and feasible and met)
    if decision["promote"]:
        value = json.loads(after["value"])
        assert value["sweep_id"] == sweep.id
        assert {k: value[k] for k in ("executors", "batch_size", "decoding_rate")} == \
            {**sweep.analysis()["optimum"]["settings"], "batch_size": 4}
        confirm_ti = next(t for t in client.task_instances(DAG, done["dag_run_id"]) if t["task_id"] == "confirm")
        assert datetime.fromisoformat(value["promoted_at"]) >= ended(confirm_ti).replace(microsecond=0)
    else:
        assert decision["reasons"] and after == before


@pytest.mark.parametrize("conf, param", [
    ({"design_kind": "plackett-burman"}, "design_kind"),
    ({"mode": "live"}, "mode"),
    ({"factors": {"executors": {"low": 0, "high": 2}, "batch_size": {"low": 1, "high": 8}}}, "factors"),
    ({"factors": {"batch_size": {"low": 1, "high": 8}}}, "factors"),
    ({"seconds_per_run": 0.5}, "seconds_per_run"),
    ({"latency_target_s": 0}, "latency_target_s"),
    ({"center_points": -1}, "center_points"),
    ({"seed": "seven"}, "seed"),
])
def test_invalid_params_are_refused_before_any_run(client, conf, param):
    assert_trigger_refused(client, DAG, conf, param)
