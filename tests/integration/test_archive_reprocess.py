"""Archive reprocessing on the real HDFS, HBase and Spark: 2 cameras x 2 days plus a corrupt
recording; expected frames at the decoding rate, idempotent reruns, resume after a kill."""

from __future__ import annotations

import math
import os
import signal
import time

import pytest

from argus.archive.layout import put
from argus.archive.hdfs import webhdfs_client
from argus.archive.reprocess import expected_frames, segment_window_s
from argus.archive.launcher import ReprocessJobSpec, parse_line
from argus.live.simulate import CLIP_FPS, CLIP_SECONDS, ensure_clips
from argus.store import DetectionStore
from argus.store.schema import camera_prefix

DAY1 = 1_790_000_000_000  # 2026-09-21T14:13:20Z
DAY2 = DAY1 + 86_400_000  # 2026-09-22
RATE = 2.0
WINDOW = 4.0
BATCH = 4  # 8 frames a window: whole batches, two segments per 8-s recording


@pytest.fixture(scope="module")
def archive(stack, cfg, tmp_path_factory):
    """A fresh archive: cameras arc-a and arc-b, one recording a day each, and a corrupt
    recording (a truncated MP4) for arc-b on day 1."""
    import uuid

    tag = uuid.uuid4().hex[:8]
    cams = (f"arc-a-{tag}", f"arc-b-{tag}")
    root = f"/argus/tests/{tag}/archive"
    client = webhdfs_client(cfg)
    clips = ensure_clips(cfg.cache_dir / "simulator", 2)
    for cam, clip in zip(cams, clips):
        for start in (DAY1, DAY2):
            put([clip], cam, client, start_ms=start, root=root)
    corrupt = tmp_path_factory.mktemp("corrupt") / "broken.mp4"
    corrupt.write_bytes(clips[0].read_bytes()[:20_000])
    put([corrupt], cams[1], client, start_ms=DAY1 + 60_000, root=root)
    return {"root": f"{cfg.hdfs_uri}{root}", "cameras": cams, "corrupt": f"{root}/camera={cams[1]}/date=2026-09-21/"
            f"{DAY1 + 60_000}.mp4"}


def spec(archive, **kw) -> ReprocessJobSpec:
    return ReprocessJobSpec(archive_root=archive["root"], since="2026-09-21", until="2026-09-22", rate_hz=RATE,
                            window_s=WINDOW, batch_size=BATCH, cameras=archive["cameras"], executors=2,
                            cores_per_executor=1, **kw)


def rows(cfg, camera: str, table: str) -> list[bytes]:
    store = DetectionStore.from_config(cfg)
    prefix = camera_prefix(camera)
    with store.table(table) as t:
        return [key for key, _ in t.scan(row_prefix=prefix)]


def test_reprocess_resume_and_rerun(stack, cfg, archive):
    per_recording = expected_frames(CLIP_SECONDS, CLIP_FPS, RATE)
    segments_per_recording = math.ceil(CLIP_SECONDS / segment_window_s(WINDOW, RATE, BATCH))
    assert segments_per_recording == 2

    # 1. a run interrupted (kill -9 of the driver) once some segments are finished
    proc = spec(archive, progress_s=0.2).start(cfg, log_path=cfg.state_dir / "logs" / "test_reprocess.log")
    deadline = time.monotonic() + 300
    done_before_kill = 0
    try:
        for line in proc.stdout:
            parsed = parse_line(line.strip())
            if parsed and parsed[0] == "ARGUS_PROGRESS" and parsed[1]["segments_done"] >= 2:
                done_before_kill = parsed[1]["segments_done"]
                break
            assert time.monotonic() < deadline, "the job made no progress"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(60)
    assert done_before_kill >= 2, "the job ended before it could be interrupted"

    # 2. the next run skips what was finished and completes the rest; the corrupt file is reported
    second = spec(archive).run(cfg, timeout=600)
    assert second.returncode == 0, second.output[-3000:]
    s = second.result
    total_segments = 4 * segments_per_recording
    assert s["recordings"] == 5
    assert s["segments"] == total_segments
    assert s["segments_skipped"] >= done_before_kill  # markers are written as segments finish
    assert s["segments_done"] == total_segments - s["segments_skipped"]
    assert [f["path"] for f in s["failures"]] == [archive["corrupt"]]
    assert s["failures"][0]["error"]

    cam_a, cam_b = archive["cameras"]
    for cam in (cam_a, cam_b):
        frames = rows(cfg, cam, "frames")
        assert len(frames) == 2 * per_recording, cam  # every sampled frame of both days, once
    detections = {cam: rows(cfg, cam, "detections") for cam in (cam_a, cam_b)}
    assert all(detections.values()), "no detections stored"

    # 3. a full rerun (no resume) rewrites the same rows: nothing is added
    third = spec(archive, resume=False).run(cfg, timeout=600)
    assert third.returncode == 0, third.output[-3000:]
    t = third.result
    assert t["segments_done"] == total_segments and t["segments_skipped"] == 0
    assert t["frames"] == 4 * per_recording
    assert t["detections"] == sum(len(v) for v in detections.values())
    for cam in (cam_a, cam_b):
        assert len(rows(cfg, cam, "frames")) == 2 * per_recording
        assert rows(cfg, cam, "detections") == detections[cam]
    store = DetectionStore.from_config(cfg)
    stored = store.search(camera=cam_a, limit=1000)
    assert {d.source for d in stored} == {"archive"} and {d.model for d in stored} == {"centernet-coco"}
    assert all(DAY1 <= d.capture_ts_ms < DAY2 + CLIP_SECONDS * 1000 for d in stored)

    # 4. a resumed run with everything finished does nothing but report the corrupt file again
    fourth = spec(archive).run(cfg, timeout=600)
    assert fourth.result["segments_skipped"] == total_segments and fourth.result["frames"] == 0
    assert [f["path"] for f in fourth.result["failures"]] == [archive["corrupt"]]


def test_unknown_model_fails_before_any_work(stack, cfg, archive):
    result = spec(archive, model="no-such-model").run(cfg, timeout=300)
    assert result.returncode != 0 and "no-such-model" in result.output
