"""The sweep reports as pages of the Airflow api-server (mounted by ``plugins/argus_doe_plugin.py``).

``/argus-doe/sweeps/`` lists the sweeps, ``/argus-doe/sweeps/<id>/report`` renders a sweep's
``report.md`` with its contour plots, ``/argus-doe/sweeps/<id>/<file>`` serves its files
(PNG, CSV, JSON, logs). The "DOE report" link of the sweep's tasks points here. Access needs
a logged-in Airflow user allowed to read ``argus_doe_nightly``'s runs: the browser's session
cookie or a bearer token, as for the REST API.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI
    from fastapi.responses import HTMLResponse

DAG_ID = "argus_doe_nightly"
#: where the api-server mounts the app
REPORTS_URL_PREFIX = "/argus-doe"
_SWEEP_ID = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$")
_FILE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*\.(png|csv|json|md|log)$")
_STYLE = """<style>
body{font-family:system-ui,sans-serif;margin:1.5rem auto;max-width:1100px;padding:0 1rem;color:#1b1b1b}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.9rem}
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}img{max-width:100%}code{background:#f3f3f3}
</style>"""


def _page(title: str, body: str) -> HTMLResponse:
    from fastapi.responses import HTMLResponse

    return HTMLResponse(f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
                        f"{_STYLE}</head><body>{body}</body></html>")


def _require_dag_run_access():
    """Airflow's own check: a user allowed to read this DAG's runs (cookie or bearer token)."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import requires_access_dag

    return requires_access_dag("GET", DagAccessEntity.RUN, param_dag_id=DAG_ID)


def create_app(root: Path | None = None, *, authorize: bool = True) -> FastAPI:
    """The reports app.

    :param root: the sweeps' parent folder; default :func:`argus.doe.sweep.sweeps_dir`.
    :param authorize: require Airflow's authentication (off only in tests of the pages).
    """
    from fastapi import Depends, FastAPI, HTTPException
    from fastapi.responses import FileResponse, HTMLResponse

    from argus.doe.sweep import sweeps_dir

    deps = [Depends(_require_dag_run_access())] if authorize else []
    app = FastAPI(title="Argus DOE sweep reports", dependencies=deps, docs_url=None, redoc_url=None,
                  openapi_url=None)

    def base() -> Path:
        return Path(root) if root is not None else sweeps_dir()

    def folder(sweep_id: str) -> Path:
        path = base() / sweep_id
        if not _SWEEP_ID.match(sweep_id) or not (path / "design.json").is_file():
            raise HTTPException(404, f"no sweep {sweep_id!r}")
        return path

    @app.get("/sweeps/", response_class=HTMLResponse)
    def index():
        rows = []
        folders = [p for p in base().glob("*/design.json")] if base().is_dir() else []
        for design in sorted(folders, key=lambda p: p.stat().st_mtime, reverse=True):
            path = design.parent
            promotion = path / "promotion.json"
            state = ("promoted" if json.loads(promotion.read_text()).get("promote") else "not promoted") \
                if promotion.exists() else ("analysed" if (path / "report.md").exists() else "running")
            name = html.escape(path.name)
            link = f"<a href='{name}/report'>{name}</a>" if (path / "report.md").exists() else name
            rows.append(f"<tr><td>{link}</td><td>{state}</td></tr>")
        body = "<h1>DOE sweeps</h1><table><tr><th>sweep</th><th>state</th></tr>" + "".join(rows) + "</table>"
        return _page("DOE sweeps", body if rows else "<h1>DOE sweeps</h1><p>No sweep yet.</p>")

    @app.get("/sweeps/{sweep_id}/report", response_class=HTMLResponse)
    def report(sweep_id: str):
        from markdown_it import MarkdownIt

        path = folder(sweep_id)
        md = path / "report.md"
        if not md.exists():
            raise HTTPException(404, f"sweep {sweep_id!r} has not been analysed yet")
        body = MarkdownIt("commonmark", {"html": False}).enable("table").render(md.read_text())
        files = " · ".join(f"<a href='{n}'>{n}</a>" for n in ("runs.csv", "design.json", "analysis.json",
                                                                "confirmation.csv", "promotion.json")
                           if (path / n).exists())
        return _page(f"DOE sweep {sweep_id}", f"<p><a href='../'>all sweeps</a> · {files}</p>{body}")

    @app.get("/sweeps/{sweep_id}/{name}")
    def file(sweep_id: str, name: str):
        path = folder(sweep_id) / name
        if not _FILE.match(name) or not path.is_file():
            raise HTTPException(404, f"no file {name!r} in sweep {sweep_id!r}")
        media = "text/plain; charset=utf-8" if path.suffix in (".md", ".log", ".csv") else None
        return FileResponse(path, media_type=media)

    return app


def report_url(sweep_id: str) -> str:
    """The sweep report's page in the api-server (``[api] base_url``)."""
    from airflow.sdk.configuration import conf

    base = conf.get("api", "base_url", fallback="http://localhost:8080/").rstrip("/")
    return f"{base}{REPORTS_URL_PREFIX}/sweeps/{sweep_id}/report"


class LazyReportsApp:
    """The reports app, built on its first request: Airflow imports plugins in every process
    (scheduler, task runners), and only the api-server needs FastAPI and Airflow's security."""

    def __init__(self, **kwargs):
        self._kwargs, self._app = kwargs, None

    async def __call__(self, scope, receive, send):
        if self._app is None:
            self._app = create_app(**self._kwargs)
        await self._app(scope, receive, send)


__all__ = ["DAG_ID", "REPORTS_URL_PREFIX", "LazyReportsApp", "create_app", "report_url"]
