"""Calendar answers of the energy endpoints: ``every`` up to ``1y``, ``tz``, ``meter``, ``by=meter``.

The views in :mod:`query_service.views` hand a request here unless it is a plain UTC 15-minute
one (which reads the parts directly, as before). Sums come from :func:`period_totals`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from fleet.calendar import US, Period, local_iso, parse_every, parse_tz
from fleet.coarse import horizon_us
from fleet.config import Config
from fleet.schema import METER_ID
from fleet.timeutil import parse_datetime
from query_service.calendar import (
    CalendarAnswer,
    Total,
    period_totals,
    range_totals,
    ship_sums,
)
from query_service.energy import (
    FILLS,
    LABELS,
    ParameterError,
    ShipNotFoundError,
    choice,
    parse_range,
    parse_ship,
)
from query_service.render import Rendered, rendered, respond, response, wants_csv
from query_service.timefmt import iso
from query_service.typedefs import CONFIG, INFLUX

BY = ("meter",)


def calendar_request(params: Mapping[str, str], config: Config) -> bool:
    """Whether a request needs the calendar reader: anything but UTC 15m on all meters within
    the parts' retention."""
    if (params.get("every") not in (None, "15m") or "tz" in params or "meter" in params
            or "by" in params):
        return True
    horizon = horizon_us(config.influxdb)
    if horizon is None:
        return False
    try:
        return parse_datetime(params.get("start") or "") < horizon
    except ValueError:
        return False


def parse_meter(params: Mapping[str, str]) -> str | None:
    value = params.get("meter")
    if value is None:
        return None
    if not METER_ID.fullmatch(value):
        raise ParameterError("meter", f"meter must be 1 to 32 characters of A-Z, a-z, 0-9, '_' "
                                      f"and '-'; got {value[:40]!r}")
    return value


class _Request:
    """The validated parameters of a calendar request."""

    def __init__(self, params: Mapping[str, str], max_windows: int) -> None:
        self.every = parse_every(params.get("every"))
        self.tz: ZoneInfo = parse_tz(params.get("tz"))
        # start, end, label, fill as everywhere (every is checked against the calendar below).
        rest = {k: v for k, v in params.items() if k != "every"}
        base = parse_range(rest, 1 << 62)
        self.start_us, self.end_us = base.start_us, base.end_us
        self.label = choice(params, "label", LABELS, "start")
        self.fill = choice(params, "fill", FILLS, "none")
        self.meter = parse_meter(params)
        self.by = choice(params, "by", BY, "") if "by" in params else ""
        self.max_windows = max_windows

    def head(self) -> dict[str, Any]:
        return {"every": self.every, "tz": self.tz.key, "label": self.label,
                "start": iso(self.start_us), "end": iso(self.end_us)}

    def time(self, period: Period) -> str:
        return local_iso(period.end_us if self.label == "end" else period.start_us, self.tz)

    def windows(self, answer: CalendarAnswer, per: Mapping[int, Total]) -> list[dict[str, Any]]:
        out = []
        empty = None if self.fill == "null" else 0.0
        for i, period in enumerate(answer.periods):
            total = per.get(i)
            if total is None:
                if self.fill != "none":
                    out.append({"time": self.time(period), "kwh": empty, "coverage": 0.0})
                continue
            out.append({"time": self.time(period), "kwh": total.kwh,
                        "coverage": total.seconds / (period.length_us / US)})
        return out


def _extra(answer: CalendarAnswer) -> dict[str, Any]:
    if answer.truncated_before is None:
        return {}
    return {"truncated_before": iso(answer.truncated_before)}


async def ship_energy(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    ship = parse_ship(request.match_info["id"], "id")
    req = _Request(request.query, config.http.max_windows)
    influx = request.app[INFLUX]
    answer = await period_totals(influx, config, req.start_us, req.end_us, req.every, req.tz,
                                 ships=[ship], meter=req.meter, max_windows=req.max_windows)
    if not answer.totals and not await influx.ship_known(ship):
        raise ShipNotFoundError(ship)
    as_csv = wants_csv(request)
    # The answer holds every other input (range, every, tz, meter); a kept one renders once.
    key = ("ship", ship, req.label, req.fill, req.by, as_csv)
    done = answer.rendered.get(key)
    if done is None:
        done = answer.rendered[key] = _ship_rendered(answer, req, ship, as_csv)
    return response(done)


def _ship_rendered(answer: CalendarAnswer, req: _Request, ship: str, as_csv: bool) -> Rendered:
    body: dict[str, Any] = {"ship": ship, "unit": "kWh", **req.head(), **_extra(answer)}
    if req.meter is not None:
        body["meter"] = req.meter
    if req.by == "meter":
        meters = {meter: req.windows(answer, per)
                  for (_ship, meter), per in sorted(answer.totals.items())}
        body["meters"] = meters
        rows = [{"meter": m, **w} for m, ws in meters.items() for w in ws]
        return rendered(as_csv, body, ("meter", "time", "kwh", "coverage"), rows,
                        f"energy-{ship}")
    rows = req.windows(answer, ship_sums(answer).get(ship, {}))
    body["windows"] = rows
    return rendered(as_csv, body, ("time", "kwh", "coverage"), rows, f"energy-{ship}")


async def fleet_energy(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    req = _Request(request.query, config.http.max_windows)
    if req.by:
        raise ParameterError("by", "by=meter is for /v1/ships/{id}/energy")
    answer = await period_totals(request.app[INFLUX], config, req.start_us, req.end_us,
                                 req.every, req.tz, meter=req.meter, max_windows=req.max_windows)
    as_csv = wants_csv(request)
    key = ("fleet", req.label, req.fill, as_csv)
    done = answer.rendered.get(key)
    if done is None:
        done = answer.rendered[key] = _fleet_rendered(answer, req, as_csv)
    return response(done)


def _fleet_rendered(answer: CalendarAnswer, req: _Request, as_csv: bool) -> Rendered:
    per_ship = ship_sums(answer)
    out = []
    empty = None if req.fill == "null" else 0.0
    for i, period in enumerate(answer.periods):
        found = [per[i] for per in per_ship.values() if i in per]
        if not found:
            if req.fill != "none":
                out.append({"time": req.time(period), "kwh": empty, "ships": 0,
                            "mean_kwh": empty, "coverage": 0.0})
            continue
        kwh = sum(t.kwh for t in found)
        seconds = sum(t.seconds for t in found)
        out.append({"time": req.time(period), "kwh": kwh, "ships": len(found),
                    "mean_kwh": kwh / len(found),
                    "coverage": seconds / (period.length_us / US * len(found))})
    body: dict[str, Any] = {**req.head(), "fill": req.fill, "unit": "kWh", **_extra(answer),
                            "windows": out}
    if req.meter is not None:
        body["meter"] = req.meter
    return rendered(as_csv, body, ("time", "kwh", "ships", "mean_kwh", "coverage"), out,
                    "fleet-energy")


async def ranking(request: web.Request, start_us: int, end_us: int,
                  meter: str | None) -> dict[str, tuple[float, float]]:
    """Each ship's (kWh, covered seconds) in [start, end), from the coarsest exact series."""
    answer = await range_totals(request.app[INFLUX], request.app[CONFIG], start_us, end_us,
                                meter=meter)
    return {ship: (per[0].kwh, per[0].seconds) for ship, per in ship_sums(answer).items()
            if 0 in per}


async def fleet_top(request: web.Request, count: int) -> web.Response:
    """``/v1/fleet/top`` with ``tz``, ``meter`` or a calendar ``every`` (windows per ship)."""
    config = request.app[CONFIG]
    req = _Request(request.query, config.http.max_windows)
    totals = await ranking(request, req.start_us, req.end_us, req.meter)
    ranked = sorted(totals.items(), key=lambda item: (-item[1][0], item[0]))[:count]
    range_s = (req.end_us - req.start_us) / US
    out: list[dict[str, Any]] = [
        {"rank": i + 1, "ship": ship, "kwh": kwh, "coverage": seconds / range_s}
        for i, (ship, (kwh, seconds)) in enumerate(ranked)]
    if request.query.get("every") and out:
        answer = await period_totals(request.app[INFLUX], config, req.start_us, req.end_us,
                                     req.every, req.tz, ships=[r["ship"] for r in out],
                                     meter=req.meter, max_windows=req.max_windows)
        per_ship = ship_sums(answer)
        for row in out:
            row["windows"] = req.windows(answer, per_ship.get(row["ship"], {}))
    body: dict[str, Any] = {**req.head(), "count": count, "unit": "kWh", "ships": out}
    if req.meter is not None:
        body["meter"] = req.meter
    return respond(request, body, ("rank", "ship", "kwh", "coverage"), out, "fleet-top")
