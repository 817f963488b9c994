"""HTTP views: read parameters, ask InfluxDB, shape the answer. Errors are raised as domain
exceptions and turned into JSON HTTP errors by :mod:`query_service.middlewares`."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from fleet.config import MqttConfig
from fleet.errors import StoreError
from fleet.timeutil import format_datetime
from query_service.db import InfluxClient
from query_service.energy import (
    EnergyQuery,
    ShipNotFoundError,
    Window,
    assemble,
    parse_query,
    public_ship_id,
    required,
)
from query_service.health import BrokerUnavailableError, probe_broker
from query_service.metrics import CONTENT_TYPE
from query_service.typedefs import CONFIG, INFLUX, METRICS


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(body), status=status, content_type="application/json")


async def _windows(influx: InfluxClient, query: EnergyQuery) -> list[Window]:
    rows = await influx.windows(query.ship, query.start_us, query.end_us, query.every)
    # Only an empty answer needs the second round trip: data proves the ship exists.
    if not rows and not await influx.ship_known(query.ship):
        raise ShipNotFoundError(query.ship)
    return assemble(query, rows)


async def data(request: web.Request) -> web.Response:
    """``GET /data?spaceship_id=&start=&end=``: the original API, 15-minute kWh windows."""
    max_windows = request.app[CONFIG].http.max_windows
    ship = required(request.query, "spaceship_id")
    query = parse_query(ship, "spaceship_id", request.query, max_windows, options=False)
    windows = await _windows(request.app[INFLUX], query)
    return _json({
        "spaceship_id": public_ship_id(query.ship),
        "units": "kWh",
        "data": [{"datetime": format_datetime(w.start_us), "value": w.kwh} for w in windows],
    })


async def ship_energy(request: web.Request) -> web.Response:
    """``GET /v1/ships/{id}/energy?start=&end=&every=&label=&fill=``."""
    max_windows = request.app[CONFIG].http.max_windows
    query = parse_query(request.match_info["id"], "id", request.query, max_windows)
    windows = await _windows(request.app[INFLUX], query)
    shift = query.step_us if query.label == "end" else 0
    return _json({
        "ship": query.ship,
        "unit": "kWh",
        "every": query.every,
        "label": query.label,
        "start": format_datetime(query.start_us),
        "end": format_datetime(query.end_us),
        "windows": [
            {"time": format_datetime(w.start_us + shift), "kwh": w.kwh, "coverage": w.coverage}
            for w in windows
        ],
    })


async def ships(request: web.Request) -> web.Response:
    """``GET /v1/ships``: every ship with stored data."""
    return _json({"ships": await request.app[INFLUX].ships()})


async def _influx_state(influx: InfluxClient) -> str:
    try:
        await influx.ping()
    except StoreError as exc:
        return f"unavailable: {exc}"
    return "ok"


async def _broker_state(mqtt: MqttConfig) -> str:
    try:
        await probe_broker(mqtt.host, mqtt.port, tls_ca=mqtt.tls_ca)
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
