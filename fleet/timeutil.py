"""Timestamps: UTC instants as integer microseconds since the epoch, parsed from both forms.

Integer microseconds keep window arithmetic exact (no float drift at 15-minute boundaries).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

US = 1_000_000
WINDOW_US = 900 * US
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The original Spaceship Power Service wrote times as 2018-08-24T00-00-00Z.
_DASHED = re.compile(r"^(\d{4}-\d{2}-\d{2})[T ](\d{2})-(\d{2})-(\d{2})(\.\d+)?(Z|[+-]\d{2}:?\d{2})?$")


def parse_datetime(text: object) -> int:
    """Microseconds since the epoch from an ISO 8601 string or the original dashed form.

    A string without an offset is taken as UTC (the contract says timestamps are UTC).
    Raises ValueError on anything else.
    """
    if not isinstance(text, str) or not 10 <= len(text) <= 40:
        raise ValueError("datetime must be an ISO 8601 string")
    s = text.strip()
    m = _DASHED.match(s)
    if m:
        s = f"{m[1]}T{m[2]}:{m[3]}:{m[4]}{m[5] or ''}{m[6] or ''}"
    if s.endswith(("z", "Z")):
        s = s[:-1] + "+00:00"
    dt = datetime.fromisoformat(s)  # raises ValueError
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    delta = dt - _EPOCH
    return (delta.days * 86400 + delta.seconds) * US + delta.microseconds


def format_datetime(us: int) -> str:
    """ISO 8601 UTC with a ``Z``; fractional seconds only when there are some."""
    dt = _EPOCH + timedelta(microseconds=us)
    if dt.microsecond:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def floor_to(us: int, step_us: int) -> int:
    return us - us % step_us
