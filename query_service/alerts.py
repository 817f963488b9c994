"""``GET /v1/alerts``: the alert service's states, read from InfluxDB's ``alert_events``.

The alert service writes every transition there (:mod:`fleet.alertevents`); the latest point of
each (ship, rule) is its current state. ``state=active`` (the default) lists the pending and
firing alerts; ``state=all`` lists every transition in [start, end) (default: the last 24 hours),
oldest first. ``ship`` narrows either to one ship.
"""

from __future__ import annotations

import time

from aiohttp import web

from fleet.alertevents import ACTIVE, active_query, events_from_series, history_query
from fleet.timeutil import US, format_datetime, parse_datetime
from query_service.db import DatabaseMissingError, Series
from query_service.energy import MAX_US, MIN_US, ParameterError, choice, parse_ship
from query_service.render import json_response
from query_service.typedefs import CONFIG, INFLUX

DAY_US = 86400 * US


def _time(request: web.Request, name: str, default: int) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    try:
        us = parse_datetime(text)
        if not MIN_US <= us <= MAX_US:
            raise ValueError(text)
        return us
    except ValueError:
        raise ParameterError(name, f"{name} must be a UTC timestamp such as "
                                   f"2018-08-24T00:00:00Z; got {text[:40]!r}") from None


def _rows(series: list[Series]) -> list[tuple[dict[str, str], list[str], list[list[object]]]]:
    return [(s.tags, list(s.columns), s.values) for s in series]


async def list_alerts(request: web.Request) -> web.Response:
    """Active alerts, or (``state=all``) their history in [start, end)."""
    state = choice(request.query, "state", ("active", "all"), "active")
    ship = request.query.get("ship")
    if ship is not None:
        ship = parse_ship(ship, "ship")
    # Checked whatever the state, so a bad one is a 400 rather than silently ignored.
    end = _time(request, "end", time.time_ns() // 1000 + 1)
    start = _time(request, "start", end - DAY_US)
    if start >= end:
        raise ParameterError("start", "start must be before end")
    cfg = request.app[CONFIG].influxdb
    influx = request.app[INFLUX]
    if state == "active":
        try:
            series = await influx.query(active_query(cfg.database, cfg.retention_policy, ship),
                                        kind="alerts")
        except DatabaseMissingError:
            series = []
        events = [e for e in events_from_series(_rows(series)) if e.state in ACTIVE]
        return json_response({"state": "active", "alerts": [e.as_json() for e in events]})
    try:
        series = await influx.query(history_query(cfg.database, cfg.retention_policy, start, end,
                                                  ship), kind="alerts")
    except DatabaseMissingError:
        series = []
    events = events_from_series(_rows(series))
    return json_response({"state": "all", "start": format_datetime(start),
                          "end": format_datetime(end), "alerts": [e.as_json() for e in events]})
