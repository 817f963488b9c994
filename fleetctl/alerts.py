"""``fleetctl alerts``: the active alerts (or, with ``--all``, their history), read from InfluxDB's
``alert_events`` as ``GET /v1/alerts`` does (:mod:`fleet.alertevents`)."""

from __future__ import annotations

import argparse
import json
import time
from typing import TYPE_CHECKING

from fleet.alertevents import ACTIVE, active_query, events_from_series, history_query, results_series
from fleet.config import load_config
from fleet.errors import ConfigError
from fleet.store import InfluxStore
from fleet.timeutil import US, format_datetime, parse_datetime

if TYPE_CHECKING:
    from fleetctl.main import CommandTree


def _list(args: argparse.Namespace) -> int:
    cfg = load_config()
    store = InfluxStore(cfg.influxdb)
    db, rp = cfg.influxdb.database, cfg.influxdb.retention_policy
    try:
        if args.all:
            try:
                end = parse_datetime(args.end) if args.end else time.time_ns() // 1000 + 1
                start = parse_datetime(args.start) if args.start else end - 86400 * US
            except ValueError as exc:
                raise ConfigError(f"--start/--end: {exc}") from None
            events = events_from_series(results_series(
                store.query(history_query(db, rp, start, end, args.ship))))
        else:
            events = [e for e in events_from_series(results_series(
                store.query(active_query(db, rp, args.ship)))) if e.state in ACTIVE]
    finally:
        store.close()
    if args.json:
        print(json.dumps([e.as_json() for e in events], indent=2))
        return 0
    if not events:
        print("no alerts" if args.all else "no active alerts")
        return 0
    rows = [("SHIP", "RULE", "STATE", "SINCE", "DETAIL")] + [
        (e.ship, e.rule + (f" ({e.meter})" if e.meter else ""), e.state,
         format_datetime(e.since_us), e.detail) for e in events]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4])
    return 0


def register(tree: CommandTree) -> None:
    """``fleetctl alerts [--all] [--ship S] [--start T] [--end T] [--json]``."""
    cmd = tree.command("alerts", _list, "list the active alerts (--all: their history)")
    cmd.add_argument("--all", action="store_true", help="every transition in [--start, --end)")
    cmd.add_argument("--ship", help="only this ship")
    cmd.add_argument("--start", help="history start, UTC (default: 24 hours before --end)")
    cmd.add_argument("--end", help="history end, UTC (default: now)")
    cmd.add_argument("--json", action="store_true", help="JSON, as GET /v1/alerts answers")
