"""``fleetctl rollup verify`` and ``fleetctl rollup rebuild [--ship S] [--since T]``.

verify: every coarse value (hourly, daily in ``[query] timezone``) against the sum of its parts,
a week at a time; names each difference and exits 1 if there is any (or while the coarse series
are still being built). rebuild: recomputes them from the parts (the same
:func:`fleet.coarse.reconcile` the bridge runs), with a progress display; safe while bridges run.
Values older than the parts' retention cannot be checked against them and are left as they are.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from fleet import coarse
from fleet.calendar import DAY_US, HOUR_US, period_start
from fleet.config import load_config
from fleet.errors import ConfigError
from fleet.schema import SHIP_ID
from fleet.store import InfluxStore
from fleet.timeutil import format_datetime, parse_datetime

if TYPE_CHECKING:
    from fleetctl.main import CommandTree

CHUNK_US = 7 * DAY_US


def register(tree: CommandTree) -> None:
    """``fleetctl rollup verify|rebuild``."""
    tree.group("rollup", "the coarse series (hourly and daily sums of the 15-minute parts)")
    verify = tree.command("rollup verify", _verify,
                          "check every coarse value against the sum of its parts (exit 1 on "
                          "any difference)")
    verify.add_argument("--ship", action="append", help="only this ship (repeatable)")
    verify.add_argument("--since", help="only from this UTC time on (ISO 8601)")
    rebuild = tree.command("rollup rebuild", _rebuild,
                           "recompute the coarse series from the parts, with progress")
    rebuild.add_argument("--ship", action="append", help="only this ship (repeatable)")
    rebuild.add_argument("--since", help="only from this UTC time on (ISO 8601)")


def _ships(args: argparse.Namespace) -> list[str] | None:
    ships: list[str] | None = args.ship
    for s in ships or ():
        if not SHIP_ID.fullmatch(s):
            raise ConfigError(f"--ship: not a ship id: {s!r}")
    return ships


def _since(args: argparse.Namespace) -> int | None:
    if not args.since:
        return None
    try:
        return parse_datetime(args.since)
    except ValueError:
        raise ConfigError(f"--since: not an ISO 8601 time: {args.since!r}") from None


def _coarse_extent(store: InfluxStore, ships: Sequence[str] | None) -> tuple[int, int] | None:
    found: list[int] = []
    cfg = store.cfg
    where = ""
    if ships:
        where = " WHERE " + " OR ".join(f'"ship" = \'{s}\'' for s in ships)
    for measurement in (coarse.HOURLY, coarse.DAILY):
        src = f'"{cfg.database}"."{coarse.rollup_policy(cfg)}"."{measurement}"'
        for fn in ("first", "last"):
            res = store.query(f'SELECT {fn}("n") FROM {src}{where}')
            for series in res[0].get("series", []) if res else []:
                found.extend(int(v[0]) for v in series.get("values", []))
    return (min(found), max(found)) if found else None


def _range(store: InfluxStore, ships: Sequence[str] | None,
           since: int | None) -> list[tuple[int, int]]:
    extents = [e for e in (coarse.parts_extent(store, ships), _coarse_extent(store, ships)) if e]
    if not extents:
        return []
    first = min(e[0] for e in extents)
    last = max(e[1] for e in extents) + HOUR_US
    tz = coarse.fleet_zone(load_config())
    start = period_start(max(first, since) if since is not None else first, "1d", tz)
    if start >= last:
        return []
    return coarse.chunks(start, last, CHUNK_US)


def _show(s: coarse.Sum | None) -> str:
    if s is None or s.n == 0:
        return "nothing"
    return f"kwh={s.kwh!r} seconds={s.seconds!r} parts={int(s.n)}"


def _verify(args: argparse.Namespace) -> int:
    cfg = load_config()
    store = InfluxStore(cfg.influxdb)
    tz = coarse.fleet_zone(cfg)
    ships = _ships(args)
    io = coarse.InfluxCoarse(store)
    state = coarse.read_state(store)
    problems = 0
    if state is None or not state.ready or state.tz != tz.key:
        print(f"coarse series not complete: rollup_state is {state} (the bridge builds them at "
              f"start; `fleetctl rollup rebuild` builds them now)")
        problems += 1
    checked = 0
    for a, b in _range(store, ships, _since(args)):
        want, diff = coarse.differences(io, ships, a, b, tz)
        checked += len(want)
        for key, (have, expect) in sorted(diff.items()):
            problems += 1
            meter = "" if key.meter == "main" else f" meter={key.meter}"
            print(f"{coarse.LEVELS[key.level]} ship={key.ship}{meter} "
                  f"{format_datetime(key.start_us)}: stored {_show(have)}, its parts sum to "
                  f"{_show(expect)}")
    horizon = coarse.horizon_us(cfg.influxdb)
    note = (f" (values before {format_datetime(horizon)} are past the parts' retention and not "
            "checked)" if horizon is not None else "")
    if problems:
        print(f"{problems} difference(s) in {checked} coarse value(s){note}")
        return 1
    print(f"OK: {checked} coarse value(s) equal the sums of their parts{note}")
    return 0


def _rebuild(args: argparse.Namespace) -> int:
    cfg = load_config()
    store = InfluxStore(cfg.influxdb)
    tz = coarse.fleet_zone(cfg)
    ships = _ships(args)
    since = _since(args)
    coarse.ensure_policy(store)
    full = ships is None and since is None
    state = coarse.read_state(store)
    if full and state is not None and state.tz and state.tz != tz.key:
        coarse.drop_daily(store)
    chunks = _range(store, ships, since)
    tty = sys.stderr.isatty()

    def progress(done: int, total: int, start_us: int, written: int) -> None:
        line = (f"rebuilding: week {done}/{total} from {format_datetime(start_us)[:10]}, "
                f"{written} value(s) written")
        print(("\r" + line) if tty else line, end="" if tty else "\n", file=sys.stderr,
              flush=True)

    written = (coarse.rebuild(store, tz, ships, chunks[0][0], chunks[-1][1], progress)
               if chunks else 0)
    if tty and chunks:
        print(file=sys.stderr)
    if full:
        coarse.write_state(store, coarse.State(coarse.VERSION, tz.key, ready=True))
    print(f"rebuilt: {written} coarse value(s) written over {len(chunks)} week(s)")
    return 0
