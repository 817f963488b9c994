"""fleetctl import's reader: separators, decimal commas, headers, columns, time zones, errors."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from fleet.timeutil import parse_datetime
from fleetctl.importer import ImportFileError, interval_of, read_table

UTC = ZoneInfo("UTC")
OSLO = ZoneInfo("Europe/Oslo")


def write(tmp_path: Path, text: str, name: str = "log.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_semicolon_csv_with_decimal_commas_and_a_header(tmp_path: Path) -> None:
    path = write(tmp_path, "Zeitstempel;Zählerstand kWh\n"
                           "24.08.2018 00:00;1.000,5\n\n24.08.2018 00:15;1.004,25\n")
    t = read_table(path, UTC)
    assert t.separator == ";" and t.units == "kWh" and t.value_column == "Zählerstand kWh"
    assert t.readings == [(parse_datetime("2018-08-24T00:00:00Z"), 1000.5),
                          (parse_datetime("2018-08-24T00:15:00Z"), 1004.25)]


def test_comma_csv_without_a_header_and_offsets_kept(tmp_path: Path) -> None:
    path = write(tmp_path, "2018-08-24T02:00:00+02:00,3.5\n2018-08-24T00:15:00Z,4\n")
    t = read_table(path, OSLO)  # times with an offset ignore --tz
    assert [v for _, v in t.readings] == [3.5, 4.0]
    assert t.readings[0][0] == parse_datetime("2018-08-24T00:00:00Z")


def test_columns_found_by_name_wherever_they_are(tmp_path: Path) -> None:
    path = write(tmp_path, "meter id,energy (Wh),timestamp\nx,10,2018-08-24 00:00\n"
                           "x,20,2018-08-24 00:15\n")
    t = read_table(path, UTC)
    assert (t.time_column, t.value_column, t.units) == ("timestamp", "energy (Wh)", "Wh")
    assert [v for _, v in t.readings] == [10.0, 20.0]


def test_local_times_across_the_autumn_change_keep_their_order(tmp_path: Path) -> None:
    # 2024-10-27 in Oslo: 02:00-03:00 local happens twice (CEST, then CET).
    rows = ["time,kwh"] + [f"2024-10-27 {h},1" for h in
                           ("01:30", "02:00", "02:30", "02:00", "02:30", "03:00")]
    t = read_table(write(tmp_path, "\n".join(rows)), OSLO)
    times = [x for x, _ in t.readings]
    assert times == sorted(times) and len(set(times)) == 6
    assert times[1] == parse_datetime("2024-10-27T00:00:00Z")
    assert times[3] == parse_datetime("2024-10-27T01:00:00Z")


def test_spreadsheet(tmp_path: Path) -> None:
    path = tmp_path / "log.xlsx"
    frame = pd.DataFrame({"Date": pd.to_datetime(["2018-08-24 00:00", "2018-08-24 01:00"]),
                          "kWh": [12.0, 26.0]})
    frame.to_excel(path, index=False)
    t = read_table(path, UTC)
    assert t.separator == "xlsx" and t.units == "kWh"
    assert t.readings == [(parse_datetime("2018-08-24T00:00:00Z"), 12.0),
                          (parse_datetime("2018-08-24T01:00:00Z"), 26.0)]


@pytest.mark.parametrize(("text", "message"), [
    ("time;value\n2018-08-24 00:00;1\n2018-08-24 00:15;abc\n", "line 3, column 2 .value.: 'abc'"),
    ("time;value\n2018-08-24 00:00;1\nyesterday;2\n", "line 3, column 1 .time.: 'yesterday'"),
    ("time;value\n2018-08-24 00:00;-1\n", "line 2, column 2 .value.: -1 is negative"),
    ("2018-08-24 00:00;1\n2018-08-24 00:15;\n", "line 2, column 2"),
    ("2024-03-31 02:30;1\n", "does not exist in Europe/Oslo"),
    ("just one column\n1\n", "one column only"),
    ("t;v\n2018-08-24 00:00;1\n2018-08-24 01:00Z;2\n2018-08-24 02:00+01:00;3\n",
     "line 4, column 1 .t.: the same time as line 3"),
])
def test_unreadable_files_name_the_line_and_column(tmp_path: Path, text: str,
                                                   message: str) -> None:
    with pytest.raises(ImportFileError, match=message):
        read_table(write(tmp_path, text), OSLO)


def test_spreadsheet_errors_name_the_row_and_column_letter(tmp_path: Path) -> None:
    path = tmp_path / "bad.xlsx"
    pd.DataFrame({"time": ["2018-08-24 00:00", "2018-08-24 00:15"],
                  "value": [1.0, "n/a"]}).to_excel(path, index=False)
    with pytest.raises(ImportFileError, match="row 3, column B"):
        read_table(path, UTC)


def test_interval_is_the_most_common_spacing() -> None:
    assert interval_of([(0, 1.0), (900_000_000, 1.0), (1_800_000_000, 1.0),
                        (5_400_000_000, 1.0)]) == 900.0
    assert interval_of([(0, 1.0)]) == 900.0
