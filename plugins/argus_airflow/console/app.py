"""The console app (mounted by ``plugins/argus_console_plugin.py``).

Every route, the OpenAPI document included, depends on Airflow's own access check, so a
request without a valid session cookie or bearer token gets 401 (403 for a user the auth
manager does not allow). Pages are server-rendered with everything from the data escaped,
and link with relative URLs so that the console works behind a proxy path.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

#: where the api-server mounts the console
CONSOLE_URL_PREFIX = "/argus"
#: the console's pages: path under the prefix -> title (the plugin's menu entries)
PAGES = {"cameras": "Cameras"}

_STYLE = """<style>
body{font-family:system-ui,sans-serif;margin:1rem auto;max-width:1200px;padding:0 1rem;color:#1b1b1b}
nav a{margin-right:1rem}table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.9rem}
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left}th{background:#f3f3f3}
td.num{text-align:right;font-variant-numeric:tabular-nums}.muted{color:#666}
</style>"""


def _page(title: str, body: str, depth: int = 0) -> str:
    """An HTML page with the console's navigation; ``depth``: path segments below the prefix."""
    up = "../" * depth
    nav = " ".join(f"<a href='{up}{path}'>{html.escape(name)}</a>" for path, name in PAGES.items())
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)} · Argus</title>"
            f"{_STYLE}</head><body><nav><a href='{up}./'><b>Argus</b></a> {nav}</nav>"
            f"<h1>{html.escape(title)}</h1>{body}</body></html>")


def _default_store():
    from argus.store import DetectionStore
    from argus_airflow.hooks.endpoints import airflow_endpoints

    return DetectionStore.from_endpoints(airflow_endpoints())


def _require_login():
    """Airflow's check for its own UI: a logged-in user allowed to see the website."""
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
    from airflow.api_fastapi.core_api.security import requires_access_view

    return requires_access_view(AccessView.WEBSITE)


def create_app(store_factory: Callable[[], Any] | None = None, *, authorize: bool = True) -> FastAPI:
    """The console.

    :param store_factory: makes the :class:`~argus.store.DetectionStore` the pages read
        (default: the ``argus_hbase`` connection's); called once, on first use.
    :param authorize: require Airflow's login (off only in tests of the pages).
    """
    from fastapi import Depends, FastAPI, HTTPException
    from fastapi.responses import HTMLResponse

    from argus.live.cameras import TABLE_FIELDS
    from argus.live.message import check_camera_id

    deps = [Depends(_require_login())] if authorize else []
    # FastAPI's own OpenAPI and docs routes would skip the app's dependencies: served below instead
    app = FastAPI(title="Argus console", description="Cameras, detections and the pipeline's health.",
                  dependencies=deps, docs_url=None, redoc_url=None, openapi_url=None)
    made: list = []

    def store():
        if not made:
            made.append((store_factory or _default_store)())
        return made[0]

    def cameras() -> list[dict[str, Any]]:
        return [{"id": cam, **{name: fields.get(name) for name in TABLE_FIELDS}}
                for cam, fields in store().cameras().items()]

    @app.get("/api/openapi.json", include_in_schema=False)
    def openapi() -> dict:
        return app.openapi()

    @app.get("/api/cameras", summary="The cameras table (argus:cameras): id, URL, rate, coordinates, model")
    def api_cameras() -> dict[str, list[dict[str, Any]]]:
        return {"cameras": cameras()}

    @app.get("/api/cameras/{camera_id}", summary="One camera of the cameras table",
             responses={404: {"description": "no such camera"}, 422: {"description": "not a camera id"}})
    def api_camera(camera_id: str) -> dict[str, Any]:
        try:
            check_camera_id(camera_id)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        found = [c for c in cameras() if c["id"] == camera_id]
        if not found:
            raise HTTPException(404, f"no camera {camera_id!r} in argus:cameras")
        return found[0]

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> str:
        items = "".join(f"<li><a href='{path}'>{html.escape(name)}</a></li>" for path, name in PAGES.items())
        return _page("Console", f"<ul>{items}</ul><p class='muted'>JSON: <a href='api/openapi.json'>OpenAPI</a></p>")

    @app.get("/cameras", response_class=HTMLResponse, include_in_schema=False)
    def cameras_page() -> str:
        rows = []
        for cam in cameras():
            cells = "".join(f"<td{' class=num' if name in ('rate_hz', 'latitude', 'longitude') else ''}>"
                            f"{html.escape(cam[name] or '')}</td>" for name in TABLE_FIELDS)
            rows.append(f"<tr><td>{html.escape(cam['id'])}</td>{cells}</tr>")
        head = "".join(f"<th>{html.escape(name)}</th>" for name in ("camera", *TABLE_FIELDS))
        body = (f"<table><tr>{head}</tr>{''.join(rows)}</table>" if rows else
                "<p>No camera recorded yet: <code>argus ingest</code> records its cameras, "
                "<code>argus cameras import</code> the registry's.</p>")
        return _page("Cameras", body)

    return app


__all__ = ["CONSOLE_URL_PREFIX", "PAGES", "create_app"]
