"""The console's search against the real HBase: every camera through ``detections_by_time``,
some through ``detections``, both exactly the newest-first answer of a brute-force reference;
and ``argus bench search`` end to end on a few rows.

Each test writes into a namespace of its own (dropped at the end), so that the rows of a
running pipeline in ``argus`` neither join the answers nor are touched.
"""

from __future__ import annotations

import json
import random

import pytest

from argus.cli.main import main
from argus.detect import Detection
from argus.store import DetectionStore, FrameResult
from argus.store.admin import HBaseAdmin
from argus.store.detections import _parse, detection_cells, newest_first

T0 = 1_790_000_000_000
CLASSES = ("person", "car", "dog", "bus")


@pytest.fixture(scope="module")
def hbase(stack, cfg):
    """The session's stack (started once for every integration test)."""
    return cfg


@pytest.fixture
def namespace(hbase, unique):
    name = f"argus_bench_it{unique}"
    yield name
    with HBaseAdmin(hbase.host, hbase.port("hbase_thrift2")) as admin:
        admin.delete_namespace(name)
        admin.delete_namespace(name + "_sample")


def frames(cameras: list[str], per_camera: int, seed: int = 5) -> list[FrameResult]:
    """Frames of several cameras, interleaved in time, some at the same instant, 0-3 detections each."""
    rng = random.Random(seed)
    out = []
    for c, cam in enumerate(cameras):
        for seq in range(per_camera):
            ts = T0 + seq * 1000 + (0 if seq % 4 == 0 else c * 37)  # every 4th frame: all cameras at once
            dets = [Detection(i, rng.choice(CLASSES), round(rng.uniform(0.3, 0.99), 4),
                              (rng.uniform(0, 0.4), rng.uniform(0, 0.4), rng.uniform(0.5, 1), rng.uniform(0.5, 1)))
                    for i in range(rng.choice((0, 1, 2, 3)))]
            out.append(FrameResult(cam, ts, seq, 640, 480, "ssdlite-person", dets))
    return out


def reference(results, cameras=None, since=None, until=None, classes=None, min_score=0.0, limit=100):
    """What a search must answer, from the written frames alone (as stored: rounded)."""
    every = [_parse(detection_cells(r, i, d)) for r in results for i, d in enumerate(r.detections)]
    kept = [d for d in every if (not cameras or d.camera_id in cameras)
            and (since is None or d.capture_ts_ms >= since) and (until is None or d.capture_ts_ms <= until)
            and (not classes or d.class_name in classes) and d.score >= min_score]
    return sorted(kept, key=newest_first)[:limit]


def test_search_over_every_camera_or_some_is_exactly_the_brute_force_answer(hbase, namespace):
    store = DetectionStore.from_config(hbase, namespace=namespace)
    store.ensure_tables()
    cameras = [f"it-cam-{i}" for i in range(12)] + ["it-cam-1-b"]  # one id the prefix of another
    results = frames(cameras, 30)
    store.write(results)
    store.write(results[:40])  # a replayed micro-batch: the same keys, nothing doubled

    total = sum(len(r.detections) for r in results)
    assert store.search_cameras(None, limit=10_000) == reference(results, limit=10_000)
    assert len(store.search_cameras(None, limit=10_000)) == total
    queries = [
        {}, {"limit": 1}, {"limit": 7},
        {"since": T0 + 5_000, "until": T0 + 12_000}, {"since": T0 + 5_000}, {"until": T0 + 3_000},
        {"since": T0 + 8_000, "until": T0 + 8_000},  # one instant, every camera
        {"classes": ["dog"]}, {"classes": ["dog", "bus"], "min_score": 0.6}, {"min_score": 0.9},
        {"classes": ["car"], "since": T0 + 2_000, "until": T0 + 20_000, "min_score": 0.5, "limit": 13},
        {"classes": ["nothing-like-it"]}, {"since": T0 + 10**9},
    ]
    for kw in queries:
        for cams in (None, ["it-cam-3"], ["it-cam-1", "it-cam-1-b", "it-cam-7", "it-cam-3"]):
            assert store.search_cameras(cams, **kw) == reference(results, cams, **kw), (cams, kw)
    assert store.search(camera="it-cam-3", limit=5) == reference(results, ["it-cam-3"], limit=5)

    # paging as the console does: depth + 1 newest, then the page; pages tile the answer
    page_size, pages = 9, []
    for page in range(5):
        depth = (page + 1) * page_size
        found = store.search_cameras(None, classes=["person", "car"], limit=depth + 1)
        pages += found[page * page_size:depth]
    assert pages == reference(results, classes=["person", "car"], limit=5 * page_size)


def test_bench_search_loads_once_reuses_and_reports_every_query_kind(hbase, namespace, tmp_path, capsys):
    from argus.bench.search import QUERY_KINDS

    args = ["bench", "search", "--rows", "3000", "--cameras", "8", "--span-hours", "2", "--repeats", "2",
            "--baseline-rows", "400", "--baseline-repeats", "1", "--namespace", namespace]
    assert main([*args, "--json", str(tmp_path / "first.json")]) == 0
    assert main([*args, "--drop", "--json", str(tmp_path / "second.json")]) == 0
    capsys.readouterr()
    first, second = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("first", "second"))
    assert first["data"]["reused"] is False and first["data"]["rows_per_s"] > 0
    assert second["data"]["reused"] is True and second["kept"] is False
    for result in (first, second):
        assert result["rows"] == 3000 and result["namespace"] == namespace
        assert set(result["queries"]) == set(QUERY_KINDS)
        for stats in result["queries"].values():
            assert stats["n"] == 1 and {"p50_ms", "p95_ms", "p99_ms", "results_mean"} <= set(stats)
        assert result["overall"]["n"] == len(QUERY_KINDS)
        assert isinstance(result["meets_target"], bool) and result["target_p95_ms"] == 300
        assert result["queries"]["newest_all"]["results_mean"] == 50
        baseline = result["baseline"]
        assert baseline["rows"] == 400 and baseline["same_results"] is True
        assert {"old_full_scan", "new_index", "speedup_p50"} <= set(baseline)
    with HBaseAdmin(hbase.host, hbase.port("hbase_thrift2")) as admin:
        assert not admin.namespace_exists(namespace) and not admin.namespace_exists(namespace + "_sample")


def test_reindex_makes_detections_stored_before_the_index_searchable_over_every_camera(hbase, namespace):
    """Detections written as before detections_by_time existed (the detections rows alone)
    are not found by an all-camera search until ``reindex``; then exactly as written, and a
    second reindex changes nothing."""
    from argus.store import schema

    store = DetectionStore.from_config(hbase, namespace=namespace)
    store.ensure_tables()
    results = frames([f"old-cam-{i}" for i in range(3)], 10, seed=9)
    with store.table("detections") as table, table.batch() as batch:
        for r in results:
            for i, det in enumerate(r.detections):
                batch.put(schema.detection_key(r.camera_id, r.capture_ts_ms, r.seq, i), detection_cells(r, i, det))
    total = sum(len(r.detections) for r in results)
    assert total > 5 and store.search_cameras(None, limit=1000) == []
    assert store.reindex(since=T0 + 3_000) == len([d for d in reference(results, limit=1000)
                                                   if d.capture_ts_ms >= T0 + 3_000])
    assert store.reindex() == total and store.reindex() == total
    assert store.search_cameras(None, limit=1000) == reference(results, limit=1000)
