"""argus bench search's data, query mix and statistics (the timed runs need the stack)."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from argus.bench import search
from argus.store import schema

SPEC = search.LoadSpec(rows=5_000, cameras=12, span_s=6 * 3600, seed=7, end_ms=1_800_000_000_000)


def test_the_synthetic_load_holds_exactly_the_rows_asked_over_its_cameras_and_span():
    frames = list(search.synthetic_frames(SPEC))
    assert sum(len(f.detections) for f in frames) == SPEC.rows
    assert {f.camera_id for f in frames} == set(search.camera_ids(SPEC.cameras))
    assert SPEC.start_ms <= min(f.capture_ts_ms for f in frames) and max(f.capture_ts_ms for f in frames) < SPEC.end_ms
    assert len({(f.camera_id, f.seq) for f in frames}) == len(frames)  # keys never collide
    classes = Counter(d.class_name for f in frames for d in f.detections)
    assert classes.most_common(1)[0][0] == "person" and 0 < classes[search.RARE_CLASS] < SPEC.rows * 0.02
    assert all(0.3 <= d.score < 1 and 0 <= d.box[0] < d.box[2] <= 1 and 0 <= d.box[1] < d.box[3] <= 1
               for f in frames for d in f.detections)


def test_the_same_spec_makes_the_same_rows_so_a_reload_rewrites_them():
    first, again = list(search.synthetic_frames(SPEC)), list(search.synthetic_frames(SPEC))
    assert first == again


def test_a_manifest_is_reused_only_for_the_same_data():
    manifest = SPEC.manifest()
    later = search.LoadSpec(SPEC.rows, SPEC.cameras, SPEC.span_s, SPEC.seed, SPEC.end_ms + 86400_000)
    assert later.same_data(manifest)  # another run's "now": same data
    assert not search.LoadSpec(SPEC.rows + 1, SPEC.cameras, SPEC.span_s, SPEC.seed, SPEC.end_ms).same_data(manifest)
    assert not SPEC.same_data(None) and not SPEC.same_data({**manifest, "generator": 0})


def test_the_query_mix_has_every_kind_repeated_shuffled_and_within_the_console_limits():
    mix = search.query_mix(SPEC, repeats=4, seed=1)
    assert Counter(q.kind for q in mix) == {kind: 4 for kind in search.QUERY_KINDS}
    assert [q.kind for q in mix] != sorted(q.kind for q in mix)
    assert mix == search.query_mix(SPEC, repeats=4, seed=1)
    for q in mix:
        assert q.page_size <= 200 and q.depth <= search.MAX_DEPTH
        assert set(q.cameras or ()) <= set(search.camera_ids(SPEC.cameras))
        if q.since is not None:
            assert SPEC.start_ms <= q.since < q.until <= SPEC.start_ms + SPEC.span_s * 1000 // 2
    deep = next(q for q in mix if q.kind == "deep_page")
    assert deep.depth == search.MAX_DEPTH
    with pytest.raises(ValueError, match="unknown query kind"):
        search.make_query("everything", random.Random(), SPEC)


def test_a_query_runs_as_the_console_does_depth_plus_one_then_the_page():
    calls = []

    class Store:
        def search_cameras(self, cameras, **kw):
            calls.append((cameras, kw))
            return list(range(kw["limit"]))

    q = search.Query("deep_page", classes=("car",), page=2, page_size=10)
    assert q.run(Store()) == list(range(20, 30))
    assert calls == [(None, {"since": None, "until": None, "classes": ["car"], "min_score": 0.0, "limit": 31})]


def test_latency_statistics_are_numpys_linear_percentiles():
    stats = search.latency_stats([float(v) for v in range(1, 101)])
    assert stats == {"n": 100, "mean_ms": 50.5, "p50_ms": 50.5, "p95_ms": 95.0, "p99_ms": 99.0}
    assert search.latency_stats([])["p95_ms"] is None
    timings = search.Timings()
    for ms, kind in ((10.0, "a"), (30.0, "a"), (100.0, "b")):
        timings.add(kind, ms, 50)
    summary = timings.summary()
    assert summary["by_kind"]["a"]["p50_ms"] == 20.0 and summary["by_kind"]["b"]["results_mean"] == 50
    assert summary["overall"]["n"] == 3 and summary["overall"]["p50_ms"] == 30.0


def test_warm_up_queries_are_not_counted():
    class Store:
        def search_cameras(self, cameras, **kw):
            return []

    mix = search.query_mix(SPEC, repeats=3, seed=2)
    timings = search.time_queries(Store(), mix, warmup=1)
    assert {kind: len(ms) for kind, ms in timings.ms.items()} == {kind: 2 for kind in search.QUERY_KINDS}


@pytest.mark.parametrize("namespace", [schema.NAMESPACE, "default", "argus_prod"])
def test_the_bench_refuses_a_namespace_that_is_not_its_own(namespace):
    with pytest.raises(ValueError, match="its own namespace"):
        search.bench_search(10, 2, namespace=namespace, store_factory=lambda ns: pytest.fail("no store"))


class FakeJmx:
    """A region server whose memstores hold ``memstore`` bytes of a 1000-byte heap, of
    which ``used`` bytes are in use: one (memstore, used) pair per reading."""

    def __init__(self, readings):
        self.readings = list(readings)

    def bean(self, host, name):
        memstore, used = self.readings[0]
        if name == search.MEMORY_BEAN:
            self.readings.pop(0)
            return {"HeapMemoryUsage": {"max": 1000, "used": used}}
        return {"memStoreHeapSize": memstore}


def test_the_load_waits_while_hbase_flushes_or_collects_and_gives_up_rather_than_overrun_it():
    now, slept = [0.0], []

    def sleep(s):
        slept.append(s)
        now[0] += s

    guard = search.MemstoreGuard(FakeJmx([(295, 500), (291, 500), (100, 960), (100, 900)]), "rs", sleep=sleep,
                                 clock=lambda: now[0])
    guard.wait()
    assert slept == [1.0, 1.0, 1.0] and guard.waited_s == 3.0
    guard = search.MemstoreGuard(FakeJmx([(100, 500)]), "rs", sleep=sleep, clock=lambda: now[0])
    guard.wait()  # below both: no wait
    stuck = search.MemstoreGuard(FakeJmx([(299, 500)] * 1000), "rs", sleep=sleep, clock=lambda: now[0])
    with pytest.raises(RuntimeError, match="stayed at 30% of its heap"):
        stuck.wait()


class FakeStore:
    """What ensure_loaded uses of a DetectionStore, in memory; ``fail_after`` writes, it fails."""

    namespace = "argus_bench_x"
    tables = {"console": "argus_bench_x:console"}

    def __init__(self, fail_after=None):
        self.settings, self.rows, self.writes, self.fail_after, self.created = {}, {}, 0, fail_after, 0

    def user_setting(self, user, name):
        return self.settings.get((user, name))

    def put_user_setting(self, user, name, value):
        self.settings[(user, name)] = value

    def ensure_tables(self):
        self.created += 1

    def write(self, results, written_ms=None):
        if self.fail_after is not None and self.writes >= self.fail_after:
            raise ConnectionError("Thrift server gone")
        self.writes += 1
        for r in results:
            for i, d in enumerate(r.detections):
                self.rows[(r.camera_id, r.capture_ts_ms, r.seq, i)] = d


class FakeAdmin:
    def __init__(self, store):
        self.store = store

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def table_exists(self, name):
        return bool(self.store.settings)

    def delete_namespace(self, name):
        self.store.settings.clear()
        self.store.rows.clear()


def test_a_load_cut_short_resumes_where_it_recorded_and_a_complete_one_is_reused(monkeypatch):
    monkeypatch.setattr(search, "LOAD_FRAMES_PER_WRITE", 50)
    monkeypatch.setattr(search, "PROGRESS_EVERY_WRITES", 3)
    monkeypatch.setattr(search, "WRITE_RETRIES", 0)
    spec = search.LoadSpec(rows=2_000, cameras=5, span_s=3600, seed=4, end_ms=1_800_000_000_000)
    store = FakeStore(fail_after=10)
    with pytest.raises(ConnectionError):
        search.ensure_loaded(store, spec, lambda: FakeAdmin(store))
    manifest = store.settings[(search.MANIFEST_USER, search.MANIFEST_SETTING)]
    assert manifest["complete"] is False and 0 < manifest["loaded"] < spec.rows
    store.fail_after = None
    later = search.LoadSpec(spec.rows, spec.cameras, spec.span_s, spec.seed, spec.end_ms + 60_000)
    done = search.ensure_loaded(store, later, lambda: FakeAdmin(store))
    assert done["resumed_from"] == manifest["loaded"] and done["end_ms"] == spec.end_ms  # the first run's frames
    assert len(store.rows) == spec.rows and store.created == 1
    again = search.ensure_loaded(store, later, lambda: FakeAdmin(store))
    assert again["reused"] is True and again["end_ms"] == spec.end_ms
    other = search.ensure_loaded(store, search.LoadSpec(500, 5, 3600, 4, spec.end_ms), lambda: FakeAdmin(store))
    assert other["reused"] is False and len(store.rows) == 500 and store.created == 2  # other data: a clean load
