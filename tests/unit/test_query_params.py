"""Query parameters and time formatting of the query service (pure parts)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet.timeutil import format_datetime
from query_service import timefmt
from query_service.energy import ParameterError, choice, integer, number
from query_service.timefmt import iso


@pytest.mark.parametrize("name", ["label", "format", "fill"])
def test_empty_choice_is_refused_absent_is_default(name: str) -> None:
    assert choice({}, name, ("a", "b"), "a") == "a"
    with pytest.raises(ParameterError) as info:
        choice({name: ""}, name, ("a", "b"), "a")
    assert name in str(info.value)


def test_empty_numbers_are_refused() -> None:
    assert integer({}, "count", 10, 1, 100) == 10
    with pytest.raises(ParameterError):
        integer({"count": ""}, "count", 10, 1, 100)
    with pytest.raises(ParameterError):
        number({"threshold": ""}, "threshold", 3.5, 0.1, 100)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
YEAR_1000_US = int((datetime(1000, 1, 1, tzinfo=UTC) - EPOCH).total_seconds()) * 1_000_000
YEAR_9999_US = int((datetime(9999, 12, 31, tzinfo=UTC) - EPOCH).total_seconds()) * 1_000_000


def reference(us: int) -> str:
    """The contract's format, built field by field (no strftime, nothing shared with iso())."""
    dt = EPOCH + timedelta(microseconds=us)
    text = (f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:"
            f"{dt.second:02d}")
    return text + (f".{dt.microsecond:06d}Z" if dt.microsecond else "Z")


minutes = st.integers(YEAR_1000_US // 60_000_000, YEAR_9999_US // 60_000_000).map(
    lambda m: m * 60_000_000)
any_time = st.integers(YEAR_1000_US, YEAR_9999_US)


@settings(max_examples=2000, deadline=None)
@given(minutes)
def test_iso_fast_path_matches_the_format(us: int) -> None:
    """Whole minutes (every window start), before and after 1970: the precomputed clock path."""
    fallback: list[int] = []
    real = timefmt.format_datetime

    def spy(value: int) -> str:
        if value % (86_400 * 1_000_000):  # not the day lookup of the fast path
            fallback.append(value)
        return real(value)

    with mock.patch.object(timefmt, "format_datetime", spy):
        got = iso(us)
    assert fallback == [], "the whole-minute case left the fast path"
    assert got == reference(us)


@settings(max_examples=2000, deadline=None)
@given(any_time)
def test_iso_matches_the_format_anywhere(us: int) -> None:
    """Any microsecond (mostly the fallback), against the same independent reference."""
    assert iso(us) == reference(us) == format_datetime(us)
