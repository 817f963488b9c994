"""``GET /v1/ships/{id}/meters``: a ship's meters, their kind and newest stored data.

Interval meters are found from the parts (measurement ``energy``, ``GROUP BY "meter"``, where the
untagged series is meter ``main``); register meters (``"kind": "total"``) from their stored
readings (measurement ``register``), which also give the last register value. A meter with
register readings is a ``total`` meter.

``last_reading`` is, for a ``total`` meter, its newest register reading (time and kWh); for an
``interval`` meter, whose readings are stored as their 15-minute parts, the newest part (its
start, kWh and seconds covered).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from fleet.config import InfluxConfig
from fleet.schema import (
    FIELD_KWH,
    FIELD_SECONDS,
    MEASUREMENT,
    TAG_METER,
    TAG_SHIP,
    meter_name,
    quote_ident,
    quote_string,
)
from fleet.totals import FIELD_VALUE, REGISTER
from query_service.db import DatabaseMissingError, InfluxClient, Series
from query_service.energy import ShipNotFoundError, parse_ship
from query_service.render import json_response
from query_service.timefmt import iso
from query_service.typedefs import CONFIG, INFLUX


async def _last(influx: InfluxClient, cfg: InfluxConfig, measurement: str, fields: str,
                ship: str) -> list[Series]:
    source = (f"{quote_ident(cfg.database)}.{quote_ident(cfg.retention_policy)}."
              f"{quote_ident(measurement)}")
    # The newest point of each meter's series (LIMIT applies per series); a raw select, since
    # InfluxDB 1.x stamps a row of several selectors with time 0.
    statement = (f"SELECT {fields} FROM {source} WHERE {quote_ident(TAG_SHIP)} = "
                 f"{quote_string(ship)} GROUP BY {quote_ident(TAG_METER)} ORDER BY time DESC LIMIT 1")
    try:
        return await influx.query(statement, kind="meters")
    except DatabaseMissingError:
        return []


async def ship_meters(request: web.Request) -> web.Response:
    """The ship's meters, sorted by name; 404 for a ship that never reported."""
    ship = parse_ship(request.match_info["id"], "id")
    influx, cfg = request.app[INFLUX], request.app[CONFIG].influxdb
    meters: dict[str, dict[str, Any]] = {}
    fields = f"{quote_ident(FIELD_KWH)}, {quote_ident(FIELD_SECONDS)}"
    parts = await _last(influx, cfg, MEASUREMENT, fields, ship)
    for series in parts:
        for t, kwh, seconds in series.values:
            meters[meter_name(series.tags.get(TAG_METER))] = {
                "kind": "interval",
                "last_reading": {"time": iso(int(t)), "kwh": kwh, "seconds": seconds}}
    registers = await _last(influx, cfg, REGISTER, quote_ident(FIELD_VALUE),
                            ship)
    for series in registers:
        for t, value in series.values:
            entry = meters.setdefault(meter_name(series.tags.get(TAG_METER)), {})
            entry["kind"] = "total"
            entry["last_reading"] = {"time": iso(int(t)), "register_kwh": value}
    if not meters:
        raise ShipNotFoundError(ship)
    body = {"ship": ship, "meters": [{"meter": name, **meters[name]} for name in sorted(meters)]}
    return json_response(body)
