"""Coarse series: hourly (UTC) and daily (the fleet's zone) sums of the 15-minute parts.

Storage (CONTRACT section 6), in the retention policy ``<retention_policy>_rollup`` (duration
``[influxdb] rollup_retention``): measurements ``energy_1h`` (one point per UTC hour) and
``energy_1d`` (one point per local day of ``[query] timezone``, stamped at that local midnight in
UTC), tags ``ship`` and ``meter`` exactly as the parts (meter ``main`` untagged), fields ``kwh``,
``seconds`` (sums of the parts whose start lies in the period) and ``n`` (how many parts; ``n = 0``
marks a value whose parts are gone, read as "no data"). ``rollup_state`` (one point) records the
schema version, the zone of the daily series and whether the series are complete (``ready``):
readers use the coarse series only when it says so.

:func:`reconcile` is the one way coarse values are written (bridge, backfill, ``fleetctl rollup
rebuild``): it reads the parts, compares with what is stored, writes what differs, and reads the
parts again, repeating until a read after its last write agrees. Each round is one request
(:func:`read`: the parts summed per hour, or per half or quarter hour where the fleet's days begin
off the hour, then the stored hourly and daily values); with ``max_rounds`` reached it reports
the values written in its last round (``Outcome.unconfirmed``), so a caller going on later can
read back only those. Never an increment: a value is
always the sum of its parts as read back from InfluxDB, so late data, resends and corrections need
nothing special. Why two bridges cannot leave a stale value: see :mod:`bridge.rollup`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol
from zoneinfo import ZoneInfo

from fleet.calendar import HOUR_US, QUARTER_US, day_boundaries, parse_tz
from fleet.config import Config, InfluxConfig
from fleet.errors import StoreError
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
from fleet.store import InfluxStore, _hours

log = logging.getLogger(__name__)

VERSION = 2  # 2: values are the fsum of their buckets (1: added in time order)
HOURLY = "energy_1h"
DAILY = "energy_1d"
STATE = "rollup_state"
GENERATION = "rollup_generation"
GENERATION_AT_NS = 7_258_118_400 * 10**9  # 2200-01-01T00:00:00Z
FIELD_COUNT = "n"
LEVELS = {"hour": HOURLY, "day": DAILY}


def rollup_policy(cfg: InfluxConfig) -> str:
    """The retention policy of the coarse series."""
    return f"{cfg.retention_policy}_rollup"


class Key(NamedTuple):
    """One coarse value: level (``hour``/``day``), ship, meter name, period start (UTC us)."""

    level: str
    ship: str
    meter: str
    start_us: int


class Sum(NamedTuple):
    kwh: float
    seconds: float
    n: float


EMPTY = Sum(0.0, 0.0, 0.0)


@dataclass(frozen=True, slots=True)
class State:
    """What ``rollup_state`` says: schema version, zone of the daily series, complete or not."""

    version: int
    tz: str
    ready: bool


@dataclass(slots=True)
class Outcome:
    """What :func:`reconcile` did: values written, rounds of read-back, and the differences it
    found before writing (``Key`` -> (stored or None, expected or None))."""

    written: int = 0
    rounds: int = 0
    clean: bool = True
    differences: dict[Key, tuple[Sum | None, Sum | None]] = field(default_factory=dict)
    # Not clean: the values written in the last round, whose read-back is still to come.
    unconfirmed: list[Key] = field(default_factory=list)


def _retention_clause(duration: str) -> str:
    return "INF" if duration.upper() == "INF" else duration


def ensure_policy(store: InfluxStore) -> None:
    """Create (or follow a changed ``rollup_retention`` of) the coarse series' retention policy."""
    cfg = store.cfg
    db, rp = quote_ident(cfg.database), quote_ident(rollup_policy(cfg))
    duration = _retention_clause(cfg.rollup_retention)
    res = store.query(f"SHOW RETENTION POLICIES ON {db}")
    durations = {row[0]: row[1] for s in res[0].get("series", []) for row in s.get("values", [])}
    name = rollup_policy(cfg)
    if name not in durations:
        store.query(f"CREATE RETENTION POLICY {rp} ON {db} DURATION {duration} REPLICATION 1",
                    write=True)
        log.info("created retention policy %s on %s (duration %s)", name, cfg.database, duration)
    elif _hours(durations[name]) != _hours(duration):
        store.query(f"ALTER RETENTION POLICY {rp} ON {db} DURATION {duration}", write=True)
        log.warning("retention policy %s: duration changed from %s to %s", name,
                    durations[name], duration)


def _source(cfg: InfluxConfig, measurement: str, rollup: bool) -> str:
    rp = rollup_policy(cfg) if rollup else cfg.retention_policy
    return f"{quote_ident(cfg.database)}.{quote_ident(rp)}.{quote_ident(measurement)}"


def _ships_clause(ships: Sequence[str] | None) -> str:
    if ships is None:
        return ""
    alternatives = " OR ".join(f"{quote_ident(TAG_SHIP)} = {quote_string(s)}" for s in ships)
    return f"({alternatives}) AND "


def _rows(result: list[dict[str, Any]]) -> Iterable[tuple[str, str, dict[str, Any]]]:
    """(ship, meter name, row as a dict) for each row of a statement's series."""
    for series in result[0].get("series", []) if result else []:
        tags = series.get("tags") or {}
        ship, meter = tags.get(TAG_SHIP, ""), meter_name(tags.get(TAG_METER))
        columns = series["columns"]
        for values in series.get("values", []):
            yield ship, meter, dict(zip(columns, values, strict=True))


def _series(result: dict[str, Any]) -> Iterable[tuple[str, str, list[list[Any]]]]:
    """(ship, meter name, rows) per series of one statement's result; each row's columns in the
    order the statement selects them, after ``time``."""
    for series in result.get("series", []):
        tags = series.get("tags") or {}
        yield tags.get(TAG_SHIP, ""), meter_name(tags.get(TAG_METER)), series.get("values", [])


def _part_sums_query(cfg: InfluxConfig, ships: Sequence[str] | None, start_us: int, end_us: int,
                     bucket_us: int) -> str:
    return (f"SELECT sum({quote_ident(FIELD_KWH)}) AS kwh, sum({quote_ident(FIELD_SECONDS)}) AS "
            f"seconds, count({quote_ident(FIELD_KWH)}) AS n "
            f"FROM {_source(cfg, MEASUREMENT, rollup=False)} WHERE {_ships_clause(ships)}"
            f"time >= {start_us}u AND time < {end_us}u "
            f"GROUP BY time({bucket_us // 1_000_000}s), {quote_ident(TAG_SHIP)}, "
            f"{quote_ident(TAG_METER)} fill(none)")


def _part_sums_of(result: dict[str, Any]) -> dict[tuple[str, str], list[tuple[int, Sum]]]:
    out: dict[tuple[str, str], list[tuple[int, Sum]]] = {}
    for ship, meter, rows in _series(result):
        sums = [(int(t), Sum(float(kwh), float(sec or 0.0), float(n)))
                for t, kwh, sec, n in rows if n]
        if sums:
            out.setdefault((ship, meter), []).extend(sums)
    return out


def part_sums(store: InfluxStore, ships: Sequence[str] | None, start_us: int, end_us: int,
              bucket_us: int = QUARTER_US) -> dict[tuple[str, str], list[tuple[int, Sum]]]:
    """The parts summed per bucket (15, 30 or 60 minutes), per (ship, meter), in time order."""
    if ships is not None and not ships:
        return {}
    return _part_sums_of(store.query(_part_sums_query(store.cfg, ships, start_us, end_us,
                                                      bucket_us))[0])


def expected(sums: dict[tuple[str, str], list[tuple[int, Sum]]], hours: Sequence[int],
             days: Sequence[int]) -> dict[Key, Sum]:
    """The coarse values over the given hour starts (each one hour long) and day boundaries
    (consecutive pairs are the days), from the parts summed per bucket (15, 30 or 60 minutes).

    A value is the correctly rounded sum (``math.fsum``) of its buckets: the same buckets give
    the same value in any order, and a day's rounding errors do not pile up bucket by bucket.
    """
    out: dict[Key, Sum] = {}
    hour_set = set(hours)
    last_day = len(days) - 1
    for (ship, meter), rows in sums.items():
        # Rows grouped by period start first, Keys made once per period: this runs on every
        # reconcile, over every bucket of the touched hours and days.
        by_hour: dict[int, list[Sum]] = {}
        by_day: dict[int, list[Sum]] = {}
        di = 0
        for t, s in rows:
            h = t - t % HOUR_US
            if h in hour_set:
                group = by_hour.get(h)
                if group is None:
                    by_hour[h] = [s]
                else:
                    group.append(s)
            while di < last_day and t >= days[di + 1]:
                di += 1
            if di < last_day and days[di] <= t:
                group = by_day.get(days[di])
                if group is None:
                    by_day[days[di]] = [s]
                else:
                    group.append(s)
        for level, groups in (("hour", by_hour), ("day", by_day)):
            for start, group in groups.items():
                kwh, seconds, n = zip(*group, strict=True)
                out[Key(level, ship, meter, start)] = Sum(math.fsum(kwh), math.fsum(seconds),
                                                          math.fsum(n))
    return out


def _stored_queries(cfg: InfluxConfig, ships: Sequence[str] | None, start_us: int,
                    end_us: int) -> list[str]:
    """One statement per level, in the order of :data:`LEVELS`."""
    return [f"SELECT {quote_ident(FIELD_KWH)}, {quote_ident(FIELD_SECONDS)}, "
            f"{quote_ident(FIELD_COUNT)} FROM {_source(cfg, measurement, rollup=True)} "
            f"WHERE {_ships_clause(ships)}time >= {start_us}u AND time < {end_us}u "
            f"GROUP BY {quote_ident(TAG_SHIP)}, {quote_ident(TAG_METER)}"
            for measurement in LEVELS.values()]


def _stored_of(results: Sequence[dict[str, Any]]) -> dict[Key, Sum]:
    out: dict[Key, Sum] = {}
    for level, result in zip(LEVELS, results, strict=True):
        for ship, meter, rows in _series(result):
            for t, kwh, sec, n in rows:
                out[Key(level, ship, meter, int(t))] = Sum(
                    float(kwh or 0.0), float(sec or 0.0), float(n or 0.0))
    return out


def stored(store: InfluxStore, ships: Sequence[str] | None, start_us: int,
           end_us: int) -> dict[Key, Sum]:
    """The coarse values stored with a period start in [start_us, end_us)."""
    if ships is not None and not ships:
        return {}
    return _stored_of(store.query(";".join(_stored_queries(store.cfg, ships, start_us, end_us))))


def read(store: InfluxStore, ships: Sequence[str] | None, start_us: int, end_us: int,
         bucket_us: int) -> tuple[dict[tuple[str, str], list[tuple[int, Sum]]], dict[Key, Sum]]:
    """:func:`part_sums` then :func:`stored`, in one request (InfluxDB runs its statements in
    order: the stored values are read after the parts, as when asked one by one)."""
    if ships is not None and not ships:
        return {}, {}
    cfg = store.cfg
    results = store.query(";".join([_part_sums_query(cfg, ships, start_us, end_us, bucket_us),
                                    *_stored_queries(cfg, ships, start_us, end_us)]))
    return _part_sums_of(results[0]), _stored_of(results[1:])


def lines(values: dict[Key, Sum]) -> str:
    """Line protocol of coarse values (nanosecond timestamps), all for the rollup policy."""
    out: list[str] = []
    for key, s in sorted(values.items()):
        tags = f",{TAG_METER}={key.meter}" if key.meter != "main" else ""
        out.append(f"{LEVELS[key.level]}{tags},{TAG_SHIP}={key.ship} "
                   f"{FIELD_KWH}={float(s.kwh)!r},{FIELD_SECONDS}={float(s.seconds)!r},"
                   f"{FIELD_COUNT}={float(s.n)!r} {key.start_us * 1000}")
    return "\n".join(out)


def span(start_us: int, end_us: int, tz: ZoneInfo) -> tuple[int, int, list[int], list[int]]:
    """For [start_us, end_us): the read span covering every hour and fleet-local day touching
    it, the hour starts and the day boundaries inside that span."""
    days = day_boundaries(start_us, end_us, tz)
    a = min(days[0], start_us)
    b = max(days[-1], end_us)
    a -= a % HOUR_US
    b = -(-b // HOUR_US) * HOUR_US
    hours = list(range(a, b, HOUR_US))
    return a, b, hours, days


def horizon_us(cfg: InfluxConfig, now_us: int | None = None) -> int | None:
    """Start of the oldest period whose parts are surely all still kept (None: kept forever)."""
    hours = _hours(cfg.retention)
    if not hours:
        return None
    now = time.time_ns() // 1000 if now_us is None else now_us
    return now - int(hours * HOUR_US)


class CoarseIO(Protocol):
    """What :func:`reconcile` needs from the database (a fake in unit tests)."""

    def part_sums(self, ships: Sequence[str] | None, start_us: int, end_us: int,
                  bucket_us: int) -> dict[tuple[str, str], list[tuple[int, Sum]]]: ...

    def stored(self, ships: Sequence[str] | None, start_us: int,
               end_us: int) -> dict[Key, Sum]: ...

    def read(self, ships: Sequence[str] | None, start_us: int, end_us: int, bucket_us: int
             ) -> tuple[dict[tuple[str, str], list[tuple[int, Sum]]], dict[Key, Sum]]:
        """``part_sums`` then ``stored``, read in that order."""
        ...

    def write(self, values: dict[Key, Sum]) -> None: ...

    def horizon(self) -> int | None: ...


class InfluxCoarse:
    """:class:`CoarseIO` on a real InfluxDB."""

    def __init__(self, store: InfluxStore) -> None:
        self.store = store

    def part_sums(self, ships: Sequence[str] | None, start_us: int, end_us: int,
                  bucket_us: int) -> dict[tuple[str, str], list[tuple[int, Sum]]]:
        return part_sums(self.store, ships, start_us, end_us, bucket_us)

    def stored(self, ships: Sequence[str] | None, start_us: int, end_us: int) -> dict[Key, Sum]:
        return stored(self.store, ships, start_us, end_us)

    def read(self, ships: Sequence[str] | None, start_us: int, end_us: int, bucket_us: int
             ) -> tuple[dict[tuple[str, str], list[tuple[int, Sum]]], dict[Key, Sum]]:
        return read(self.store, ships, start_us, end_us, bucket_us)

    def write(self, values: dict[Key, Sum]) -> None:
        body = lines(values) + "\n" + generation_line()
        self.store.write(body.encode(), retention_policy=rollup_policy(self.store.cfg))

    def horizon(self) -> int | None:
        return horizon_us(self.store.cfg)


def differences(io: CoarseIO, ships: Sequence[str] | None, start_us: int, end_us: int,
                tz: ZoneInfo) -> tuple[dict[Key, Sum], dict[Key, tuple[Sum | None, Sum | None]]]:
    """(expected values, {key: (stored, expected)} where they differ) for every hour and day
    touching [start_us, end_us). Values beginning before the parts' retention are left out."""
    a, b, hours, days = span(start_us, end_us, tz)
    # The coarsest buckets that still split at every day boundary: a quarter of the rows of
    # 15-minute sums in whole-hour zones. (15-minute buckets would make an hour the fsum of its
    # windows rather than InfluxDB's sum of its parts, equal but for the last digit: measured,
    # reading them cost the bridge 15-25% of its rate at one reading per message.)
    bucket = next(step for step in (HOUR_US, HOUR_US // 2, QUARTER_US)
                  if all(d % step == 0 for d in days))
    sums, have = io.read(ships, a, b, bucket)
    want = expected(sums, hours, days)
    horizon = io.horizon()
    day_starts = set(days[:-1])
    diff: dict[Key, tuple[Sum | None, Sum | None]] = {}
    for key in set(want) | set(have):
        if horizon is not None and key.start_us < horizon:
            continue
        if key.level == "day" and key.start_us not in day_starts:
            continue  # a day of another zone (the daily series are rebuilt on a zone change)
        w, h = want.get(key), have.get(key)
        if h is not None and h.n == 0 and w is None:
            continue
        if w != h:
            diff[key] = (h, w)
    return want, diff


def reconcile(io: CoarseIO, ships: Sequence[str] | None, start_us: int, end_us: int,
              tz: ZoneInfo, *, max_rounds: int = 20) -> Outcome:
    """Bring every coarse value touching [start_us, end_us) to the sum of its parts.

    Read the parts, write the values that differ from what is stored, and repeat until a read
    of the parts made after the last write gives exactly what was written (the protocol
    :mod:`bridge.rollup` relies on). A value whose parts are all gone is written as n = 0.
    Raises the store's errors (the caller retries).
    """
    outcome = Outcome()
    for _ in range(max_rounds):
        outcome.rounds += 1
        _want, diff = differences(io, ships, start_us, end_us, tz)
        if outcome.rounds == 1:
            outcome.differences = dict(diff)
        if not diff:
            outcome.clean = True
            return outcome
        values = {k: (w if w is not None else EMPTY) for k, (_h, w) in diff.items()}
        io.write(values)
        outcome.written += len(values)
        outcome.unconfirmed = list(values)
    outcome.clean = False
    return outcome


def read_state(store: InfluxStore) -> State | None:
    """The latest ``rollup_state`` point (None: the coarse series were never set up)."""
    q = f"SELECT * FROM {_source(store.cfg, STATE, rollup=True)} ORDER BY time DESC LIMIT 1"
    for _ship, _meter, row in _rows(store.query(q)):
        return State(int(row.get("version") or 0), str(row.get("tz") or ""),
                     bool(row.get("ready")))
    return None


def write_state(store: InfluxStore, state: State) -> None:
    """Record the state, stamped now (inside any retention; readers take the latest)."""
    tz = state.tz.replace("\\", "\\\\").replace('"', '\\"')
    body = (f'{STATE} version={state.version}i,tz="{tz}",ready={str(state.ready).lower()} '
            f"{time.time_ns()}\n{generation_line()}")
    store.write(body.encode(), retention_policy=rollup_policy(store.cfg))


def generation_line() -> str:
    """The coarse series' generation, written with every change of them (same request): readers
    may keep what they read from the coarse series while it stays the same. One point, stamped
    in 2200 so that no retention ever drops it and each write replaces it."""
    return f"{GENERATION} value={time.time_ns()}i {GENERATION_AT_NS}"


def drop_daily(store: InfluxStore) -> None:
    """Remove the daily series (kept in another zone's days), before rebuilding them."""
    store.query(f"DROP MEASUREMENT {quote_ident(DAILY)}", write=True)
    store.write(generation_line().encode(), retention_policy=rollup_policy(store.cfg))


def parts_extent(store: InfluxStore, ships: Sequence[str] | None = None) -> tuple[int, int] | None:
    """The first and last part start stored (None: no parts at all)."""
    src = _source(store.cfg, MEASUREMENT, rollup=False)
    where = f" WHERE {_ships_clause(ships)[:-5]}" if ships else ""
    found: list[int] = []
    for fn in ("first", "last"):
        res = store.query(f"SELECT {fn}({quote_ident(FIELD_SECONDS)}) FROM {src}{where}")
        rows = list(_rows(res))
        if not rows:
            return None
        found.append(int(rows[0][2]["time"]))
    return found[0], found[1]


def fleet_zone(cfg: Config) -> ZoneInfo:
    return parse_tz(cfg.query.timezone)


def chunks(start_us: int, end_us: int, step_us: int) -> list[tuple[int, int]]:
    return [(t, min(t + step_us, end_us)) for t in range(start_us, end_us, step_us)]


def rebuild(store: InfluxStore, tz: ZoneInfo, ships: Sequence[str] | None, start_us: int,
            end_us: int, progress: Callable[[int, int, int, int], None] | None = None) -> int:
    """Reconcile every coarse value touching [start_us, end_us), a week at a time; returns how
    many values were written. ``progress(done, total, chunk_start_us, written)`` after each week.
    For data written around the bridge (bulk loads): the bridge keeps up with what it stores."""
    io = InfluxCoarse(store)
    pieces = chunks(start_us, end_us, 7 * 86_400 * 1_000_000)
    written = 0
    for i, (a, b) in enumerate(pieces, 1):
        outcome = reconcile(io, ships, a, b, tz)
        if not outcome.clean:
            raise StoreError("coarse values kept changing while being rebuilt; try again")
        written += outcome.written
        if progress is not None:
            progress(i, len(pieces), a, written)
    return written
