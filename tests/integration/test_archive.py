"""`argus archive put` into the real HDFS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from argus.archive.layout import archive_dir, listing, put
from argus.archive.reprocess import expected_frames
from argus.store import DetectionStore
from argus.store.schema import camera_prefix, frame_key
from argus.live.simulate import CLIP_FPS, CLIP_SECONDS
from argus.media.codec import encode_jpeg
from argus.archive.hdfs import webhdfs_client
from argus.media.images import sample_frames
from argus.live.simulate import ensure_clips

START = 1_790_000_000_000  # 2026-09-21T14:13:20Z
CREATED = 1_790_207_998_000  # 2026-09-23T23:59:58Z: the recording crosses midnight, stays on the 23rd
FRAMES_AT = 1_790_100_000_000  # 2026-09-22T18:00:00Z
ROOT = Path(__file__).resolve().parents[2]


def argus(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """The CLI as a user runs it (this worktree's code)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "include"), str(ROOT / "plugins")])}
    return subprocess.run([sys.executable, "-m", "argus.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def with_creation_time(clip: Path, out: Path, created: str) -> Path:
    """``clip`` remuxed (not re-encoded) with a container ``creation_time``."""
    import av

    with av.open(str(clip)) as src, av.open(str(out), "w") as dst:
        dst.metadata["creation_time"] = created
        stream = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                dst.mux(packet)
    return out


def test_recordings_and_frame_folders_land_in_the_layout_once(stack, cfg, unique, tmp_path):
    client = webhdfs_client(cfg)
    root = f"/argus/tests/{unique}/archive"
    clip = ensure_clips(cfg.cache_dir / "simulator", 1)[0]
    frames = tmp_path / "frames"
    frames.mkdir()
    for i, rgb in enumerate(sample_frames(3, (48, 64))):
        (frames / f"{i:04d}.jpg").write_bytes(encode_jpeg(rgb))

    first = put([clip, frames], "gate-1", client, start_ms=START, root=root)
    assert [u.skipped for u in first] == [False] * 4
    day = f"{root}/camera=gate-1/date=2026-09-21"
    assert archive_dir("gate-1", START, root) == day
    assert listing(client, "gate-1", root) == sorted(
        [f"{day}/{START}.mp4"] + [f"{day}/{START}/{i:04d}.jpg" for i in range(3)])
    assert client.status(f"{day}/{START}.mp4")["length"] == clip.stat().st_size

    again = put([clip, frames], "gate-1", client, start_ms=START, root=root)  # a rerun
    assert all(u.skipped for u in again)
    assert len(listing(client, root=root)) == 4


def test_cli_rejects_what_is_not_an_archive(stack, cfg, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a video")
    out = subprocess.run([sys.executable, "-m", "argus.cli", "archive", "put", str(notes), "--camera", "gate-1"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "not a video" in out.stderr
    out = subprocess.run([sys.executable, "-m", "argus.cli", "archive", "put", str(tmp_path), "--camera", "a#b"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "camera id" in out.stderr


@pytest.mark.parametrize("ms, date", [(0, "1970-01-01"), (START, "2026-09-21"), (1_790_035_199_999, "2026-09-21"),
                                      (1_790_035_200_000, "2026-09-22")])
def test_dates_are_utc_days_of_the_start(ms, date):
    assert archive_dir("cam", ms).endswith(f"/camera=cam/date={date}")


def test_cli_puts_and_reprocesses_recordings_and_an_hdfs_frame_folder(stack, cfg, unique, tmp_path):
    """`argus archive put` (start from --start, and from the container's creation_time; a
    folder of epoch-ms JPEGs), then `argus archive reprocess` over that hdfs:// archive: every
    sampled frame stored once, at its capture time; a second run finds everything done."""
    client = webhdfs_client(cfg)
    root = f"/argus/tests/{unique}/archive"
    cam_v, cam_f = f"cli-v-{unique}", f"cli-f-{unique}"
    clip = ensure_clips(cfg.cache_dir / "simulator", 1)[0]
    created = with_creation_time(clip, tmp_path / "created.mp4", "2026-09-23T23:59:58Z")
    frames = tmp_path / "frames"
    frames.mkdir()
    for i, rgb in enumerate(sample_frames(3, (48, 64))):
        (frames / f"{FRAMES_AT + 1000 * i}.jpg").write_bytes(encode_jpeg(rgb))

    for args in ([str(clip), "--camera", cam_v, "--start", "2026-09-21T14:13:20Z"],
                 [str(created), "--camera", cam_v],
                 [str(frames), "--camera", cam_f, "--start", str(FRAMES_AT)]):
        out = argus("archive", "put", *args, "--root", root)
        assert out.returncode == 0, out.stdout + out.stderr
    assert listing(client, root=root) == sorted([
        f"{root}/camera={cam_f}/date=2026-09-22/{FRAMES_AT}/{FRAMES_AT + 1000 * i}.jpg" for i in range(3)] + [
        f"{root}/camera={cam_v}/date=2026-09-21/{START}.mp4",
        f"{root}/camera={cam_v}/date=2026-09-23/{CREATED}.mp4"])

    reprocess = ("archive", "reprocess", "--root", f"{cfg.hdfs_uri}{root}", "--since", "2026-09-21",
                 "--until", "2026-09-23", "--cameras", f"{cam_v},{cam_f}", "--rate", "1", "--window", "4",
                 "--executors", "2")
    first = argus(*reprocess, timeout=600)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-3000:]
    summary = json.loads(first.stdout)
    per_clip = expected_frames(CLIP_SECONDS, CLIP_FPS, 1)
    assert (summary["recordings"], summary["frames"], summary["failures"]) == (3, 2 * per_clip + 3, [])

    store = DetectionStore.from_config(cfg)
    for start in (START, CREATED):  # each recording's detections, at its own start
        found = store.search(camera=cam_v, since=start, until=start + CLIP_SECONDS * 1000, limit=1000)
        assert found and {d.source for d in found} == {"archive"}, start
    assert len(store.search(camera=cam_v, limit=1000)) == summary["detections"]

    def frame_rows(camera):
        with store.table("frames") as t:
            return sorted(key for key, _ in t.scan(row_prefix=camera_prefix(camera)))
    # the folder's JPEGs at the times their names give, numbered in name order
    assert frame_rows(cam_f) == sorted(frame_key(cam_f, FRAMES_AT + 1000 * i, i) for i in range(3))
    assert len(frame_rows(cam_v)) == 2 * per_clip

    second = argus(*reprocess, timeout=600)  # resumes: everything is done, nothing is rewritten
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-3000:]
    again = json.loads(second.stdout)
    assert again["segments_skipped"] == again["segments"] == summary["segments"] > 0
    assert (again["segments_done"], again["frames"], again["failures"]) == (0, 0, [])
    assert frame_rows(cam_f) == sorted(frame_key(cam_f, FRAMES_AT + 1000 * i, i) for i in range(3))
    assert len(store.search(camera=cam_v, limit=1000)) == summary["detections"]
