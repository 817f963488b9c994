"""fleet.report: the pivot, totals, coverage and the three formats, from period totals."""

from __future__ import annotations

import csv
import io
import math

import openpyxl
import pytest

from fleet.calendar import parse_tz, periods
from fleet.report import build
from fleet.timeutil import parse_datetime

OSLO = parse_tz("Europe/Oslo")
START, END = parse_datetime("2025-02-28T23:00:00Z"), parse_datetime("2025-04-30T22:00:00Z")
PERIODS = periods(START, END, "1mo", OSLO)  # March (743 h: daylight saving begins) and April
MARCH_S, APRIL_S = 743 * 3600.0, 720 * 3600.0


def test_periods_are_local_months_with_their_real_length() -> None:
    assert [p.length_us // 1_000_000 for p in PERIODS] == [MARCH_S, APRIL_S]


def test_meters_are_summed_and_missing_periods_stay_missing() -> None:
    r = build([("b", "main", 0, 10.0, MARCH_S), ("b", "shore", 0, 2.0, MARCH_S / 2),
               ("a", "main", 1, 5.0, APRIL_S)], PERIODS, "1mo", OSLO, START, END)
    assert list(r.kwh.index) == ["a", "b"]  # sorted
    assert r.labels == ["2025-03-01T00:00:00+01:00", "2025-04-01T00:00:00+02:00"]
    assert math.isnan(r.kwh.loc["a", r.labels[0]]) and r.kwh.loc["b", r.labels[0]] == 12.0
    # b has two meters: coverage over twice the month; a complete month of both would be 1.
    assert r.coverage.loc["b", r.labels[0]] == pytest.approx(0.75)
    doc = r.to_json()
    assert doc["rows"][0] == {"ship": "a", "kwh": [None, 5.0], "coverage": [0.0, 1.0],
                              "total_kwh": 5.0,
                              "coverage_total": pytest.approx(APRIL_S / (MARCH_S + APRIL_S))}
    assert doc["totals"]["kwh"] == [12.0, 5.0] and doc["totals"]["total_kwh"] == 17.0
    assert doc["totals"]["coverage"] == pytest.approx([0.375, 0.5])
    assert doc["periods"][1] == {"start": "2025-04-01T00:00:00+02:00",
                                 "end": "2025-05-01T00:00:00+02:00"}


def test_named_ships_are_rows_even_without_data() -> None:
    r = build([("a", "main", 0, 1.0, 900.0)], PERIODS, "1mo", OSLO, START, END,
              ships=["z", "a"])
    doc = r.to_json()
    assert [row["ship"] for row in doc["rows"]] == ["z", "a"]
    assert doc["rows"][0]["kwh"] == [None, None] and doc["rows"][0]["total_kwh"] is None


def test_empty_report_has_periods_and_no_rows() -> None:
    r = build([], PERIODS, "1mo", OSLO, START, END)
    doc = r.to_json()
    assert doc["rows"] == [] and doc["totals"]["total_kwh"] is None
    lines = list(csv.reader(io.StringIO(r.to_csv())))
    assert lines[0][0] == "ship" and lines[1][0] == "total" and len(lines) == 2
    book = openpyxl.load_workbook(io.BytesIO(r.to_xlsx()))
    assert book["kWh"].tables["EnergyReport"].ref == "A1:E2"  # Excel needs a row under a header


def test_csv_and_xlsx_hold_the_same_numbers() -> None:
    r = build([("a", "main", 0, 0.1 + 0.2, 900.0), ("b", "main", 1, 7.0, 900.0)], PERIODS,
              "1mo", OSLO, START, END)
    rows = list(csv.reader(io.StringIO(r.to_csv())))
    assert rows[1][:4] == ["a", repr(0.1 + 0.2), "", repr(0.1 + 0.2)]  # full precision
    assert rows[3][:4] == ["total", repr(0.1 + 0.2), "7.0", repr(0.1 + 0.2 + 7.0)]
    sheet = openpyxl.load_workbook(io.BytesIO(r.to_xlsx()))["kWh"]
    cells = [[c.value for c in row] for row in sheet.iter_rows()]
    assert cells[1][0] == "a" and cells[1][2] is None  # Excel keeps 15 digits
    assert cells[1][1] == pytest.approx(0.3) and cells[1][3] == pytest.approx(0.3)
    assert cells[3][0] == "Total" and cells[3][3] == pytest.approx(7.3)
    assert sheet.tables["EnergyReport"].ref == "A1:E3"
