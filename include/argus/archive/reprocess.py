"""Archive reprocessing: recordings on HDFS -> segments -> decode at N Hz -> detect -> HBase.

Free of Spark so that it is unit-tested alone; ``jobs/batch_reprocess.py`` distributes it.

A run lists the archive (``archive.py``'s layout) for a date range and cameras, cuts every
recording into fixed time windows (segments) so that a few long files still spread over all
executors, and decodes each segment with PyAV straight from HDFS through WebHDFS range reads
(nothing is copied to local disk). A segment is sampled at the decoding rate on a fixed
grid of instants (``k / rate`` seconds into the recording), so a frame's row key does not
depend on where segments start: a rerun, or a run with other windows, rewrites the same
rows. Finished segments are recorded per job (model + rate) in ``argus:segments``; the
next run of the same job skips them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import numpy as np

from argus.archive.layout import FRAME_SUFFIXES, VIDEO_SUFFIXES
from argus.detect.batch import PendingFrame, detect_batch
from argus.detect.devices import cpu_threads
from argus.archive.readahead import read_ahead
from argus.config import DEFAULT_PORTS
from argus.live.message import check_camera_id
from argus.store.crops import ImageMaker
from argus.store.writer import BackgroundWriter

if TYPE_CHECKING:
    from argus.archive.launcher import ReprocessJobSpec
    from argus.endpoints import Endpoints

#: a JPEG named like this is a capture time in ms since the epoch (13 digits)
_EPOCH_MS_DIGITS = 13


class ArchiveReadError(Exception):
    """A recording that cannot be listed, opened or decoded; names its path."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


@dataclass(frozen=True)
class Recording:
    """One archived recording: a video file or a folder of JPEG frames."""

    path: str  # absolute path in the archive file system
    camera: str
    date: str  # YYYY-MM-DD, the partition it is filed under
    start_ms: int
    kind: str  # "video" | "frames"


@dataclass(frozen=True)
class Segment:
    """``[start_s, end_s)`` of a recording (seconds from its start)."""

    recording: Recording
    index: int
    start_s: float
    end_s: float

    @property
    def key(self) -> str:
        """Stable identity: the same file and window give the same key in every run."""
        return f"{self.recording.path}@{int(self.start_s * 1000)}-{int(self.end_s * 1000)}"

    def row_key(self) -> bytes:
        digest = hashlib.sha1(self.recording.path.encode()).hexdigest()[:6]
        return f"{digest}#{self.key}".encode()


@dataclass
class SegmentResult:
    segment: str
    path: str
    camera: str
    status: str  # "done" | "failed"
    frames: int = 0
    detections: int = 0
    seconds: float = 0.0
    started_ms: int = 0
    error: str | None = None
    classes: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ReprocessConfig:
    """What every executor needs, shipped from the driver: made from the job's spec and
    endpoints by :meth:`of` (the settings and their defaults are the spec's).

    :param archive_root: ``hdfs://host:port/argus/archive`` or ``file:///path``.
    :param endpoints: where HBase and WebHDFS (how ``hdfs://`` paths are read) are.
    :param window_s: segment length; a multiple of the sampling interval.
    """

    archive_root: str
    model: str
    rate_hz: float
    window_s: float
    batch_size: int
    endpoints: Endpoints | None = None
    hdfs_user: str | None = None
    crop_px: int = 0

    @classmethod
    def of(cls, spec: ReprocessJobSpec, endpoints: Endpoints | None) -> ReprocessConfig:
        """:param endpoints: None only for a ``file://`` archive read without HBase (tests)."""
        return cls(archive_root=spec.root(endpoints), model=spec.model, rate_hz=spec.rate_hz, window_s=spec.window_s,
                   batch_size=spec.batch_size, endpoints=endpoints, crop_px=spec.crop_px)

    @property
    def webhdfs_url(self) -> str | None:
        return self.endpoints.webhdfs_url if self.endpoints else None

    @property
    def job_key(self) -> str:
        """The marker column of this job: another model or rate is another job."""
        return f"{self.model}@{self.rate_hz:g}hz"


# ---- the archive file system ----
def archive_fs(cfg: ReprocessConfig):
    """(fsspec file system, root path) for the archive root URL."""
    import fsspec

    url = urlparse(cfg.archive_root)
    if url.scheme in ("", "file"):
        return fsspec.filesystem("file"), url.path
    if url.scheme == "hdfs":
        if not cfg.webhdfs_url:
            raise ValueError("an hdfs:// archive root needs the WebHDFS address (Endpoints.webhdfs_url)")
        web = urlparse(cfg.webhdfs_url)
        from fsspec.implementations.webhdfs import WebHDFS

        import getpass

        return WebHDFS(web.hostname, port=web.port or DEFAULT_PORTS["hdfs_http"], user=cfg.hdfs_user or getpass.getuser(),
                       use_https=web.scheme == "https"), url.path or "/"
    raise ValueError(f"archive root {cfg.archive_root!r}: expected hdfs:// or file://")


def _partition(name: str, key: str) -> str | None:
    prefix = f"{key}="
    return name[len(prefix):] if name.startswith(prefix) else None


def _base(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def list_recordings(fs, root: str, cameras: Iterable[str] | None = None, since: str | None = None,
                    until: str | None = None) -> list[Recording]:
    """Recordings under ``root`` for the cameras (all if None) and dates ``since..until``
    (inclusive, YYYY-MM-DD). Half-uploaded files (``._copying``) are ignored."""
    wanted = set(cameras) if cameras else None
    out = []
    if not fs.exists(root):
        return out
    for cam_dir in sorted(fs.ls(root, detail=False)):
        camera = _partition(_base(cam_dir), "camera")
        if camera is None or (wanted is not None and camera not in wanted):
            continue
        for date_dir in sorted(fs.ls(cam_dir, detail=False)):
            date = _partition(_base(date_dir), "date")
            if date is None or (since and date < since) or (until and date > until):
                continue
            for entry in sorted(fs.ls(date_dir, detail=True), key=lambda e: e["name"]):
                name = _base(entry["name"])
                stem, dot, suffix = name.partition(".")
                if name.endswith("._copying") or not stem.isdigit():
                    continue
                if entry["type"] == "directory":
                    out.append(Recording(entry["name"], camera, date, int(stem), "frames"))
                elif f".{suffix.lower()}" in VIDEO_SUFFIXES:
                    out.append(Recording(entry["name"], camera, date, int(stem), "video"))
    return out


# ---- segmenting ----
def frame_files(fs, recording: Recording) -> list[str]:
    return sorted(p for p in fs.ls(recording.path, detail=False)
                  if p.lower().endswith(FRAME_SUFFIXES) and not p.endswith("._copying"))


def frame_offsets_s(files: list[str], recording: Recording, rate_hz: float) -> list[float]:
    """When each JPEG of a frame folder was captured, in seconds from the recording start:
    its name when that is an epoch-ms time, else one frame per sampling interval."""
    offsets = []
    for i, path in enumerate(files):
        stem = _base(path).split(".")[0]
        if stem.isdigit() and len(stem) == _EPOCH_MS_DIGITS:
            offsets.append((int(stem) - recording.start_ms) / 1000)
        else:
            offsets.append(i / rate_hz)
    return offsets


def recording_duration_s(fs, recording: Recording, rate_hz: float) -> float:
    """Length of the recording; raises :class:`ArchiveReadError` if it cannot be read."""
    if recording.kind == "frames":
        files = frame_files(fs, recording)
        if not files:
            raise ArchiveReadError(recording.path, "frame folder holds no JPEG")
        return max(frame_offsets_s(files, recording, rate_hz)) + 1 / rate_hz
    import av

    try:
        with fs.open(recording.path, "rb") as raw, av.open(raw, mode="r") as container:
            if not container.streams.video:
                raise ArchiveReadError(recording.path, "no video stream")
            stream = container.streams.video[0]
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
            if container.duration is not None:
                return container.duration / 1_000_000
            # no duration in the container (raw .h264, some .ts): count the packets' times
            last = 0.0
            for packet in container.demux(stream):
                if packet.pts is not None:
                    last = max(last, float(packet.pts * stream.time_base))
            return last + 1 / float(stream.average_rate or 25)
    except ArchiveReadError:
        raise
    except Exception as exc:  # PyAV, WebHDFS and HTTP errors alike: name the file and go on
        raise ArchiveReadError(recording.path, f"{type(exc).__name__}: {exc}") from exc


def segment_window_s(window_s: float, rate_hz: float, batch_size: int = 1) -> float:
    """The window rounded up to whole sampling intervals, so that segments start on the grid,
    and to whole detector batches, so that no batch but a recording's last is short."""
    ticks = max(1, math.ceil(window_s * rate_hz - 1e-9))
    ticks = math.ceil(ticks / batch_size) * batch_size
    return ticks / rate_hz


def plan_segments(recording: Recording, duration_s: float, window_s: float, rate_hz: float,
                  batch_size: int = 1) -> list[Segment]:
    window = segment_window_s(window_s, rate_hz, batch_size)
    count = max(1, math.ceil(duration_s / window - 1e-9))
    return [Segment(recording, i, i * window, (i + 1) * window) for i in range(count)]


def longest_first(segments: Sequence[Segment]) -> list[Segment]:
    """The order to hand segments to executors: every recording's full windows first, then
    its last one, which the end of the file may cut short. A job lasts until its last task
    ends; a short task at the end leaves an executor idle for less time than a full one."""
    last = {}
    for seg in segments:
        last[seg.recording.path] = max(last.get(seg.recording.path, -1), seg.index)
    return sorted(segments, key=lambda seg: seg.index == last[seg.recording.path])


class GridSampler:
    """Samples ``[start_s, end_s)`` at ``rate_hz``: for each instant ``k / rate_hz`` in the
    window, the first frame at or after it. Frames must come in time order."""

    _EPS = 1e-6

    def __init__(self, start_s: float, end_s: float, rate_hz: float):
        self.start_s, self.end_s, self.rate_hz = start_s, end_s, rate_hz
        self._next_tick = math.ceil(start_s * rate_hz - self._EPS)

    def past_end(self, t: float) -> bool:
        return t >= self.end_s - self._EPS

    def take(self, t: float) -> bool:
        if t < self.start_s - self._EPS or self.past_end(t) or t < self._next_tick / self.rate_hz - self._EPS:
            return False
        self._next_tick = math.floor(t * self.rate_hz + self._EPS) + 1
        return True


def sample_on_grid(times_s: Iterable[float], start_s: float, end_s: float, rate_hz: float) -> Iterator[int]:
    """Indices of the frames (at increasing ``times_s``) that :class:`GridSampler` takes."""
    sampler = GridSampler(start_s, end_s, rate_hz)
    for i, t in enumerate(times_s):
        if sampler.past_end(t):
            break
        if sampler.take(t):
            yield i


def expected_frames(duration_s: float, fps: float, rate_hz: float) -> int:
    """How many frames sampling a constant-rate video takes (tests and benchmarks)."""
    times = [i / fps for i in range(round(duration_s * fps))]
    return len(list(sample_on_grid(times, 0.0, math.inf, rate_hz)))


@dataclass(frozen=True)
class DecodedFrame:
    seq: int  # frame number in the recording
    offset_s: float
    rgb: np.ndarray


def decode_segment(fs, segment: Segment, rate_hz: float, threads: int | None = None) -> Iterator[DecodedFrame]:
    """The sampled frames of one segment, read from the archive as a stream.

    :param threads: the decoder's threads (default: FFmpeg's choice, one per core)."""
    rec = segment.recording
    if rec.kind == "frames":
        yield from _decode_frame_folder(fs, segment, rate_hz)
        return
    import av

    try:
        with fs.open(rec.path, "rb", block_size=4 * 2**20) as raw, av.open(raw, mode="r") as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            if threads:
                stream.codec_context.thread_count = threads
            base = stream.start_time or 0
            tb = stream.time_base
            fps = float(stream.average_rate or 25)
            if segment.start_s > 0:  # to the keyframe at or before the window
                container.seek(base + int(segment.start_s / tb), stream=stream, backward=True, any_frame=False)
            sampler = GridSampler(segment.start_s, segment.end_s, rate_hz)
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                offset = float((frame.pts - base) * tb)
                if sampler.past_end(offset):
                    break
                if sampler.take(offset):  # only sampled frames are converted to RGB
                    yield DecodedFrame(round(offset * fps), offset, frame.to_ndarray(format="rgb24"))
    except ArchiveReadError:
        raise
    except Exception as exc:
        raise ArchiveReadError(rec.path, f"decoding {segment.start_s:g}-{segment.end_s:g}s: "
                                         f"{type(exc).__name__}: {exc}") from exc


def _decode_frame_folder(fs, segment: Segment, rate_hz: float) -> Iterator[DecodedFrame]:
    from argus.media.codec import FrameDecodeError, decode_jpeg

    rec = segment.recording
    files = frame_files(fs, rec)
    offsets = frame_offsets_s(files, rec, rate_hz)
    order = sorted(range(len(files)), key=lambda i: offsets[i])
    for j in sample_on_grid([offsets[i] for i in order], segment.start_s, segment.end_s, rate_hz):
        i = order[j]
        try:
            rgb = decode_jpeg(fs.cat_file(files[i]))
        except FrameDecodeError as exc:
            raise ArchiveReadError(files[i], str(exc)) from exc
        yield DecodedFrame(i, offsets[i], rgb)


# ---- what each worker process keeps (Spark reuses Python workers across tasks) ----
_worker: dict = {}


def worker_resources(cfg: ReprocessConfig) -> tuple:
    """(store, file system, detector) of this process for ``cfg``, made once. The detector
    has run once, so that the first segment does not pay for tracing the model's graph."""
    key = (cfg.model, cfg.batch_size, cfg.archive_root, cfg.endpoints)
    if _worker.get("key") != key:
        from argus.detect import Detector
        from argus.store import DetectionStore

        detector = Detector(cfg.model, batch_size=cfg.batch_size)
        detector.detect([np.zeros((64, 64, 3), np.uint8)])
        _worker.update(key=key, store=DetectionStore.from_endpoints(cfg.endpoints),
                       fs=archive_fs(cfg)[0], detector=detector)
    return _worker["store"], _worker["fs"], _worker["detector"]


# ---- resume markers (argus:segments) ----
class SegmentMarkers:
    """Which segments a job has finished, in HBase: row = segment, column ``m:<job>``."""

    def __init__(self, store, job_key: str):
        self.store, self.column = store, f"m:{job_key}".encode()

    def finished(self) -> set[str]:
        with self.store.table("segments") as table:
            return {key.decode().split("#", 1)[1] for key, _ in table.scan(columns=[self.column])}

    def mark(self, segment: Segment, result: SegmentResult) -> None:
        summary = {"frames": result.frames, "detections": result.detections, "finished_ms": int(time.time() * 1000)}
        with self.store.table("segments") as table:
            table.put(segment.row_key(), {self.column: json.dumps(summary).encode()})


# ---- one segment, end to end ----
def process_segment(fs, segment: Segment, cfg: ReprocessConfig, detector, store) -> SegmentResult:
    """Decode, detect in batches, write; a read or decode error fails only this segment
    (what was written stays: the keys are the same when it is retried)."""
    rec = segment.recording
    result = SegmentResult(segment.key, rec.path, rec.camera, "done", started_ms=int(time.time() * 1000))
    t0 = time.perf_counter()
    try:  # the frame message's rule: a folder named for no valid camera fails here, not in HBase
        check_camera_id(rec.camera)
    except ValueError as exc:
        result.status, result.error = "failed", f"{rec.path}: {exc}"
        return result
    batch: list[DecodedFrame] = []
    # writing to HBase is a wait: it overlaps the model's work
    writer = BackgroundWriter(store, stamp=False, prepare=ImageMaker(cfg.crop_px) if cfg.crop_px else None)
    # decoding takes the task's cores as the model does: with one core, a decoder thread
    # running ahead would only take turns with the model on it, and with one executor per
    # core it takes a core from the next executor (measured: 2 executors ran at 1.6 x 1)
    cores = cpu_threads()
    frames = decode_segment(fs, segment, cfg.rate_hz, threads=cores)
    if cores > 1:
        frames = read_ahead(frames, depth=2 * cfg.batch_size)

    def flush():
        if not batch:
            return
        read_ms = int(time.time() * 1000)
        pending = []
        for frame in batch:
            captured = rec.start_ms + round(frame.offset_s * 1000)
            pending.append(PendingFrame(frame.rgb, rec.camera, captured, frame.seq, "archive",
                                        {"captured": captured, "read": read_ms}))
        results = detect_batch(detector, cfg.model, pending)
        writer.put(results)
        for found in results:
            for det in found.detections:
                result.classes[det.class_name] = result.classes.get(det.class_name, 0) + 1
            result.detections += len(found.detections)
        result.frames += len(results)
        batch.clear()

    try:
        try:
            for frame in frames:
                batch.append(frame)
                if len(batch) >= cfg.batch_size:
                    flush()
            flush()
        finally:
            frames.close()  # a failed batch leaves the recording open otherwise
            writer.close()
    except ArchiveReadError as exc:
        result.status, result.error = "failed", str(exc)
    except Exception as exc:  # detection or HBase trouble: report the segment, keep the run going
        result.status, result.error = "failed", f"{rec.path}: {type(exc).__name__}: {exc}"
    result.seconds = time.perf_counter() - t0
    return result


def utc_day(value: str | dt.date) -> str:
    """Validate a YYYY-MM-DD date (params and CLI)."""
    if isinstance(value, dt.date):
        return value.isoformat()
    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a date (YYYY-MM-DD)") from exc


__all__ = ["ArchiveReadError", "DecodedFrame", "Recording", "ReprocessConfig", "Segment", "SegmentMarkers",
           "SegmentResult", "GridSampler", "archive_fs", "decode_segment", "expected_frames", "list_recordings",
           "plan_segments", "process_segment", "recording_duration_s", "sample_on_grid", "utc_day",
           "worker_resources"]
