"""`argus archive put` into the real HDFS."""

from __future__ import annotations

import subprocess
import sys

import pytest

from argus.archive.layout import archive_dir, listing, put
from argus.media.codec import encode_jpeg
from argus.archive.hdfs import webhdfs_client
from argus.media.images import sample_frames
from argus.live.simulate import ensure_clips

START = 1_790_000_000_000  # 2026-09-21T14:13:20Z


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
