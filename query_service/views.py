"""HTTP views: read parameters, ask InfluxDB, shape the answer. Errors are raised as domain
exceptions and turned into JSON HTTP errors by :mod:`query_service.middlewares`."""

from __future__ import annotations

import asyncio
import html
from pathlib import Path
from typing import Any

from aiohttp import web

from fleet.config import MqttConfig
from fleet.errors import StoreError
from fleet.schema import EVERY_SECONDS
from fleet.timeutil import US, WINDOW_US, floor_to
from query_service import analysis, calendar_views
from query_service.cache import rendered_keep, ship_windows
from query_service.calendar_views import calendar_request
from query_service.db import InfluxClient, WindowRow
from query_service.energy import (
    FILLS,
    LABELS,
    MAX_US,
    MIN_US,
    EnergyQuery,
    ShipNotFoundError,
    assemble,
    choice,
    integer,
    number,
    parse_query,
    parse_range,
    parse_ship,
    public_ship_id,
    required,
)
from query_service.health import BrokerUnavailableError, probe_broker
from query_service.metrics import CONTENT_TYPE
from query_service.openapi import spec
from query_service.render import json_response, rendered, respond, response, wants_csv
from query_service.timefmt import iso
from query_service.typedefs import CONFIG, INFLUX, METRICS, PRESENCE

STATIC = Path(__file__).resolve().parent / "static"
MAX_TOP = 1000


def _json(body: Any, status: int = 200) -> web.Response:
    return json_response(body, status)


def _time(us: int | None) -> str | None:
    return None if us is None else iso(us)


async def data(request: web.Request) -> web.Response:
    """``GET /data?spaceship_id=&start=&end=``: the original API, 15-minute kWh windows."""
    max_windows = request.app[CONFIG].http.max_windows
    ship = required(request.query, "spaceship_id")
    query = parse_query(ship, "spaceship_id", request.query, max_windows, options=False)
    rows = await _ship_rows(request.app[INFLUX], query.ship, query.start_us, query.end_us,
                            query.every)
    as_csv = wants_csv(request)
    keep = rendered_keep(request.app[INFLUX])
    key = ("data", query, request.query_string, as_csv)
    done = keep.get(key, rows) if keep is not None else None
    if done is None:
        # /data is always fill=none: the stored windows as they are, no assemble() needed.
        data = [{"datetime": iso(r.start_us), "value": r.kwh} for r in rows]
        body = {"spaceship_id": public_ship_id(query.ship), "units": "kWh", "data": data}
        done = rendered(as_csv, body, ("datetime", "value"), data, f"data-{query.ship}")
        if keep is not None and rows:
            keep.put(key, rows, done)
    return response(done)


async def ship_energy(request: web.Request) -> web.Response:
    """``GET /v1/ships/{id}/energy?start=&end=&every=&tz=&label=&fill=&meter=&by=``."""
    max_windows = request.app[CONFIG].http.max_windows
    if calendar_request(request.query, request.app[CONFIG]):
        return await calendar_views.ship_energy(request)
    query = parse_query(request.match_info["id"], "id", request.query, max_windows)
    stored = await _ship_rows(request.app[INFLUX], query.ship, query.start_us, query.end_us,
                              query.every)
    as_csv = wants_csv(request)
    keep = rendered_keep(request.app[INFLUX])
    key = ("energy", query, request.query_string, as_csv)
    done = keep.get(key, stored) if keep is not None else None
    if done is None:
        rows = _window_dicts(query, stored)
        body = {"ship": query.ship, "unit": "kWh", **_head(query), "windows": rows}
        done = rendered(as_csv, body, ("time", "kwh", "coverage"), rows, f"energy-{query.ship}")
        if keep is not None and stored:
            keep.put(key, stored, done)
    return response(done)


def _head(query: EnergyQuery) -> dict[str, Any]:
    return {"every": query.every, "label": query.label, "start": iso(query.start_us),
            "end": iso(query.end_us)}


def _window_dicts(query: EnergyQuery, rows: list[WindowRow]) -> list[dict[str, Any]]:
    """The response's windows from the stored ones (see :func:`assemble`)."""
    shift = query.step_us if query.label == "end" else 0
    if query.fill == "none":
        # What assemble() gives, without a Window per row: a year of 15m is 35,040 rows.
        window_s = float(EVERY_SECONDS[query.every])
        return [{"time": iso(r.start_us + shift), "kwh": r.kwh, "coverage": r.seconds / window_s}
                for r in rows]
    return [{"time": iso(w.start_us + shift), "kwh": w.kwh, "coverage": w.coverage}
            for w in assemble(query, rows)]


async def ships(request: web.Request) -> web.Response:
    """``GET /v1/ships[?start=&end=]``: every ship seen (stored data or a status), its presence,
    the end of its last stored reading, its last stored 15-minute window; with a range, its kWh
    in the range too."""
    influx, presence = request.app[INFLUX], request.app[PRESENCE]
    ranged = "start" in request.query or "end" in request.query
    query = parse_range(request.query, request.app[CONFIG].http.max_windows) if ranged else None
    for name, choices, default in (("every", EVERY_SECONDS, "15m"), ("label", LABELS, "start"),
                                   ("fill", FILLS, "none")):
        choice(request.query, name, choices, default)  # accepted, and so validated, everywhere
    last = await influx.last_parts()
    totals = await influx.totals(query.start_us, query.end_us) if query is not None else {}
    rows = []
    for ship in sorted(set(last) | presence.ships()):
        state = presence.get(ship)
        part = last.get(ship)
        row: dict[str, Any] = {
            "ship": ship,
            "presence": state.state,
            "presence_since": state.since,
            "last_reading": _time(part[0] + round(part[1] * US)) if part else None,
            "last_window": _time(floor_to(part[0], WINDOW_US)) if part else None,
        }
        if query is not None:
            total = totals.get(ship)
            row["kwh"] = total[0] if total else None
        rows.append(row)
    body: dict[str, Any] = {"ships": rows}
    columns = ["ship", "presence", "presence_since", "last_reading", "last_window"]
    if query is not None:
        body = {"start": iso(query.start_us), "end": iso(query.end_us), **body}
        columns.append("kwh")
    return respond(request, body, columns, rows, "ships")


async def fleet_energy(request: web.Request) -> web.Response:
    """``GET /v1/fleet/energy``: per window, the fleet's kWh, ships reporting, mean per ship."""
    if calendar_request(request.query, request.app[CONFIG]):
        return await calendar_views.fleet_energy(request)
    query = parse_range(request.query, request.app[CONFIG].http.max_windows)
    rows = await request.app[INFLUX].fleet_windows(query.start_us, query.end_us, query.every)
    window_s = float(EVERY_SECONDS[query.every])
    shift = query.step_us if query.label == "end" else 0
    by_start = {r.start_us: r for r in rows}
    starts = ([r.start_us for r in rows] if query.fill == "none"
              else range(query.first_window_us, query.end_us, query.step_us))
    empty = None if query.fill == "null" else 0.0
    out = []
    for t in starts:
        r = by_start.get(t)
        if r is None:
            out.append({"time": iso(t + shift), "kwh": empty, "ships": 0,
                        "mean_kwh": empty, "coverage": 0.0})
        else:
            out.append({"time": iso(t + shift), "kwh": r.kwh, "ships": r.ships,
                        "mean_kwh": r.kwh / r.ships,
                        "coverage": r.seconds / (window_s * r.ships)})
    body = {**_head(query), "fill": query.fill, "unit": "kWh", "windows": out}
    return respond(request, body, ("time", "kwh", "ships", "mean_kwh", "coverage"), out,
                   "fleet-energy")


async def fleet_top(request: web.Request) -> web.Response:
    """``GET /v1/fleet/top?count=N``: the N ships with the most kWh in [start, end); with an
    explicit ``every``, each ship's windows too."""
    count = integer(request.query, "count", 10, 1, MAX_TOP)
    if calendar_request(request.query, request.app[CONFIG]):
        return await calendar_views.fleet_top(request, count)
    series = bool(request.query.get("every"))
    # Ranking is one sum over the range: the window bound applies only to the series.
    max_windows = request.app[CONFIG].http.max_windows if series else MAX_US - MIN_US
    query = parse_range(request.query, max_windows)
    influx = request.app[INFLUX]
    totals = await calendar_views.ranking(request, query.start_us, query.end_us, None)
    ranked = sorted(totals.items(), key=lambda item: (-item[1][0], item[0]))[:count]
    range_s = (query.end_us - query.start_us) / US
    out: list[dict[str, Any]] = [
        {"rank": i + 1, "ship": ship, "kwh": kwh, "coverage": seconds / range_s}
        for i, (ship, (kwh, seconds)) in enumerate(ranked)
    ]
    if series and out:
        by_ship = await influx.windows_by_ship(query.start_us, query.end_us, query.every,
                                               [row["ship"] for row in out])
        for row in out:
            ship_query = EnergyQuery(row["ship"], query.start_us, query.end_us, query.every,
                                     query.label, query.fill)
            row["windows"] = _window_dicts(ship_query, by_ship.get(row["ship"], []))
    body = {**_head(query), "count": count, "unit": "kWh", "ships": out}
    return respond(request, body, ("rank", "ship", "kwh", "coverage"), out, "fleet-top")


async def _ship_rows(influx: InfluxClient, ship: str, start_us: int, end_us: int,
                     every: str) -> list[WindowRow]:
    rows = await ship_windows(influx, ship, start_us, end_us, every)  # query_service/cache.py
    # Only an empty answer needs the second round trip: data proves the ship exists.
    if not rows and not await influx.ship_known(ship):
        raise ShipNotFoundError(ship)
    return rows


async def ship_gaps(request: web.Request) -> web.Response:
    """``GET /v1/ships/{id}/gaps``: missing and partial windows, merged into spans."""
    ship = parse_ship(request.match_info["id"], "id")
    query = parse_range(request.query, request.app[CONFIG].http.max_windows, ship=ship)
    rows = await _ship_rows(request.app[INFLUX], ship, query.start_us, query.end_us, query.every)
    spans = analysis.gaps(rows, query.start_us, query.end_us, query.step_us)
    out = [{"start": iso(g.start_us), "end": iso(g.end_us),
            "windows": g.windows, "missing": g.missing, "partial": g.partial,
            "coverage": g.coverage} for g in spans]
    range_s = (query.end_us - query.start_us) / US
    body = {**_head(query), "ship": ship, "coverage": sum(r.seconds for r in rows) / range_s,
            "gaps": out}
    return respond(request, body, ("start", "end", "windows", "missing", "partial", "coverage"),
                   out, f"gaps-{ship}")


async def ship_anomalies(request: web.Request) -> web.Response:
    """``GET /v1/ships/{id}/anomalies``: outlying windows against the ship's own recent history
    (rule in :mod:`query_service.analysis`)."""
    ship = parse_ship(request.match_info["id"], "id")
    every = choice(request.query, "every", EVERY_SECONDS, "15m")
    history = integer(request.query, "history", analysis.DEFAULT_HISTORY[every],
                      analysis.MIN_HISTORY, 10000)
    threshold = number(request.query, "threshold", analysis.DEFAULT_THRESHOLD, 0.5, 1000.0)
    query = parse_range(request.query, request.app[CONFIG].http.max_windows, ship=ship,
                        extra_windows=history)
    since = max(MIN_US, query.first_window_us - history * query.step_us)
    rows = await _ship_rows(request.app[INFLUX], ship, since, query.end_us, query.every)
    found = analysis.anomalies(rows, query.start_us, query.end_us, query.step_us,
                               float(EVERY_SECONDS[every]), history, threshold)
    shift = query.step_us if query.label == "end" else 0
    out = [{"time": iso(a.start_us + shift), "kwh": a.kwh, "median": a.median,
            "scale": a.scale, "score": a.score, "direction": "high" if a.score > 0 else "low"}
           for a in found]
    body = {**_head(query), "ship": ship, "unit": "kWh",
            "rule": {"method": "modified z-score: (kwh - median) / (1.4826 x MAD) over the "
                               "trailing complete windows", "history": history,
                     "min_history": analysis.MIN_HISTORY, "threshold": threshold},
            "anomalies": out}
    return respond(request, body, ("time", "kwh", "median", "scale", "score", "direction"), out,
                   f"anomalies-{ship}")


async def openapi(request: web.Request) -> web.Response:
    """The OpenAPI 3 document of this service."""
    return _json(spec())


async def index(request: web.Request) -> web.Response:
    """The dashboard page (it asks for a token and calls the API itself), told the fleet's time
    zone (``[query] timezone``, its pickers' default)."""
    page = (STATIC / "index.html").read_text(encoding="utf-8")
    zone = html.escape(request.app[CONFIG].query.timezone, quote=True)
    page = page.replace('data-fleet-tz="UTC"', f'data-fleet-tz="{zone}"', 1)
    return web.Response(text=page, content_type="text/html", headers={"Cache-Control": "no-cache"})


async def _influx_state(influx: InfluxClient) -> str:
    try:
        await influx.ping()
    except StoreError as exc:
        return f"unavailable: {exc}"
    return "ok"


async def _broker_state(mqtt: MqttConfig) -> str:
    try:
        await probe_broker(mqtt.host, mqtt.client_port, tls_ca=mqtt.tls_ca)
    except BrokerUnavailableError as exc:
        return f"unavailable: {exc}"
    return "ok"


async def healthz(request: web.Request) -> web.Response:
    """200 when InfluxDB answers ``/ping`` and the broker answers CONNECT; else 503."""
    influx, broker = await asyncio.gather(_influx_state(request.app[INFLUX]),
                                          _broker_state(request.app[CONFIG].mqtt))
    healthy = influx == broker == "ok"
    return _json({"status": "ok" if healthy else "unavailable", "influxdb": influx,
                  "broker": broker}, status=200 if healthy else 503)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition."""
    return web.Response(body=request.app[METRICS].exposition(),
                        headers={"Content-Type": CONTENT_TYPE})
