"""The calendar reader: per-ship, per-meter energy of calendar periods, from the coarsest exact series.

Public API (for the energy endpoints and for reports)::

    async def period_totals(influx: InfluxClient, config: Config, start_us: int, end_us: int,
                            every: str, tz: ZoneInfo, *, ships: Sequence[str] | None = None,
                            meter: str | None = None,
                            max_windows: int | None = None) -> CalendarAnswer

``every`` and ``tz`` come from :func:`fleet.calendar.parse_every` / :func:`fleet.calendar.parse_tz`
(their CalendarError is a 400 naming the parameter; ``period_totals`` raises it too, for more than
``max_windows`` periods or a zone whose offset is not a multiple of 15 minutes). ``ships=None``
reads every ship; ``meter=None`` every meter. The answer holds ``periods`` (every period touching
[start_us, end_us), whole, in order: a Period's ``length_us`` is its real length, the divisor of
coverage), ``totals[(ship, meter)][i]`` = :class:`Total` (kWh and covered seconds inside the range,
only for periods holding data), and ``truncated_before`` (UTC us, or None): when the range reaches
before what the 15-minute parts still keep (``[influxdb] retention``) and part of the answer had to
come from them, data before that instant is left out, and the answer says so.

Exactness: each total is the sum of the parts whose start lies in the period and the range, read
from the daily series (days of the fleet's zone, when the request's zone is that one), the hourly
series (whole UTC hours, when every period boundary is one) and the parts for the rest
(:func:`fleet.calendar.plan`); the coarse series are used only when ``rollup_state`` says they are
complete. InfluxDB sums between boundaries decided here; its ``tz()`` is never used.

**Kept answers.** A finished answer of :func:`period_totals` or :func:`range_totals` read only
from the coarse series (no parts, no retention cut) is kept in memory, keyed by the request and
the coarse zone, and served again with NO InfluxDB round trip; answers are shared, so callers
treat them as read-only, and the views keep what they rendered from one in
``CalendarAnswer.rendered`` (the response text). The keep (:class:`query_service.cache.AnswerKeep`)
lives on the link of the 15-minute cache (query_service/cache.py) and follows its rules:

- the bridge publishes ``fleet/ships/<id>/rollup`` (QoS 1, bridge/coarsenotice.py) after every
  coarse write, naming the ship; its arrival drops the kept answers reading that ship and every
  all-ships (fleet) answer;
- an answer read from InfluxDB is kept only if no rollup notice arrived, the link stayed whole
  and the watch below did not drop everything while it was read;
- whenever the broker link is not whole (not yet subscribed, disconnected, a barrier of the
  15-minute cache unanswered), everything is dropped and nothing is kept;
- the generation watch (:func:`watch_generation`, one read per ``[http] calendar_watch``, 1 s by
  default, whatever the load) drops every kept answer when the coarse series' generation line
  moved, and keeps nothing while it cannot read it. This is what bounds writers that send no
  notice (``fleetctl rollup rebuild``, a direct write of coarse values with the generation line,
  the journal recovery at a bridge's start): such a write shows in kept answers within two watch
  intervals and their reads, about 2 s (usually one: everything is dropped at the read that sees
  the move and again at the next, since the generation point and the values of one write land in
  different shards, applied in no set order). It
  drops everything on every generation move, the bridge's announced ones included: one
  generation value cannot tell which writers moved it since the last read, so the notices make a
  bridge's writes show at once and the watch only bounds the others.

No broker round trip (barrier) per request, unlike the 15-minute cache: that barrier makes an
``ack`` a promise (whoever saw it reads the new parts). Coarse values make no such promise: they
are written asynchronously after the parts' PUBACK and equal their parts' sums only once the
pipeline goes quiet (docs/CONTRACT.md section 6). A notice reaching the service a little after the
coarse write is the same to a reader as the coarse write landing a little later; once the notice
has arrived (the pipeline is quiet), every answer is the database's own. Without a broker link
(``[http] cache_entries = 0``, no password), a kept answer is served only after a fresh read of
the generation equals the one it was read with (one round trip per request).
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast
from zoneinfo import ZoneInfo

from fleet.calendar import QUARTER_US, US, Period, Piece, parse_tz, periods, plan
from fleet.coarse import (
    DAILY,
    FIELD_COUNT,
    GENERATION,
    HOURLY,
    STATE,
    VERSION,
    horizon_us,
    rollup_policy,
)
from fleet.config import Config
from fleet.coverage import ship_seconds
from fleet.schema import (
    FIELD_KWH,
    FIELD_SECONDS,
    MEASUREMENT,
    TAG_METER,
    TAG_SHIP,
    meter_name,
    meter_tag,
    quote_ident,
    quote_string,
)
from query_service.cache import AnswerKeep, calendar_keep
from query_service.db import InfluxClient, Series

log = logging.getLogger(__name__)

_STEPS_S = (86400, 43200, 21600, 10800, 7200, 3600, 1800, 900)
_RAW_ROWS = 5000
# The longest parts pieces read window by window (see _statements): a day of windows when the
# ships are not named (a fleet's edges), and a year of one ship's for named ships (a zone such as
# Asia/Kolkata, whose periods begin on half hours, reads all its periods from the parts).
_EDGE_WINDOWS = 96
_WINDOW_ROWS = 40_000
_RESOLUTION_US = {"parts": 900 * US, "hour": 3600 * US, "day": 86400 * US}
_STATE_TTL = 5.0
_CACHE_ENTRIES = 2048
_CACHE_ROWS = 20_000  # a larger answer is read each time
_cache: OrderedDict[tuple[str, str], tuple[int, list[Series]]] = OrderedDict()
_state_cache: dict[str, tuple[float, str | None]] = {}
_ANSWER_ENTRIES = 256
# How often the generation watch reads the coarse series' generation (see the module doc).
WATCH_INTERVAL = 1.0
# Finished answers of period_totals read only from the coarse series, with the generation their
# reads belong to; shared, so callers treat an answer as read-only.
_answers: OrderedDict[tuple[Any, ...], tuple[int, CalendarAnswer]] = OrderedDict()


@dataclass(frozen=True, slots=True)
class Total:
    """Energy of one (ship, meter) in one period, inside the range: kWh and covered seconds."""

    kwh: float
    seconds: float


@dataclass(slots=True)
class CalendarAnswer:
    periods: list[Period]
    totals: dict[tuple[str, str], dict[int, Total]] = field(default_factory=dict)
    truncated_before: int | None = None
    sources: list[Piece] = field(default_factory=list)
    # What views rendered from this answer, by their own key: a kept answer (see the module
    # doc) is served again, and so is what was rendered from it.
    rendered: dict[tuple[Any, ...], Any] = field(default_factory=dict)


async def coarse_zone(influx: InfluxClient, config: Config) -> str | None:
    """The zone of the daily series when the coarse series are complete, else None (cached)."""
    now = time.monotonic()
    cached = _state_cache.get(_key(config))
    if cached is not None and cached[0] > now:
        return cached[1]
    src = _source(config, STATE, rollup=True)
    [result] = await influx.query_all([f"SELECT * FROM {src} ORDER BY time DESC LIMIT 1"],
                                      kind="rollup_state")
    zone: str | None = None
    for series in result:
        cols = series.columns
        for row in series.values:
            values = dict(zip(cols, row, strict=True))
            if values.get("ready") and int(values.get("version") or 0) == VERSION:
                zone = str(values.get("tz") or "")
    _state_cache[_key(config)] = (now + _STATE_TTL, zone)
    return zone


def _source(config: Config, measurement: str, *, rollup: bool) -> str:
    cfg = config.influxdb
    rp = rollup_policy(cfg) if rollup else cfg.retention_policy
    return f"{quote_ident(cfg.database)}.{quote_ident(rp)}.{quote_ident(measurement)}"


def _where(ships: Sequence[str] | None, meter: str | None, start_us: int, end_us: int) -> str:
    clauses = []
    if ships is not None:
        clauses.append("(" + " OR ".join(f"{quote_ident(TAG_SHIP)} = {quote_string(s)}"
                                         for s in ships) + ")")
    if meter is not None:
        clauses.append(f"{quote_ident(TAG_METER)} = {quote_string(meter_tag(meter))}")
    clauses.append(f"time >= {start_us}u AND time < {end_us}u")
    return " AND ".join(clauses)


def _grouping(piece: Piece, inner: list[int]) -> tuple[int, int] | None:
    """(step s, offset s) of a GROUP BY time whose buckets never straddle an inner boundary."""
    if not inner:
        return None
    floor = {"parts": 900, "hour": 3600, "day": 900}[piece.source]
    for step in _STEPS_S:
        if step < floor:
            break
        step_us = step * US
        if all((b - inner[0]) % step_us == 0 for b in inner):
            return step, (inner[0] % step_us) // US
    return 900, (inner[0] % QUARTER_US) // US


def _statements(config: Config, pieces: list[Piece], plist: list[Period],
                ships: Sequence[str] | None,
                meter: str | None) -> list[tuple[Piece, int, str]]:
    """(piece, first period index, statement): each statement's rows belong to the period holding
    max(row time, its piece's start)."""
    starts = [p.start_us for p in plist]
    out: list[tuple[Piece, int, str]] = []
    for piece in pieces:
        if piece.source == "parts":
            src, n = _source(config, MEASUREMENT, rollup=False), f"count({quote_ident(FIELD_KWH)})"
        else:
            measurement = HOURLY if piece.source == "hour" else DAILY
            src, n = _source(config, measurement, rollup=True), f"sum({quote_ident(FIELD_COUNT)})"
        select = (f"SELECT sum({quote_ident(FIELD_KWH)}) AS kwh, "
                  f"sum({quote_ident(FIELD_SECONDS)}) AS seconds, {n} AS n FROM {src} WHERE ")
        tags = f"{quote_ident(TAG_SHIP)}, {quote_ident(TAG_METER)}"
        first = bisect.bisect_right(starts, piece.start_us) - 1
        windows = -(-(piece.end_us - piece.start_us) // QUARTER_US)
        if piece.source == "parts" and (windows <= _EDGE_WINDOWS if ships is None
                                        else len(ships) * windows <= _WINDOW_ROWS):
            # The 15-minute windows, as a 15-minute query sums them, added up in _add_all: a
            # sum over more parts in InfluxDB would be the parts added one by one, which is not
            # what adding up the windows gives (a Kolkata day of 5-minute 1 kW readings came out
            # as 18.500000000000007 kWh, its windows add up to 18.5). Period boundaries
            # are whole quarter hours (a zone off them is refused), so no window straddles one.
            # Beyond _EDGE_WINDOWS / _WINDOW_ROWS (a fleet's year in Asia/Kolkata, or the
            # coarse series still being built) InfluxDB sums the parts as below: exact but for
            # the last digit, rather than millions of windows read one by one.
            out.append((piece, first, select + _where(ships, meter, piece.start_us, piece.end_us)
                        + f" GROUP BY time(900s), {tags} fill(none)"))
            continue
        last = bisect.bisect_left(starts, piece.end_us) - 1
        inner = starts[first + 1:last + 1]
        grouping = _grouping(piece, inner)
        if grouping is None:
            out.append((piece, first, select + _where(ships, meter, piece.start_us, piece.end_us)
                        + f" GROUP BY {tags}"))
            continue
        step, offset = grouping
        periods_in = len(inner) + 1
        points = (piece.end_us - piece.start_us) / _RESOLUTION_US[piece.source]
        where = _where(ships, meter, piece.start_us, piece.end_us)
        if piece.source != "parts" and (points < 4 * periods_in or (
                ships is not None and len(ships) * points <= _RAW_ROWS)):
            # Each coarse point lies in one period: read the points themselves. InfluxDB walks
            # every bucket of a GROUP BY time, empty or not (a year of hours costs as much as
            # summing the parts), so this is the fast way to a year of days.
            out.append((piece, first, f"SELECT {quote_ident(FIELD_KWH)} AS kwh, "
                        f"{quote_ident(FIELD_SECONDS)} AS seconds, {quote_ident(FIELD_COUNT)} "
                        f"AS n FROM {src} WHERE {where} GROUP BY {tags}"))
            continue
        if periods_in <= 200 and points >= 4 * periods_in:
            # Many points per period (a fleet's months of days): a sum per period.
            bounds = [piece.start_us, *inner, piece.end_us]
            for i in range(periods_in):
                sub = Piece(piece.source, bounds[i], bounds[i + 1])
                out.append((sub, first + i, select + _where(ships, meter, sub.start_us, sub.end_us)
                            + f" GROUP BY {tags}"))
            continue
        # Buckets that never straddle a period boundary (fill(none): only those holding data).
        out.append((piece, first, select + where
                    + f" GROUP BY time({step}s, {offset}s), {tags} fill(none)"))
    return out


def _add_all(answer: CalendarAnswer, starts: list[int],
             read: Iterable[tuple[Piece, list[Series]]]) -> None:
    """Sum what was read into ``answer.totals``: per (ship, meter) and period, the correctly
    rounded sum (``math.fsum``) of its rows, 15-minute windows and coarse values, in whatever
    order they were read. A period of windows is so exactly what adding them up gives (CONTRACT
    section 5); coarse values (fleet/coarse.py) are that but for the last digit."""
    acc: dict[tuple[str, str], dict[int, tuple[list[float], list[float]]]] = {}
    for piece, result in read:
        for series in result:
            cols = series.columns
            t, k, s, n = (cols.index(c) for c in ("time", "kwh", "seconds", "n"))
            key = (series.tags.get(TAG_SHIP, ""), meter_name(series.tags.get(TAG_METER)))
            per = acc.setdefault(key, {})
            for row in series.values:
                if not row[n] or row[k] is None:
                    continue
                at = max(int(row[t]), piece.start_us)
                i = bisect.bisect_right(starts, at) - 1
                kwh, seconds = float(row[k]), float(row[s] or 0.0)
                old = per.get(i)
                if old is None:
                    per[i] = ([kwh], [seconds])
                else:
                    old[0].append(kwh)
                    old[1].append(seconds)
    for key, per in acc.items():
        totals = answer.totals.setdefault(key, {})
        for i, (kwh_values, seconds_values) in per.items():
            totals[i] = Total(math.fsum(kwh_values), math.fsum(seconds_values))


async def period_totals(influx: InfluxClient, config: Config, start_us: int, end_us: int,
                        every: str, tz: ZoneInfo, *, ships: Sequence[str] | None = None,
                        meter: str | None = None,
                        max_windows: int | None = None) -> CalendarAnswer:
    """Per (ship, meter), the energy of each period of ``every`` in ``tz`` (see the module doc)."""
    plist = periods(start_us, end_us, every, tz, max_windows)
    answer = CalendarAnswer(plist)
    if ships is not None and not ships:
        return answer
    zone = None if every == "15m" else await coarse_zone(influx, config)
    akey = (_key(config), start_us, end_us, every, tz.key, None if ships is None else tuple(ships),
            meter, zone)
    keep = calendar_keep(influx) if zone is not None else None
    seen: int | None = None
    watch: tuple[bool, int, int] | None = None
    if keep is not None:
        found = keep.get(akey)
        if found is not None:
            return cast(CalendarAnswer, found)  # no round trip: see the module doc
        watch = keep.snapshot()
    cached = _answers.get(akey) if zone is not None and keep is None else None
    if cached is not None:
        [result] = await influx.query_all([_generation_statement(config)], kind="calendar")
        generation = _generation(result)
        kept = _answers.get(akey) is cached  # others ran while this one waited
        if generation is not None and generation == cached[0]:
            if kept:
                _answers.move_to_end(akey)
            return cached[1]
        if kept:
            del _answers[akey]
        seen = generation
    fleet_tz = parse_tz(zone) if zone else parse_tz(config.query.timezone)
    pieces = plan(start_us, end_us, every, tz, fleet_tz, hourly=zone is not None,
                  daily=zone is not None, period_list=plist)
    pieces = _within_retention(answer, pieces, config)
    statements = _statements(config, pieces, plist, ships, meter)
    results, generation = await _run_generation(
        influx, config, [(s, p.source != "parts") for p, _i, s in statements], "calendar",
        cache=zone is not None, seen=seen)
    _add_all(answer, [p.start_us for p in plist],
             [(piece, result) for (piece, _first, _statement), result
              in zip(statements, results, strict=True)])
    if zone is not None and generation is not None and _keepable(answer, pieces):
        # Only coarse reads, all of one generation: the plan is a pure function of the key (no
        # parts, so no retention cut), and the answer is what those reads sum to.
        if keep is not None and watch is not None:
            keep.put(akey, None if ships is None else tuple(ships), answer, watch)
        else:
            _answers[akey] = (generation, answer)
            while len(_answers) > _ANSWER_ENTRIES:
                _answers.popitem(last=False)
    return answer


async def range_totals(influx: InfluxClient, config: Config, start_us: int, end_us: int, *,
                       ships: Sequence[str] | None = None,
                       meter: str | None = None) -> CalendarAnswer:
    """The energy of [start_us, end_us) as one period (ranking, totals): daily series for the
    fleet's whole days inside, hourly for whole hours, parts for the rest. ``periods`` holds the
    one period; coverage divides by the range's length."""
    zone = await coarse_zone(influx, config)
    fleet_tz = parse_tz(zone) if zone else parse_tz(config.query.timezone)
    whole = [Period(start_us, end_us)]
    answer = CalendarAnswer(whole)
    if ships is not None and not ships:
        return answer
    akey = ("range", _key(config), start_us, end_us, None if ships is None else tuple(ships),
            meter, zone)
    keep = calendar_keep(influx) if zone is not None else None
    watch = None
    if keep is not None:
        found = keep.get(akey)
        if found is not None:
            return cast(CalendarAnswer, found)
        watch = keep.snapshot()
    pieces = plan(start_us, end_us, "1y", fleet_tz, fleet_tz, hourly=zone is not None,
                  daily=zone is not None, period_list=whole)
    pieces = _within_retention(answer, pieces, config)
    statements = _statements(config, pieces, whole, ships, meter)
    results = await _run(influx, config, [(s, p.source != "parts") for p, _i, s in statements],
                         "totals", cache=zone is not None)
    _add_all(answer, [start_us], [(piece, result) for (piece, _first, _statement), result
                                  in zip(statements, results, strict=True)])
    if keep is not None and watch is not None and _keepable(answer, pieces):
        keep.put(akey, None if ships is None else tuple(ships), answer, watch)
    return answer


def _keepable(answer: CalendarAnswer, pieces: list[Piece]) -> bool:
    """Whether a finished answer may be kept: read only from the coarse series (no parts, so no
    retention cut) and small enough."""
    return (answer.truncated_before is None and all(p.source != "parts" for p in pieces)
            and sum(len(per) for per in answer.totals.values()) <= _CACHE_ROWS)


async def watch_generation(influx: InfluxClient, config: Config, keep: AnswerKeep,
                           interval: float | None = None) -> None:
    """Drop every kept answer when the coarse series' generation moved (one read per
    ``interval``, whatever the load): the bound for writers that publish no rollup notice."""
    every = WATCH_INTERVAL if interval is None else interval
    last: int | None = None
    moved = False
    while True:
        try:
            [result] = await influx.query_all([_generation_statement(config)],
                                              kind="calendar_watch")
            generation = _generation(result)
        except Exception as exc:  # noqa: BLE001 (InfluxDB down, or a bug): keep nothing
            log.warning("calendar: generation not read (%s); keeping no answers", exc)
            keep.clear(watched=False)
            last, moved = None, False
        else:
            changed = last is None or generation != last
            # Dropped again one read after a move: the generation point (stamped in 2200) and
            # the values of one write request sit in different shards, which InfluxDB applies
            # in no set order, so an answer read just after the move may still miss values.
            if changed or moved:
                keep.clear(watched=True)
            last, moved = generation, changed
        await asyncio.sleep(every)


def _within_retention(answer: CalendarAnswer, pieces: list[Piece], config: Config) -> list[Piece]:
    """The pieces, the parts' ones cut at what ``[influxdb] retention`` still keeps; the answer
    records the cut (``truncated_before``) and the pieces it reads (``sources``)."""
    horizon = horizon_us(config.influxdb)
    if horizon is not None and any(p.source == "parts" and p.start_us < horizon for p in pieces):
        answer.truncated_before = horizon
        pieces = [p if p.source != "parts" or p.start_us >= horizon
                  else Piece("parts", horizon, p.end_us)
                  for p in pieces if p.source != "parts" or p.end_us > horizon]
    answer.sources = pieces
    return pieces


async def _run(influx: InfluxClient, config: Config, statements: list[tuple[str, bool]],
               kind: str, *, cache: bool = True) -> list[list[Series]]:
    """Each statement's series (see :func:`_run_generation`)."""
    return (await _run_generation(influx, config, statements, kind, cache=cache))[0]


async def _run_generation(influx: InfluxClient, config: Config,
                          statements: list[tuple[str, bool]], kind: str, *,
                          cache: bool = True,
                          seen: int | None = None) -> tuple[list[list[Series]], int | None]:
    """Each statement's series; coarse-series statements (flagged True) may come from the cache.
    With them the generation every coarse result belongs to (None: unknown, or not one).
    ``seen``: a generation just read; kept reads of another one are read again in the first round
    trip rather than after it (still validated by the generation read with them).

    The cache holds what a statement read from the coarse series together with the coarse
    series' generation (:func:`fleet.coarse.generation_line`, rewritten in the same request as
    every change of them) read in the same round trip, before it: InfluxDB runs the statements
    of one request in order. An entry serves while the generation read with the next request
    is the same; otherwise it is read again. So a cached answer is never older than what the
    database held when the generation last changed, and after the pipeline goes quiet every
    answer is the database's own. Parts statements are never cached.
    """
    if not cache:  # no complete coarse series (perhaps no policy for them: a statement naming
        # a missing one would end InfluxDB's answer to the statements after it)
        return await influx.query_all([text for text, _c in statements], kind=kind), None
    key = _key(config)
    gen_statement = _generation_statement(config)
    out: list[list[Series] | None] = [None] * len(statements)
    hits: dict[int, tuple[int, list[Series]]] = {}
    for i, (text, cacheable) in enumerate(statements):
        found = _cache.get((key, text)) if cacheable else None
        if found is not None and (seen is None or found[0] == seen):
            hits[i] = found
    send = [i for i in range(len(statements)) if i not in hits]
    results = await influx.query_all([gen_statement, *(statements[i][0] for i in send)],
                                     kind=kind)
    generation = _generation(results[0])
    for i, result in zip(send, results[1:], strict=True):
        out[i] = result
    stale = [i for i, (g, _series) in hits.items() if generation is None or g != generation]
    for i, (_g, series) in hits.items():
        if i not in stale:
            out[i] = series
            if (key, statements[i][0]) in _cache:  # perhaps dropped while this one waited
                _cache.move_to_end((key, statements[i][0]))
    consistent = generation
    if stale:
        again = await influx.query_all([gen_statement, *(statements[i][0] for i in stale)],
                                       kind=kind)
        for i, result in zip(stale, again[1:], strict=True):
            out[i] = result
            _remember(key, statements[i], _generation(again[0]), result)
        if _generation(again[0]) != generation:
            consistent = None
    for i in send:
        _remember(key, statements[i], generation, out[i] or [])
    return [r or [] for r in out], consistent


def _generation_statement(config: Config) -> str:
    return (f"SELECT {quote_ident('value')} FROM {_source(config, GENERATION, rollup=True)}"
            " ORDER BY time DESC LIMIT 1")


def _generation(result: list[Series]) -> int | None:
    for series in result:
        for row in series.values:
            return int(row[series.columns.index("value")])
    return None


def _key(config: Config) -> str:
    """Which database a cached read belongs to."""
    cfg = config.influxdb
    return f"{cfg.url}|{cfg.database}|{cfg.retention_policy}"


def _remember(key: str, statement: tuple[str, bool], generation: int | None,
              result: list[Series]) -> None:
    text, cacheable = statement
    if not cacheable or generation is None or sum(len(s.values) for s in result) > _CACHE_ROWS:
        return
    _cache[(key, text)] = (generation, result)
    _cache.move_to_end((key, text))
    while len(_cache) > _CACHE_ENTRIES:
        _cache.popitem(last=False)


def ship_sums(answer: CalendarAnswer) -> dict[str, dict[int, Total]]:
    """The answer summed over meters, per ship: kWh added up; covered seconds as
    :func:`fleet.coverage.ship_seconds` says (over the ship's meters holding data in the answer's
    range), so that seconds / the period's length is the ship's coverage."""
    out: dict[str, dict[int, Total]] = {}
    meters: dict[str, int] = {}
    for (ship, _meter), per in answer.totals.items():
        acc = out.setdefault(ship, {})
        meters[ship] = meters.get(ship, 0) + (1 if per else 0)
        for i, total in per.items():
            old = acc.get(i)
            acc[i] = total if old is None else Total(old.kwh + total.kwh,
                                                     old.seconds + total.seconds)
    return {ship: {i: Total(t.kwh, ship_seconds(t.seconds, meters[ship])) for i, t in per.items()}
            if meters[ship] > 1 else per for ship, per in out.items()}


def describe(answer: CalendarAnswer) -> dict[str, Any]:
    """Which series served which sub-range (for logs and tests)."""
    return {"sources": [(p.source, p.start_us, p.end_us) for p in answer.sources]}
