"""``argus bench search``: the console's search over a million detection rows, timed.

Synthetic detections (realistic classes, scores and boxes, a few per frame, the cameras'
frames interleaved over a time span) are written through :meth:`DetectionStore.write`, the
pipeline's own path, so that ``detections_by_time`` is filled as in production, into a
namespace of their own (``argus_bench``): the real tables are never touched. A manifest row
(the ``console`` table of that namespace, written once the load is complete) records what
was loaded, so that a second run with the same settings reuses the data instead of loading
it again. Then :meth:`DetectionStore.search_cameras`, the path of the console's
``/api/search``, is timed with the console's page sizes over a mix of queries
(:data:`QUERY_KINDS`), interleaved so that the machine's drift spreads over all of them.

Side by side, on a smaller sample in a second namespace (``argus_bench_sample``), the
search before ``detections_by_time`` (every salt bucket of ``detections`` scanned in full,
merged in Python: :func:`full_scan_search`) and the new one answer the newest page over
all cameras; the ratio of their medians is the gain, measured in one run, and the two must
return the same detections.
"""

from __future__ import annotations

import heapq
import os
import platform
import random
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from argus.detect.types import Detection
from argus.store import schema
from argus.store.admin import HBaseAdmin
from argus.store.detections import DetectionStore, FrameResult, StoredDetection, _parse, newest_first
from argus.store.maintenance import RegionServerJmx

BENCH_NAMESPACE = "argus_bench"
#: the sample's namespace is the bench's with this suffix
SAMPLE_SUFFIX = "_sample"
#: where the manifest of a complete load is kept: a console setting of this pseudo-user
MANIFEST_USER, MANIFEST_SETTING = "argus-bench", "search-load"
#: bump when the generator or the rows' format changes, so that older data is reloaded
GENERATOR_VERSION = 2
#: the issue's acceptance: a search page answers in p95 <= 300 ms over >= 10^6 rows
TARGET_P95_MS = 300.0
#: the console's page size (its search page) and its deepest page (``MAX_SEARCH_DEPTH``)
PAGE_SIZE, MAX_DEPTH = 50, 5000
#: (class name, class id, share of the detections, typical box width, height)
CLASSES = (("person", 0, 0.45, 0.08, 0.25), ("car", 2, 0.22, 0.18, 0.12), ("face", 0, 0.12, 0.04, 0.06),
           ("truck", 7, 0.06, 0.25, 0.2), ("bicycle", 1, 0.05, 0.08, 0.1), ("motorcycle", 3, 0.04, 0.08, 0.1),
           ("bus", 5, 0.03, 0.3, 0.25), ("dog", 16, 0.025, 0.06, 0.06), ("bear", 21, 0.005, 0.15, 0.15))
#: the rare class of the query mix (one detection in 200)
RARE_CLASS = "bear"
#: detections per frame, drawn uniformly (mean 2.2)
DETECTIONS_PER_FRAME = (1, 1, 2, 2, 3, 4)
MODEL, WIDTH, HEIGHT = "bench-synthetic", 1280, 720
#: frames written per DetectionStore.write call while loading (one Thrift batch per table)
LOAD_FRAMES_PER_WRITE = 1000
#: the load waits while the region server's memstores hold this share of its heap: between
#: the share where HBase starts flushing (0.95 of the stack's
#: ``hbase.regionserver.global.memstore.size``, 0.3) and the one where it blocks writes, so
#: that HBase flushes while the load's batches wait here instead of in its call queue (an
#: all-in-one HBase shares one heap: a bulk load once ran it out of memory). Below 0.285
#: it would wait for a flush that never comes.
MEMSTORE_PAUSE_SHARE = 0.29
#: ... or while its heap is this full. Not lower: "used" counts garbage not yet collected,
#: and a load paused at 0.85 waited for a collection that an idle HBase put off (900 rows/s)
HEAP_PAUSE_SHARE = 0.95
#: a load records how far it got every this many writes, so that one cut short resumes there
PROGRESS_EVERY_WRITES = 40
#: a write that fails (a Thrift server restarted under the load, say) is retried this often, 5 s apart
WRITE_RETRIES = 24
#: how long the load waits for the memstores to be flushed before it gives up
MEMSTORE_WAIT_S = 300.0
SERVER_BEAN, MEMORY_BEAN = "Hadoop:service=HBase,name=RegionServer,sub=Server", "java.lang:type=Memory"


@dataclass(frozen=True)
class LoadSpec:
    """What ``argus bench search`` loads: ``rows`` detections over ``cameras`` cameras whose
    frames are spread evenly over the ``span_s`` seconds that end at ``end_ms``."""

    rows: int
    cameras: int
    span_s: int
    seed: int
    end_ms: int

    def manifest(self) -> dict:
        return {"rows": self.rows, "cameras": self.cameras, "span_s": self.span_s, "seed": self.seed,
                "end_ms": self.end_ms, "generator": GENERATOR_VERSION}

    def same_data(self, manifest: dict | None) -> bool:
        """Whether ``manifest`` records a load of the same data (any end time, complete or not)."""
        mine = self.manifest()
        return bool(manifest) and all(manifest.get(k) == mine[k] for k in mine if k != "end_ms")

    @property
    def start_ms(self) -> int:
        return self.end_ms - self.span_s * 1000


def camera_ids(n: int) -> list[str]:
    return [f"bench-cam-{i:04d}" for i in range(n)]


def synthetic_frames(spec: LoadSpec) -> Iterator[FrameResult]:
    """The frames of the load, oldest first, holding exactly ``spec.rows`` detections.
    Deterministic (seeded): the same spec makes the same rows, so reloading rewrites them."""
    rng = random.Random(spec.seed)
    cams = camera_ids(spec.cameras)
    mean_per_frame = sum(DETECTIONS_PER_FRAME) / len(DETECTIONS_PER_FRAME)
    step_ms = spec.span_s * 1000 * mean_per_frame / max(spec.rows, 1)
    names, weights = [c[0] for c in CLASSES], [c[2] for c in CLASSES]
    facts = {c[0]: c for c in CLASSES}
    left, frame = spec.rows, 0
    while left > 0:
        n = min(left, rng.choice(DETECTIONS_PER_FRAME))
        dets = []
        for name in rng.choices(names, weights, k=n):
            _, cid, _, w, h = facts[name]
            w, h = min(0.9, w * rng.uniform(0.5, 1.6)), min(0.9, h * rng.uniform(0.5, 1.6))
            x, y = rng.uniform(0, 1 - w), rng.uniform(0, 1 - h)
            score = round(0.3 + 0.7 * rng.betavariate(2.5, 1.5), 4)  # above a 0.3 threshold, most high
            dets.append(Detection(cid, name, min(score, 0.9999), (x, y, x + w, y + h)))
        ts = spec.start_ms + int(frame * step_ms)
        cam = cams[frame % spec.cameras]
        yield FrameResult(cam, ts, frame // spec.cameras, WIDTH, HEIGHT, MODEL, dets, stages={"captured": ts})
        left -= n
        frame += 1


def _manifest(store: DetectionStore, admin_factory: Callable[[], HBaseAdmin]) -> dict | None:
    """The manifest of the load in ``store``'s namespace, None if there is none."""
    with admin_factory() as admin:
        if not admin.table_exists(store.tables["console"]):
            return None
    return store.user_setting(MANIFEST_USER, MANIFEST_SETTING)


class MemstoreGuard:
    """Holds a bulk load back while the region server's memstores are near its flush limit,
    so that the load never runs a shared HBase out of memory (its /jmx; one region server).

    :param jmx: the region servers' /jmx; :param host: the region server.
    :param sleep: / :param clock: injectable for tests.
    """

    def __init__(self, jmx: RegionServerJmx, host: str, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic):
        self.jmx, self.host, self.sleep, self.clock = jmx, host, sleep, clock
        self.waited_s = 0.0

    def shares(self) -> tuple[float, float]:
        """(memstore heap, heap used) / the JVM's max heap."""
        server = self.jmx.bean(self.host, SERVER_BEAN)
        heap = self.jmx.bean(self.host, MEMORY_BEAN)["HeapMemoryUsage"]
        return server["memStoreHeapSize"] / heap["max"], heap["used"] / heap["max"]

    def wait(self) -> None:
        """Return once the memstores are below :data:`MEMSTORE_PAUSE_SHARE` of the heap and
        the heap below :data:`HEAP_PAUSE_SHARE`; RuntimeError if not within :data:`MEMSTORE_WAIT_S`."""
        start = self.clock()
        while True:
            memstore, used = self.shares()
            if memstore < MEMSTORE_PAUSE_SHARE and used < HEAP_PAUSE_SHARE:
                return
            if self.clock() - start > MEMSTORE_WAIT_S:
                raise RuntimeError(f"HBase's memstores stayed at {memstore:.0%} of its heap ({used:.0%} used) for "
                                   f"{MEMSTORE_WAIT_S:.0f} s; the load stopped rather than run it out of memory")
            self.sleep(1.0)
            self.waited_s += 1.0


def _write_retrying(store: DetectionStore, batch: list[FrameResult], written_ms: int,
                    sleep: Callable[[float], None] = time.sleep) -> None:
    """``store.write``, retried: the keys depend only on the frames, so a retry rewrites the same cells."""
    for attempt in range(WRITE_RETRIES + 1):
        try:
            store.write(batch, written_ms=written_ms)
            return
        except Exception as exc:  # noqa: BLE001 - Thrift, socket or HBase errors alike; re-raised at the end
            if attempt == WRITE_RETRIES:
                raise
            print(f"write failed ({type(exc).__name__}: {str(exc)[:120]}); retrying in 5 s", file=sys.stderr, flush=True)
            sleep(5.0)


def ensure_loaded(store: DetectionStore, spec: LoadSpec, admin_factory: Callable[[], HBaseAdmin],
                  guard: MemstoreGuard | None = None) -> dict:
    """Load ``spec``'s rows into ``store``'s namespace unless a complete load of the same
    data is there already; a load of the same data cut short resumes where it recorded it
    got to (with its own end time). Returns what was done (``reused``, ``resumed_from``,
    ``load_s``, ``rows_per_s``) and ``end_ms``, the end time of the data in the tables."""
    found = _manifest(store, admin_factory)
    if spec.same_data(found) and found.get("complete"):
        return {"reused": True, "resumed_from": None, "load_s": None, "rows_per_s": None, "end_ms": found["end_ms"]}
    skip = 0
    if spec.same_data(found):  # cut short: the same frames (same end time), from where it got to
        spec, skip = LoadSpec(spec.rows, spec.cameras, spec.span_s, spec.seed, found["end_ms"]), found["loaded"]
    batch: list[FrameResult] = []
    written = reported = writes = 0

    def progress(complete: bool) -> None:
        loaded = max(skip, written - sum(len(r.detections) for r in batch))
        store.put_user_setting(MANIFEST_USER, MANIFEST_SETTING, {**spec.manifest(), "loaded": loaded, "complete": complete})

    if not spec.same_data(found):  # another load, or none: start clean, not on top of it
        with admin_factory() as admin:
            admin.delete_namespace(store.namespace)
        store.ensure_tables()
        progress(complete=False)  # from now on a load cut short resumes (with this end time)
    t0 = time.perf_counter()

    for result in synthetic_frames(spec):
        written += len(result.detections)
        if written <= skip:
            continue
        batch.append(result)
        if len(batch) == LOAD_FRAMES_PER_WRITE:
            if guard is not None:
                guard.wait()
            _write_retrying(store, batch, spec.end_ms)
            batch, writes = [], writes + 1
            if writes % PROGRESS_EVERY_WRITES == 0:
                progress(complete=False)
            if written - reported >= 100_000:  # a long load says how far it got
                reported = written
                print(f"loaded {written} of {spec.rows} rows ({(written - skip) / (time.perf_counter() - t0):.0f}/s)",
                      file=sys.stderr, flush=True)
    _write_retrying(store, batch, spec.end_ms)
    batch = []
    load_s = time.perf_counter() - t0
    progress(complete=True)  # last: the load is complete
    return {"reused": False, "resumed_from": skip or None, "load_s": round(load_s, 1),
            "rows_per_s": round((spec.rows - skip) / load_s), "end_ms": spec.end_ms,
            "waited_for_flushes_s": round(guard.waited_s, 1) if guard is not None else None}


@dataclass(frozen=True)
class Query:
    """One console search: the arguments of ``search_cameras`` and the page shown."""

    kind: str
    cameras: tuple[str, ...] | None = None
    since: int | None = None
    until: int | None = None
    classes: tuple[str, ...] | None = None
    min_score: float = 0.0
    page: int = 0
    page_size: int = PAGE_SIZE

    @property
    def depth(self) -> int:
        return (self.page + 1) * self.page_size

    def run(self, store: DetectionStore) -> list[StoredDetection]:
        """The console's ``/api/search``: ``depth + 1`` newest (to tell whether there is
        more), then the page."""
        found = store.search_cameras(list(self.cameras) if self.cameras else None, since=self.since, until=self.until,
                                     classes=list(self.classes) if self.classes else None,
                                     min_score=self.min_score, limit=self.depth + 1)
        return found[self.page * self.page_size:self.depth]


#: the query kinds of the mix, each made by :func:`make_query`
QUERY_KINDS = ("newest_all", "one_camera", "several_cameras", "class", "rare_class", "min_score", "past_range",
               "deep_page")


def make_query(kind: str, rng: random.Random, spec: LoadSpec) -> Query:
    """A query of ``kind`` with its own random cameras / window, within the loaded data."""
    cams = camera_ids(spec.cameras)
    if kind == "newest_all":
        return Query(kind)
    if kind == "one_camera":
        return Query(kind, cameras=(rng.choice(cams),))
    if kind == "several_cameras":
        return Query(kind, cameras=tuple(rng.sample(cams, min(5, len(cams)))))
    if kind == "class":
        return Query(kind, classes=("car",))
    if kind == "rare_class":
        return Query(kind, classes=(RARE_CLASS,))
    if kind == "min_score":
        return Query(kind, min_score=0.9)
    if kind == "past_range":  # an hour (at most the span) somewhere in the older half of the data
        window = min(3600_000, spec.span_s * 1000 // 2)
        since = spec.start_ms + rng.randrange(max(1, spec.span_s * 1000 // 2 - window + 1))
        return Query(kind, since=since, until=since + window)
    if kind == "deep_page":  # the deepest page the console allows, at its widest page
        return Query(kind, page=MAX_DEPTH // 200 - 1, page_size=200)
    raise ValueError(f"unknown query kind {kind!r}; known: {', '.join(QUERY_KINDS)}")


def query_mix(spec: LoadSpec, repeats: int, seed: int) -> list[Query]:
    """``repeats`` queries of each kind, shuffled (the machine's drift spreads over all kinds)."""
    rng = random.Random(seed)
    mix = [make_query(kind, rng, spec) for kind in QUERY_KINDS for _ in range(repeats)]
    rng.shuffle(mix)
    return mix


def latency_stats(ms: Sequence[float]) -> dict:
    """n, mean and p50 / p95 / p99 (numpy's linear percentiles) of some timings in ms."""
    if not ms:
        return {"n": 0, "mean_ms": None, "p50_ms": None, "p95_ms": None, "p99_ms": None}
    values = np.asarray(ms, dtype=float)
    return {"n": len(ms), "mean_ms": round(float(values.mean()), 1),
            **{f"p{q}_ms": round(float(np.percentile(values, q)), 1) for q in (50, 95, 99)}}


@dataclass
class Timings:
    """Milliseconds of each query, by kind, and the results each returned."""

    ms: dict[str, list[float]] = field(default_factory=dict)
    results: dict[str, list[int]] = field(default_factory=dict)

    def add(self, kind: str, ms: float, results: int) -> None:
        self.ms.setdefault(kind, []).append(ms)
        self.results.setdefault(kind, []).append(results)

    def summary(self) -> dict:
        by_kind = {kind: {**latency_stats(ms), "results_mean": round(sum(self.results[kind]) / len(ms), 1)}
                   for kind, ms in self.ms.items()}
        return {"by_kind": by_kind, "overall": latency_stats([v for ms in self.ms.values() for v in ms])}


def time_queries(store: DetectionStore, queries: Sequence[Query], warmup: int = 1) -> Timings:
    """Run each query, timing the console's path; the first ``warmup`` of each kind are not counted."""
    timings, seen = Timings(), {}
    for q in queries:
        t0 = time.perf_counter()
        page = q.run(store)
        ms = (time.perf_counter() - t0) * 1000
        seen[q.kind] = seen.get(q.kind, 0) + 1
        if seen[q.kind] > warmup:
            timings.add(q.kind, ms, len(page))
    return timings


def full_scan_search(store: DetectionStore, limit: int) -> list[StoredDetection]:
    """The all-camera search as it was before ``detections_by_time``: every salt bucket of
    ``detections`` scanned in full, each parsed and sorted, then merged (kept to measure
    the gain against; no filters, as the newest page asks none)."""
    buckets = []
    with store.table("detections") as table:
        for b in range(schema.SALT_BUCKETS):
            rows = table.scan(row_prefix=schema.bucket_prefix(b), columns=[b"d"])
            buckets.append(sorted((_parse(data) for _, data in rows), key=newest_first))
    return [d for _, d in zip(range(limit), heapq.merge(*buckets, key=newest_first))]


def baseline(store: DetectionStore, repeats: int) -> dict:
    """Old and new newest page over all cameras, alternated on the same (sample) rows."""
    old, new, same = [], [], True
    for _ in range(repeats + 1):  # the first of each is a warm-up
        t0 = time.perf_counter()
        before = full_scan_search(store, PAGE_SIZE + 1)
        old.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        now = store.search_cameras(None, limit=PAGE_SIZE + 1)
        new.append((time.perf_counter() - t0) * 1000)
        same = same and before == now
    old_stats, new_stats = latency_stats(old[1:]), latency_stats(new[1:])
    ratio = old_stats["p50_ms"] / new_stats["p50_ms"] if new_stats["p50_ms"] else None
    return {"old_full_scan": old_stats, "new_index": new_stats,
            "speedup_p50": round(ratio, 1) if ratio else None, "same_results": same}


def drop(store: DetectionStore, admin_factory: Callable[[], HBaseAdmin]) -> bool:
    """Delete the bench namespace of ``store`` and its tables; True if it existed."""
    with admin_factory() as admin:
        return admin.delete_namespace(store.namespace)


def _check_namespace(namespace: str) -> None:
    if namespace == schema.NAMESPACE or not namespace.startswith(BENCH_NAMESPACE):
        raise ValueError(f"the search benchmark writes and drops its own namespace; {namespace!r} is not one "
                         f"(it must start with {BENCH_NAMESPACE!r})")


def bench_search(rows: int, cameras: int, span_s: int = 7 * 86400, repeats: int = 30, seed: int = 18,
                 baseline_rows: int = 20_000, baseline_repeats: int = 5, namespace: str = BENCH_NAMESPACE,
                 keep: bool = True, store_factory: Callable[..., DetectionStore] | None = None,
                 guard: MemstoreGuard | None = None) -> dict:
    """Load (or reuse) ``rows`` synthetic detections and time the console's search on them.

    :param rows: detection rows of the measured data set.
    :param cameras: cameras the rows are spread over.
    :param span_s: the time span the rows are spread over (ends at the load's time).
    :param repeats: queries of each kind counted (after one warm-up of each).
    :param seed: seed of the data and of the query mix.
    :param baseline_rows: rows of the sample the old full-scan search is compared on (0: none).
    :param baseline_repeats: old/new pairs timed on the sample.
    :param namespace: the bench's HBase namespace (must start with ``argus_bench``).
    :param keep: keep the loaded namespaces for the next run; False drops them at the end.
    :param store_factory: makes a store of a namespace (default: the local stack's).
    :param guard: holds the load back while HBase flushes (default: the local stack's region server).
    """
    if rows < 1 or cameras < 1:
        raise ValueError(f"--rows and --cameras must be at least 1, got {rows} and {cameras}")
    _check_namespace(namespace)
    make_store = store_factory or (lambda ns: DetectionStore.from_config(namespace=ns))
    store = make_store(namespace)
    if guard is None:
        from argus.config import ArgusConfig

        cfg = ArgusConfig()
        guard = MemstoreGuard(RegionServerJmx(cfg.port("hbase_regionserver_info")), cfg.host)

    def admin() -> HBaseAdmin:
        return HBaseAdmin(store.admin_host, store.admin_port)

    now_ms = int(time.time() * 1000) // 1000 * 1000
    spec = LoadSpec(rows, cameras, span_s, seed, now_ms)
    load = ensure_loaded(store, spec, admin, guard)
    spec = LoadSpec(rows, cameras, span_s, seed, load["end_ms"])
    timings = time_queries(store, query_mix(spec, repeats, seed), warmup=1).summary()
    result = {
        "rows": rows, "cameras": cameras, "span_s": span_s, "seed": seed, "namespace": namespace,
        "data": {k: v for k, v in load.items() if k != "end_ms"},
        "page_size": PAGE_SIZE, "deep_page_depth": MAX_DEPTH, "repeats": repeats,
        "queries": timings["by_kind"], "overall": timings["overall"],
        "target_p95_ms": TARGET_P95_MS,
        "meets_target": timings["overall"]["p95_ms"] is not None and timings["overall"]["p95_ms"] <= TARGET_P95_MS,
    }
    sample_store = None
    if baseline_rows > 0:
        sample_store = make_store(namespace + SAMPLE_SUFFIX)
        sample_spec = LoadSpec(baseline_rows, cameras, span_s, seed, now_ms)
        sample_load = ensure_loaded(sample_store, sample_spec, admin, guard)
        result["baseline"] = {"rows": baseline_rows, "namespace": sample_store.namespace,
                              "data": {k: v for k, v in sample_load.items() if k != "end_ms"},
                              **baseline(sample_store, baseline_repeats)}
    if not keep:
        drop(store, admin)
        if sample_store is not None:
            drop(sample_store, admin)
    result["kept"] = keep
    result["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}
    return result
