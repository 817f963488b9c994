"""Timestamps: UTC instants as integer microseconds since the epoch, parsed from both forms.

Integer microseconds keep window arithmetic exact (no float drift at 15-minute boundaries).
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime, timedelta

US = 1_000_000
WINDOW_US = 900 * US
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
_fromisoformat = datetime.fromisoformat
# The original Spaceship Power Service wrote times as 2018-08-24T00-00-00Z.
_DASHED = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[T ](\d{2})-(\d{2})-(\d{2})(\.\d+)?(Z|[+-]\d{2}:?\d{2})?$"
)


def parse_datetime(text: object) -> int:
    """Microseconds since the epoch from an ISO 8601 string or the original dashed form.

    A string without an offset is taken as UTC (the contract says timestamps are UTC).
    Raises ValueError on anything else.
    """
    if not isinstance(text, str) or not 10 <= len(text) <= 40:
        raise ValueError("datetime must be an ISO 8601 string")
    # Fastest path, the shape ships send: YYYY-MM-DDThh:mm:ssZ. fromisoformat splits such a text
    # at the T (the date has its dashes at 4 and 7), so parsing the date and the clock apart,
    # each by fromisoformat itself and cached (a payload's readings share their date, a fleet's
    # its clock times), gives the same instant, or the same ValueError.
    if (len(text) == 20 and text[10] == "T" and text[19] == "Z" and text[4] == "-"
            and text[7] == "-" and text[13] == ":" and text[16] == ":"):
        return _day_us(text[:10]) + _clock_us(text[11:19])
    # Hot path (one call per reading): fromisoformat alone handles Z and offsets, and it refuses
    # the dashed form, so trying it first never misreads one; the slower path handles the rest.
    try:
        dt = _fromisoformat(text)
    except ValueError:
        dt = _parse_slow(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - _EPOCH) // _ONE_US


@functools.lru_cache(maxsize=1 << 14)
def _day_us(date: str) -> int:
    """Microseconds from the epoch to midnight UTC starting ``date`` (YYYY-MM-DD)."""
    return (_fromisoformat(date).replace(tzinfo=UTC) - _EPOCH) // _ONE_US


@functools.lru_cache(maxsize=1 << 14)
def _clock_us(clock: str) -> int:
    """Microseconds from midnight to ``clock`` (hh:mm:ss), as fromisoformat reads it in a datetime."""
    return (_fromisoformat(f"1970-01-01T{clock}Z") - _EPOCH) // _ONE_US


def _parse_slow(text: str) -> datetime:
    s = text.strip()
    m = _DASHED.match(s)
    if m:
        s = f"{m[1]}T{m[2]}:{m[3]}:{m[4]}{m[5] or ''}{m[6] or ''}"
    if s.endswith(("z", "Z")):
        s = s[:-1] + "+00:00"
    return _fromisoformat(s)  # raises ValueError


@functools.lru_cache(maxsize=1 << 16)
def format_datetime(us: int) -> str:
    """ISO 8601 UTC with a ``Z``; fractional seconds only when there are some.

    Cached: the bridge's energy topic and the query service format the same window starts over
    and over, and strftime costs more than the rest of a window's JSON.
    """
    dt = _EPOCH + timedelta(microseconds=us)
    if dt.microsecond:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def floor_to(us: int, step_us: int) -> int:
    return us - us % step_us
