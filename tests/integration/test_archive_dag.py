"""argus_archive_reprocess through the real Airflow: a manual run with params reprocesses an
archive on HDFS into HBase; a run without dates takes the day before its logical date (what a
scheduled run gets) and sends its unreadable recordings to on-call; invalid params are
refused before any run exists."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from alert_receivers import http_receiver

from argus.archive.layout import put
from argus.archive.hdfs import webhdfs_client
from argus.archive.reprocess import expected_frames
from argus.live.simulate import CLIP_FPS, CLIP_SECONDS, ensure_clips
from argus.store import DetectionStore
from airflow_checks import assert_trigger_refused

DAG = "argus_archive_reprocess"
WEBHOOK = "argus_alert_webhook"
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


@pytest.fixture
def on_call(client):
    """The webhook alert channel pointed at a local receiver (the previous connection is restored)."""
    with http_receiver() as rx:
        before = client.request("GET", f"/connections/{WEBHOOK}")
        body = {"connection_id": WEBHOOK, "conn_type": "http", "host": f"{rx.url}/oncall", "description": "test"}
        resp = (client.request("PATCH", f"/connections/{WEBHOOK}", json=body) if before.status_code == 200
                else client.request("POST", "/connections", json=body))
        assert resp.status_code < 300, resp.text
        try:
            yield rx
        finally:
            if before.status_code == 200:
                keep = ("connection_id", "conn_type", "host", "port", "schema", "login", "extra", "description")
                client.request("PATCH", f"/connections/{WEBHOOK}",
                               json={k: v for k, v in before.json().items() if k in keep})
            else:
                client.request("DELETE", f"/connections/{WEBHOOK}")


def test_run_without_dates_takes_the_previous_day_and_warns_on_call(client, cfg, on_call):
    """A run with a logical date and no since/until, as the 01:30 schedule makes them, renders
    the DAG's own day choice (DAY_BEFORE): it reprocesses the previous UTC day only, and the
    unreadable recording found there reaches on-call as one warning while the run succeeds.

    The REST API cannot create a run of type ``scheduled``; a triggered run with a logical date
    goes through the same template (``logical_date or dag_run.run_after``), which is all the
    DAG's day choice is."""
    token = uuid.uuid4().int
    # a past day (the scheduler runs nothing before its run_after = logical date), at a
    # logical time no scheduled run has (theirs are 01:30:00)
    day = dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=2 + token % 300)
    logical = f"{day}T01:30:{1 + token % 58:02d}.{token % 1000:03d}Z"
    before = day - dt.timedelta(days=1)
    at = lambda d, h: int(dt.datetime(d.year, d.month, d.day, h, tzinfo=dt.timezone.utc).timestamp() * 1000)  # noqa: E731
    root = f"/argus/tests/{token % 16**8:08x}/archive"
    hdfs = webhdfs_client(cfg)
    clip = ensure_clips(cfg.cache_dir / "simulator", 1)[0]
    put([clip], "sim-000", hdfs, start_ms=at(before, 12), root=root)  # the previous day: processed
    put([clip], "sim-000", hdfs, start_ms=at(day, 0), root=root)  # the run's own day: not
    broken = cfg.state_dir / f"broken-{token % 16**8:08x}.mp4"
    broken.write_bytes(clip.read_bytes()[:20_000])
    try:
        put([broken], "sim-000", hdfs, start_ms=at(before, 13), root=root)
    finally:
        broken.unlink()
    corrupt = f"{root}/camera=sim-000/date={before}/{at(before, 13)}.mp4"

    run_id = f"scheduled_like__{logical}"
    resp = client.request("POST", f"/dags/{DAG}/dagRuns", json={
        "dag_run_id": run_id, "logical_date": logical,
        "conf": {"cameras": ["sim-000"], "rate_hz": 1, "window_s": 8, "executors": 2,
                 "archive_root": f"{cfg.hdfs_uri}{root}"}})
    assert resp.status_code < 300, resp.text
    done = client.wait_for_run(DAG, run_id, timeout=600)
    assert done["state"] == "success", client.task_instances(DAG, run_id)
    [ti] = client.task_instances(DAG, run_id)
    assert (ti["rendered_fields"]["since"], ti["rendered_fields"]["until"]) == (str(before), str(before))
    summary = client.xcom(DAG, run_id, "reprocess")
    assert summary["recordings"] == 2 and summary["frames"] == expected_frames(CLIP_SECONDS, CLIP_FPS, 1)
    assert [f["path"] for f in summary["failures"]] == [corrupt]
    stored = DetectionStore.from_config(cfg).search(camera="sim-000", since=at(before, 12),
                                                    until=at(before, 12) + CLIP_SECONDS * 1000, limit=1000)
    assert len(stored) == summary["detections"] > 0

    [alert] = [r["json"] for r in on_call.on("/oncall") if r["json"].get("run_id") == run_id]
    assert alert["severity"] == "warning" and (alert["dag_id"], alert["task_id"]) == (DAG, "reprocess")
    assert alert["summary"] == "1 archive recording(s) could not be reprocessed"
    assert [f["path"] for f in alert["details"]["failures"]] == [corrupt]


@pytest.mark.parametrize("conf, param", [
    ({"cameras": ["no-such-camera"]}, "cameras"),
    ({"rate_hz": 0}, "rate_hz"),
    ({"executors": "two"}, "executors"),
    ({"since": "2026-13-01"}, "since"),
    ({"model": "no-such-model"}, "model"),
])
def test_invalid_params_are_refused_before_any_run(client, conf, param):
    assert_trigger_refused(client, DAG, conf, param)
