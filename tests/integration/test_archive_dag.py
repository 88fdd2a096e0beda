"""argus_archive_reprocess through the real Airflow: a manual run with params reprocesses an
archive on HDFS into HBase; invalid params are refused before any run exists."""

from __future__ import annotations

import uuid

import pytest

from argus.archive.layout import put
from argus.archive.hdfs import webhdfs_client
from argus.archive.reprocess import expected_frames
from argus.live.simulate import CLIP_FPS, CLIP_SECONDS, ensure_clips
from argus.store import DetectionStore
from airflow_checks import assert_trigger_refused

DAG = "argus_archive_reprocess"
START = 1_790_000_000_000  # 2026-09-21


@pytest.fixture(scope="module")
def client(airflow):
    airflow.wait_for_dag(DAG, timeout=240)
    return airflow


def test_manual_run_reprocesses_the_archive(client, cfg):
    root = f"/argus/tests/{uuid.uuid4().hex[:8]}/archive"
    clip = ensure_clips(cfg.cache_dir / "simulator", 1)[0]
    start = START + 1000 * (uuid.uuid4().int % 10_000)  # rows of this test only
    put([clip], "sim-000", webhdfs_client(cfg), start_ms=start, root=root)

    run = client.trigger(DAG, {"since": "2026-09-21", "until": "2026-09-21", "cameras": ["sim-000"],
                               "rate_hz": 1, "window_s": 4, "executors": 2, "archive_root": f"{cfg.hdfs_uri}{root}"})
    done = client.wait_for_run(DAG, run["dag_run_id"], timeout=600)
    assert done["state"] == "success", client.task_instances(DAG, run["dag_run_id"])
    summary = client.xcom(DAG, run["dag_run_id"], "reprocess")
    frames = expected_frames(CLIP_SECONDS, CLIP_FPS, 1)
    assert summary["recordings"] == 1 and summary["frames"] == frames and summary["failures"] == []
    stored = DetectionStore.from_config(cfg).search(camera="sim-000", since=start, until=start + CLIP_SECONDS * 1000,
                                                    limit=1000)
    assert len(stored) == summary["detections"] > 0
    assert {d.source for d in stored} == {"archive"}


@pytest.mark.parametrize("conf, param", [
    ({"cameras": ["no-such-camera"]}, "cameras"),
    ({"rate_hz": 0}, "rate_hz"),
    ({"executors": "two"}, "executors"),
    ({"since": "2026-13-01"}, "since"),
    ({"model": "no-such-model"}, "model"),
])
def test_invalid_params_are_refused_before_any_run(client, conf, param):
    assert_trigger_refused(client, DAG, conf, param)
