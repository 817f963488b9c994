"""Calendar-query and coarse-series rows, each next to InfluxDB answering the same
question the way a user without this system would: from the 15-minute parts with InfluxQL, local
days by its ``tz()`` (which has mis-grouped days at daylight-saving changes before 1.8.4: the
InfluxDB side is timed, not trusted), months added up by the client from those days.

- one ship's 365-day daily series (``every=1d&tz=Europe/Oslo``, the fleet's zone in the bench);
- one ship's 10-year monthly series (``every=1mo``);
- the fleet's (every ship) 365-day monthly totals in Europe/Oslo;
- ingest at 12 readings per message with the coarse series off (``bench.nocoarse``), beside
  ``bench.ingest``'s "12 readings/msg" row, where the bridge keeps them (on).

:func:`preload` writes the data (ship 1: ten years, 2015-2024; every ship: 2024) around the
bridge and rebuilds the coarse series over it; :data:`QUERY_CASES` are ``bench.queries`` cases
(``influx_windows``: the daily rows InfluxDB returns where the service answers months).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from fleet import coarse
from fleet.schema import FIELD_KWH, TAG_SHIP, Part, lines, quote_ident, quote_string, source
from fleet.store import InfluxStore
from fleet.timeutil import US

if TYPE_CHECKING:
    from bench.queries import QueryCase, QueryEnv
    from bench.stack import Bench

OSLO = "Europe/Oslo"
_TZ = ZoneInfo(OSLO)
TEN_YEARS = (datetime(2015, 1, 1, tzinfo=_TZ), datetime(2025, 1, 1, tzinfo=_TZ))
YEAR = (datetime(2024, 1, 1, tzinfo=_TZ), datetime(2025, 1, 1, tzinfo=_TZ))
SHIP = 1  # the ship with ten years (ship 0 carries bench.queries' year of 2018)
QUARTER_US = 900 * US


def _us(dt: datetime) -> int:
    return int(dt.timestamp()) * US


def _iso(dt: datetime) -> str:
    return dt.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ")


def _days(e: QueryEnv, ship: str | None, span: tuple[datetime, datetime]) -> str:
    """The InfluxQL of an InfluxDB-only user: daily sums in Oslo from the parts."""
    who = "" if ship is None else f"{quote_ident(TAG_SHIP)} = {quote_string(ship)} AND "
    return (f"SELECT sum({quote_ident(FIELD_KWH)}) FROM {source(e.db, e.rp)} WHERE {who}"
            f"time >= {_us(span[0])}u AND time < {_us(span[1])}u GROUP BY time(1d) fill(none) "
            f"tz({quote_string(OSLO)})")


def _ship(e: QueryEnv) -> str:
    return e.names[SHIP]


def _case(name: str, path: str, statement: str, windows: int,
          influx_windows: int) -> QueryCase:
    from bench.queries import QueryCase  # noqa: PLC0415 - bench.queries imports this module

    return QueryCase(name, [path], [statement], windows, influx_windows=influx_windows)


def daily_365(e: QueryEnv) -> QueryCase:
    ship = _ship(e)
    return _case("ship 365-day daily, Europe/Oslo",
                 f"/v1/ships/{ship}/energy?start={_iso(YEAR[0])}&end={_iso(YEAR[1])}"
                 f"&every=1d&tz={OSLO}", _days(e, ship, YEAR), 366, 366)


def monthly_10y(e: QueryEnv) -> QueryCase:
    ship = _ship(e)
    return _case("ship 10-year monthly, Europe/Oslo",
                 f"/v1/ships/{ship}/energy?start={_iso(TEN_YEARS[0])}&end={_iso(TEN_YEARS[1])}"
                 f"&every=1mo&tz={OSLO}", _days(e, ship, TEN_YEARS), 120, 3653)


def fleet_monthly_365(e: QueryEnv) -> QueryCase:
    return _case(f"fleet 365-day monthly totals, {e.ships} ships, Europe/Oslo",
                 f"/v1/fleet/energy?start={_iso(YEAR[0])}&end={_iso(YEAR[1])}&every=1mo"
                 f"&tz={OSLO}", _days(e, None, YEAR), 12, 366)


QUERY_CASES: list[Callable[[QueryEnv], QueryCase]] = [daily_365, monthly_10y, fleet_monthly_365]


def parts(ships: list[str], step_us: int = QUARTER_US) -> Iterator[Part]:
    """Ship 1: ten years; every ship: 2024. ``step_us`` > 15 minutes thins them (--quick)."""
    for k, ship in enumerate(ships):
        first = TEN_YEARS[0] if k == SHIP else YEAR[0]
        t, end = _us(first), _us(YEAR[1])
        while t < end:
            yield Part(ship, t, 1.0 + (t // QUARTER_US) % 7 * 0.25, 900.0)
            t += step_us


def preload(b: Bench, quick: bool) -> None:
    """The parts of :func:`parts`, then their coarse series (as ``fleetctl rollup rebuild``)."""
    ships = [s for s, _ in b.ships]
    writer = b.writer()
    batch: list[Part] = []
    try:
        for p in parts(ships, 6 * 3600 * US if quick else QUARTER_US):
            batch.append(p)
            if len(batch) >= 5000:
                writer.write(lines(batch).encode())
                batch = []
        if batch:
            writer.write(lines(batch).encode())
    finally:
        writer.close()
    store = InfluxStore(b.cfg.influxdb)
    try:
        coarse.ensure_policy(store)
        zone = coarse.fleet_zone(b.cfg)
        coarse.rebuild(store, zone, [ships[SHIP]], _us(TEN_YEARS[0]), _us(YEAR[0]))
        coarse.rebuild(store, zone, None, _us(YEAR[0]), _us(YEAR[1]))
        if coarse.read_state(store) is None:
            # No bridge ran yet (`--only queries`): the series are complete for what is stored,
            # so mark them as a bridge's build would; otherwise the service reads the parts.
            coarse.write_state(store, coarse.State(coarse.VERSION, zone.key, ready=True))
    finally:
        store.close()


@contextlib.contextmanager
def without_coarse(b: Bench, case: object) -> Iterator[None]:
    """Around an ingest row: the bridge with its coarse series off, then the pipeline again."""
    b.start_bridge("nocoarse")
    try:
        yield
    finally:
        b.start_bridge("pipeline")
