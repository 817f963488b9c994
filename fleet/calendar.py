"""Calendar periods and which stored series answers them (pure; ``zoneinfo`` decides midnights).

Contract (CONTRACT.md section 5), for the query service, the bridge's coarse series and reports:

- :func:`parse_every` accepts ``15m``, ``1h``, ``1d``, ``1w`` (ISO weeks from Monday), ``1mo``
  (calendar months) and ``1y``; :func:`parse_tz` an IANA zone name (``UTC`` by default). Both
  raise :class:`CalendarError`, whose ``parameter`` is ``"every"`` or ``"tz"``.
- :func:`periods` lists the periods touching ``[start_us, end_us)`` (UTC epoch microseconds):
  ``15m`` and ``1h`` are aligned to the epoch (UTC) whatever the zone; the others begin at local
  midnight in ``tz``. Each boundary is computed in local time and converted to UTC just before
  use, so a local day lasts 23, 24 or 25 hours. ``Period.start_us``/``end_us`` are the whole
  period (its real length, for coverage); clip with ``max(start_us, p.start_us)`` and
  ``min(end_us, p.end_us)`` for the part inside the range. More than ``max_windows`` periods is a
  CalendarError("every"); a zone whose UTC offset somewhere in the range is not a multiple of
  15 minutes is a CalendarError("tz") (the parts cannot be split at such a boundary).
- :func:`local_iso` writes an instant with its local offset (``2025-03-30T00:00:00+01:00``), or
  with ``Z`` when the zone is UTC.
- :func:`plan` says which stored series answers which sub-range exactly: ``day`` (the daily
  coarse series, kept in the fleet's zone ``[query] timezone``) for whole local days when the
  request's zone is the fleet's; ``hour`` (the hourly, UTC-aligned coarse series) where every
  period boundary is a whole UTC hour; ``parts`` (the 15-minute parts) for the rest: zones such as
  Asia/Kolkata (+05:30) and the ragged edges of a range that does not begin or end on a boundary
  of the series. The pieces tile ``[start_us, end_us)`` in order, without gaps or overlaps.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fleet.errors import FleetError

US = 1_000_000
EVERY = ("15m", "1h", "1d", "1w", "1mo", "1y")
FIXED_US = {"15m": 900 * US, "1h": 3600 * US}
QUARTER_US = 900 * US
HOUR_US = 3600 * US
DAY_US = 86_400 * US
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
_ZONE = re.compile(r"[A-Za-z0-9_+\-]+(?:/[A-Za-z0-9_+\-]+){0,3}")
# How many days the offset check samples one by one; past that, period boundaries only.
_SAMPLE_DAYS = 40_000

SOURCES = ("parts", "hour", "day")


class CalendarError(FleetError):
    """A bad ``every`` or ``tz`` (``parameter`` names which); the query service answers 400."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter


@dataclass(frozen=True, slots=True)
class Period:
    """One calendar period: [start_us, end_us) in UTC microseconds, the whole period."""

    start_us: int
    end_us: int

    @property
    def length_us(self) -> int:
        return self.end_us - self.start_us


@dataclass(frozen=True, slots=True)
class Piece:
    """A sub-range [start_us, end_us) answered exactly by one stored series (``SOURCES``)."""

    source: str
    start_us: int
    end_us: int


def parse_every(text: str | None, default: str = "15m") -> str:
    """``every`` as given, or CalendarError("every") naming the allowed values."""
    if text is None:
        return default
    if text not in EVERY:
        shown = repr(text if len(text) <= 20 else text[:17] + "...")
        raise CalendarError("every", f"every must be one of {', '.join(EVERY)}; got {shown}")
    return text


@functools.lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def parse_tz(text: str | None, default: str = "UTC") -> ZoneInfo:
    """The IANA zone named ``text`` (``default`` when absent), or CalendarError("tz")."""
    name = default if text is None else text
    if not _ZONE.fullmatch(name) or ".." in name:
        raise CalendarError("tz", f"tz must be an IANA time zone such as Europe/Oslo; "
                                  f"got {name[:40]!r}")
    try:
        return _zone(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise CalendarError("tz", f"tz: unknown time zone {name[:40]!r} (an IANA name such as "
                                  "Europe/Oslo or Asia/Kolkata)") from None


def is_utc(tz: ZoneInfo) -> bool:
    return tz.key in {"UTC", "Etc/UTC", "Etc/Universal", "Universal", "Zulu", "Etc/Zulu"}


def to_local(us: int, tz: ZoneInfo) -> datetime:
    return (_EPOCH + timedelta(microseconds=us)).astimezone(tz)


def to_us(dt: datetime) -> int:
    """Epoch microseconds of an aware datetime (a local wall time is converted here, at use)."""
    return (dt - _EPOCH) // _ONE_US


def offset_us(us: int, tz: ZoneInfo) -> int:
    off = to_local(us, tz).utcoffset()
    return 0 if off is None else off // _ONE_US


@functools.lru_cache(maxsize=1 << 15)
def local_iso(us: int, tz: ZoneInfo) -> str:
    """``2025-03-30T00:00:00+01:00``: the instant in ``tz`` with its offset (``Z`` for UTC)."""
    dt = to_local(us, tz)
    if is_utc(tz):
        text = dt.replace(tzinfo=None).isoformat(timespec="microseconds" if dt.microsecond
                                                 else "seconds")
        return text + "Z"
    return dt.isoformat(timespec="microseconds" if dt.microsecond else "seconds")


def _midnight(d: date, tz: ZoneInfo) -> int:
    # fold=0: an ambiguous midnight is its first occurrence; a midnight that does not exist (a
    # daylight-saving gap at 00:00) maps to the instant the gap begins, where that day begins.
    return to_us(datetime(d.year, d.month, d.day, tzinfo=tz))


def _floor_date(d: date, every: str) -> date:
    if every == "1w":
        return d - timedelta(days=d.weekday())
    if every == "1mo":
        return d.replace(day=1)
    if every == "1y":
        return d.replace(month=1, day=1)
    return d


def _next_date(d: date, every: str) -> date:
    if every == "1d":
        return d + timedelta(days=1)
    if every == "1w":
        return d + timedelta(days=7)
    if every == "1mo":
        return date(d.year + 1, 1, 1) if d.month == 12 else date(d.year, d.month + 1, 1)
    return date(d.year + 1, 1, 1)


def period_start(us: int, every: str, tz: ZoneInfo) -> int:
    """The start of the period holding instant ``us``."""
    if every in FIXED_US:
        return us - us % FIXED_US[every]
    d = _floor_date(to_local(us, tz).date(), every)
    start = _midnight(d, tz)
    if start > us:  # a midnight in a gap can map past an instant of that same local date
        start = _midnight(_floor_date(d - timedelta(days=1), every), tz)
    return start


def next_boundary(start: int, every: str, tz: ZoneInfo) -> int:
    """The end of the period beginning at ``start``."""
    if every in FIXED_US:
        return start + FIXED_US[every]
    d = to_local(start, tz).date()
    end = _midnight(_next_date(_floor_date(d, every), every), tz)
    return end if end > start else _midnight(_next_date(_next_date(d, every), every), tz)


def count_periods(start_us: int, end_us: int, every: str, tz: ZoneInfo) -> int:
    """How many periods touch [start_us, end_us), without listing them (for max_windows)."""
    if every in FIXED_US:
        step = FIXED_US[every]
        return -(-(end_us - (start_us - start_us % step)) // step)
    first = to_local(period_start(start_us, every, tz), tz).date()
    last = to_local(period_start(end_us - 1, every, tz), tz).date()
    if every == "1d":
        return (last - first).days + 1
    if every == "1w":
        return (last - first).days // 7 + 1
    if every == "1mo":
        return (last.year - first.year) * 12 + last.month - first.month + 1
    return last.year - first.year + 1


def check_offsets(start_us: int, end_us: int, tz: ZoneInfo,
                  boundaries: Sequence[int] = ()) -> None:
    """CalendarError("tz") when ``tz``'s offset anywhere in the range is not a multiple of 15
    minutes (sampled daily and at every period boundary; zones change offset at most a few
    times a year)."""
    if is_utc(tz):
        return
    samples = [start_us, end_us - 1, *boundaries]
    days = (end_us - start_us) // DAY_US
    if days <= _SAMPLE_DAYS:
        samples.extend(range(start_us, end_us, DAY_US))
    for us in samples:
        off = offset_us(us, tz)
        if off % QUARTER_US:
            raise CalendarError(
                "tz", f"tz {tz.key}: its UTC offset at {local_iso(us, tz)} is not a whole "
                      "number of 15-minute steps, so its periods cannot be made from the stored "
                      "15-minute windows")


def periods(start_us: int, end_us: int, every: str, tz: ZoneInfo,
            max_windows: int | None = None) -> list[Period]:
    """The periods of ``every`` in ``tz`` touching [start_us, end_us), in order.

    Raises CalendarError("every") when there are more than ``max_windows`` of them, and
    CalendarError("tz") for an offset that is not a multiple of 15 minutes.
    """
    if start_us >= end_us:
        return []
    if max_windows is not None:
        n = count_periods(start_us, end_us, every, tz)
        if n > max_windows:
            coarser = list(EVERY[EVERY.index(every) + 1:])
            hint = (f"use a coarser every ({' or '.join(coarser)}) or a shorter range" if coarser
                    else "use a shorter range")
            raise CalendarError(
                "every", f"the range from start to end holds {n} windows of every={every}, more "
                         f"than the {max_windows} allowed (http.max_windows): {hint}")
    return list(_checked_periods(start_us, end_us, every, tz))


@functools.lru_cache(maxsize=256)
def _checked_periods(start_us: int, end_us: int, every: str, tz: ZoneInfo) -> tuple[Period, ...]:
    # Cached: dashboards ask for the same range again and again, and a year of days costs a
    # few thousand zoneinfo conversions.
    out = _periods(start_us, end_us, every, tz)
    check_offsets(start_us, end_us, tz, [p.start_us for p in out] if every not in FIXED_US else ())
    return tuple(out)


def _periods(start_us: int, end_us: int, every: str, tz: ZoneInfo) -> list[Period]:
    out: list[Period] = []
    t = period_start(start_us, every, tz)
    while t < end_us:
        nxt = next_boundary(t, every, tz)
        out.append(Period(t, nxt))
        t = nxt
    return out


def _hour_aligned(values: Sequence[int]) -> bool:
    return all(v % HOUR_US == 0 for v in values)


def day_boundaries(start_us: int, end_us: int, tz: ZoneInfo) -> list[int]:
    """Local midnights in ``tz`` from the one at or before ``start_us`` to the first at or after
    ``end_us`` (the days touching the range, as their boundaries)."""
    return list(_day_boundaries(start_us, end_us, tz))


@functools.lru_cache(maxsize=256)
def _day_boundaries(start_us: int, end_us: int, tz: ZoneInfo) -> tuple[int, ...]:
    # Cached (pure): ten years of days are 3,650 zoneinfo conversions, asked for by every
    # calendar request over that range. Unchecked: the bridge keeps days of any stored date (a
    # zone's local mean time of 1900 included); the reader refuses to answer in such offsets.
    return (*(p.start_us for p in _periods(start_us, end_us, "1d", tz)),
            next_boundary(period_start(end_us - 1, "1d", tz), "1d", tz))


def plan(start_us: int, end_us: int, every: str, tz: ZoneInfo, fleet_tz: ZoneInfo, *,
         hourly: bool = True, daily: bool = True,
         period_list: Sequence[Period] | None = None) -> list[Piece]:
    """Which stored series answers each sub-range of [start_us, end_us) exactly.

    ``hourly``/``daily``: whether those coarse series are complete (built) and may be read.
    Every period boundary inside the range falls on a piece boundary, so each piece lies in one
    period or spans whole periods.
    """
    if start_us >= end_us:
        return []
    if every == "15m":
        return [Piece("parts", start_us, end_us)]
    plist = list(period_list) if period_list is not None else periods(start_us, end_us, every, tz)
    inner = [p.start_us for p in plist if start_us < p.start_us < end_us]
    use_day = daily and every not in FIXED_US and tz.key == fleet_tz.key
    # Hours serve when every period boundary in the range is a whole UTC hour, and (for the
    # edges of daily pieces) when the fleet's own day boundaries are.
    use_hour = hourly and _hour_aligned(inner)
    if use_day:
        days = [d for d in _day_boundaries(start_us, end_us, fleet_tz) if start_us <= d <= end_us]
        if len(days) >= 2:
            d0, d1 = days[0], days[-1]
            edge_hours = hourly and _hour_aligned(days)
            return [*_hours_or_parts(start_us, d0, edge_hours), Piece("day", d0, d1),
                    *_hours_or_parts(d1, end_us, edge_hours)]
    return _hours_or_parts(start_us, end_us, use_hour)


def _hours_or_parts(start_us: int, end_us: int, use_hour: bool) -> list[Piece]:
    if start_us >= end_us:
        return []
    if not use_hour:
        return [Piece("parts", start_us, end_us)]
    h0 = -(-start_us // HOUR_US) * HOUR_US
    h1 = end_us - end_us % HOUR_US
    if h0 >= h1:
        return [Piece("parts", start_us, end_us)]
    out = []
    if start_us < h0:
        out.append(Piece("parts", start_us, h0))
    out.append(Piece("hour", h0, h1))
    if h1 < end_us:
        out.append(Piece("parts", h1, end_us))
    return out
