"""``argus bench console``: what a live wall of N cameras, refreshing at 1 Hz, costs the
Airflow api-server that serves the console.

1. A feeder writes, once a second, each bench camera's live frame (a JPEG made from a real
   photo by the pipeline's own :class:`~argus.store.crops.ImageMaker`, as wide as the
   streaming job keeps it) and its frames rows at ``rate_hz`` (so that the tiles' frames/s
   and latency have data), through :meth:`DetectionStore.write` into the real ``argus``
   tables, which are all the api-server reads. Its rows are deleted at the end, on failure
   and Ctrl-C too.
2. A client does what ``live.js`` does for a wall of N tiles, logged in with a real token:
   every second the JSON poll (``api/live?camera=..``), then the image of each tile whose
   capture time changed, over at most a browser's connections to one host, an image URL
   fetched within its ``Cache-Control`` max-age answered from the cache as a browser would.
3. The CPU time (user + system) of the api-server's process tree is taken over alternating
   slices with and without the client, the feeder running throughout: the wall's cost is
   the difference. The HBase services' trees are measured the same way, the feeder's and
   the client's threads by their own CPU time, so that none of theirs is taken for the
   api-server's.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urljoin

import numpy as np
import psutil

from argus.config import ArgusConfig
from argus.detect.types import Detection
from argus.store import DetectionStore, schema
from argus.store.crops import DEFAULT_LIVE_VIEW_PX, ImageMaker, LiveViewThrottle
from argus.store.detections import FrameResult

#: the bench cameras' ids start with this (``bench-wall-00`` ...): no real camera's do
CAMERA_PREFIX = "bench-wall"
#: the wall's refresh period (live.js: ``setInterval(refresh, 1000)``)
REFRESH_S = 1.0
#: a browser's connections to one host over HTTP/1.1: the wall's images queue for these
BROWSER_CONNECTIONS = 6
#: how long after capture a frame is written, split over the stages as a live batch is
#: (so the tiles' latency reads like the pipeline's, ~1 s at p50 in docs/benchmarks.md)
STAGE_OFFSETS_MS = {"captured": 0, "kafka": 15, "read": 300, "detected": 800}
#: the services whose process trees are measured: the api-server first, then what it reads
MEASURED_SERVICES = ("airflow-api-server", "hbase-thrift", "hbase")
#: what each bench frame "detected": two boxes, as live frames typically carry
BENCH_DETECTIONS = (Detection(0, "person", 0.87, (0.12, 0.20, 0.38, 0.95)),
                    Detection(2, "car", 0.64, (0.55, 0.48, 0.93, 0.81)))


def bench_cameras(n: int) -> list[str]:
    """The ids of ``n`` bench cameras."""
    return [f"{CAMERA_PREFIX}-{i:02d}" for i in range(n)]


# ---- the feeder ----
class WallFeeder:
    """Writes the bench cameras' live frames and frames rows once a second, on its own thread,
    counting its own CPU time.

    :param store: where to write (the real ``argus`` tables).
    :param cameras: the bench cameras.
    :param rate_hz: frames rows per camera per second (the newest of each second is the live frame).
    :param live_view_px: width of the live frames (the streaming job's ``live_view_px``).
    """

    def __init__(self, store: DetectionStore, cameras: Sequence[str], rate_hz: float = 2.0,
                 live_view_px: int = DEFAULT_LIVE_VIEW_PX):
        from argus.media.images import PHOTOS, sample_frames

        if rate_hz < 1:
            raise ValueError(f"the feeder writes at least one frame per camera per second, not {rate_hz}")
        self.store, self.cameras, self.rate_hz = store, list(cameras), rate_hz
        self.photos = sample_frames(len(PHOTOS))  # camera-sized (640x480) real photos
        # the feeder keeps the once-a-second pace itself: every newest frame becomes the live one
        self.images = ImageMaker(crop_px=0, live_view_px=live_view_px, throttle=LiveViewThrottle(interval_s=0))
        self.ticks = self.frames = self.live_frames = self.live_bytes = 0
        self.errors: list[str] = []
        self.cpu_s = self.wall_s = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def frame_results(self, tick: int, now_ms: int) -> list[FrameResult]:
        """One second's frames of every camera, the newest with its decoded image (made into
        the live frame by :meth:`tick`)."""
        per_second = int(self.rate_hz)
        written_after = max(STAGE_OFFSETS_MS.values()) + 200
        results = []
        for c, camera in enumerate(self.cameras):
            for k in range(per_second):
                captured = now_ms - written_after - (per_second - 1 - k) * int(1000 / self.rate_hz)
                newest = k == per_second - 1
                photo = self.photos[(c + tick) % len(self.photos)]
                results.append(FrameResult(
                    camera_id=camera, capture_ts_ms=captured, seq=tick * per_second + k,
                    width=photo.shape[1], height=photo.shape[0], model="bench", detections=BENCH_DETECTIONS,
                    stages={stage: captured + ms for stage, ms in STAGE_OFFSETS_MS.items()},
                    image=photo if newest else None))
        return results

    def tick(self, tick: int) -> None:
        """Write one second's frames."""
        results = self.frame_results(tick, int(time.time() * 1000))
        self.images(results)
        self.store.write(results)
        self.ticks += 1
        self.frames += len(results)
        live = [r.thumbnail for r in results if r.thumbnail]
        self.live_frames += len(live)
        self.live_bytes += sum(map(len, live))

    def _run(self) -> None:
        cpu0, start, tick = time.thread_time(), time.monotonic(), 0
        try:
            while not self._stop.is_set():
                try:
                    self.tick(tick)
                except Exception as exc:  # noqa: BLE001 - counted and reported; the bench goes on
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                tick += 1
                self._stop.wait(max(0.0, start + tick * REFRESH_S - time.monotonic()))
        finally:
            self.cpu_s, self.wall_s = time.thread_time() - cpu0, time.monotonic() - start

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="wall-feeder", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)


def delete_camera_rows(store: DetectionStore, cameras: Iterable[str]) -> int:
    """Delete every ``live``, ``frames`` and ``detections`` row of ``cameras``; returns how
    many rows were deleted."""
    deleted = 0
    cameras = list(cameras)
    for name in ("frames", "detections"):
        with store.table(name) as table:
            for camera in cameras:
                start, stop = schema.time_range(camera, None, None)
                keys = [key for key, _ in table.scan(row_start=start, row_stop=stop, filter=b"KeyOnlyFilter()")]
                with table.batch(batch_size=1000) as batch:
                    for key in keys:
                        batch.delete(key)
                deleted += len(keys)
    with store.table("live") as table:
        keys = [key for key, _ in table.rows([schema.check_camera_id(c).encode() for c in cameras])]
        with table.batch() as batch:
            for key in keys:
                batch.delete(key)
        deleted += len(keys)
    return deleted


def leftover_cameras(store: DetectionStore) -> list[str]:
    """Bench cameras that still have a live row: a run killed before its clean-up (SIGKILL,
    HBase gone meanwhile)."""
    return [c for c in store.live_cameras() if c.startswith(f"{CAMERA_PREFIX}-")]


def clean_up(store: DetectionStore, cameras: Iterable[str], attempts: int = 3, pause_s: float = 5.0) -> int:
    """:func:`delete_camera_rows` of ``cameras`` and of any :func:`leftover_cameras`, tried
    again while HBase does not answer (a busy region server times a call out)."""
    for attempt in range(1, attempts + 1):
        try:
            return delete_camera_rows(store, dict.fromkeys([*cameras, *leftover_cameras(store)]))
        except Exception:  # noqa: BLE001 - Thrift timeouts and refusals alike; the last one is raised
            if attempt == attempts:
                raise
            time.sleep(pause_s)
    return 0


# ---- the client: what live.js asks for ----
@dataclass
class WallPlan:
    """The requests of ``live.js`` for a wall of tiles, without the network: the poll's path,
    then, from its answer, the images a browser fetches.

    :param tiles: the camera of each tile ('' for none).
    :param page_url: the live wall page's URL, which the API's relative URLs resolve against.
    """

    tiles: list[str]
    page_url: str
    #: tile index -> capture time of the image on screen (live.js's ``shown``)
    shown: dict[int, int] = field(default_factory=dict)
    #: image URL -> until when (monotonic s) the browser's cache answers it
    cached_until: dict[str, float] = field(default_factory=dict)

    def poll_url(self) -> str | None:
        """The JSON poll's URL: each camera once, in tile order; None for a wall of no camera
        (live.js then asks nothing)."""
        wanted = list(dict.fromkeys(c for c in self.tiles if c))
        if not wanted:
            return None
        return urljoin(self.page_url, "api/live?" + "&".join("camera=" + quote(c, safe="") for c in wanted))

    def images(self, live: dict[str, Any], now: float) -> list[str]:
        """The image URLs the browser requests after a poll answered ``live`` (its
        ``cameras``): those of the tiles whose capture time changed, each URL once, less those
        its cache still holds."""
        urls = []
        for i, camera in enumerate(self.tiles):
            info = live.get(camera) if camera else None
            if not info:
                self.shown.pop(i, None)  # live.js empties the tile and forgets what it showed
                continue
            if self.shown.get(i) == info["capture_ts_ms"]:
                continue
            self.shown[i] = info["capture_ts_ms"]
            url = urljoin(self.page_url, info["image"])
            if self.cached_until.get(url, -1.0) > now or url in urls:
                continue
            urls.append(url)
        return urls

    def fetched(self, url: str, cache_control: str | None, now: float) -> None:
        """Record an image the browser fetched, cached for its max-age (none without one)."""
        max_age = cache_max_age(cache_control)
        if max_age:
            self.cached_until[url] = now + max_age
        for old in [u for u, until in self.cached_until.items() if until <= now]:
            del self.cached_until[old]  # expired entries go, so the map stays the wall's size


def cache_max_age(cache_control: str | None) -> float:
    """The ``max-age`` of a ``Cache-Control`` header (s), 0 without one or with ``no-store``."""
    if not cache_control or "no-store" in cache_control:
        return 0.0
    found = re.search(r"max-age=(\d+)", cache_control)
    return float(found.group(1)) if found else 0.0


@dataclass(frozen=True)
class Request:
    """One request of the client: ``kind`` is ``live`` (the poll) or ``frame`` (an image)."""

    kind: str
    status: int  # 0: no answer (a transport error)
    bytes: int
    ms: float


async def _get(http, url: str, kind: str, headers: dict[str, str], log: list[Request]):
    t0 = time.perf_counter()
    try:
        resp = await http.get(url, headers=headers)
    except Exception:  # noqa: BLE001 - httpx's transport errors and timeouts: an error of the wall
        log.append(Request(kind, 0, 0, (time.perf_counter() - t0) * 1000))
        return None
    log.append(Request(kind, resp.status_code, len(resp.content), (time.perf_counter() - t0) * 1000))
    return resp


async def _refresh(http, plan: WallPlan, headers: dict[str, str], log: list[Request]) -> None:
    url = plan.poll_url()
    if url is None:
        return
    resp = await _get(http, url, "live", headers, log)
    if resp is None or resp.status_code != 200:
        return
    images = plan.images(resp.json()["cameras"], time.monotonic())

    async def image(url: str) -> None:
        got = await _get(http, url, "frame", headers, log)
        if got is not None and got.status_code == 200:
            plan.fetched(url, got.headers.get("cache-control"), time.monotonic())

    await asyncio.gather(*(image(u) for u in images))


async def run_wall(http, plan: WallPlan, headers: dict[str, str], seconds: float) -> list[Request]:
    """Refresh the wall every :data:`REFRESH_S` for ``seconds`` (a refresh starts on time
    whether or not the last one is done, as with ``setInterval``); returns its requests once
    all have been answered."""
    log: list[Request] = []
    start, ticks, pending = time.monotonic(), 0, []
    while ticks * REFRESH_S < seconds:
        pending.append(asyncio.ensure_future(_refresh(http, plan, headers, log)))
        ticks += 1
        await asyncio.sleep(max(0.0, start + ticks * REFRESH_S - time.monotonic()))
    await asyncio.gather(*pending)
    return log


# ---- CPU ----
ProcessCpu = dict[tuple[int, float], float]


def tree_cpu(pid: int) -> ProcessCpu:
    """CPU seconds (user + system) so far of a process and each of its descendants, by
    (pid, start time) so that a reused pid is another process."""
    out: ProcessCpu = {}
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return out
    for proc in procs:
        try:
            with proc.oneshot():
                times = proc.cpu_times()
                out[(proc.pid, proc.create_time())] = times.user + times.system
        except psutil.Error:
            continue  # ended since the listing
    return out


def machine_cpu() -> ProcessCpu:
    """CPU seconds the whole machine has been busy (all cores, not idle or waiting on I/O), in
    :func:`tree_cpu`'s form: how much else ran beside what is measured."""
    times = psutil.cpu_times()
    return {(0, 0.0): sum(times) - times.idle - getattr(times, "iowait", 0.0)}


def cpu_spent(before: ProcessCpu, after: ProcessCpu) -> float:
    """CPU seconds a tree spent between two :func:`tree_cpu` samples: each process by its
    growth, one started in between in full. A process that ended in between is not counted
    (the api-server's tree keeps its workers)."""
    return sum(value - before.get(key, 0.0) for key, value in after.items())


def wall_cost(idle: Sequence[tuple[float, float]], loaded: Sequence[tuple[float, float]]) -> dict[str, float]:
    """Cores a tree used without and with the wall, and the difference.

    :param idle: / :param loaded: (CPU seconds, wall seconds) of each slice.
    """
    def cores(slices):
        wall = sum(w for _, w in slices)
        return sum(c for c, _ in slices) / wall if wall > 0 else 0.0

    idle_cores, loaded_cores = cores(idle), cores(loaded)
    return {"idle_cores": round(idle_cores, 4), "loaded_cores": round(loaded_cores, 4),
            "wall_cores": round(loaded_cores - idle_cores, 4),
            "wall_pct_of_core": round(100 * (loaded_cores - idle_cores), 2)}


def service_roots(cfg: ArgusConfig, names: Sequence[str] = MEASURED_SERVICES) -> dict[str, int]:
    """The root pid of each running service, found as ``argus stack status`` finds it."""
    from argus.stack.manager import Stack, StackError
    from argus.stack.services import by_name

    stack = Stack(cfg)
    roots = {name: stack.find(by_name(name)).root for name in names}
    missing = [name for name, root in roots.items() if root is None]
    if missing:  # StackError: the CLI says it in one line
        raise StackError(f"not running: {', '.join(missing)} (`argus stack status`, `argus stack up`)")
    return {name: root.pid for name, root in roots.items()}


def request_summary(requests: Sequence[Request], seconds: float) -> dict[str, Any]:
    """Count, rate, errors, bytes/s and p50 / p95 response time (ms) of ``requests`` made over
    ``seconds``, in all and per kind."""
    def stats(rows):
        ms = [r.ms for r in rows]
        return {"count": len(rows), "per_s": round(len(rows) / seconds, 2) if seconds else 0.0,
                "errors": sum(1 for r in rows if not 200 <= r.status < 300),
                "bytes": sum(r.bytes for r in rows),
                "bytes_per_s": round(sum(r.bytes for r in rows) / seconds, 1) if seconds else 0.0,
                "ms": {"p50": round(float(np.percentile(ms, 50)), 1) if ms else None,
                       "p95": round(float(np.percentile(ms, 95)), 1) if ms else None}}

    return {**stats(requests), "by_kind": {kind: stats([r for r in requests if r.kind == kind])
                                           for kind in ("live", "frame")}}


def slice_plan(seconds: float, slice_s: float) -> list[float]:
    """The lengths of the slices ``seconds`` is measured in (each with and without the wall)."""
    if seconds <= 0 or slice_s <= 0:
        raise ValueError(f"seconds and the slice must be positive, got {seconds} and {slice_s}")
    whole, rest = divmod(seconds, slice_s)
    return [slice_s] * int(whole) + ([rest] if rest > 1e-9 else [])


# ---- the run ----
def bench_console(cameras: int = 16, seconds: float = 60.0, slice_s: float = 10.0, rate_hz: float = 2.0,
                  live_view_px: int = DEFAULT_LIVE_VIEW_PX, cfg: ArgusConfig | None = None,
                  progress: Callable[[str], None] = lambda msg: None) -> dict[str, Any]:
    """The wall's cost on the api-server (see the module).

    :param cameras: tiles of the wall, one bench camera each.
    :param seconds: measured time with the wall, and as long without it.
    :param slice_s: the with/without slices alternate at this length.
    :param rate_hz: frames rows per bench camera per second.
    :param live_view_px: width of the bench cameras' live frames.
    """
    import httpx

    from argus.stack.airflow import airflow_login

    if cameras < 1:
        raise ValueError(f"a wall has at least one camera, not {cameras}")
    slices = slice_plan(seconds, slice_s)
    cfg = cfg or ArgusConfig()
    roots = service_roots(cfg)
    login = airflow_login(cfg)
    if login is None:
        raise ValueError(f"no Airflow login in {cfg.state_dir}: the stack's api-server has not made one")
    ids = bench_cameras(cameras)
    store = DetectionStore.from_config(cfg)
    feeder = WallFeeder(store, ids, rate_hz=rate_hz, live_view_px=live_view_px)
    plan = WallPlan(list(ids), page_url=f"{cfg.console_url}/live")
    samples: dict[str, dict[str, list[tuple[float, float]]]] = {n: {"idle": [], "loaded": []} for n in roots}
    machine: dict[str, list[tuple[float, float]]] = {"idle": [], "loaded": []}
    requests: list[Request] = []
    loaded_wall = client_cpu = 0.0
    feeder.start()
    try:
        progress(f"feeding {cameras} bench camera(s) at {rate_hz:g} frames/s, a live frame a second")
        time.sleep(2 * REFRESH_S)  # every camera has a live row before the wall opens

        async def measure() -> None:
            nonlocal loaded_wall, client_cpu
            limits = httpx.Limits(max_connections=BROWSER_CONNECTIONS, max_keepalive_connections=BROWSER_CONNECTIONS)
            async with httpx.AsyncClient(timeout=30.0, limits=limits) as http:
                token = await http.post(f"{cfg.airflow_url}/auth/token",
                                        json={"username": login[0], "password": login[1]})
                token.raise_for_status()
                headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
                # the page's start (live.js): the cameras and the layout, once; not measured
                for path in ("api/cameras", "api/layout"):
                    (await http.get(urljoin(plan.page_url, path), headers=headers)).raise_for_status()
                await run_wall(http, plan, headers, 2 * REFRESH_S)  # warm: connections open, images shown
                for i, length in enumerate(slices):
                    for phase in ("idle", "loaded"):
                        progress(f"slice {i + 1}/{len(slices)}: {phase} ({length:g} s)")
                        before = {n: tree_cpu(pid) for n, pid in roots.items()}
                        machine0 = machine_cpu()
                        t0, cpu0 = time.monotonic(), time.thread_time()
                        if phase == "loaded":
                            requests.extend(await run_wall(http, plan, headers, length))
                        else:
                            await asyncio.sleep(length)
                        wall = time.monotonic() - t0
                        for n, pid in roots.items():
                            samples[n][phase].append((cpu_spent(before[n], tree_cpu(pid)), wall))
                        machine[phase].append((cpu_spent(machine0, machine_cpu()), wall))
                        if phase == "loaded":
                            loaded_wall += wall
                            client_cpu += time.thread_time() - cpu0

        asyncio.run(measure())
    finally:
        feeder.stop()
        deleted = clean_up(store, ids)
        progress(f"deleted the bench cameras' {deleted} row(s)")
    api = MEASURED_SERVICES[0]
    return {
        "cameras": cameras, "seconds": seconds, "slice_s": slice_s, "slices": len(slices), "refresh_s": REFRESH_S,
        "rate_hz": rate_hz, "live_view_px": live_view_px, "console_url": cfg.console_url,
        "api_server": {"pid": roots[api], "processes": len(tree_cpu(roots[api])), **wall_cost(**samples[api]),
                       # each slice's cores, idle then loaded: the spread the difference stands on
                       "slice_cores": [[round(c / w, 4) for c, w in pair] for pair in
                                       zip(samples[api]["idle"], samples[api]["loaded"])]},
        "services": {n: wall_cost(**samples[n]) for n in roots if n != api},
        "requests": request_summary(requests, loaded_wall),
        "feeder": {"cores": round(feeder.cpu_s / feeder.wall_s, 4) if feeder.wall_s else 0.0, "ticks": feeder.ticks,
                   "frames": feeder.frames, "live_frames": feeder.live_frames,
                   "live_jpeg_bytes_mean": round(feeder.live_bytes / feeder.live_frames, 1) if feeder.live_frames
                   else 0.0, "errors": feeder.errors[:10], "error_count": len(feeder.errors)},
        "client": {"cores": round(client_cpu / loaded_wall, 4) if loaded_wall else 0.0},
        "rows_deleted": deleted,
        # the machine's busy cores in both phases: what else ran (other tests, compactions)
        "machine": {"cpu_count": psutil.cpu_count(), **wall_cost(**machine)},
    }
