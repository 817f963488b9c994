"""The storage schema, shared by the bridge (writes) and the query service (reads).

One point per reading part: measurement ``energy``, tags ``ship`` and ``meter``, fields ``kwh`` and
``seconds`` (both floats, always, so a field type never changes), timestamp = the part's start. A
resent reading produces the same points (same series, same timestamp), which InfluxDB overwrites:
storage is idempotent.

The default meter ``main`` is written without a ``meter`` tag: data stored before meters existed
has none, and a payload resent after the upgrade must land in that same series (counted once),
not in a new ``meter=main`` one. In InfluxQL, ``"meter" = ''`` selects meter ``main``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from functools import partial
from typing import NamedTuple

MEASUREMENT = "energy"
TAG_SHIP = "ship"
TAG_METER = "meter"
DEFAULT_METER = "main"
METER_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
FIELD_KWH = "kwh"
FIELD_SECONDS = "seconds"
SHIP_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
RULE_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")  # alert rule names (part of fleet/alerts/ topics)

EVERY_SECONDS = {"15m": 900, "1h": 3600, "1d": 86400}


class Part(NamedTuple):
    """A reading's share of one 15-minute window: energy and seconds covered from ``start_us``.

    A NamedTuple rather than a frozen dataclass: one is made per part on the bridge's hot path,
    and a tuple is built in about half the time, just as immutable.
    """

    ship: str
    start_us: int
    kwh: float
    seconds: float
    meter: str = DEFAULT_METER


# Part(*fields) without the Python frame of the NamedTuple's generated __new__ (about 140 ns
# instead of 370 here): the bridge makes one per part. All five fields, in order.
new_part: Callable[[tuple[str, int, float, float, str]], Part] = partial(tuple.__new__, Part)


def line(part: Part) -> str:
    """Line protocol for one part (nanosecond precision). Ship ids need no escaping."""
    return lines((part,))


def lines(parts: Iterable[Part]) -> str:
    """Line protocol for parts, one line each; the series prefix is built once per ship and meter."""
    out: list[str] = []
    append = out.append
    ship = meter = None
    prefix = ""
    # One f-string per line, the fields unpacked from the tuple (cheaper than attribute access:
    # this runs once per part on the bridge's hot path); float() so a field is never an integer.
    for part_ship, start_us, kwh, seconds, part_meter in parts:
        if part_ship is not ship or part_meter is not meter:
            ship, meter = part_ship, part_meter
            prefix = f"{series_key(ship, meter)} {FIELD_KWH}="
        append(f"{prefix}{float(kwh)!r},{FIELD_SECONDS}={float(seconds)!r} {start_us * 1000}")
    return "\n".join(out)


def series_key(ship: str, meter: str = DEFAULT_METER) -> str:
    """The line-protocol series of one ship's meter (ids need no escaping: see SHIP_ID, METER_ID)."""
    if meter == DEFAULT_METER:
        return f"{MEASUREMENT},{TAG_SHIP}={ship}"
    return f"{MEASUREMENT},{TAG_METER}={meter},{TAG_SHIP}={ship}"


def meter_tag(meter: str) -> str:
    """The ``meter`` tag's stored value: empty (absent) for the default meter."""
    return "" if meter == DEFAULT_METER else meter


def meter_name(tag_value: str | None) -> str:
    """The meter a stored ``meter`` tag value stands for (absent or empty: the default meter)."""
    return tag_value or DEFAULT_METER


def quote_ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def source(database: str, retention_policy: str) -> str:
    """The fully qualified measurement for FROM clauses."""
    return f"{quote_ident(database)}.{quote_ident(retention_policy)}.{quote_ident(MEASUREMENT)}"


def window_query(database: str, retention_policy: str, ship: str | None,
                 start_us: int, end_us: int, every: str, *, by: str = "") -> str:
    """InfluxQL summing parts into windows of ``every``; only windows holding data are returned.

    ``ship=None`` sums the whole fleet. Times are epoch microseconds, [start, end). ``by``: more
    of the GROUP BY (tags, quoted), e.g. one series per meter.
    """
    where = f"time >= {start_us}u AND time < {end_us}u"
    if ship is not None:
        where = f"{quote_ident(TAG_SHIP)} = {quote_string(ship)} AND {where}"
    return (
        f"SELECT sum({quote_ident(FIELD_KWH)}) AS kwh, sum({quote_ident(FIELD_SECONDS)}) AS seconds "
        f"FROM {source(database, retention_policy)} WHERE {where} "
        f"GROUP BY time({every}){', ' + by if by else ''} fill(none)"
    )


def last_parts_query(database: str, retention_policy: str) -> str:
    """InfluxQL for each ship's newest stored part: its start (``time``) and ``seconds``."""
    return (f"SELECT last({quote_ident(FIELD_SECONDS)}) AS seconds "
            f"FROM {source(database, retention_policy)} GROUP BY {quote_ident(TAG_SHIP)}")
