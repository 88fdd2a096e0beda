"""The console app (mounted by ``plugins/argus_console_plugin.py``).

Every route, the OpenAPI document included, depends on Airflow's own access check, so a
request without a valid session cookie or bearer token gets 401 (403 for a user the auth
manager does not allow). Changing a camera's model also needs the right to change runs of
the streaming DAG. Pages are server-rendered with everything from the data escaped, and
link with relative URLs so that the console works behind a proxy path.
"""

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from argus.config import CONSOLE_PATH
from argus.store.latency import series, stage_summary
from argus_airflow.console import geo, monitor, pages, plots

if TYPE_CHECKING:
    from fastapi import FastAPI

#: where the api-server mounts the console
CONSOLE_URL_PREFIX = CONSOLE_PATH
#: the console's pages: path under the prefix -> title (the plugin's menu entries)
PAGES = pages.PAGES
#: the DAG whose run-editing right is needed to change what the running job does
STREAM_DAG_ID = "argus_stream_detection"
#: search results per page at most
MAX_PAGE_SIZE = 200
#: how far back the search pages (results skipped + shown) at most
MAX_SEARCH_DEPTH = 5000
#: the window the live wall's frames/s and latency are taken over
LIVE_WINDOW_S = 10
#: the monitor's window: default and bounds (s)
MONITOR_WINDOW_S, MAX_MONITOR_WINDOW_S = 60, 3600
#: tracks drawn on the map at most (a longer list asks for a narrower range)
MAX_MAP_TRACKS = 2000
#: the monitor's plots: points over the window, default and most
PLOT_BUCKETS, MAX_PLOT_BUCKETS = 30, 120
STATIC = Path(__file__).parent / "static"
ANONYMOUS = "anonymous"


def _default_store():
    from argus.store import DetectionStore
    from argus_airflow.hooks.endpoints import airflow_endpoints

    return DetectionStore.from_endpoints(airflow_endpoints())


def _model_names() -> list[str]:
    from argus.detect import default_registry

    return sorted(default_registry().models)


def _security():
    """Airflow's checks: any logged-in user may look; changing the job's cameras needs the
    right to change the streaming DAG's runs."""
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView, DagAccessEntity
    from airflow.api_fastapi.core_api.security import get_user, requires_access_dag, requires_access_view

    return (requires_access_view(AccessView.WEBSITE),
            requires_access_dag("PUT", DagAccessEntity.RUN, param_dag_id=STREAM_DAG_ID), get_user)


def create_app(store_factory: Callable[[], Any] | None = None, *, authorize: bool = True,
               models: Callable[[], list[str]] = _model_names,
               monitor_sources: "monitor.MonitorSources | None" = None) -> "FastAPI":
    """The console.

    :param store_factory: makes the :class:`~argus.store.DetectionStore` the pages read
        (default: the ``argus_hbase`` connection's); called once, on first use.
    :param authorize: require Airflow's login (off only in tests of the pages).
    :param models: the model names a camera may be given (default: the model registry's).
    :param monitor_sources: the monitor's dead letters, streams, executors, services and GPUs
        (default: :class:`~argus_airflow.console.monitor.MonitorSources` on the connections).
    """
    from fastapi import Depends, FastAPI, HTTPException, Query
    from fastapi.responses import FileResponse, HTMLResponse, Response
    from pydantic import BaseModel, Field

    from argus.live.cameras import TABLE_FIELDS
    from argus.live.message import check_camera_id

    if authorize:
        view, operate, get_user = _security()
        deps, operator = [Depends(view)], [Depends(operate)]

        def current_user(user: Annotated[Any, Depends(get_user)]) -> str:
            return user.get_name()
    else:
        deps, operator = [], []

        def current_user() -> str:
            return ANONYMOUS

    User = Annotated[str, Depends(current_user)]
    # FastAPI's own OpenAPI and docs routes would skip the app's dependencies: served below instead
    app = FastAPI(title="Argus console", description="Cameras, live frames, detections and the pipeline's health.",
                  dependencies=deps, docs_url=None, redoc_url=None, openapi_url=None)
    made: list = []
    sources = monitor_sources or monitor.MonitorSources()

    def store():
        if not made:
            made.append((store_factory or _default_store)())
        return made[0]

    def camera_id(value: str) -> str:
        try:
            return check_camera_id(value)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None

    def cameras() -> list[dict[str, Any]]:
        # the table's cameras, and those that stream without being in it (a producer of its own)
        table = store().cameras()
        ids = sorted(set(table) | set(store().live_cameras()))
        return [{"id": cam, **{name: table.get(cam, {}).get(name) for name in TABLE_FIELDS},
                 "registered": bool(table.get(cam, {}).keys() & set(TABLE_FIELDS)),
                 "assigned_model": table.get(cam, {}).get("assigned_model"),
                 "assigned_by": table.get(cam, {}).get("assigned_by"),
                 "assigned_at_ms": int(table[cam]["assigned_at_ms"]) if table.get(cam, {}).get("assigned_at_ms")
                 else None}
                for cam in ids]

    def known_camera(value: str) -> dict[str, Any]:
        cam = camera_id(value)
        found = [c for c in cameras() if c["id"] == cam]
        if not found:
            raise HTTPException(404, f"no camera {cam!r}: neither in argus:cameras nor streaming")
        return found[0]

    # ---- JSON ----
    @app.get("/api/openapi.json", include_in_schema=False)
    def openapi() -> dict:
        return app.openapi()

    @app.get("/api/cameras", summary="The cameras table (argus:cameras): id, URL, rate, coordinates, model")
    def api_cameras() -> dict[str, list[dict[str, Any]]]:
        return {"cameras": cameras()}

    @app.get("/api/cameras/{camera}", summary="One camera of the cameras table",
             responses={404: {"description": "no such camera"}, 422: {"description": "not a camera id"}})
    def api_camera(camera: str) -> dict[str, Any]:
        return known_camera(camera)

    class ModelChange(BaseModel):
        model: str = Field(description="a model of the model registry")

    @app.put("/api/cameras/{camera}/model", dependencies=operator,
             summary="Give a camera another model: the running streaming job uses it within a few micro-batches",
             responses={404: {"description": "no such camera"}, 422: {"description": "unknown model"}})
    def api_assign_model(camera: str, change: ModelChange, user: User) -> dict[str, Any]:
        cam = known_camera(camera)["id"]
        names = models()
        if change.model not in names:
            raise HTTPException(422, f"unknown model {change.model!r}; the registry has {', '.join(names)}")
        store().assign_model(cam, change.model, user)
        return known_camera(cam)

    @app.get("/api/live", summary="The newest frame of each camera: detections, model, frames/s, latency")
    def api_live(camera: Annotated[list[str], Query(max_length=64)] = []) -> dict[str, Any]:  # noqa: B006
        ids = [camera_id(c) for c in camera]
        latest = store().latest(ids or None)
        out = {}
        for cam, row in latest.items():
            # the window ends at the newest frame, not now: a pipeline a few seconds behind
            # still has a rate (the tile's capture time shows how far behind it is)
            fps, latency = store().recent_rate(cam, row["capture_ts_ms"] - LIVE_WINDOW_S * 1000)
            out[cam] = {**row, "fps": fps, "latency_ms": latency,
                        "image": f"api/live/{cam}/frame.jpg?ts={row['capture_ts_ms']}"}
        return {"cameras": out, "window_s": LIVE_WINDOW_S}

    @app.get("/api/live/{camera}/frame.jpg", summary="The newest frame of a camera (a small JPEG)",
             response_class=Response, responses={200: {"content": {"image/jpeg": {}}}, 404: {}})
    def api_live_frame(camera: str) -> Response:
        data = store().latest_jpeg(camera_id(camera))
        if data is None:
            raise HTTPException(404, f"no frame of camera {camera!r} yet")
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=60"})

    class Layout(BaseModel):
        cols: int = Field(2, ge=1, le=8)
        rows: int = Field(2, ge=1, le=8)
        tiles: list[str] = Field(default_factory=list, max_length=64, description="camera per tile, '' for none")

    @app.get("/api/layout", summary="The live wall's layout of the logged-in user")
    def api_layout(user: User) -> Layout:
        saved = store().user_setting(user, "layout")
        return Layout(**saved) if saved else Layout()

    @app.put("/api/layout", summary="Save the live wall's layout of the logged-in user")
    def api_save_layout(layout: Layout, user: User) -> Layout:
        for cam in layout.tiles:
            if cam:
                camera_id(cam)
        store().put_user_setting(user, "layout", layout.model_dump())
        return layout

    @app.get("/api/search", summary="Detections newest first, a page at a time, each with its crop's URL",
             responses={422: {"description": "a bad camera, time range or page"}})
    def api_search(camera: Annotated[list[str], Query(max_length=64)] = [],  # noqa: B006
                   since_ms: int | None = None, until_ms: int | None = None,
                   cls: Annotated[list[str], Query(max_length=100)] = [],  # noqa: B006
                   min_score: Annotated[float, Query(ge=0, le=1)] = 0.0,
                   page: Annotated[int, Query(ge=0)] = 0,
                   limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50) -> dict[str, Any]:
        ids = [camera_id(c) for c in camera]
        if since_ms is not None and until_ms is not None and since_ms > until_ms:
            raise HTTPException(422, f"the time range is reversed: since_ms {since_ms} > until_ms {until_ms}")
        depth = (page + 1) * limit
        if depth > MAX_SEARCH_DEPTH:
            raise HTTPException(422, f"page {page} of {limit} goes past the {MAX_SEARCH_DEPTH} newest results: "
                                     "narrow the time range instead")
        found = store().search_cameras(ids or None, since=since_ms, until=until_ms, classes=cls or None,
                                       min_score=min_score, limit=depth + 1)
        rows = [{**d.to_dict(), "crop": f"api/crops/{d.camera_id}/{d.capture_ts_ms}/{d.seq}/{d.index}.jpg",
                 "frame": f"frame/{d.camera_id}/{d.capture_ts_ms}/{d.seq}"}
                for d in found[page * limit:depth]]
        return {"results": rows, "page": page, "limit": limit, "more": len(found) > depth}

    @app.get("/api/crops/{camera}/{ts}/{seq}/{index}.jpg", summary="A detection's crop (JPEG)",
             response_class=Response, responses={200: {"content": {"image/jpeg": {}}}, 404: {}})
    def api_crop(camera: str, ts: int, seq: int, index: int) -> Response:
        data = store().crop(camera_id(camera), ts, seq, index)
        if data is None:
            raise HTTPException(404, "no crop stored for this detection")
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"})

    @app.get("/api/frames/{camera}/{ts}/{seq}", summary="One frame: its facts, stage times and every detection")
    def api_frame(camera: str, ts: int, seq: int) -> dict[str, Any]:
        frame = store().frame(camera_id(camera), ts, seq)
        if frame is None:
            raise HTTPException(404, f"no frame {seq} of camera {camera!r} at {ts}")
        return frame

    # ---- pages ----
    @app.get("/api/monitor", summary="Per camera over the last window_s: frames stored, frames/s, dead letters, "
                                     "p50/p99 of each stage (capture -> Kafka -> Spark -> detection -> HBase) and "
                                     "in all, and their series over time; the streaming queries (micro-batches, "
                                     "lag, restarts), their Spark executors, the services' CPU and memory, GPUs")
    def api_monitor(window_s: Annotated[int, Query(ge=5, le=MAX_MONITOR_WINDOW_S)] = MONITOR_WINDOW_S,
                    buckets: Annotated[int, Query(ge=2, le=MAX_PLOT_BUCKETS)] = PLOT_BUCKETS) -> dict[str, Any]:
        until = int(time.time() * 1000)
        since = until - window_s * 1000
        known = cameras()
        times = {cam["id"]: store().stage_times(cam["id"], since, until) for cam in known}
        streams = monitor.section(sources.streams)
        topics = monitor.dead_letter_topics(streams["rows"] or [], since, until)
        letters = monitor.section(lambda: sources.dead_letters(since, until, topics))
        counts = letters["rows"]
        # a camera whose every frame is refused has no frames row: its letters still name it
        for cam in (counts.cameras if counts else ()):
            times.setdefault(cam, [])
        rows = [{"id": cam, **stage_summary(rows, since, until),
                 "dead_letters": counts.for_camera(cam) if counts else None} for cam, rows in times.items()]
        # a registered camera always has its row (no frames is news); one that only streamed
        # earlier (its live frame is kept a day) only when the window has something of it
        registered = {cam["id"] for cam in known if cam["registered"]}
        shown = [r for r in rows if r["id"] in registered or r["frames"] or (r["dead_letters"] or {}).get("count")]
        return {"window_s": window_s, "since_ms": since, "until_ms": until,
                # the cameras with frames in the window first, then the quiet ones
                "cameras": sorted(shown, key=lambda row: (row["frames"] == 0, row["id"])),
                "quiet": sorted(r["id"] for r in rows if r not in shown),
                "dead_letters": {"topics": topics, "read": counts.read, "truncated": counts.truncated} if counts
                else {"topics": topics, "error": letters["error"]},
                "series": series(times, since, until, buckets), **monitor.cluster(sources, streams, since, until)}

    @app.get("/api/map/cameras", summary="The cameras on the ground (GeoJSON): each one's position and the "
                                         "ground it sees (from its ground mapping, else its heading)")
    def api_map_cameras() -> dict[str, Any]:
        return geo.camera_features(cameras())

    @app.get("/api/tracks.geojson", summary="The tracks of the cameras with a ground mapping, as lines on the "
                                            "ground (GeoJSON), captured in [since_ms, until_ms]",
             responses={422: {"description": "a bad camera or time range"}})
    def api_tracks(camera: Annotated[list[str], Query(max_length=64)] = [],  # noqa: B006
                   since_ms: int | None = None, until_ms: int | None = None) -> dict[str, Any]:
        ids = {camera_id(c) for c in camera}
        if since_ms is not None and until_ms is not None and since_ms > until_ms:
            raise HTTPException(422, f"the time range is reversed: since_ms {since_ms} > until_ms {until_ms}")
        features = []
        for cam in cameras():
            if (ids and cam["id"] not in ids) or not cam.get("ground"):
                continue
            features += geo.track_features(cam, store().tracks(cam["id"]), since_ms, until_ms)
            if len(features) > MAX_MAP_TRACKS:
                raise HTTPException(422, f"more than {MAX_MAP_TRACKS} tracks: narrow the time range or the cameras")
        return {"type": "FeatureCollection", "features": features}

    @app.get("/vendor/{path:path}", include_in_schema=False)
    def vendor(path: str) -> FileResponse:
        from argus.webassets import asset_path

        found = asset_path(path)
        if found is None:
            raise HTTPException(404, f"no file {path!r} (the set-up fetches the console's map files: make setup)")
        return FileResponse(found, headers={"Cache-Control": "private, max-age=86400"})

    @app.get("/map", response_class=HTMLResponse, include_in_schema=False)
    def map_view() -> str:
        from argus.config import map_tiles_url

        return pages.map_page(map_tiles_url())

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> FileResponse:
        path = STATIC / name
        if name not in {p.name for p in STATIC.iterdir()}:
            raise HTTPException(404, f"no file {name!r}")
        return FileResponse(path)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> str:
        return pages.index()

    @app.get("/cameras", response_class=HTMLResponse, include_in_schema=False)
    def cameras_page() -> str:
        return pages.cameras(cameras(), models())

    @app.get("/live", response_class=HTMLResponse, include_in_schema=False)
    def live_page() -> str:
        return pages.live()

    @app.get("/search", response_class=HTMLResponse, include_in_schema=False)
    def search_page(camera: Annotated[list[str], Query(max_length=64)] = [],  # noqa: B006
                    since: str = "", until: str = "", cls: str = "", min_score: str = "0",
                    page: str = "0") -> HTMLResponse:
        form = {"camera": camera, "since": since, "until": until, "cls": cls, "min_score": min_score}
        try:
            found = api_search(camera=camera, since_ms=pages.parse_time(since, "since"),
                               until_ms=pages.parse_time(until, "until"),
                               cls=[c.strip() for c in cls.split(",") if c.strip()],
                               min_score=pages.parse_number(min_score, "min_score", 0, 1),
                               page=int(pages.parse_number(page, "page", 0, MAX_SEARCH_DEPTH)), limit=50)
        except (HTTPException, ValueError) as exc:
            detail = exc.detail if isinstance(exc, HTTPException) else str(exc)
            return HTMLResponse(pages.search(form, cameras(), error=str(detail)), status_code=422)
        return HTMLResponse(pages.search(form, cameras(), found=found))

    @app.get("/monitor", response_class=HTMLResponse, include_in_schema=False)
    def monitor_page(window_s: str = str(MONITOR_WINDOW_S), refresh_s: str = "5") -> HTMLResponse:
        try:
            window = int(pages.parse_number(window_s, "window_s", 5, MAX_MONITOR_WINDOW_S))
            refresh = int(pages.parse_number(refresh_s, "refresh_s", 0, 3600))
        except ValueError as exc:
            return HTMLResponse(pages.monitor(None, window_s, error=str(exc)), status_code=422)
        data = api_monitor(window)
        drawn = {"throughput": plots.throughput_png(data["series"]), "latency": plots.latency_png(data["series"])}
        return HTMLResponse(pages.monitor(data, window_s, refresh_s=refresh, plots=drawn))

    @app.get("/frame/{camera}/{ts}/{seq}", response_class=HTMLResponse, include_in_schema=False)
    def frame_page(camera: str, ts: int, seq: int) -> str:
        return pages.frame(api_frame(camera, ts, seq))

    return app


__all__ = ["CONSOLE_URL_PREFIX", "PAGES", "create_app"]
