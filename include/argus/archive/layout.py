"""Video archives on HDFS: the layout Spark batch jobs reprocess.

    /argus/archive/camera=<id>/date=<YYYY-MM-DD>/<start-epoch-ms>.mp4      H.264 recordings
    /argus/archive/camera=<id>/date=<YYYY-MM-DD>/<start-epoch-ms>/*.jpg    folders of frames

The date is the UTC date of the recording's start (a recording that crosses midnight stays
under its start date); the start time comes from ``--start``, else the container's
``creation_time``, else the file's modification time. Uploads are idempotent: a file
already in place with the same size is left alone.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from argus.live.message import check_camera_id

ARCHIVE_ROOT = "/argus/archive"
VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi", ".ts", ".h264")
FRAME_SUFFIXES = (".jpg", ".jpeg")


@dataclass(frozen=True)
class Upload:
    source: str
    target: str
    bytes: int
    skipped: bool  # already archived (same size)


def utc_date(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).strftime("%Y-%m-%d")


def archive_dir(camera: str, start_ms: int, root: str = ARCHIVE_ROOT) -> str:
    return f"{root.rstrip('/')}/camera={check_camera_id(camera)}/date={utc_date(start_ms)}"


def recording_start_ms(path: Path) -> int:
    """A recording's start: the container's creation_time if it has one, else its mtime."""
    if path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES:
        import av

        try:
            with av.open(str(path)) as container:
                created = container.metadata.get("creation_time")
        except av.error.FFmpegError as exc:
            raise ValueError(f"{path} is not a readable video: {exc}") from exc
        if created:
            try:
                return int(dt.datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp() * 1000)
            except ValueError:
                pass
    return int(path.stat().st_mtime * 1000)


def put(paths: list[Path], camera: str, client, start_ms: int | None = None,
        root: str = ARCHIVE_ROOT) -> list[Upload]:
    """Upload recordings (files) or frame folders (directories of JPEGs) for one camera.

    :param client: an HdfsCLI client (:func:`argus.archive.hdfs.webhdfs_client`).
    :param start_ms: start time for every path; default: read from each path.
    """
    check_camera_id(camera)
    plan: dict[str, Path] = {}  # target -> source; checked in full before anything is uploaded
    for path in map(Path, paths):
        if not path.exists():
            raise ValueError(f"{path} does not exist")
        if path.is_file() and path.suffix.lower() not in VIDEO_SUFFIXES:
            raise ValueError(f"{path}: not a video ({', '.join(VIDEO_SUFFIXES)}) or a folder of JPEG frames")
        if path.is_dir() and not any(p.suffix.lower() in FRAME_SUFFIXES for p in path.iterdir()):
            raise ValueError(f"{path} holds no JPEG frames")
        start = start_ms if start_ms is not None else recording_start_ms(path)
        base = f"{archive_dir(camera, start, root)}/{start}"
        target = base if path.is_dir() else f"{base}{path.suffix.lower()}"
        if target in plan:  # one start time for several recordings would overwrite one
            raise ValueError(f"{path} and {plan[target]} would both be archived as {target}: "
                             "give each recording its own start time")
        plan[target] = path
    uploads = []
    for target, path in plan.items():
        if path.is_dir():
            frames = sorted(p for p in path.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
            uploads += [_upload(client, f, f"{target}/{f.name}") for f in frames]
        else:
            uploads.append(_upload(client, path, target))
    return uploads


def _upload(client, source: Path, target: str) -> Upload:
    size = source.stat().st_size
    existing = client.status(target, strict=False)
    if existing is not None and existing.get("length") == size:
        return Upload(str(source), target, size, skipped=True)
    tmp = f"{target}._copying"  # readers never see a half-written recording
    client.upload(tmp, str(source), overwrite=True)
    if existing is not None:  # a different recording under the same name: replace it
        client.delete(target)
    client.rename(tmp, target)
    return Upload(str(source), target, size, skipped=False)


def listing(client, camera: str | None = None, root: str = ARCHIVE_ROOT) -> list[str]:
    """Every archived path (recordings and frame files), optionally for one camera."""
    top = f"{root}/camera={check_camera_id(camera)}" if camera else root
    if client.status(top, strict=False) is None:
        return []
    out = []
    for dirpath, _dirs, files in client.walk(top):
        out += [f"{dirpath}/{f}" for f in files if not f.endswith("._copying")]
    return sorted(out)


__all__ = ["ARCHIVE_ROOT", "Upload", "archive_dir", "listing", "put", "recording_start_ms"]
