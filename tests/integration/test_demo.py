"""`argus demo` (what `make demo` runs) on the real stack: the live pipeline under Airflow
ends with a summary and leaves the Airflow UI reachable."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import httpx

from argus.airflow_client import AirflowClient
from argus.stack.airflow import airflow_login
from argus.store import DetectionStore
from argus.supervision.control import stop_stream
from argus.supervision.status import StreamStatusStore

DAG = "argus_stream_detection"
CAMERAS = ("sim-000", "sim-001", "sim-002")
#: argus.cli.demo._print_summary's first line
SUMMARY = re.compile(r"Live pipeline \(steady state, (?P<window>[\d.]+) s\): (?P<frames>\d+) frames from 3 cameras "
                     r"stored, (?P<fps>[\d.]+) frames/s; capture -> HBase latency p50 (?P<p50>\d+) ms, p99 (?P<p99>\d+) ms")


def test_demo_runs_the_pipeline_and_prints_a_summary(stack, cfg):
    started_ms = int(time.time() * 1000)
    out = subprocess.run([sys.executable, "-m", "argus.cli", "demo", "--seconds", "10"], capture_output=True,
                         text=True, timeout=900, cwd=cfg.root)
    ran_ms = int(time.time() * 1000) - started_ms
    user, password = airflow_login(cfg)
    client = AirflowClient(cfg.airflow_url, user, password)
    try:
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        text = " ".join(out.stdout.split())
        summary = SUMMARY.search(text)
        assert summary, text[-3000:]
        frames, fps = int(summary["frames"]), float(summary["fps"])
        p50, p99 = int(summary["p50"]), int(summary["p99"])
        assert frames > 0 and fps > 0, summary[0]
        # latencies were measured (an empty window prints 0) and are capture -> HBase times of
        # frames captured during this run: above 0, p50 <= p99, neither longer than the run
        assert 0 < p50 <= p99 <= ran_ms, (summary[0], ran_ms)
        assert "Detections per class" in text and "Newest detections" in text
        # the detections it counted are in HBase: read back on their own, since the run began
        store = DetectionStore.from_config(cfg)
        stored = {cam: store.search(camera=cam, since=started_ms, limit=100_000) for cam in CAMERAS}
        frames_stored = sum(len(store.frames(cam, since=started_ms)) for cam in CAMERAS)
        assert sum(map(len, stored.values())) > 0, "the demo stored no detection"
        assert frames_stored >= frames, (frames_stored, summary[0])
        newest_table = text.split("Newest detections", 1)[1]
        assert any(cam in newest_table for cam, ds in stored.items() if ds), newest_table[:1000]
        assert f"{cfg.airflow_url}/dags/{DAG}/runs/" in text
        # the UI is still up and serves its login page
        assert httpx.get(cfg.airflow_url, follow_redirects=True, timeout=30).status_code == 200
        # ingest recorded the registry: the cameras table lists them with their coordinates
        listed = subprocess.run([sys.executable, "-m", "argus.cli", "cameras", "list", "--json"], capture_output=True,
                                text=True, timeout=120, cwd=cfg.root)
        cameras = json.loads(listed.stdout)
        assert {"sim-000", "sim-001", "sim-002"} <= set(cameras), listed.stderr
        assert cameras["sim-000"]["latitude"] == "48.85" and cameras["sim-000"]["longitude"] == "2.35"
        runs = client._json("GET", f"/dags/{DAG}/dagRuns", params={"state": ["running"]})["dag_runs"]
        assert runs, "the demo's streaming run is not running any more"
    finally:  # the demo leaves the job up until `stack down`; the suite goes on without it
        for run in client._json("GET", f"/dags/{DAG}/dagRuns", params={"state": ["queued", "running"]})["dag_runs"]:
            client.request("PATCH", f"/dags/{DAG}/dagRuns/{run['dag_run_id']}", json={"state": "failed"})
        stop_stream(StreamStatusStore.from_config(cfg), "argus_stream_detect", "test cleanup", grace_s=10)
        client.close()
