"""``DetectionStore``: detections and per-frame stage timestamps in HBase, and search."""

from __future__ import annotations

import heapq
import time
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import happybase

from argus.detect.types import Detection
from argus.config import DEFAULT_PORTS
from argus.store import schema
from argus.store.admin import HBaseAdmin

STAGES = ("captured", "kafka", "read", "detected", "written")


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


def result_rows(result: FrameResult, written_ms: int | None = None) -> list[tuple[str, bytes, dict[bytes, bytes]]]:
    """Every row one frame writes, as (table, row key, cells): its detections, then its frame
    row. Pure: a frame whose rows cannot be built (a camera id or time the keys cannot hold)
    raises ValueError here, before anything is sent."""
    rows = [("detections", schema.detection_key(result.camera_id, result.capture_ts_ms, result.seq, i),
             detection_cells(result, i, det)) for i, det in enumerate(result.detections)]
    cells = frame_cells(result)
    if written_ms is not None:
        cells.setdefault(b"t:written", _s(written_ms))
    rows.append(("frames", schema.frame_key(result.camera_id, result.capture_ts_ms, result.seq), cells))
    return rows


def _parse(row: dict[bytes, bytes]) -> StoredDetection:
    box = tuple(float(v) for v in row[b"d:box"].split(b","))
    return StoredDetection(
        camera_id=row[b"d:cam"].decode(), capture_ts_ms=int(row[b"d:ts"]), seq=int(row[b"d:seq"]),
        index=int(row[b"d:idx"]), class_id=int(row[b"d:cid"]), class_name=row[b"d:cls"].decode(),
        score=float(row[b"d:score"]), box=box, model=row[b"d:model"].decode(), source=row[b"d:src"].decode(),
    )


class DetectionStore:
    """Reads and writes Argus's HBase tables through Thrift v1 (happybase, pooled).

    :param host: / :param port: the Thrift v1 server; :param admin_port: the Thrift2 server,
        used only to create missing tables.
    """

    def __init__(self, host: str, port: int = DEFAULT_PORTS["hbase_thrift"], admin_port: int = DEFAULT_PORTS["hbase_thrift2"],
                 pool_size: int = 2, timeout_ms: int = 60_000, admin_host: str | None = None):
        """:param admin_host: the Thrift2 server's host; default: ``host``."""
        self.host, self.port, self.admin_port = host, port, admin_port
        self.admin_host = admin_host or host
        self.tables = schema.tables()
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
            frames, dets = self._table(conn, "frames"), self._table(conn, "detections")
            with dets.batch(batch_size=1000) as dbatch, frames.batch(batch_size=1000) as fbatch:
                batches = {"frames": fbatch, "detections": dbatch}
                for table, key, cells in rows:
                    batches[table].put(key, cells)
        return len(results)

    # ---- reads ----
    def search(self, camera: str | None = None, since: int | None = None, until: int | None = None,
               classes: Sequence[str] | None = None, min_score: float = 0.0, limit: int = 100,
               ) -> list[StoredDetection]:
        """Detections newest first. ``since``/``until`` are capture times in ms (inclusive).
        With a camera this is one range scan; without, every salt bucket is scanned with a
        server-side time filter and the results merged."""
        if limit <= 0:
            return []
        filt = self._filter(since, until, classes, min_score)
        with self._pool.connection() as conn:
            table = self._table(conn, "detections")
            if camera is not None:
                start, stop = schema.time_range(camera, since, until)
                rows = table.scan(row_start=start, row_stop=stop, filter=filt, columns=[b"d"], limit=limit)
                return [_parse(data) for _, data in rows]
            buckets = []
            for b in range(schema.SALT_BUCKETS):
                prefix = f"{b:02x}{schema.SEP}".encode()
                rows = table.scan(row_prefix=prefix, filter=filt, columns=[b"d"])
                buckets.append([_parse(data) for _, data in rows])
        merged = heapq.merge(*[sorted(b, key=lambda d: (-d.capture_ts_ms, d.camera_id, d.seq, d.index))
                               for b in buckets], key=lambda d: (-d.capture_ts_ms, d.camera_id, d.seq, d.index))
        return [d for _, d in zip(range(limit), merged)]

    @staticmethod
    def _filter(since, until, classes, min_score) -> str | None:
        parts = []
        if since is not None:
            parts.append(f"SingleColumnValueFilter('d', 'ts', >=, 'binary:{since:013d}', true, true)")
        if until is not None:
            parts.append(f"SingleColumnValueFilter('d', 'ts', <=, 'binary:{until:013d}', true, true)")
        if min_score > 0:
            parts.append(f"SingleColumnValueFilter('d', 'score', >=, 'binary:{min_score:.4f}', true, true)")
        if classes:
            names = [c.replace("'", "''") for c in classes]
            parts.append("(" + " OR ".join(
                f"SingleColumnValueFilter('d', 'cls', =, 'binary:{n}', true, true)" for n in names) + ")")
        return " AND ".join(parts) or None

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

    def cameras(self) -> dict[str, dict[str, str]]:
        """Every row of ``argus:cameras``: camera id -> its fields, in id order."""
        with self._pool.connection() as conn:
            rows = self._table(conn, "cameras").scan()
            return {key.decode(): {k.decode().removeprefix("i:"): v.decode() for k, v in data.items()}
                    for key, data in rows}
