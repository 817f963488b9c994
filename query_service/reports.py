"""``GET /v1/reports/energy``: the energy report (CONTRACT section 5) as JSON, CSV or a spreadsheet.

:func:`energy_report` reads the period totals (:func:`query_service.calendar.period_totals`) and
builds the table with :func:`fleet.report.build`; ``fleetctl report`` calls it too, so the
endpoint and the command write the same table.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from zoneinfo import ZoneInfo

from aiohttp import web
from multidict import MultiMapping

from fleet.calendar import local_iso, parse_every, parse_tz
from fleet.config import Config
from fleet.report import XLSX_TYPE, Report, build, check_xlsx_width
from query_service.calendar import period_totals
from query_service.calendar_views import parse_meter
from query_service.db import InfluxClient
from query_service.energy import ParameterError, ShipNotFoundError, choice, parse_range, parse_ship
from query_service.render import json_response
from query_service.typedefs import CONFIG, INFLUX

FORMATS = ("json", "csv", "xlsx")
DEFAULT_EVERY = "1mo"
MAX_SHIPS = 1000


def parse_ships(params: MultiMapping[str]) -> list[str] | None:
    """``ship=a&ship=b`` or ``ship=a,b`` (or both); None when absent."""
    values = params.getall("ship", [])
    if not values:
        return None
    ships = [s.strip() for value in values for s in value.split(",")]
    if len(ships) > MAX_SHIPS:
        raise ParameterError("ship", f"at most {MAX_SHIPS} ships per report; got {len(ships)}")
    return list(dict.fromkeys(parse_ship(s, "ship") for s in ships))


async def energy_report(influx: InfluxClient, config: Config, start_us: int, end_us: int,
                        every: str, tz: ZoneInfo, *, ships: Sequence[str] | None = None,
                        meter: str | None = None, max_windows: int | None = None) -> Report:
    """The report of ``ships`` (default: every ship with data in the range)."""
    answer = await period_totals(influx, config, start_us, end_us, every, tz, ships=ships,
                                 meter=meter, max_windows=max_windows)
    if ships is not None:
        for ship in ships:
            if not any(s == ship for s, _m in answer.totals) and not await influx.ship_known(ship):
                raise ShipNotFoundError(ship)
    records = [(ship, m, i, total.kwh, total.seconds)
               for (ship, m), per in answer.totals.items() for i, total in per.items()]
    return build(records, answer.periods, every, tz, start_us, end_us, ships=ships, meter=meter,
                 truncated_before=answer.truncated_before)


def filename(report: Report, extension: str) -> str:
    """``energy-1mo-2025-01-01-2026-01-01.xlsx``: the range's local dates."""
    first = local_iso(report.start_us, report.tz)[:10]
    last = local_iso(report.end_us, report.tz)[:10]
    return f"energy-{report.every}-{first}-{last}.{extension}"


def _format(request: web.Request) -> str:
    fmt = choice(request.query, "format", FORMATS, "")
    if fmt:
        return fmt
    accept = request.headers.get("Accept", "")
    if XLSX_TYPE in accept:
        return "xlsx"
    return "csv" if "text/csv" in accept and "application/json" not in accept else "json"


def _params(query: Mapping[str, str], config: Config) -> tuple[str, ZoneInfo, int, int]:
    every = parse_every(query.get("every"), DEFAULT_EVERY)
    tz = parse_tz(query.get("tz"), config.query.timezone)
    rest = {k: v for k, v in query.items() if k in ("start", "end")}
    base = parse_range(rest, 1 << 62)
    return every, tz, base.start_us, base.end_us


async def energy(request: web.Request) -> web.Response:
    """``GET /v1/reports/energy?start=&end=&every=1mo&tz=&ship=&meter=&format=json|csv|xlsx``."""
    config = request.app[CONFIG]
    fmt = _format(request)
    every, tz, start_us, end_us = _params(request.query, config)
    if fmt == "xlsx":
        check_xlsx_width(start_us, end_us, every, tz)
    report = await energy_report(request.app[INFLUX], config, start_us, end_us, every, tz,
                                 ships=parse_ships(request.query),
                                 meter=parse_meter(request.query),
                                 max_windows=config.http.max_windows)
    if fmt == "json":
        return json_response(report.to_json())
    if fmt == "csv":
        return web.Response(
            text=report.to_csv(), content_type="text/csv", charset="utf-8",
            headers={"Content-Disposition": f'inline; filename="{filename(report, "csv")}"'})
    body = await asyncio.to_thread(report.to_xlsx)  # CPU work off the event loop
    return web.Response(
        body=body, content_type=XLSX_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{filename(report, "xlsx")}"'})
