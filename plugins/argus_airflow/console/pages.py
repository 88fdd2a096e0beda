"""The console's HTML: every value from the data goes through :func:`html.escape` here, and
links are relative (the pages sit one level under the console's prefix)."""

from __future__ import annotations

import base64
import datetime as dt
import html
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlencode

#: the console's pages: path under the prefix -> title (the plugin's menu entries)
PAGES = {"live": "Live", "search": "Search", "monitor": "Monitor", "map": "Map", "cameras": "Cameras"}

_STYLE = "<link rel='stylesheet' href='{up}static/console.css'>"


def e(value: Any) -> str:
    """Escaped text of ``value`` ('' for None), safe in element content and quoted attributes."""
    return "" if value is None else html.escape(str(value), quote=True)


def page(title: str, body: str, depth: int = 0, scripts: Sequence[str] = (), vendor: Sequence[str] = ()) -> str:
    """A page with the console's navigation; ``depth``: path segments below the page level;
    ``vendor``: third-party files (:mod:`argus.webassets`) loaded before ``scripts``."""
    up = "../" * depth
    nav = " ".join(f"<a href='{up}{path}'>{e(name)}</a>" for path, name in PAGES.items())
    tags = "".join(f"<link rel='stylesheet' href='{up}vendor/{name}'>" if name.endswith(".css")
                   else f"<script src='{up}vendor/{name}' defer></script>" for name in vendor)
    tags += "".join(f"<script src='{up}static/{name}' defer></script>" for name in scripts)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)} · Argus</title>"
            f"{_STYLE.format(up=up)}{tags}</head><body><nav><a href='{up}./'><b>Argus</b></a> {nav}</nav>"
            f"<h1>{e(title)}</h1>{body}</body></html>")


def index() -> str:
    items = "".join(f"<li><a href='{path}'>{e(name)}</a></li>" for path, name in PAGES.items())
    return page("Console", f"<ul>{items}</ul><p class='muted'>JSON: <a href='api/openapi.json'>OpenAPI</a></p>")


def _time(ms: int | None) -> str:
    if ms is None:
        return ""
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def cameras(rows: Sequence[Mapping[str, Any]], models: Sequence[str]) -> str:
    fields = ("url", "rate_hz", "latitude", "longitude", "model")
    head = "".join(f"<th>{e(name)}</th>" for name in ("camera", *fields, "runs", "changed"))
    out = []
    for cam in rows:
        cells = "".join(f"<td{' class=num' if name in ('rate_hz', 'latitude', 'longitude') else ''}>"
                        f"{e(cam.get(name))}</td>" for name in fields)
        if cam.get("registered") is False:  # it streams, but nobody recorded where it is
            cells = f"<td class='unregistered' colspan='{len(fields)}'>streaming; not in argus:cameras</td>"
        current = cam.get("assigned_model") or ""
        options = "<option value=''>(job's mapping)</option>" if not current else ""
        options += "".join(f"<option{' selected' if m == current else ''}>{e(m)}</option>" for m in models)
        changed = (f"{e(cam.get('assigned_by'))}, {e(_time(cam.get('assigned_at_ms')))}"
                   if cam.get("assigned_at_ms") else "")
        out.append(f"<tr data-camera='{e(cam['id'])}'><td>{e(cam['id'])}</td>{cells}"
                   f"<td><select class='model' aria-label='model of {e(cam['id'])}'>{options}</select></td>"
                   f"<td class='muted'>{changed}</td></tr>")
    if not out:
        return page("Cameras", "<p>No camera recorded yet: <code>argus ingest</code> records its cameras, "
                               "<code>argus cameras import</code> the registry's.</p>")
    body = (f"<p class='muted'>Choosing a model here makes the running streaming job detect that camera's "
            f"frames with it within a few micro-batches (no restart); the change is recorded.</p>"
            f"<p id='status' class='error'></p><table id='cameras'><tr>{head}</tr>{''.join(out)}</table>")
    return page("Cameras", body, scripts=["cameras.js"])


def live() -> str:
    presets = "".join(f"<option>{p}</option>" for p in ("1x1", "2x2", "3x3", "4x3", "4x4"))
    body = (f"<div class='controls'><label>Grid <select id='preset'>{presets}<option value='custom'>custom"
            "</option></select></label> <label>columns <input id='cols' type='number' min='1' max='8'></label>"
            " <label>rows <input id='rows' type='number' min='1' max='8'></label>"
            " <span id='status' class='error'></span></div><div id='wall'></div>")
    return page("Live", body, scripts=["live.js"])


def map_page(tiles_url: str | None) -> str:
    """The cameras on the ground (``map.js``): on the offline base map, or on ``tiles_url``'s tiles."""
    tiles = f" data-tiles='{e(tiles_url)}'" if tiles_url else ""
    body = (f"<p class='muted'>Each camera where <code>cameras.yaml</code> puts it, and the ground it sees: from its "
            f"<code>ground</code> mapping, else a wedge along its <code>heading_deg</code>. "
            f"{'Tiles: ' + e(tiles_url) if tiles_url else 'Offline base map (Natural Earth land); set ARGUS_MAP_TILES for streets.'}"
            f"</p><p id='status' class='error'></p><div id='map'{tiles}></div>")
    return page("Map", body, scripts=["map.js"], vendor=["leaflet/leaflet.css", "leaflet/leaflet.js"])


def parse_time(value: str, name: str) -> int | None:
    """A ``datetime-local`` value (UTC) or ms since the epoch -> ms; '' -> None."""
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return int(value)
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{name}: {value!r} is not a time (YYYY-MM-DDTHH:MM, UTC)") from None
    return int(moment.replace(tzinfo=moment.tzinfo or dt.UTC).timestamp() * 1000)


def parse_number(value: str, name: str, low: float, high: float) -> float:
    try:
        number = float(value or 0)
    except ValueError:
        raise ValueError(f"{name}: {value!r} is not a number") from None
    if not low <= number <= high:
        raise ValueError(f"{name} must be between {low:g} and {high:g}, not {number:g}")
    return number


def search(form: Mapping[str, Any], cameras: Sequence[Mapping[str, Any]], *, found: Mapping[str, Any] | None = None,
           error: str | None = None) -> str:
    chosen = set(form.get("camera") or [])
    options = "".join(f"<option{' selected' if c['id'] in chosen else ''}>{e(c['id'])}</option>" for c in cameras)
    body = ("<form method='get' class='controls'>"
            f"<label>cameras <select name='camera' multiple size='4'>{options}</select></label> "
            f"<label>since (UTC) <input name='since' type='datetime-local' step='1' value='{e(form.get('since'))}'>"
            f"</label> <label>until <input name='until' type='datetime-local' step='1' "
            f"value='{e(form.get('until'))}'></label> <label>classes <input name='cls' placeholder='person, car' "
            f"value='{e(form.get('cls'))}'></label> <label>min score <input name='min_score' type='number' "
            f"step='0.05' min='0' max='1' value='{e(form.get('min_score') or '0')}'></label> "
            "<button type='submit'>Search</button></form>")
    if error:
        return page("Search", body + f"<p class='error' id='error'>{e(error)}</p>")
    if found is None:
        return page("Search", body)
    rows = []
    for d in found["results"]:
        rows.append(f"<tr class='result'><td><a href='{e(d['frame'])}'><img class='crop' src='{e(d['crop'])}' "
                    f"alt='{e(d['class_name'])}' loading='lazy'></a></td><td>{e(d['class_name'])}</td>"
                    f"<td class='num'>{d['score']:.2f}</td><td>{e(d['camera_id'])}</td>"
                    f"<td>{e(_time(d['capture_ts_ms']))}</td><td>{e(d['model'])}</td>"
                    f"<td><a href='{e(d['frame'])}'>frame {e(d['seq'])}</a></td></tr>")
    query = {k: v for k, v in form.items() if v and k != "camera"}
    pager = []
    for label, number in (("newer", found["page"] - 1), ("older", found["page"] + 1)):
        if (label == "newer" and number >= 0) or (label == "older" and found["more"]):
            params = urlencode([*[("camera", c) for c in form.get("camera") or []],
                                *query.items(), ("page", number)])
            pager.append(f"<a href='search?{e(params)}'>{label}</a>")
    head = "<tr><th>crop</th><th>class</th><th>score</th><th>camera</th><th>captured</th><th>model</th><th></th></tr>"
    table = f"<table id='results'>{head}{''.join(rows)}</table>" if rows else "<p>No detection matches.</p>"
    return page("Search", f"{body}<p class='muted'>page {found['page'] + 1}</p>{table}<p>{' · '.join(pager)}</p>")


def _ms(value: Any) -> str:
    return "" if value is None else f"{value:.0f}"


def _table(table_id: str, headers: Sequence[str], rows: Sequence[Sequence[Any]], numeric: set[int] = frozenset(),
           empty: str = "none") -> str:
    """A table of escaped cells (``numeric``: the columns aligned right)."""
    if not rows:
        return f"<p class='muted'>{e(empty)}</p>"
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td{' class=num' if i in numeric else ''}>{e(v)}</td>" for i, v in enumerate(row))
                   + "</tr>" for row in rows)
    return f"<table id='{table_id}'><tr>{head}</tr>{body}</table>"


def _section_error(section: Mapping[str, Any]) -> str:
    return f"<p class='error'>unavailable: {e(section.get('error'))}</p>" if section.get("error") else ""


def _cameras_table(data: Mapping[str, Any]) -> str:
    stages = list(data["cameras"][0]["stages"]) if data["cameras"] else []
    head = ("<tr><th rowspan='2'>camera</th><th rowspan='2'>frames</th><th rowspan='2'>frames/s</th>"
            "<th rowspan='2'>dead letters</th>"
            + "".join(f"<th colspan='2'>{e(s.replace('->', ' → '))} ms</th>" for s in stages) + "</tr><tr>"
            + "<th>p50</th><th>p99</th>" * len(stages) + "</tr>")
    rows = []
    for c in data["cameras"]:
        letters = c.get("dead_letters")
        why = "; ".join(f"{r['count']} × {r['reason']}" for r in letters["reasons"]) if letters else ""
        dead = "" if letters is None else f"<td class='num' title='{e(why)}'>{e(letters['count'])}</td>"
        rows.append(f"<tr class='camera' data-camera='{e(c['id'])}'><td>{e(c['id'])}</td>"
                    f"<td class='num'>{e(c['frames'])}</td><td class='num'>{c['fps']:.2f}</td>"
                    + (dead or "<td class='muted'>?</td>")
                    + "".join(f"<td class='num'>{_ms(c['stages'][s]['p50'])}</td>"
                              f"<td class='num'>{_ms(c['stages'][s]['p99'])}</td>" for s in stages) + "</tr>")
    quiet = (f"<p class='muted' id='quiet'>streamed earlier, nothing in the window: {e(', '.join(data['quiet']))}</p>"
             if data.get("quiet") else "")
    return (f"<table id='monitor'>{head}{''.join(rows)}</table>" if rows else "<p>No camera.</p>") + quiet


def _streams(data: Mapping[str, Any]) -> str:
    streams = data["streams"]
    rows = [(s["query"], s["state"] or "", "running" if s["running"] else "not running", s["driver"] or "",
             s["heartbeat_age_s"], s["batches"], _ms(s["batch_ms"]["last"]), _ms(s["batch_ms"]["median"]),
             _ms(s["batch_ms"]["max"]), s["rows_last"], s["lag"], s["restarts"], s["outage"] or "", s["isolated"],
             s["skipped"]) for s in streams["rows"] or []]
    table = _table("streams", ("query", "state", "lease", "driver", "heartbeat age s", "batches", "batch ms last",
                               "median", "max", "rows last", "Kafka lag", "restarts", "waiting for", "isolated",
                               "skipped offsets"), rows, numeric={4, 5, 6, 7, 8, 9, 10, 11, 13, 14},
                   empty="no streaming query has a status row")
    idle = (f"<p class='muted'>not running and idle in the window: {e(', '.join(streams['idle']))}</p>"
            if streams.get("idle") else "")
    out = [f"<h2>Streaming job</h2>{_section_error(streams)}{table}{idle}"]
    for query, section in data["executors"].items():
        rows = [(x["id"], x["hostPort"], "yes" if x["isActive"] else "no", x["totalCores"], x["activeTasks"],
                 x["completedTasks"], x["failedTasks"], f"{(x['totalDuration'] or 0) / 1000:.0f}",
                 f"{(x['memoryUsed'] or 0) / 2**20:.0f} / {(x['maxMemory'] or 0) / 2**20:.0f}")
                for x in section["rows"] or []]
        out.append(f"<h3>Spark executors of {e(query)}</h3>{_section_error(section)}"
                   + _table(f"executors-{e(query)}", ("executor", "host:port", "active", "cores", "active tasks",
                                                     "completed", "failed", "task time s", "storage memory MiB"),
                            rows, numeric={3, 4, 5, 6, 7}))
    return "".join(out)


def _hosts(data: Mapping[str, Any]) -> str:
    services, gpus = data["services"], data["gpus"]
    rows = [(s["service"], s["pid"], "" if s["cpu_pct"] is None else f"{s['cpu_pct']:.1f}", f"{s['rss_mb']:.0f}",
             s["processes"]) for s in services["rows"] or []]
    out = ["<h2>Services on this host</h2>", _section_error(services),
           _table("services", ("service", "pid", "CPU % of a core", "memory MiB", "processes"), rows, numeric={1, 2, 3, 4},
                  empty="no service of the stack runs on this host")]
    out.append("<h2>GPUs</h2>" + _section_error(gpus))
    if not gpus.get("error"):
        if gpus["rows"] is None:
            out.append("<p class='muted'>no nvidia-smi on this host: no GPU to show</p>")
        else:
            out.append(_table("gpus", ("GPU", "name", "utilization %", "memory used MiB", "memory MiB"),
                              [(g["index"], g["name"], _ms(g["utilization_pct"]), _ms(g["memory_used_mb"]),
                                _ms(g["memory_total_mb"])) for g in gpus["rows"]], numeric={2, 3, 4}))
    return "".join(out)


def monitor(data: Mapping[str, Any] | None, window_s: str, error: str | None = None, refresh_s: int = 5,
            plots: Mapping[str, bytes] | None = None) -> str:
    """Per camera over the window: frames, frames/s, dead letters, p50 / p99 of each stage; the
    streaming job, its executors, the services, the GPUs; ``plots`` (name -> PNG) above. The
    page reloads itself every ``refresh_s`` (0: never)."""
    body = ("<form method='get' class='controls'><label>window (s) <input name='window_s' type='number' "
            f"min='5' max='3600' value='{e(window_s)}'></label> <button type='submit'>Show</button></form>")
    if error or data is None:
        return page("Monitor", body + f"<p class='error' id='error'>{e(error)}</p>")
    letters = data.get("dead_letters") or {}
    note = (f"<p class='muted'>frames captured in the last {e(data['window_s'])} s, from argus:frames "
            f"(until {e(_time(data['until_ms']))}); dead letters sent to {e(', '.join(letters.get('topics') or []))} in that window"
            + (" (more than were read: a lower bound)" if letters.get("truncated") else "")
            + (f"; the page reloads every {refresh_s} s" if refresh_s else "") + "</p>")
    if letters.get("error"):
        note += f"<p class='error'>dead letters unavailable: {e(letters['error'])}</p>"
    images = "".join(f"<img class='plot' alt='{e(name)}' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"
                     for name, png in (plots or {}).items())
    html_page = page("Monitor", body + f"<div class='plots'>{images}</div>" + note + _cameras_table(data)
                     + _streams(data) + _hosts(data))
    if refresh_s:
        html_page = html_page.replace("<head>", f"<head><meta http-equiv='refresh' content='{refresh_s}'>", 1)
    return html_page


def frame(info: Mapping[str, Any]) -> str:
    """One frame: each detection's crop placed in its box, on the frame's shape (full frames
    are not kept; the crops are what HBase holds)."""
    width, height = info.get("width") or 16, info.get("height") or 9
    boxes = []
    for d in info["detections"]:
        x1, y1, x2, y2 = d["box"]
        style = f"left:{x1 * 100:.3f}%;top:{y1 * 100:.3f}%;width:{(x2 - x1) * 100:.3f}%;height:{(y2 - y1) * 100:.3f}%"
        crop = f"../../../api/crops/{quote(info['camera_id'])}/{info['capture_ts_ms']}/{info['seq']}/{d['index']}.jpg"
        boxes.append(f"<div class='box' style='{style}'><img src='{e(crop)}' alt=''>"
                     f"<span>{e(d['class_name'])} {d['score']:.2f}</span></div>")
    stages = "".join(f"<tr><td>{e(k)}</td><td>{e(_time(v))}</td></tr>" for k, v in info["stages"].items())
    body = (f"<p>{e(info['camera_id'])} · frame {e(info['seq'])} · {e(_time(info['capture_ts_ms']))} · "
            f"{e(info.get('model'))} · {len(info['detections'])} detection(s)</p>"
            f"<div class='frame' style='aspect-ratio:{width}/{height}'>{''.join(boxes)}</div>"
            f"<table><tr><th>stage</th><th>time</th></tr>{stages}</table>")
    return page(f"Frame {info['seq']} of {info['camera_id']}", body, depth=3)
