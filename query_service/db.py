"""An async InfluxDB v1 HTTP API client for the query service: reads only, one keep-alive session.

``/query`` (InfluxQL, ``epoch=u``) and ``/ping``: the API that InfluxDB 1.x, 2.x (v1 compatibility)
and 3.x accept. Failures are translated at this boundary: the database's fault (unreachable,
timeout, 5xx, 429) is :class:`~fleet.errors.StoreUnavailableError`, anything else
:class:`~fleet.errors.StoreError`. The query service never creates the database (the bridge does at
start), so a missing database or retention policy means "nothing stored yet", not an error.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import aiohttp
import orjson
from yarl import URL

from fleet.config import InfluxConfig
from fleet.coverage import ship_seconds
from fleet.errors import StoreError, StoreUnavailableError
from fleet.influxanswers import Kind, missing, sort_answer
from fleet.schema import (
    FIELD_KWH,
    FIELD_SECONDS,
    TAG_METER,
    TAG_SHIP,
    last_parts_query,
    quote_ident,
    quote_string,
    source,
    window_query,
)

# How long /ping may take before the health check calls InfluxDB unavailable.
PING_TIMEOUT = 2.0

Observer = Callable[[str, float], None]

_WINDOW_COLUMNS = ("time", "kwh", "seconds")


class DatabaseMissingError(StoreError):
    """The configured database or retention policy does not exist (yet): nothing was stored."""


@dataclass(frozen=True, slots=True)
class Series:
    """One series of a statement's result, as InfluxDB returns it (times in epoch microseconds)."""

    name: str
    columns: tuple[str, ...]
    values: list[list[Any]]
    tags: dict[str, str]


class WindowRow(NamedTuple):
    """One ``GROUP BY time`` bucket holding data: its start, summed kWh and covered seconds.

    A ship's rows (:meth:`InfluxClient.windows`, :meth:`InfluxClient.windows_by_ship`) hold its
    covered seconds as :func:`fleet.coverage.ship_seconds` says: summed over its meters, divided
    by how many of them hold data in the requested range, so seconds / the window's length is its
    coverage, whatever its number of meters.

    A named tuple rather than a frozen dataclass: a year of 15-minute windows is 35,040 of them
    per request, and a tuple is built in half the time (it is just as immutable).
    """

    start_us: int
    kwh: float
    seconds: float


@dataclass(frozen=True, slots=True)
class FleetRow:
    """One fleet-wide window: summed kWh, the sum of the ships' covered seconds (each ship's as
    in :class:`WindowRow`) and how many ships hold data in it."""

    start_us: int
    kwh: float
    seconds: float
    ships: int


class InfluxClient:
    """Reads the energy measurement of one database and retention policy.

    Create it inside a running event loop and :meth:`close` it when done. ``observe`` is called
    with a query kind and its duration in seconds after every ``/query`` round trip.
    """

    def __init__(self, config: InfluxConfig, observe: Observer | None = None) -> None:
        base = URL(config.url)
        auth = None
        if config.username:
            auth = aiohttp.BasicAuth(config.username, config.password)
            base = base.with_user(None)  # the configured credentials win over any in the URL
        prefix = base.path.rstrip("/")
        self._query_url = base.with_path(prefix + "/query", encoded=False)
        self._ping_url = base.with_path(prefix + "/ping", encoded=False)
        self._display_url = str(base.with_user(None))
        self._database = config.database
        self._retention_policy = config.retention_policy
        self._timeout = config.timeout
        self._observe = observe
        self._session = aiohttp.ClientSession(
            auth=auth,
            timeout=aiohttp.ClientTimeout(total=config.timeout),
            connector=aiohttp.TCPConnector(limit=100, keepalive_timeout=30),
            # InfluxDB's JSON is read by orjson below; no cookies are involved.
            cookie_jar=aiohttp.DummyCookieJar(),
            # Uncompressed answers: InfluxDB's gzip costs it more CPU (the scarce resource next to
            # it) than the bytes cost the wire on loopback or a LAN (a year of 15-minute windows
            # is 0.9 MB; gzip made the 1-day query 0.2-0.3 ms slower end to end).
            headers={"Accept-Encoding": "identity"},
        )

    @property
    def display_url(self) -> str:
        """The server's URL without credentials, for logs and messages."""
        return self._display_url

    async def close(self) -> None:
        await self._session.close()

    async def ping(self) -> str:
        """Return InfluxDB's version when ``/ping`` answers 204; else StoreUnavailableError."""
        timeout = aiohttp.ClientTimeout(total=min(PING_TIMEOUT, self._timeout))
        try:
            async with self._session.get(self._ping_url, timeout=timeout) as resp:
                await resp.read()
                status = resp.status
                version = resp.headers.get("X-Influxdb-Version", "")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise StoreUnavailableError(self._unreachable(exc)) from exc
        if status != 204:
            raise StoreUnavailableError(f"InfluxDB /ping answered HTTP {status}")
        return version

    async def query(self, influxql: str, kind: str = "query") -> list[Series]:
        """Run one read-only InfluxQL statement on the configured database; return its series.

        Raises DatabaseMissingError when the database or retention policy does not exist,
        StoreUnavailableError when InfluxDB cannot answer now, StoreError otherwise.
        """
        status, body, retry_after = await self._round_trip(
            {"db": self._database, "epoch": "u", "q": influxql}, kind, post=False)
        return _series(status, body, retry_after)

    async def _round_trip(self, params: dict[str, str], kind: str, *,
                          post: bool) -> tuple[int, bytes, str | None]:
        """One ``/query`` request (POST carries many statements in its body): status, body and
        Retry-After; unreachable is StoreUnavailableError. ``observe`` gets its duration."""
        started = time.perf_counter()
        try:
            request = (self._session.post(self._query_url, data=params) if post
                       else self._session.get(self._query_url, params=params))
            async with request as resp:
                return resp.status, await resp.read(), resp.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise StoreUnavailableError(self._unreachable(exc)) from exc
        finally:
            if self._observe is not None:
                self._observe(kind, time.perf_counter() - started)

    async def query_all(self, statements: list[str], kind: str = "calendar") -> list[list[Series]]:
        """Several read-only statements in one ``/query`` round trip: each one's series, in order.

        A missing database or retention policy gives no series for the statements concerned.
        """
        if not statements:
            return []
        status, body, retry_after = await self._round_trip(
            {"db": self._database, "epoch": "u", "q": ";\n".join(statements)}, kind, post=True)
        try:
            return _all_series(status, body, retry_after, len(statements))
        except DatabaseMissingError:
            return [[] for _ in statements]

    async def windows(self, ship: str | None, start_us: int, end_us: int,
                      every: str) -> list[WindowRow]:
        """Epoch-aligned windows of ``every`` holding data in [start, end), in time order.

        ``ship=None`` sums the whole fleet (seconds summed as stored). A missing database gives
        no windows. For a ship, one series per meter is read and added up here, its covered
        seconds as :class:`WindowRow` says.
        """
        by = "" if ship is None else quote_ident(TAG_METER)
        statement = window_query(self._database, self._retention_policy, ship,
                                 start_us, end_us, every, by=by)
        try:
            result = await self.query(statement, kind="windows")
        except DatabaseMissingError:
            return []
        if ship is not None:
            return _ship_rows(result).get("", [])
        rows: list[WindowRow] = []
        for series in result:
            rows.extend(_window_rows(series))
        if len(result) > 1:  # one series comes in time order already
            rows.sort(key=_start)
        return rows

    async def ship_known(self, ship: str) -> bool:
        """Whether anything was ever stored for ``ship`` (an index lookup, no data is read).

        InfluxDB 1.x answers SHOW TAG VALUES from the database-wide index, so a ship whose points
        sit in another retention policy of the same database counts as known too.
        """
        statement = (
            f"SHOW TAG VALUES FROM {source(self._database, self._retention_policy)} "
            f"WITH KEY = {quote_ident(TAG_SHIP)} "
            f"WHERE {quote_ident(TAG_SHIP)} = {quote_string(ship)} LIMIT 1"
        )
        try:
            result = await self.query(statement, kind="ship_known")
        except DatabaseMissingError:
            return False
        return any(series.values for series in result)

    async def ships(self) -> list[str]:
        """Every ship id with stored data, sorted."""
        statement = (
            f"SHOW TAG VALUES FROM {source(self._database, self._retention_policy)} "
            f"WITH KEY = {quote_ident(TAG_SHIP)}"
        )
        try:
            result = await self.query(statement, kind="ships")
        except DatabaseMissingError:
            return []
        found: set[str] = set()
        for series in result:
            v = _column(series, "value")
            found.update(str(row[v]) for row in series.values)
        return sorted(found)

    def _source(self) -> str:
        return source(self._database, self._retention_policy)

    async def _query_or_empty(self, statement: str, kind: str) -> list[Series]:
        try:
            return await self.query(statement, kind=kind)
        except DatabaseMissingError:
            return []

    async def windows_by_ship(self, start_us: int, end_us: int, every: str,
                              ships: list[str] | None = None) -> dict[str, list[WindowRow]]:
        """Windows of ``every`` holding data, per ship (all ships, or only ``ships``); covered
        seconds as :class:`WindowRow` says."""
        return _ship_rows(await self._meter_series(start_us, end_us, every, ships,
                                                   "windows_by_ship"))

    async def _meter_series(self, start_us: int, end_us: int, every: str,
                            ships: list[str] | None, kind: str) -> list[Series]:
        """The windows of ``every`` holding data, one series per (ship, meter)."""
        where = f"time >= {start_us}u AND time < {end_us}u"
        if ships is not None:
            if not ships:
                return []
            alternatives = " OR ".join(f"{quote_ident(TAG_SHIP)} = {quote_string(s)}"
                                       for s in ships)
            where = f"({alternatives}) AND {where}"
        statement = (
            f"SELECT sum({quote_ident(FIELD_KWH)}) AS kwh, "
            f"sum({quote_ident(FIELD_SECONDS)}) AS seconds FROM {self._source()} WHERE {where} "
            f"GROUP BY time({every}), {quote_ident(TAG_SHIP)}, {quote_ident(TAG_METER)} fill(none)"
        )
        return await self._query_or_empty(statement, kind)

    async def fleet_windows(self, start_us: int, end_us: int, every: str) -> list[FleetRow]:
        """Per window of ``every``: the fleet's kWh, covered seconds and ships with data.

        Two statements, sent at once on two connections: the window sums straight from the
        parts (the plain ``GROUP BY time`` query), and the ships per window from a subquery that
        only counts each ship's parts. One subquery doing both (inner sums per ship, outer sums
        and count) costs InfluxDB 1.x about four times as long, nearly all of it in the inner
        query's two sums per ship and window. The totals are the same sums, added in another
        order. A window appears only when both answers hold it (a point landing between the two
        reads can make them differ for a moment).

        Coverage: a third statement, sent with them, counts each ship's meters holding data in
        the range; only when some ship has more than one are that ship's windows read per meter
        and its seconds in the sums replaced by its covered seconds (:class:`WindowRow`), so the
        fleet's seconds / (length x ships) is the mean of the ships' coverage.
        """
        where = f"time >= {start_us}u AND time < {end_us}u"
        sums = window_query(self._database, self._retention_policy, None, start_us, end_us, every)
        ships = (
            f"SELECT count(n) AS ships FROM ("
            f"SELECT count({quote_ident(FIELD_KWH)}) AS n FROM {self._source()} WHERE {where} "
            f"GROUP BY time({every}), {quote_ident(TAG_SHIP)} fill(none)"
            f") WHERE {where} GROUP BY time({every}) fill(none)"
        )
        meters = (
            f"SELECT count({quote_ident(FIELD_KWH)}) AS n FROM {self._source()} WHERE {where} "
            f"GROUP BY {quote_ident(TAG_SHIP)}, {quote_ident(TAG_METER)}"
        )
        sum_result, ship_result, meter_result = await asyncio.gather(
            self._query_or_empty(sums, "fleet_windows"),
            self._query_or_empty(ships, "fleet_ships"),
            self._query_or_empty(meters, "fleet_meters"))
        per_ship: dict[str, int] = {}
        for series in meter_result:
            if any(v[-1] for v in series.values):
                ship = series.tags.get(TAG_SHIP, "")
                per_ship[ship] = per_ship.get(ship, 0) + 1
        several = sorted(ship for ship, n in per_ship.items() if n > 1)
        # Per window: what the ships with several meters take off the summed seconds.
        extra: dict[int, float] = {}
        if several:
            for t, seconds, covered in _seconds_by_window(await self._meter_series(
                    start_us, end_us, every, several, "fleet_meter_windows")):
                extra[t] = extra.get(t, 0.0) + covered - seconds
        counts: dict[int, int] = {}
        for series in ship_result:
            t, n = _column(series, "time"), _column(series, "ships")
            counts.update((int(v[t]), int(v[n])) for v in series.values if v[n])
        rows: list[FleetRow] = []
        for series in sum_result:
            for start, kwh, seconds in _window_rows(series):
                found = counts.get(start)
                if found:
                    rows.append(FleetRow(start, kwh, seconds + extra.get(start, 0.0), found))
        if len(sum_result) > 1:
            rows.sort(key=lambda row: row.start_us)
        return rows

    async def totals(self, start_us: int, end_us: int) -> dict[str, tuple[float, float]]:
        """Each ship's (kWh, covered seconds) in [start, end); ships without data are absent."""
        statement = (
            f"SELECT sum({quote_ident(FIELD_KWH)}) AS kwh, "
            f"sum({quote_ident(FIELD_SECONDS)}) AS seconds FROM {self._source()} "
            f"WHERE time >= {start_us}u AND time < {end_us}u GROUP BY {quote_ident(TAG_SHIP)}"
        )
        out: dict[str, tuple[float, float]] = {}
        for series in await self._query_or_empty(statement, "totals"):
            k, s = _column(series, "kwh"), _column(series, "seconds")
            for v in series.values:
                if v[k] is not None:
                    out[series.tags.get(TAG_SHIP, "")] = (float(v[k]), float(v[s] or 0.0))
        return out

    async def last_parts(self) -> dict[str, tuple[int, float]]:
        """Each ship's most recent stored part: (start in epoch microseconds, seconds covered)."""
        statement = last_parts_query(self._database, self._retention_policy)
        out: dict[str, tuple[int, float]] = {}
        for series in await self._query_or_empty(statement, "last_parts"):
            t, s = _column(series, "time"), _column(series, "seconds")
            for v in series.values:
                out[series.tags.get(TAG_SHIP, "")] = (int(v[t]), float(v[s] or 0.0))
        return out

    def _unreachable(self, exc: BaseException) -> str:
        detail = str(exc) or exc.__class__.__name__
        return f"InfluxDB at {self._display_url} is unreachable: {detail}"


def _start(row: WindowRow) -> int:
    return row.start_us


def _merge_meters(result: list[Series]) -> dict[str, tuple[list[WindowRow], int]]:
    """Per ship (its tag; "" when not grouped by ship): its windows summed over its meters
    (seconds as stored, added up) in time order, and how many meters hold data."""
    found: dict[str, list[list[WindowRow]]] = {}
    for series in result:
        rows = _window_rows(series)
        if rows:
            found.setdefault(series.tags.get(TAG_SHIP, ""), []).append(rows)
    out: dict[str, tuple[list[WindowRow], int]] = {}
    for ship, lists in found.items():
        if len(lists) == 1:  # one series comes in time order already
            out[ship] = (lists[0], 1)
            continue
        acc: dict[int, tuple[float, float]] = {}
        for rows in lists:
            for t, k, s in rows:
                old = acc.get(t)
                acc[t] = (k, s) if old is None else (old[0] + k, old[1] + s)
        out[ship] = ([WindowRow(t, k, s) for t, (k, s) in sorted(acc.items())], len(lists))
    return out


def _ship_rows(result: list[Series]) -> dict[str, list[WindowRow]]:
    """Per ship, its windows from per-meter series, covered seconds as :class:`WindowRow` says."""
    return {ship: rows if meters == 1 else
            [WindowRow(t, k, ship_seconds(s, meters)) for t, k, s in rows]
            for ship, (rows, meters) in _merge_meters(result).items()}


def _seconds_by_window(result: list[Series]) -> list[tuple[int, float, float]]:
    """(window start, summed seconds, covered seconds) of each ship's window, from per-meter
    series."""
    return [(t, s, ship_seconds(s, meters))
            for rows, meters in _merge_meters(result).values() for t, _k, s in rows]


def _window_rows(series: Series) -> list[WindowRow]:
    """The rows of a ``sum(kwh) AS kwh, sum(seconds) AS seconds`` series holding data."""
    columns = series.columns
    if columns == _WINDOW_COLUMNS:  # what our statements ask for: no index lookups per row
        return [WindowRow(int(t), float(k), float(s or 0.0))
                for t, k, s in series.values if k is not None]
    t, k, s = (_column(series, name) for name in _WINDOW_COLUMNS)
    return [WindowRow(int(v[t]), float(v[k]), float(v[s] or 0.0))
            for v in series.values if v[k] is not None]


def _column(series: Series, name: str) -> int:
    try:
        return series.columns.index(name)
    except ValueError:
        raise StoreError(f"InfluxDB result has no column {name!r}") from None


def _series(status: int, body: bytes, retry_after: str | None) -> list[Series]:
    """Translate one ``/query`` answer into its series or the matching exception."""
    answer = sort_answer(status, body, retry_after, ok=(200,))
    if answer.kind is Kind.UNAVAILABLE:
        raise StoreUnavailableError(f"InfluxDB answered HTTP {status}",
                                    retry_after=answer.retry_after)
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        doc = None
    if not isinstance(doc, dict):
        raise StoreError(f"InfluxDB answered HTTP {status} without a JSON object")
    if answer.kind is Kind.CREDENTIALS:
        raise StoreError(f"InfluxDB refused the credentials (HTTP {status})")
    if answer.kind is Kind.MISSING:
        raise DatabaseMissingError(answer.error)  # InfluxDB 2.x v1 compatibility answers 404
    if answer.kind is not Kind.OK:
        raise StoreError(f"InfluxDB answered HTTP {status}: {answer.error}")
    results = doc.get("results")
    if not isinstance(results, list) or not results or not isinstance(results[0], dict):
        raise StoreError("InfluxDB answered without results")
    first: dict[str, Any] = results[0]
    error = first.get("error")
    if error:
        if missing(error):
            raise DatabaseMissingError(str(error))
        raise StoreError(f"InfluxDB refused the query: {error}")
    return [
        Series(
            name=str(s.get("name", "")),
            columns=tuple(s.get("columns") or ()),
            values=s.get("values") or [],
            tags=s.get("tags") or {},
        )
        for s in first.get("series") or ()
    ]


def _all_series(status: int, body: bytes, retry_after: str | None,
                count: int) -> list[list[Series]]:
    """Every statement's series of a multi-statement answer (see :func:`_series`)."""
    if status != 200:
        _series(status, body, retry_after)  # raises the matching exception
        raise StoreError(f"InfluxDB answered HTTP {status}")
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        doc = None
    results = doc.get("results") if isinstance(doc, dict) else None
    if isinstance(results, list) and len(results) != count and any(
            isinstance(r, dict) and missing(r.get("error")) for r in results):
        raise DatabaseMissingError(str(results[0].get("error")))  # one answer for them all
    if not isinstance(results, list) or len(results) != count:
        raise StoreError("InfluxDB answered without a result per statement")
    out: list[list[Series]] = []
    for result in results:
        error = result.get("error") if isinstance(result, dict) else "not an object"
        if error:
            if missing(error):
                out.append([])
                continue
            raise StoreError(f"InfluxDB refused the query: {error}")
        out.append([Series(name=str(s.get("name", "")), columns=tuple(s.get("columns") or ()),
                           values=s.get("values") or [], tags=s.get("tags") or {})
                    for s in result.get("series") or ()])
    return out

