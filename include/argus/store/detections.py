"""``DetectionStore``: detections and per-frame stage timestamps in HBase, and search."""

from __future__ import annotations

import heapq
import itertools
import json
import math
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import happybase

from argus.detect.types import Detection
from argus.config import DEFAULT_PORTS
from argus.store import schema
from argus.store.admin import HBaseAdmin
from argus.store.latency import STAGES, stage_summary

#: rows fetched per Thrift round trip of a search's range scan at least. Small, because with
#: a filter every row a scan returns costs the server rows it reads and drops (one in 200 for
#: a rare class: 16 a bucket read 4x the rows that 4 do, 360 ms against 90 over 10^6 rows);
#: a bucket that holds more of the newest costs another round trip, about a millisecond
SEARCH_MIN_CHUNK = 4
#: each of n merged scans fetches this times its share (limit / n) per round trip: most need
#: one round trip, and the rows fetched and dropped stay a tenth of the page
SEARCH_CHUNK_SLACK = 1.1


@dataclass
class FrameResult:
    """What the pipeline knows about one processed frame."""

    camera_id: str
    capture_ts_ms: int
    seq: int
    width: int
    height: int
    model: str
    detections: Sequence[Detection]
    source: str = "live"  # or "archive"
    stages: dict[str, int] = field(default_factory=dict)  # stage -> ms since the epoch
    kafka_partition: int | None = None
    kafka_offset: int | None = None
    crops: Sequence[bytes | None] | None = None
    #: the frame as the camera's live frame (a small JPEG), if it is one (argus:live)
    thumbnail: bytes | None = None
    #: the decoded frame, until the writer has made the crops and live frame from it
    image: Any = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class StoredDetection:
    camera_id: str
    capture_ts_ms: int
    seq: int
    index: int
    class_id: int
    class_name: str
    score: float
    box: tuple[float, float, float, float]
    model: str
    source: str
    #: the camera's track this detection belongs to (``d:tid``), once the tracker has seen it
    track_id: int | None = None

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _s(value) -> bytes:
    return str(value).encode()


def detection_cells(result: FrameResult, index: int, det: Detection) -> dict[bytes, bytes]:
    cells = {
        b"d:cam": result.camera_id.encode(), b"d:ts": f"{result.capture_ts_ms:013d}".encode(),
        b"d:seq": _s(result.seq), b"d:cid": _s(det.class_id), b"d:cls": det.class_name.encode(),
        # fixed width so that HBase filters can compare scores as strings
        b"d:score": f"{det.score:.4f}".encode(),
        b"d:box": ",".join(f"{v:.5f}" for v in det.box).encode(),
        b"d:model": result.model.encode(), b"d:src": result.source.encode(), b"d:idx": _s(index),
    }
    if result.crops and index < len(result.crops) and result.crops[index]:
        cells[b"c:jpg"] = result.crops[index]
    return cells


def frame_cells(result: FrameResult) -> dict[bytes, bytes]:
    cells = {f"t:{stage}".encode(): _s(ts) for stage, ts in result.stages.items()}
    cells.update({b"f:w": _s(result.width), b"f:h": _s(result.height), b"f:model": result.model.encode(),
                  b"f:n": _s(len(result.detections)), b"f:src": result.source.encode()})
    if result.kafka_partition is not None:
        cells[b"f:part"], cells[b"f:off"] = _s(result.kafka_partition), _s(result.kafka_offset)
    return cells


#: the fields of a ``detections_by_time`` cell (``d:v``), in order, ``|`` between them
INDEX_FIELDS = ("score", "class_id", "box", "source", "model", "class_name")


def index_cells(result: FrameResult, det: Detection) -> dict[bytes, bytes]:
    """A detection's one cell in ``detections_by_time``, ``d:v``: ``score|class id|box|
    source|model|class name``; camera, time, seq and index are in the key. One cell, not
    ten: HBase stores the whole key again with each cell, and a search reads and decodes
    every cell of the rows it fetches. The score comes first and fixed width, so that a
    min-score filter compares the value as bytes; the class name comes last, so that one
    holding a ``|`` still parses (a model name cannot hold one)."""
    return {b"d:v": index_value(det.score, det.class_id, det.box, result.source, result.model, det.class_name)}


def index_value(score: float, class_id: int, box: Sequence[float], source: str, model: str, class_name: str) -> bytes:
    """The ``d:v`` cell of :func:`index_cells`."""
    boxed = ",".join(f"{float(v):.5f}" for v in box)
    return f"{float(score):.4f}|{int(class_id)}|{boxed}|{source}|{model}|{class_name}".encode()


def result_rows(result: FrameResult, written_ms: int | None = None) -> list[tuple[str, bytes, dict[bytes, bytes]]]:
    """Every row one frame writes, as (table, row key, cells): each detection (in
    ``detections`` and, time-major, in ``detections_by_time``), then its frame row. Pure: a
    frame whose rows cannot be built (a camera id or time the keys cannot hold) raises
    ValueError here, before anything is sent."""
    rows = []
    for i, det in enumerate(result.detections):
        cells = detection_cells(result, i, det)
        rows.append(("detections", schema.detection_key(result.camera_id, result.capture_ts_ms, result.seq, i), cells))
        rows.append(("detections_by_time", schema.time_major_key(result.camera_id, result.capture_ts_ms, result.seq, i),
                     index_cells(result, det)))
    cells = frame_cells(result)
    if written_ms is not None:
        cells.setdefault(b"t:written", _s(written_ms))
    rows.append(("frames", schema.frame_key(result.camera_id, result.capture_ts_ms, result.seq), cells))
    if result.thumbnail:
        rows.append(("live", schema.check_camera_id(result.camera_id).encode(), live_cells(result, written_ms)))
    return rows


def live_cells(result: FrameResult, written_ms: int | None = None) -> dict[bytes, bytes]:
    """The camera's ``argus:live`` row: its newest frame (a small JPEG) and what was found in it."""
    stages = {**result.stages, **({"written": written_ms} if written_ms is not None else {})}
    dets = [{"class_name": d.class_name, "score": round(float(d.score), 4), "box": [round(float(v), 5) for v in d.box]}
            for d in result.detections]
    return {b"l:jpg": result.thumbnail, b"l:ts": _s(result.capture_ts_ms), b"l:seq": _s(result.seq),
            b"l:model": result.model.encode(), b"l:w": _s(result.width), b"l:h": _s(result.height),
            b"l:dets": json.dumps(dets).encode(), b"l:stages": json.dumps(stages).encode()}


def _live(key: bytes, data: dict[bytes, bytes]) -> dict[str, Any]:
    return {"camera_id": key.decode(), "capture_ts_ms": int(data[b"l:ts"]), "seq": int(data[b"l:seq"]),
            "model": data[b"l:model"].decode(), "width": int(data[b"l:w"]), "height": int(data[b"l:h"]),
            "detections": json.loads(data[b"l:dets"]), "stages": json.loads(data[b"l:stages"])}


_LIVE_FACTS = [b"l:ts", b"l:seq", b"l:model", b"l:w", b"l:h", b"l:dets", b"l:stages"]


def _parse(row: dict[bytes, bytes]) -> StoredDetection:
    box = tuple(float(v) for v in row[b"d:box"].split(b","))
    return StoredDetection(
        camera_id=row[b"d:cam"].decode(), capture_ts_ms=int(row[b"d:ts"]), seq=int(row[b"d:seq"]),
        index=int(row[b"d:idx"]), class_id=int(row[b"d:cid"]), class_name=row[b"d:cls"].decode(),
        score=float(row[b"d:score"]), box=box, model=row[b"d:model"].decode(), source=row[b"d:src"].decode(),
        track_id=int(row[b"d:tid"]) if row.get(b"d:tid") else None,
    )


def parse_index_row(key: bytes, row: dict[bytes, bytes]) -> StoredDetection:
    """A ``detections_by_time`` row (key and :func:`index_cells`) as a StoredDetection."""
    camera, ts_ms, seq, index = schema.parse_time_major_key(key)
    score, class_id, box, source, model, class_name = row[b"d:v"].decode().split("|", len(INDEX_FIELDS) - 1)
    return StoredDetection(camera_id=camera, capture_ts_ms=ts_ms, seq=seq, index=index, class_id=int(class_id),
                           class_name=class_name, score=float(score), box=tuple(float(v) for v in box.split(",")),
                           model=model, source=source)


def newest_first(d: StoredDetection) -> tuple:
    """The order of search results: newest capture first, then camera, seq and index (the
    order of the keys within one camera's range, and of ``detections_by_time``'s buckets)."""
    return (-d.capture_ts_ms, d.camera_id, d.seq, d.index)


def merge_newest(streams: Iterable[Iterable[StoredDetection]], limit: int) -> list[StoredDetection]:
    """The ``limit`` newest of several newest-first streams; a stream is read only as far as needed."""
    return list(itertools.islice(heapq.merge(*streams, key=newest_first), max(limit, 0)))


def scan_chunk(limit: int, scans: int) -> int:
    """Rows fetched per round trip by each of ``scans`` range scans merged for ``limit``
    results: a bit over each one's share (so most need one round trip), never over ``limit``."""
    return max(1, min(limit, max(SEARCH_MIN_CHUNK, math.ceil(SEARCH_CHUNK_SLACK * limit / max(scans, 1)))))


def _java_quoted(text: str) -> str:
    """``text`` as a literal in a Java regex (``Pattern.quote``)."""
    return "\\Q" + text.replace("\\E", "\\E\\\\E\\Q") + "\\E"


def index_filter(classes: Sequence[str] | None = None, min_score: float = 0.0) -> str | None:
    """The server-side filter of an all-camera search on ``detections_by_time``'s one cell:
    the score as bytes (it comes first, fixed width), the class by a regex on the last field."""
    parts = []
    if min_score > 0:
        parts.append(f"SingleColumnValueFilter('d', 'v', >=, 'binary:{min_score:.4f}', true, true)")
    if classes:
        fields = r"[^|]*\|" * (len(INDEX_FIELDS) - 1)
        names = "|".join(_java_quoted(c) for c in classes).replace("'", "''")
        parts.append(f"SingleColumnValueFilter('d', 'v', =, 'regexstring:^{fields}(?:{names})$', true, true)")
    return " AND ".join(parts) or None


def search_filter(classes: Sequence[str] | None = None, min_score: float = 0.0) -> str | None:
    """The server-side filter of a search of some cameras on ``detections`` (time is in the
    key ranges): classes, min score."""
    parts = []
    if min_score > 0:
        # scores are stored fixed width (0.1234), so that comparing them as bytes is numeric
        parts.append(f"SingleColumnValueFilter('d', 'score', >=, 'binary:{min_score:.4f}', true, true)")
    if classes:
        names = [c.replace("'", "''") for c in classes]
        parts.append("(" + " OR ".join(
            f"SingleColumnValueFilter('d', 'cls', =, 'binary:{n}', true, true)" for n in names) + ")")
    return " AND ".join(parts) or None


class DetectionStore:
    """Reads and writes Argus's HBase tables through Thrift v1 (happybase, pooled).

    :param host: / :param port: the Thrift v1 server; :param admin_port: the Thrift2 server,
        used only to create missing tables.
    """

    def __init__(self, host: str, port: int = DEFAULT_PORTS["hbase_thrift"], admin_port: int = DEFAULT_PORTS["hbase_thrift2"],
                 pool_size: int = 2, timeout_ms: int = 60_000, admin_host: str | None = None,
                 namespace: str = schema.NAMESPACE):
        """:param admin_host: the Thrift2 server's host; default: ``host``.
        :param namespace: the HBase namespace of the tables (a benchmark's own, say)."""
        self.host, self.port, self.admin_port = host, port, admin_port
        self.admin_host = admin_host or host
        self.namespace = namespace
        self.tables = schema.tables(namespace=namespace)
        self._pool = happybase.ConnectionPool(pool_size, host=host, port=port, timeout=timeout_ms)

    @classmethod
    def from_endpoints(cls, endpoints, **kw) -> DetectionStore:
        """:param endpoints: an :class:`~argus.endpoints.Endpoints`."""
        return cls(endpoints.hbase_host, endpoints.hbase_port, endpoints.hbase_admin_port,
                   admin_host=endpoints.hbase_admin_host, **kw)

    @classmethod
    def from_config(cls, cfg=None, **kw) -> DetectionStore:
        """The local stack's store (:meth:`argus.endpoints.Endpoints.from_config`)."""
        from argus.endpoints import Endpoints

        return cls.from_endpoints(Endpoints.from_config(cfg), **kw)

    def ensure_tables(self) -> list[str]:
        """Create the namespace and any missing table (pre-split, with TTLs); returns those created."""
        with HBaseAdmin(self.admin_host, self.admin_port) as admin:
            return [spec.full_name for spec in self.tables.values() if admin.create_table(spec)]

    def _table(self, conn, name: str):
        return conn.table(self.tables[name].full_name)

    @contextmanager
    def table(self, name: str):
        """One of the Argus tables (``detections``, ``frames``, ``cameras``, ``segments``)
        on a pooled connection."""
        with self._pool.connection() as conn:
            yield self._table(conn, name)

    # ---- writes (idempotent: keys depend only on the frame) ----
    def write(self, results: Iterable[FrameResult], written_ms: int | None = None) -> int:
        """Write frames rows and their detections; returns the number of frames written.
        ``t:written`` is stamped just before the batch is sent unless given."""
        results = list(results)
        if not results:
            return 0
        stamp = written_ms or int(time.time() * 1000)
        rows = [row for r in results for row in result_rows(r, stamp)]
        with self._pool.connection() as conn:
            frames, dets, by_time, live = (self._table(conn, name)
                                           for name in ("frames", "detections", "detections_by_time", "live"))
            # the index goes in the same call as the detections it indexes; a failed batch is
            # retried whole (same keys), so neither is left without the other for long
            with dets.batch(batch_size=1000) as dbatch, by_time.batch(batch_size=1000) as tbatch, \
                    frames.batch(batch_size=1000) as fbatch, live.batch(batch_size=100) as lbatch:
                batches = {"frames": fbatch, "detections": dbatch, "detections_by_time": tbatch, "live": lbatch}
                for table, key, cells in rows:
                    batches[table].put(key, cells)
        return len(results)

    # ---- reads ----
    def search(self, camera: str | None = None, since: int | None = None, until: int | None = None,
               classes: Sequence[str] | None = None, min_score: float = 0.0, limit: int = 100,
               ) -> list[StoredDetection]:
        """Detections newest first: :meth:`search_cameras` of one camera (None: all)."""
        return self.search_cameras([camera] if camera is not None else None, since=since, until=until,
                                   classes=classes, min_score=min_score, limit=limit)

    def frames(self, camera: str, since: int | None = None, until: int | None = None) -> list[dict]:
        """Frames rows of one camera, newest first: stage timestamps and frame facts."""
        start, stop = schema.time_range(camera, since, until)
        with self._pool.connection() as conn:
            rows = self._table(conn, "frames").scan(row_start=start, row_stop=stop)
            return [{"key": key.decode(), **{k.decode(): v.decode() for k, v in data.items()}} for key, data in rows]

    def put_camera(self, camera_id: str, **info) -> None:
        """Write a camera's row of ``argus:cameras`` (``i:<field>`` columns, as text)."""
        schema.check_camera_id(camera_id)
        with self._pool.connection() as conn:
            self._table(conn, "cameras").put(camera_id.encode(), {f"i:{k}".encode(): _s(v) for k, v in info.items()})

    def search_cameras(self, cameras: Sequence[str] | None = None, since: int | None = None,
                       until: int | None = None, classes: Sequence[str] | None = None, min_score: float = 0.0,
                       limit: int = 100) -> list[StoredDetection]:
        """The ``limit`` newest detections of some cameras (None: all), captured in [since,
        until] (ms, inclusive), of ``classes`` and scoring at least ``min_score``.

        With cameras, one range scan of ``detections`` per camera; without, one of each salt
        bucket of ``detections_by_time`` (whatever the number of cameras). Either way each
        scan reads newest first, filters class and score on the server, and is read only as
        far as the merge needs: a page costs about ``limit`` rows, not the table.
        """
        if limit <= 0:
            return []
        if cameras:
            name, parse, filt = "detections", lambda _, data: _parse(data), search_filter(classes, min_score)
            ranges = [schema.time_range(cam, since, until) for cam in dict.fromkeys(cameras)]
        else:
            name, parse, filt = "detections_by_time", parse_index_row, index_filter(classes, min_score)
            ranges = [schema.bucket_time_range(b, since, until) for b in range(schema.SALT_BUCKETS)]
        chunk = scan_chunk(limit, len(ranges))
        with self._pool.connection() as conn:
            table = self._table(conn, name)
            scans = [table.scan(row_start=start, row_stop=stop, filter=filt, columns=[b"d"], limit=limit,
                                batch_size=chunk) for start, stop in ranges]
            try:
                return merge_newest([(parse(key, data) for key, data in scan) for scan in scans], limit)
            finally:
                for scan in scans:  # close the scanners on this connection, before it goes back
                    scan.close()

    def crop(self, camera: str, ts_ms: int, seq: int, index: int) -> bytes | None:
        """The crop JPEG of one detection (``c:jpg``), None if none was stored."""
        with self.table("detections") as table:
            return table.row(schema.detection_key(camera, ts_ms, seq, index), columns=[b"c:jpg"]).get(b"c:jpg")

    def frame(self, camera: str, ts_ms: int, seq: int) -> dict[str, Any] | None:
        """One frame: size, model, stage times and its detections; None if not stored."""
        key = schema.frame_key(camera, ts_ms, seq)
        with self._pool.connection() as conn:
            row = self._table(conn, "frames").row(key)
            if not row:
                return None
            dets = [_parse(data) for _, data in self._table(conn, "detections").scan(
                row_prefix=key + schema.SEP.encode(), columns=[b"d"])]
        stages = {k.decode()[2:]: int(v) for k, v in row.items() if k.startswith(b"t:")}
        return {"camera_id": camera, "capture_ts_ms": ts_ms, "seq": seq, "width": int(row.get(b"f:w", 0)),
                "height": int(row.get(b"f:h", 0)), "model": row.get(b"f:model", b"").decode(),
                "source": row.get(b"f:src", b"").decode(), "stages": stages,
                "detections": sorted((d.to_dict() for d in dets), key=lambda d: d["index"])}

    def latest(self, cameras: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
        """The newest live frame of each camera (None: every camera that has one), without
        its JPEG: capture time, seq, model, size, detections, stage times."""
        with self.table("live") as table:
            if cameras:
                rows = table.rows([schema.check_camera_id(c).encode() for c in cameras], columns=_LIVE_FACTS)
            else:
                rows = table.scan(columns=_LIVE_FACTS)
            return {key.decode(): _live(key, data) for key, data in rows if b"l:ts" in data}

    def live_cameras(self) -> list[str]:
        """The cameras that have a live frame (argus:live, kept a day), in id order: the
        cameras that stream, whether or not ``argus:cameras`` has them."""
        with self.table("live") as table:
            return [key.decode() for key, _ in table.scan(columns=[b"l:ts"], filter=b"KeyOnlyFilter()")]

    def latest_jpeg(self, camera: str) -> bytes | None:
        """The newest live frame of a camera, a small JPEG."""
        with self.table("live") as table:
            return table.row(schema.check_camera_id(camera).encode(), columns=[b"l:jpg"]).get(b"l:jpg")

    def recent_rate(self, camera: str, since_ms: int) -> tuple[float | None, float | None]:
        """(frames/s, median capture -> written latency in ms) of the frames of ``camera``
        captured since ``since_ms``; None where there are too few frames to tell."""
        start, stop = schema.time_range(camera, since_ms, None)
        with self.table("frames") as table:
            rows = [data for _, data in table.scan(row_start=start, row_stop=stop,
                                                    columns=[b"t:captured", b"t:written"])]
        captured = sorted(int(r[b"t:captured"]) for r in rows if b"t:captured" in r)
        latency = [int(r[b"t:written"]) - int(r[b"t:captured"]) for r in rows if b"t:written" in r and b"t:captured" in r]
        fps = (len(captured) - 1) * 1000 / (captured[-1] - captured[0]) if len(captured) > 2 and captured[-1] > captured[0] \
            else None
        return fps, (statistics.median(latency) if latency else None)

    def stage_times(self, camera: str, since_ms: int, until_ms: int) -> list[dict[str, int]]:
        """The stage stamps (stage -> ms) of each frame of ``camera`` captured in [since, until],
        newest first (:mod:`argus.store.latency` makes percentiles and series of them)."""
        start, stop = schema.time_range(camera, since_ms, until_ms)
        with self.table("frames") as table:
            return [{k.decode()[2:]: int(v) for k, v in data.items()}
                    for _, data in table.scan(row_start=start, row_stop=stop,
                                              columns=[f"t:{s}".encode() for s in STAGES])]

    def stage_latencies(self, camera: str, since_ms: int, until_ms: int) -> dict[str, Any]:
        """The frames of ``camera`` captured in [since, until]: how many, frames/s over that
        window, and p50 / p99 (ms) of each stage (``captured->kafka`` ... ``detected->written``)
        and of the whole (``captured->written``); None where no frame has both stamps."""
        return stage_summary(self.stage_times(camera, since_ms, until_ms), since_ms, until_ms)

    def reindex(self, since: int | None = None, until: int | None = None,
                progress: Callable[[int], None] | None = None) -> int:
        """Write ``detections_by_time`` for the detections captured in [since, until] (ms;
        None: all), from ``detections``: detections stored before the index existed are then
        found by an all-camera search too. Idempotent (the index keys depend only on the
        detection). Returns the detections indexed; ``progress`` gets the running count."""
        filt = " AND ".join(f"SingleColumnValueFilter('d', 'ts', {op}, 'binary:{ms:013d}', true, true)"
                            for op, ms in ((">=", since), ("<=", until)) if ms is not None) or None
        done = 0
        with self._pool.connection() as conn:
            source, index = self._table(conn, "detections"), self._table(conn, "detections_by_time")
            with index.batch(batch_size=1000) as batch:
                for _, data in source.scan(columns=[b"d"], filter=filt, batch_size=1000):
                    d = _parse(data)
                    batch.put(schema.time_major_key(d.camera_id, d.capture_ts_ms, d.seq, d.index),
                              {b"d:v": index_value(d.score, d.class_id, d.box, d.source, d.model, d.class_name)})
                    done += 1
                    if progress and done % 10_000 == 0:
                        progress(done)
        return done

    def write_tracks(self, rows: Iterable[dict[str, Any]]) -> int:
        """Record tracked detections (:func:`argus.track.stream.track_camera`'s rows): each
        detection's track id (``d:tid``) and each track's sighting in ``tracks``. Idempotent:
        the cells depend only on the rows. Returns the rows written."""
        rows = list(rows)
        with self._pool.connection() as conn:
            dets, tracks = self._table(conn, "detections"), self._table(conn, "tracks")
            with dets.batch(batch_size=1000) as dbatch, tracks.batch(batch_size=1000) as tbatch:
                for r in rows:
                    ts, seq, tid = int(r["capture_ts_ms"]), int(r["seq"]), int(r["track_id"])
                    dbatch.put(schema.detection_key(r["camera_id"], ts, seq, int(r["index"])), {b"d:tid": _s(tid)})
                    tbatch.put(schema.track_key(r["camera_id"], tid), {
                        b"t:cam": r["camera_id"].encode(), b"t:cls": r["class_name"].encode(),
                        f"p:{ts:013d}".encode(): f"{seq},{int(r['index'])},{r['box']}".encode()})
        return len(rows)

    def tracks(self, camera: str) -> list[dict[str, Any]]:
        """The tracks of a camera, by id: class, first and last seen (ms), and the sightings
        (``[(ms, seq, index, box)]`` in time order)."""
        prefix = schema.camera_prefix(camera)
        out = []
        with self.table("tracks") as table:
            for key, data in table.scan(row_prefix=prefix):
                path = []
                for qualifier, value in sorted(data.items()):
                    if qualifier.startswith(b"p:"):
                        seq, index, box = value.decode().split(",", 2)
                        path.append((int(qualifier[2:]), int(seq), int(index), tuple(float(v) for v in box.split(","))))
                out.append({"track_id": int(key[len(prefix):]), "class_name": data.get(b"t:cls", b"").decode(),
                            "first_ms": path[0][0] if path else None, "last_ms": path[-1][0] if path else None,
                            "path": path})
        return out

    def assign_model(self, camera: str, model: str, by: str) -> None:
        """Give a camera a model (the streaming job's executors pick it up within seconds),
        recording who and when (``i:assigned_model``, ``i:assigned_by``, ``i:assigned_at_ms``)."""
        self.put_camera(camera, assigned_model=model, assigned_by=by, assigned_at_ms=int(time.time() * 1000))

    def assigned_models(self) -> dict[str, str]:
        """Camera -> the model given to it by :meth:`assign_model`."""
        with self.table("cameras") as table:
            return {key.decode(): data[b"i:assigned_model"].decode()
                    for key, data in table.scan(columns=[b"i:assigned_model"]) if data.get(b"i:assigned_model")}

    def user_setting(self, user: str, name: str) -> Any:
        """A console setting of a user (JSON), None if never saved."""
        with self.table("console") as table:
            value = table.row(user.encode(), columns=[f"u:{name}".encode()]).get(f"u:{name}".encode())
        return json.loads(value) if value else None

    def put_user_setting(self, user: str, name: str, value: Any) -> None:
        with self.table("console") as table:
            table.put(user.encode(), {f"u:{name}".encode(): json.dumps(value).encode()})

    def cameras(self) -> dict[str, dict[str, str]]:
        """Every row of ``argus:cameras``: camera id -> its fields, in id order."""
        with self._pool.connection() as conn:
            rows = self._table(conn, "cameras").scan()
            return {key.decode(): {k.decode().removeprefix("i:"): v.decode() for k, v in data.items()}
                    for key, data in rows}
