"""argus bench pipeline's parameters, refused before anything runs, and how it waits for the
job (no stack needed)."""

from __future__ import annotations

import json

import pytest


@pytest.mark.parametrize("task_cpus", [0, 3])
def test_bench_pipeline_refuses_task_cpus_outside_the_executor(task_cpus):
    from argus.bench.live import bench_pipeline

    with pytest.raises(ValueError, match="task cpus must be 1..2"):
        bench_pipeline(3, 2.0, 30, cores_per_executor=2, task_cpus=task_cpus)


def _batch(batch_id, **counts):
    return "ARGUS_BATCH " + json.dumps({"batch": batch_id, **counts, "collect_ms": 100})


def test_settled_records_add_up_the_drivers_stored_and_dead_lettered_counts():
    from argus.bench.live import settled_records

    log = "\n".join(["spark noise", _batch(0, stored=20, dead_letter=2), "ARGUS_BATCH {truncated",
                     "ARGUS_PROGRESS {\"batch\": 1, \"rows\": 9}", _batch(1, stored=9), _batch(2)])
    assert settled_records(log) == 31
    assert settled_records("") == 0


class _Job:
    def __init__(self, log_path, alive=True):
        self.log_path, self.alive = log_path, alive

    def log_tail(self):
        return self.log_path.read_text()


class _Store:
    """Counts the scans: the wait must not scan HBase until the driver says the frames are done."""

    def __init__(self, rows, settled=lambda: True):
        self.rows, self.settled, self.scans = rows, settled, 0

    def frames(self, camera):
        assert self.settled(), "scanned HBase while the job was still working"
        self.scans += 1
        return [r for r in self.rows if r["camera"] == camera]


def test_the_wait_reads_hbase_only_once_the_driver_has_settled_the_frames(tmp_path, monkeypatch):
    from argus.bench import live as pipeline

    monkeypatch.setattr(pipeline.time, "sleep", lambda s: log.write_text(log.read_text() + _batch(1, stored=3)))
    log = tmp_path / "job.log"
    log.write_text("an earlier query's line\n" + _batch(0, stored=99) + "\n")
    start = log.stat().st_size
    store = _Store([{"camera": "a"}, {"camera": "b"}, {"camera": "a"}],
                   settled=lambda: pipeline.settled_records(log.read_text()[start:]) >= 3)
    rows = pipeline._wait_stored(store, ["a", "b"], 3, _Job(log), timeout=30, log_from=start)
    assert len(rows) == 3
    assert store.scans == 2  # one read of each camera, after the count reached 3


def test_the_wait_gives_up_with_the_log_when_the_job_dies(tmp_path):
    from argus.bench import live as pipeline

    log = tmp_path / "job.log"
    log.write_text("Traceback: boom\n")
    with pytest.raises(RuntimeError, match="boom"):
        pipeline._wait_stored(_Store([]), ["a"], 1, _Job(log, alive=False), timeout=30)


def test_out_of_time_the_wait_returns_what_is_stored(tmp_path, monkeypatch):
    from argus.bench import live as pipeline

    clock = iter(range(0, 1000, 10))
    monkeypatch.setattr(pipeline.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(pipeline.time, "sleep", lambda s: None)
    log = tmp_path / "job.log"
    log.write_text(_batch(0, stored=1) + "\n")
    rows = pipeline._wait_stored(_Store([{"camera": "a"}]), ["a"], 3, _Job(log), timeout=30)
    assert rows == [{"camera": "a"}]


def test_image_bytes_are_the_crops_of_a_frames_detections_and_its_share_of_the_live_frames():
    from contextlib import contextmanager

    from argus.bench.live import image_bytes

    class Store:
        rows = {"cam-a": [{b"d:cls": b"person", b"c:jpg": b"x" * 3000}, {b"d:cls": b"person", b"c:jpg": b"x" * 1000},
                          {b"d:cls": b"face"}],  # a detection stored without its crop
                "cam-b": [{b"d:cls": b"person", b"c:jpg": b"x" * 2000}]}

        @contextmanager
        def table(self, name):
            assert name == "detections"
            store = self

            class Table:
                def scan(self, row_start, row_stop, columns):
                    camera = next(c for c in store.rows if row_start.startswith(schema.camera_prefix(c)))
                    return [(b"k", row) for row in store.rows[camera]]
            yield Table()

        def latest_jpeg(self, camera):
            return b"x" * 40_000 if camera == "cam-a" else None

    from argus.store import schema

    out = image_bytes(Store(), ["cam-a", "cam-b"], frames=60, seconds=10)
    assert out["detections_per_frame"] == round(4 / 60, 3) and out["crops"] == 3
    assert out["crop_bytes_mean"] == 2000 and out["crop_bytes_per_frame"] == 100
    # two cameras, 10 s: at most 20 live frames written for the 60 stored
    assert out["live_jpeg_bytes_mean"] == 40_000 and out["live_bytes_per_frame"] == round(40_000 * 20 / 60, 1)
    assert out["image_bytes_per_frame"] == round(100 + 40_000 * 20 / 60, 1)
