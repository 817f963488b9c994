"""fleet.calendar: periods in local time, tz/every validation, which series answers what."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet.calendar import (
    EVERY,
    CalendarError,
    Piece,
    count_periods,
    local_iso,
    parse_every,
    parse_tz,
    periods,
    plan,
)

UTC_TZ = parse_tz("UTC")
OSLO = parse_tz("Europe/Oslo")
KOLKATA = parse_tz("Asia/Kolkata")
H = 3600 * 1_000_000


def us(text: str) -> int:
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(dt.astimezone(UTC).timestamp()) * 1_000_000


def labels(start: str, end: str, every: str, tz: str) -> list[tuple[str, float]]:
    zone = parse_tz(tz)
    return [(local_iso(p.start_us, zone), p.length_us / H)
            for p in periods(us(start), us(end), every, zone)]


def test_oslo_days_across_daylight_saving() -> None:
    assert labels("2025-03-29T00:00:00Z", "2025-04-01T00:00:00Z", "1d", "Europe/Oslo") == [
        ("2025-03-29T00:00:00+01:00", 24.0),
        ("2025-03-30T00:00:00+01:00", 23.0),
        ("2025-03-31T00:00:00+02:00", 24.0),
        ("2025-04-01T00:00:00+02:00", 24.0),
    ]
    autumn = labels("2025-10-26T00:00:00+02:00", "2025-10-27T00:00:00+01:00", "1d",
                    "Europe/Oslo")
    assert autumn == [("2025-10-26T00:00:00+02:00", 25.0)]


def test_kolkata_days() -> None:
    assert labels("2025-01-01T00:00:00Z", "2025-01-02T00:00:00Z", "1d", "Asia/Kolkata") == [
        ("2025-01-01T00:00:00+05:30", 24.0), ("2025-01-02T00:00:00+05:30", 24.0)]


@pytest.mark.parametrize(("every", "start", "end", "first", "count"), [
    ("1w", "2025-01-01T00:00:00Z", "2025-01-15T00:00:00Z", "2024-12-30T00:00:00Z", 3),
    ("1mo", "2024-01-15T00:00:00Z", "2024-03-01T00:00:00Z", "2024-01-01T00:00:00Z", 2),
    ("1mo", "2024-11-15T00:00:00Z", "2025-01-02T00:00:00Z", "2024-11-01T00:00:00Z", 3),
    ("1y", "2023-06-01T00:00:00Z", "2025-01-01T00:00:00Z", "2023-01-01T00:00:00Z", 2),
    ("1h", "2025-01-01T00:30:00Z", "2025-01-01T02:00:00Z", "2025-01-01T00:00:00Z", 2),
    ("15m", "2025-01-01T00:10:00Z", "2025-01-01T00:31:00Z", "2025-01-01T00:00:00Z", 3),
])
def test_weeks_months_years(every: str, start: str, end: str, first: str, count: int) -> None:
    found = periods(us(start), us(end), every, UTC_TZ)
    assert local_iso(found[0].start_us, UTC_TZ) == first
    assert len(found) == count == count_periods(us(start), us(end), every, UTC_TZ)


def test_months_in_oslo_have_their_real_length() -> None:
    found = periods(us("2025-03-01T00:00:00+01:00"), us("2025-04-01T00:00:00+02:00"), "1mo", OSLO)
    assert [p.length_us / H for p in found] == [31 * 24 - 1]
    assert local_iso(found[0].start_us, OSLO) == "2025-03-01T00:00:00+01:00"


def test_fixed_windows_stay_utc_aligned_but_are_written_locally() -> None:
    found = periods(us("2025-01-01T00:00:00Z"), us("2025-01-01T01:00:00Z"), "1h", KOLKATA)
    assert [local_iso(p.start_us, KOLKATA) for p in found] == ["2025-01-01T05:30:00+05:30"]


@pytest.mark.parametrize("bad", ["Mars/Olympus", "", "../etc/passwd", "Europe/Oslo ", "x" * 300])
def test_bad_tz(bad: str) -> None:
    with pytest.raises(CalendarError) as err:
        parse_tz(bad)
    assert err.value.parameter == "tz"


def test_offset_not_a_multiple_of_15_minutes() -> None:
    # Amsterdam kept +00:20 (Amsterdam Mean Time) until 1937; Monrovia -00:44:30 until 1972.
    with pytest.raises(CalendarError, match="tz") as err:
        periods(us("1930-01-01T00:00:00Z"), us("1930-01-03T00:00:00Z"), "1d",
                parse_tz("Europe/Amsterdam"))
    assert err.value.parameter == "tz"
    periods(us("2025-01-01T00:00:00Z"), us("2025-01-03T00:00:00Z"), "1d", parse_tz("Asia/Kathmandu"))


@pytest.mark.parametrize("bad", ["2d", "1m", "", "15M", "month"])
def test_bad_every(bad: str) -> None:
    with pytest.raises(CalendarError) as err:
        parse_every(bad)
    assert err.value.parameter == "every"
    assert parse_every(None) == "15m"


def test_max_windows_bounds_every_answer() -> None:
    with pytest.raises(CalendarError) as err:
        periods(us("2000-01-01T00:00:00Z"), us("2025-01-01T00:00:00Z"), "1d", OSLO, 1000)
    assert err.value.parameter == "every" and "1w" in str(err.value)
    assert len(periods(us("2000-01-01T00:00:00Z"), us("2025-01-01T00:00:00Z"), "1y", OSLO, 26)) == 26


def test_plan_oslo_in_an_oslo_fleet_reads_days_and_hour_edges() -> None:
    start, end = us("2025-03-29T00:00:00Z"), us("2025-04-01T00:00:00Z")
    assert plan(start, end, "1d", OSLO, OSLO) == [
        Piece("hour", start, us("2025-03-29T23:00:00Z")),
        Piece("day", us("2025-03-29T23:00:00Z"), us("2025-03-31T22:00:00Z")),
        Piece("hour", us("2025-03-31T22:00:00Z"), end),
    ]
    # The fleet keeps UTC days: Oslo days come from the hours.
    assert plan(start, end, "1d", OSLO, UTC_TZ) == [Piece("hour", start, end)]


def test_plan_kolkata_reads_parts_and_ragged_edges_read_parts() -> None:
    start, end = us("2025-01-01T00:00:00Z"), us("2025-01-03T00:00:00Z")
    assert plan(start, end, "1d", KOLKATA, UTC_TZ) == [Piece("parts", start, end)]
    ragged = plan(us("2025-01-01T00:10:00Z"), us("2025-01-03T05:15:00Z"), "1d", UTC_TZ, UTC_TZ)
    assert ragged == [
        Piece("parts", us("2025-01-01T00:10:00Z"), us("2025-01-01T01:00:00Z")),
        Piece("hour", us("2025-01-01T01:00:00Z"), us("2025-01-02T00:00:00Z")),
        Piece("day", us("2025-01-02T00:00:00Z"), us("2025-01-03T00:00:00Z")),
        Piece("hour", us("2025-01-03T00:00:00Z"), us("2025-01-03T05:00:00Z")),
        Piece("parts", us("2025-01-03T05:00:00Z"), us("2025-01-03T05:15:00Z")),
    ]
    assert plan(start, end, "1d", UTC_TZ, UTC_TZ, daily=False, hourly=False) == [
        Piece("parts", start, end)]
    assert plan(start, end, "15m", UTC_TZ, UTC_TZ) == [Piece("parts", start, end)]


ZONES = ["UTC", "Europe/Oslo", "Asia/Kolkata", "America/New_York", "Australia/Lord_Howe",
         "Pacific/Chatham", "America/Havana"]
instants = st.integers(min_value=us("2000-01-01T00:00:00Z") // (60 * 10**6),
                       max_value=us("2030-01-01T00:00:00Z") // (60 * 10**6)).map(
                           lambda m: m * 60 * 10**6)


@settings(max_examples=150, deadline=None)
@given(instants, st.integers(min_value=1, max_value=400 * 24 * 60), st.sampled_from(EVERY),
       st.sampled_from(ZONES), st.sampled_from(ZONES))
def test_periods_and_plan_tile_the_range(start: int, minutes: int, every: str, zone: str,
                                         fleet: str) -> None:
    end = start + minutes * 60 * 10**6
    tz, fleet_tz = parse_tz(zone), parse_tz(fleet)
    try:
        found = periods(start, end, every, tz, max_windows=5000)
    except CalendarError as exc:
        assert exc.parameter == "every"
        return
    assert found[0].start_us <= start < found[0].end_us
    assert found[-1].start_us < end <= found[-1].end_us
    for a, b in pairwise(found):
        assert a.end_us == b.start_us and a.start_us < a.end_us
    pieces = plan(start, end, every, tz, fleet_tz, period_list=found)
    assert pieces[0].start_us == start and pieces[-1].end_us == end
    for c, d in pairwise(pieces):
        assert c.end_us == d.start_us and c.start_us < c.end_us
    bounds = {p.start_us for p in found}
    for piece in pieces:
        inside = [b for b in bounds if piece.start_us < b < piece.end_us]
        if piece.source == "hour":
            assert piece.start_us % H == 0 and piece.end_us % H == 0
        if piece.source == "day":
            assert zone == fleet and every not in ("15m", "1h")
        if inside and piece.source == "hour":
            assert all(b % H == 0 for b in inside)
        if piece.source == "parts" and every not in ("15m",):
            assert all(b % (900 * 10**6) == 0 for b in inside)
