"""Query parameters and time formatting of the query service (pure parts)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet.timeutil import format_datetime
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


@settings(max_examples=3000, deadline=None)
@given(st.integers(min_value=-9_223_372_036_854_775, max_value=9_223_372_036_854_775))
def test_iso_matches_format_datetime(us: int) -> None:
    assert iso(us) == format_datetime(us)


@given(st.integers(min_value=0, max_value=10**9).map(lambda m: m * 60_000_000))
def test_iso_matches_on_whole_minutes(us: int) -> None:
    assert iso(us) == format_datetime(us)
