"""``fleetctl report``: the energy report of ``GET /v1/reports/energy`` written to a file.

It reads InfluxDB with the configuration's ``[influxdb]`` settings through the query service's
own reader (:func:`query_service.reports.energy_report`), so the file holds the same table as the
endpoint, with no query service or token needed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from fleet.calendar import EVERY, CalendarError, parse_every, parse_tz
from fleet.config import Config, load_config
from fleet.errors import ConfigError
from fleet.report import Report, check_xlsx_width
from fleet.timeutil import parse_datetime

if TYPE_CHECKING:
    from fleetctl.main import CommandTree

FORMATS = ("csv", "xlsx", "json")


def register(tree: CommandTree) -> None:
    """``fleetctl report --start --end [--every 1mo] [--tz Z] [--format F] -o FILE``."""
    cmd = tree.command("report", _report,
                       "write the energy report (ships x calendar periods) to a file")
    cmd.add_argument("--start", required=True, help="range start, UTC: 2025-01-01T00:00:00Z")
    cmd.add_argument("--end", required=True, help="range end (exclusive), UTC")
    cmd.add_argument("--every", default="1mo", choices=EVERY, help="period (default 1mo)")
    cmd.add_argument("--tz", default=None,
                     help="IANA time zone of the periods (default: [query] timezone)")
    cmd.add_argument("--ship", action="append", default=None,
                     help="only this ship (repeat, or a comma list); default: every ship")
    cmd.add_argument("--meter", default=None, help="one meter only (default: all, summed)")
    cmd.add_argument("--format", choices=FORMATS, default=None,
                     help="csv, xlsx or json (default: from the file's extension, else csv)")
    cmd.add_argument("-o", "--output", required=True, help="the file to write; '-' for stdout")


def _time(text: str, name: str) -> int:
    try:
        return parse_datetime(text)
    except ValueError:
        raise ConfigError(f"--{name} must be a UTC timestamp such as 2025-01-01T00:00:00Z, "
                          f"got {text!r}") from None


def _format(args: argparse.Namespace) -> str:
    if args.format:
        return str(args.format)
    suffix = Path(args.output).suffix.lower().lstrip(".")
    return suffix if suffix in FORMATS else "csv"


async def _fetch(cfg: Config, args: argparse.Namespace, start_us: int, end_us: int) -> Report:
    # Imported here: only this command needs the query service's reader (and aiohttp).
    from query_service.db import InfluxClient  # noqa: PLC0415
    from query_service.energy import parse_ship  # noqa: PLC0415
    from query_service.reports import energy_report  # noqa: PLC0415

    ships = None
    if args.ship:
        ships = list(dict.fromkeys(parse_ship(s.strip(), "--ship")
                                   for v in args.ship for s in v.split(",")))
    influx = InfluxClient(cfg.influxdb)
    try:
        return await energy_report(influx, cfg, start_us, end_us, args.every,
                                   parse_tz(args.tz, cfg.query.timezone), ships=ships,
                                   meter=args.meter)
    finally:
        await influx.close()


def _report(args: argparse.Namespace) -> int:
    from query_service.energy import ParameterError, ShipNotFoundError  # noqa: PLC0415

    cfg = load_config()
    start_us, end_us = _time(args.start, "start"), _time(args.end, "end")
    if start_us >= end_us:
        raise ConfigError("--start must be before --end")
    fmt = _format(args)
    try:
        parse_every(args.every)
        if fmt == "xlsx":
            check_xlsx_width(start_us, end_us, args.every, parse_tz(args.tz, cfg.query.timezone))
        report = asyncio.run(_fetch(cfg, args, start_us, end_us))
    except (ParameterError, ShipNotFoundError, CalendarError) as exc:
        raise ConfigError(str(exc)) from exc  # bad input: exit 2
    if fmt == "xlsx":
        data = report.to_xlsx()
    elif fmt == "json":
        import json  # noqa: PLC0415

        data = (json.dumps(report.to_json(), indent=1) + "\n").encode()
    else:
        data = report.to_csv().encode()
    if args.output == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return 0
    Path(args.output).write_bytes(data)
    total = report.grand_total()
    print(f"Wrote {args.output}: {len(report.kwh)} ships x {len(report.periods)} periods of "
          f"{report.every} in {report.tz.key}, {0.0 if total is None else total:.3f} kWh"
          + ("" if report.truncated_before is None else
             " (data before the parts' retention left out)"), file=sys.stderr)
    return 0


__all__ = ["register"]
