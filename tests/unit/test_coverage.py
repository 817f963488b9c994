"""The coverage of a sum over a ship's meters (fleet.coverage) and the places that apply it."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from fleet.calendar import Period
from fleet.coverage import ship_seconds
from fleet.report import build
from query_service.calendar import CalendarAnswer, Total, ship_sums
from query_service.db import Series, WindowRow, _seconds_by_window, _ship_rows

H = 3600 * 1_000_000


def test_the_rule_is_the_mean_of_the_meters_coverage() -> None:
    assert ship_seconds(900.0, 1) == 900.0  # one meter: unchanged
    assert ship_seconds(1800.0, 2) == 900.0  # two complete meters: a complete window
    assert ship_seconds(900.0, 2) == 450.0  # one complete, one empty: 0.5
    assert ship_seconds(0.0, 3) == 0.0


def test_calendar_ship_sums_divide_by_the_ships_meters() -> None:
    answer = CalendarAnswer([Period(0, H), Period(H, 2 * H)])
    answer.totals = {("a", "main"): {0: Total(1.0, 3600.0), 1: Total(1.0, 3600.0)},
                     ("a", "shore"): {0: Total(2.0, 3600.0)},
                     ("b", "main"): {0: Total(4.0, 1800.0)},
                     ("c", "main"): {}}
    sums = ship_sums(answer)
    assert sums["a"] == {0: Total(3.0, 3600.0), 1: Total(1.0, 1800.0)}
    assert sums["b"] == {0: Total(4.0, 1800.0)}


def _series(meter: str, values: list[list[float]], ship: str | None = None) -> Series:
    tags = {"meter": meter} if meter else {}
    if ship is not None:
        tags["ship"] = ship
    return Series("energy", ("time", "kwh", "seconds"), values, tags)


def test_15_minute_rows_divide_by_the_ships_meters() -> None:
    result = [_series("", [[0, 1.0, 900.0], [900, 1.0, 900.0]], "a"),
              _series("shore", [[0, 2.0, 900.0]], "a"),
              _series("", [[0, 5.0, 450.0]], "b")]
    rows = _ship_rows(result)
    assert rows["a"] == [WindowRow(0, 3.0, 900.0), WindowRow(900, 1.0, 450.0)]
    assert rows["b"] == [WindowRow(0, 5.0, 450.0)]
    # The fleet's correction: (window, seconds as summed, covered seconds) per ship.
    assert sorted(_seconds_by_window(result[:2])) == [(0, 1800.0, 900.0), (900, 900.0, 450.0)]


def test_the_report_agrees() -> None:
    records = [("a", "main", 0, 1.0, 3600.0), ("a", "main", 1, 1.0, 3600.0),
               ("a", "shore", 0, 2.0, 3600.0), ("b", "main", 0, 4.0, 1800.0)]
    report = build(records, [Period(0, H), Period(H, 2 * H)], "1h", ZoneInfo("UTC"), 0, 2 * H)
    assert report.coverage.loc["a"].tolist() == [1.0, 0.5]
    assert report.coverage.loc["b"].tolist()[0] == pytest.approx(0.5)
