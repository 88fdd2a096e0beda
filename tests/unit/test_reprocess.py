"""Archive reprocessing's pure parts on a local archive (file://): listing, segmenting,
sampling on the grid, decoding, failures."""

from __future__ import annotations

import shutil

import pytest

from argus.media.codec import encode_jpeg
from argus.media.images import sample_frames
from argus.archive.reprocess import (
    ArchiveReadError, GridSampler, Recording, ReprocessConfig, archive_fs, decode_segment, expected_frames,
    list_recordings, plan_segments, recording_duration_s, sample_on_grid, segment_window_s,
)
from argus.archive.launcher import ReprocessJobSpec
from argus.live.simulate import CLIP_FPS, CLIP_SECONDS, ensure_clips

START = 1_790_000_000_000  # 2026-09-21T14:13:20Z


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    from argus.config import ArgusConfig

    return ensure_clips(ArgusConfig().cache_dir / "simulator", 1)[0]


@pytest.fixture
def archive(tmp_path, clip):
    root = tmp_path / "archive"
    for camera, date in (("c1", "2026-09-21"), ("c1", "2026-09-22"), ("c2", "2026-09-21")):
        day = root / f"camera={camera}" / f"date={date}"
        day.mkdir(parents=True)
        shutil.copy(clip, day / f"{START}.mp4")
    (root / "camera=c1" / "date=2026-09-21" / f"{START + 1}.mp4._copying").write_bytes(b"half")
    frames = root / "camera=c2" / "date=2026-09-22" / str(START)
    frames.mkdir(parents=True)
    for i, rgb in enumerate(sample_frames(4, (48, 64))):
        (frames / f"{i:04d}.jpg").write_bytes(encode_jpeg(rgb))
    return root


def cfg_for(root, **kw) -> ReprocessConfig:
    """The executors' config of a job spec over a local archive (no endpoints needed)."""
    return ReprocessConfig.of(ReprocessJobSpec(archive_root=f"file://{root}", **kw), None)


def test_listing_filters_cameras_and_dates_and_ignores_partial_uploads(archive):
    fs, root = archive_fs(cfg_for(archive))
    everything = list_recordings(fs, root)
    assert [(r.camera, r.date, r.kind) for r in everything] == [
        ("c1", "2026-09-21", "video"), ("c1", "2026-09-22", "video"),
        ("c2", "2026-09-21", "video"), ("c2", "2026-09-22", "frames")]
    assert all(r.start_ms == START for r in everything)
    assert [(r.camera, r.date) for r in list_recordings(fs, root, ["c2"], "2026-09-22", "2026-09-22")] == [
        ("c2", "2026-09-22")]
    assert list_recordings(fs, root, since="2026-09-23") == []
    assert list_recordings(fs, f"{root}/nowhere") == []


def test_sampling_takes_the_first_frame_at_or_after_each_instant():
    times = [i / 15 for i in range(30)]  # 2 s at 15 fps
    assert list(sample_on_grid(times, 0, 2, 2)) == [0, 8, 15, 23]
    assert list(sample_on_grid(times, 1, 2, 2)) == [15, 23]  # a window starting on the grid
    assert list(sample_on_grid(times, 0, 2, 100)) == list(range(30))  # faster than the video: every frame
    assert expected_frames(CLIP_SECONDS, CLIP_FPS, 2) == CLIP_SECONDS * 2
    sampler = GridSampler(0, 1, 1)
    assert [sampler.take(t) for t in (0.0, 0.5, 0.99)] == [True, False, False]


@pytest.mark.parametrize("window", [1.0, 3.0, 10.0, 2.2])
def test_frames_do_not_depend_on_the_segment_window(archive, window):
    """The same frames (and so the same row keys) whatever the windows: reruns with other
    settings rewrite rows instead of adding near-duplicates."""
    fs, root = archive_fs(cfg_for(archive))
    rec = list_recordings(fs, root, ["c1"], "2026-09-21", "2026-09-21")[0]
    duration = recording_duration_s(fs, rec, 2)
    assert duration == pytest.approx(CLIP_SECONDS, abs=0.1)
    segments = plan_segments(rec, duration, window, 2)
    assert segments[0].start_s == 0 and segments[-1].end_s >= duration
    assert all(a.end_s == b.start_s for a, b in zip(segments, segments[1:]))
    frames = [f for s in segments for f in decode_segment(fs, s, 2)]
    assert [f.seq for f in frames] == [round(k / 2 * CLIP_FPS + 0.49) for k in range(CLIP_SECONDS * 2)]
    assert all(f.rgb.shape == (480, 640, 3) for f in frames)
    assert len({s.key for s in segments}) == len(segments)


def test_frame_folders_are_segmented_and_decoded(archive):
    fs, root = archive_fs(cfg_for(archive))
    rec = list_recordings(fs, root, ["c2"], "2026-09-22", "2026-09-22")[0]
    assert rec.kind == "frames"
    duration = recording_duration_s(fs, rec, 1)
    segments = plan_segments(rec, duration, 2, 1)
    frames = [f for s in segments for f in decode_segment(fs, s, 1)]
    assert [(f.seq, f.offset_s) for f in frames] == [(0, 0), (1, 1), (2, 2), (3, 3)]


def test_truncated_and_bogus_recordings_raise_with_their_path(archive, clip):
    fs, root = archive_fs(cfg_for(archive))
    day = archive / "camera=c3" / "date=2026-09-21"
    day.mkdir(parents=True)
    (day / f"{START}.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 100)
    (day / f"{START + 5}.mp4").write_bytes(clip.read_bytes()[: clip.stat().st_size // 3])
    bogus, truncated = list_recordings(fs, root, ["c3"])
    with pytest.raises(ArchiveReadError) as err:
        recording_duration_s(fs, bogus, 1)
    assert err.value.path == bogus.path
    # a truncated MP4 has no index (moov at the end): unreadable as a whole
    with pytest.raises(ArchiveReadError, match=str(truncated.start_ms)):
        duration = recording_duration_s(fs, truncated, 1)
        for segment in plan_segments(truncated, duration, 4, 1):
            list(decode_segment(fs, segment, 1))


def test_config_rejects_bad_rates_and_windows(archive):
    with pytest.raises(ValueError, match="rate"):
        cfg_for(archive, rate_hz=0)
    with pytest.raises(ValueError, match="window"):
        cfg_for(archive, rate_hz=0.5, window_s=1)
    assert cfg_for(archive, model="yolov2", rate_hz=2).job_key == "yolov2@2hz"
    with pytest.raises(ValueError, match="hdfs://"):
        archive_fs(ReprocessConfig("s3://bucket/archive", "centernet-coco", 1.0, 10.0, 8))


def test_windows_hold_whole_batches():
    assert segment_window_s(4, 5) == 4.0  # 20 frames
    assert segment_window_s(4, 5, batch_size=8) == 4.8  # 24 frames: 3 full batches
    assert segment_window_s(0.5, 1, batch_size=1) == 1.0  # at least one sampling interval
    rec = Recording("/a/camera=c/date=2026-01-01/1.mp4", "c", "2026-01-01", 1, "video")
    assert [(s.start_s, s.end_s) for s in plan_segments(rec, 8, 4, 5, batch_size=8)] == [(0, 4.8), (4.8, 9.6)]


def test_recording_keys_are_stable():
    rec = Recording("/a/camera=c/date=2026-01-01/1.mp4", "c", "2026-01-01", 1, "video")
    seg = plan_segments(rec, 25, 10, 1)[1]
    assert seg.key == "/a/camera=c/date=2026-01-01/1.mp4@10000-20000"
    assert seg.row_key().endswith(seg.key.encode())


def test_each_recordings_short_last_window_is_handed_out_last():
    from argus.archive.reprocess import longest_first

    a = Recording("/a/camera=c/date=2026-01-01/1.mp4", "c", "2026-01-01", 1, "video")
    b = Recording("/a/camera=c/date=2026-01-01/2.mp4", "c", "2026-01-01", 2, "video")
    single = Recording("/a/camera=c/date=2026-01-01/3.mp4", "c", "2026-01-01", 3, "video")
    planned = plan_segments(a, 25, 10, 1) + plan_segments(b, 12, 10, 1) + plan_segments(single, 4, 10, 1)
    order = [(s.recording.start_ms, s.index) for s in longest_first(planned)]
    assert order == [(1, 0), (1, 1), (2, 0), (1, 2), (2, 1), (3, 0)]
    assert sorted(longest_first(planned), key=lambda s: (s.recording.start_ms, s.index)) == planned


class _CountingDetector:
    """Records which threads are alive while it detects."""

    def __init__(self):
        self.threads: set[str] = set()

    def detect(self, frames):
        import threading

        self.threads |= {t.name for t in threading.enumerate()}
        return [[] for _ in frames]


class _Store:
    def __init__(self):
        self.rows = []

    def write(self, results, written_ms=None):
        self.rows += list(results)
        return len(results)


@pytest.mark.parametrize("cores", [1, 2])
def test_a_segment_decodes_ahead_only_with_a_core_to_spare(archive, monkeypatch, cores):
    """With one core per task, a decoder thread would take turns with the model on it (and
    take the next executor's core): decoding then runs inline, between batches."""
    from argus.archive.reprocess import process_segment

    monkeypatch.setenv("ARGUS_CPU_THREADS", str(cores))
    cfg = cfg_for(archive, rate_hz=2.0, window_s=4.0, batch_size=2)
    fs, root = archive_fs(cfg)
    rec = list_recordings(fs, root, ["c1"], "2026-09-21", "2026-09-21")[0]
    segment = plan_segments(rec, recording_duration_s(fs, rec, 2.0), cfg.window_s, 2.0, 2)[0]
    detector, store = _CountingDetector(), _Store()
    result = process_segment(fs, segment, cfg, detector, store)
    assert result.status == "done" and result.frames == len(store.rows) == 8
    assert ("argus-read-ahead" in detector.threads) == (cores > 1)
