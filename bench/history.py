"""Benchmark rows of calendar queries (issue 8 item 5), each next to InfluxDB answering the same
question the way a user without coarse series would: from the 15-minute parts with InfluxQL.

Shaped like ``bench/queries.py``'s cases on branch ``trust``: each builder takes the environment
(database, retention policy, ships) and returns the query-service paths, the InfluxQL the naive
user sends for each (``;``-joined when one question takes several statements: InfluxQL has no
calendar months), and the periods each answer holds. ``bench.queries.QUERY_CASES`` can extend
itself with :data:`HISTORY_CASES` once :func:`preload` has loaded the data (and the coarse series
were rebuilt: ``fleetctl rollup rebuild``). :func:`quick` proves the rows on a running stack with
a few sequential requests per side (not a measurement: ``make bench`` runs them under wrk).

- one ship's 365-day daily series (``every=1d`` in the fleet's zone) vs
  ``GROUP BY time(1d)`` over the parts;
- one ship's 10-year monthly series (``every=1mo``) vs 120 month-bounded sums over the parts;
- the fleet's (100 ships) 365-day monthly totals in Europe/Oslo vs 12 month-bounded sums per
  ship over the parts.

Ingest at 12 readings per message with coarse series on and off: :data:`INGEST_COARSE` names the
bridge process of each run for ``bench.ingest``'s 12-reading case: ``python -m bridge`` (on) and
``python -m bench.nocoarse`` (the same bridge with the coarse hooks doing nothing: off).
"""

from __future__ import annotations

import json
import statistics
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from fleet.calendar import US, parse_tz, periods
from fleet.schema import FIELD_KWH, TAG_SHIP, Part, lines, quote_ident, quote_string, source

DAY_S = 86_400
HISTORY_BASE = datetime(2015, 1, 1, tzinfo=ZoneInfo("Europe/Oslo"))  # 10 years for ship 0
YEAR_START = datetime(2024, 1, 1, tzinfo=ZoneInfo("Europe/Oslo"))     # 365 days for all ships
OSLO = "Europe/Oslo"


@dataclass
class HistoryEnv:
    db: str
    rp: str
    ship: str            # the ship with 10 years of data
    ships: list[str]     # every ship (100 in make bench), each with the last year
    fleet_tz: str = OSLO


@dataclass
class HistoryCase:
    name: str
    paths: list[str]
    statements: list[str]
    windows: int
    gunicorn: bool = True


def _iso(dt: datetime) -> str:
    return dt.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ")


def _us(dt: datetime) -> int:
    return int(dt.timestamp()) * US


def _month_sums(e: HistoryEnv, ship: str | None, start: datetime, end: datetime,
                tz: str) -> str:
    """One ``SELECT sum`` per local month (boundaries from zoneinfo), ';'-joined."""
    who = "" if ship is None else f"{quote_ident(TAG_SHIP)} = {quote_string(ship)} AND "
    return ";".join(f"SELECT sum({quote_ident(FIELD_KWH)}) FROM {source(e.db, e.rp)} WHERE {who}"
                    f"time >= {p.start_us}u AND time < {p.end_us}u"
                    for p in periods(_us(start), _us(end), "1mo", parse_tz(tz)))


def daily_365(e: HistoryEnv) -> HistoryCase:
    start, end = YEAR_START, YEAR_START.replace(year=YEAR_START.year + 1)
    # What a user of InfluxDB alone writes for local days (its tz() has mis-grouped days at
    # daylight-saving changes in releases before 1.8.4; the answer is timed, not trusted).
    naive = (f"SELECT sum({quote_ident(FIELD_KWH)}) FROM {source(e.db, e.rp)} WHERE "
             f"{quote_ident(TAG_SHIP)} = {quote_string(e.ship)} AND time >= {_us(start)}u AND "
             f"time < {_us(end)}u GROUP BY time(1d) fill(none) tz({quote_string(e.fleet_tz)})")
    return HistoryCase(
        "ship 365-day daily (fleet zone)",
        [f"/v1/ships/{e.ship}/energy?start={_iso(start)}&end={_iso(end)}&every=1d&tz={e.fleet_tz}"],
        [naive], 366)


def monthly_10y(e: HistoryEnv) -> HistoryCase:
    start, end = HISTORY_BASE, HISTORY_BASE.replace(year=HISTORY_BASE.year + 10)
    return HistoryCase(
        "ship 10-year monthly",
        [f"/v1/ships/{e.ship}/energy?start={_iso(start)}&end={_iso(end)}&every=1mo&tz={e.fleet_tz}"],
        [_month_sums(e, e.ship, start, end, e.fleet_tz)], 120)


def fleet_monthly_365(e: HistoryEnv) -> HistoryCase:
    start, end = YEAR_START, YEAR_START.replace(year=YEAR_START.year + 1)
    return HistoryCase(
        f"fleet 365-day monthly totals, {len(e.ships)} ships, {OSLO}",
        [f"/v1/fleet/energy?start={_iso(start)}&end={_iso(end)}&every=1mo&tz={OSLO}"],
        [_month_sums(e, None, start, end, OSLO)], 12)


HISTORY_CASES: list[Callable[[HistoryEnv], HistoryCase]] = [daily_365, monthly_10y,
                                                           fleet_monthly_365]

INGEST_COARSE: dict[str, list[str]] = {
    "coarse series on": ["-m", "bridge"],
    "coarse series off": ["-m", "bench.nocoarse"],
}


def parts(e: HistoryEnv, hours_step: int = 1) -> Iterator[Part]:
    """Ship 0: 10 years; the others: the year of the fleet row. ``hours_step`` > 1 thins the
    parts for a quick run (one 15-minute part every that many hours)."""
    step = hours_step * 3600 * US
    for k, ship in enumerate(e.ships):
        first = HISTORY_BASE if k == 0 else YEAR_START
        end = YEAR_START.replace(year=YEAR_START.year + 1)
        t = _us(first)
        while t < _us(end):
            yield Part(ship, t, 1.0 + (t // step) % 7 * 0.25, 900.0)
            t += step


def preload(write: Callable[[bytes], None], e: HistoryEnv, hours_step: int = 1) -> int:
    """Write :func:`parts` in batches of 5000 through ``write`` (line protocol bytes)."""
    batch: list[Part] = []
    n = 0
    for p in parts(e, hours_step):
        batch.append(p)
        if len(batch) >= 5000:
            write(lines(batch).encode())
            n += len(batch)
            batch = []
    if batch:
        write(lines(batch).encode())
        n += len(batch)
    return n


def _timed(url: str, headers: dict[str, str]) -> float:
    t0 = time.perf_counter()
    req = urllib.request.Request(url, headers=headers)  # noqa: S310 - http URLs we built
    with urllib.request.urlopen(req, timeout=60) as r:  # noqa: S310
        r.read()
        assert r.status == 200
    return time.perf_counter() - t0


def _windows(url: str, headers: dict[str, str]) -> int:
    """Windows of a query-service answer, or rows of all statements of an InfluxDB one."""
    req = urllib.request.Request(url, headers=headers)  # noqa: S310 - http URLs we built
    with urllib.request.urlopen(req, timeout=60) as r:  # noqa: S310
        doc = json.loads(r.read())
    if "windows" in doc:
        return len(doc["windows"])
    return sum(len(s["values"]) for res in doc["results"] for s in res.get("series", []))


def quick(e: HistoryEnv, service: str, token: str, influx: str, n: int = 5) -> list[str]:
    """A few sequential requests per row and side: p50 in ms (a proof the rows run, not a
    benchmark)."""
    out = []
    for build in HISTORY_CASES:
        case = build(e)
        ours = [_timed(service + case.paths[0], {"Authorization": f"Bearer {token}"})
                for _ in range(n)]
        q = urllib.parse.urlencode({"db": e.db, "q": case.statements[0], "epoch": "u"})
        got = (_windows(service + case.paths[0], {"Authorization": f"Bearer {token}"}),
               _windows(f"{influx}/query?{q}", {}))
        if got != (case.windows, case.windows):
            raise AssertionError(f"{case.name}: (service, InfluxDB) windows {got}, expected "
                                 f"{case.windows} each")
        theirs = [_timed(f"{influx}/query?{q}", {}) for _ in range(n)]
        out.append(f"{case.name}: service p50 {statistics.median(ours) * 1e3:.1f} ms, "
                   f"InfluxDB from the parts p50 {statistics.median(theirs) * 1e3:.1f} ms")
    return out
