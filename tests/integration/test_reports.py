"""``GET /v1/reports/energy`` and ``fleetctl report`` against the real servers: every cell equals the
sum of the 15-minute windows of its local month, totals per row and column, the spreadsheet read
back with openpyxl (a header row, a table object, the values), errors naming the parameter."""

from __future__ import annotations

import csv
import io
import itertools
import json
import random
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import openpyxl
import pytest

from fleet.schema import Part
from tests.conftest import Stack, unique_ship
from tests.integration.api_helpers import QUARTER_US, get, write_parts

pytestmark = pytest.mark.integration

OSLO = ZoneInfo("Europe/Oslo")
US = 1_000_000
# Jan..Apr 2025 in Oslo: daylight saving begins on 30 March, so March is 743 hours long.
MONTHS = [datetime(2025, m, 1, tzinfo=OSLO) for m in (1, 2, 3, 4, 5)]
BOUNDS = [int(d.astimezone(UTC).timestamp()) * US for d in MONTHS]
START, END = "2024-12-31T23:00:00Z", "2025-04-30T22:00:00Z"


def _parts(ship: str, seed: int) -> list[Part]:
    """A part every 3 hours plus each quarter hour around the month boundaries (local midnight),
    on meters main and shore, and a gap: February is empty for meter shore."""
    rng = random.Random(seed)
    times = set(range(BOUNDS[0], BOUNDS[-1], 12 * QUARTER_US))
    for b in BOUNDS[1:-1]:
        times.update(b + k * QUARTER_US for k in range(-3, 3))
    parts = []
    for t in sorted(times):
        parts.append(Part(ship, t, round(rng.uniform(0.5, 9.0), 3), 900.0))
        if not BOUNDS[1] <= t < BOUNDS[2] and (t - BOUNDS[0]) % (4 * 12 * QUARTER_US) == 0:
            parts.append(Part(ship, t, round(rng.uniform(0.1, 2.0), 3), 600.0, meter="shore"))
    return parts


@pytest.fixture(scope="module")
def fleet(stack: Stack) -> dict[str, list[Part]]:
    ships = {unique_ship("rep"): [], unique_ship("rep"): []}
    for n, ship in enumerate(ships):
        ships[ship] = _parts(ship, n)
        write_parts(stack, ships[ship])
    return ships


def expected(parts: list[Part], meter: str | None = None) -> list[float | None]:
    """Sum of the 15-minute windows of each local month, from the parts written."""
    out: list[float | None] = []
    for a, b in itertools.pairwise(BOUNDS):
        found = [p.kwh for p in parts if a <= p.start_us < b and meter in (None, p.meter)]
        out.append(sum(found) if found else None)
    return out


def raw(stack: Stack, params: dict[str, str] | list[tuple[str, str]]) -> tuple[int, dict[str, str],
                                                                          bytes]:
    url = (f"http://127.0.0.1:{stack.cfg.http.port}/v1/reports/energy?"
           + urllib.parse.urlencode(params))
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {stack.token}"})
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, dict(exc.headers), exc.read()


def _params(fleet: dict[str, list[Part]], **extra: str) -> list[tuple[str, str]]:
    return [("start", START), ("end", END), ("tz", "Europe/Oslo"),
            ("ship", ",".join(fleet)), *extra.items()]


def test_json_cells_and_totals_are_sums_of_15_minute_windows(stack: Stack,
                                                            fleet: dict[str, list[Part]]) -> None:
    status, _h, body = raw(stack, _params(fleet))
    assert status == 200, body
    doc = json.loads(body)
    assert doc["every"] == "1mo" and doc["tz"] == "Europe/Oslo"
    assert [p["start"] for p in doc["periods"]] == [
        "2025-01-01T00:00:00+01:00", "2025-02-01T00:00:00+01:00", "2025-03-01T00:00:00+01:00",
        "2025-04-01T00:00:00+02:00"]
    assert [r["ship"] for r in doc["rows"]] == list(fleet)
    for row in doc["rows"]:
        want = expected(fleet[row["ship"]])
        assert row["kwh"] == pytest.approx(want)
        assert row["total_kwh"] == pytest.approx(sum(w for w in want if w is not None))
        # Coverage: covered seconds over the month's real length, per meter of the ship.
        march = [p for p in fleet[row["ship"]] if BOUNDS[2] <= p.start_us < BOUNDS[3]]
        assert row["coverage"][2] == pytest.approx(
            sum(p.seconds for p in march) / (743 * 3600) / 2)
    columns = [sum(r["kwh"][i] for r in doc["rows"]) for i in range(4)]
    assert doc["totals"]["kwh"] == pytest.approx(columns)
    assert doc["totals"]["total_kwh"] == pytest.approx(sum(columns))
    # The same answer as the ship's own 15-minute windows, read through the API.
    ship = next(iter(fleet))
    windows = get(stack, f"/v1/ships/{ship}/energy",
                  {"start": START, "end": END, "every": "15m"}).json["windows"]
    assert doc["rows"][0]["total_kwh"] == pytest.approx(sum(w["kwh"] for w in windows))

    status, _h, body = raw(stack, _params(fleet, meter="shore"))
    doc = json.loads(body)
    assert doc["meter"] == "shore"
    assert doc["rows"][0]["kwh"] == pytest.approx(expected(fleet[ship], "shore"))
    assert doc["rows"][0]["kwh"][1] is None  # no shore data in February: missing, not 0


def test_default_zone_and_all_ships(stack: Stack, fleet: dict[str, list[Part]]) -> None:
    status, _h, body = raw(stack, {"start": START, "end": END, "every": "1y"})
    assert status == 200, body
    doc = json.loads(body)
    assert doc["tz"] == stack.cfg.query.timezone
    assert set(fleet) <= {r["ship"] for r in doc["rows"]}


def test_csv_one_header_row_local_periods(stack: Stack, fleet: dict[str, list[Part]]) -> None:
    status, headers, body = raw(stack, _params(fleet, format="csv"))
    assert status == 200
    assert headers["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(body.decode())))
    assert rows[0][:7] == ["ship", "2025-01-01T00:00:00+01:00", "2025-02-01T00:00:00+01:00",
                           "2025-03-01T00:00:00+01:00", "2025-04-01T00:00:00+02:00", "total",
                           "coverage"]
    assert rows[0][7] == "coverage 2025-01-01T00:00:00+01:00"
    assert [r[0] for r in rows[1:]] == [*fleet, "total"]
    for row in rows[1:-1]:
        assert [float(v) for v in row[1:5]] == pytest.approx(expected(fleet[row[0]]))
    assert float(rows[-1][5]) == pytest.approx(sum(float(r[5]) for r in rows[1:-1]))


def test_xlsx_is_a_table_with_header_and_values(stack: Stack,
                                                fleet: dict[str, list[Part]]) -> None:
    status, headers, body = raw(stack, _params(fleet, format="xlsx"))
    assert status == 200
    assert headers["Content-Type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    assert 'filename="energy-1mo-2025-01-01-2025-05-01.xlsx"' in headers["Content-Disposition"]
    book = openpyxl.load_workbook(io.BytesIO(body))
    sheet = book["kWh"]
    assert list(sheet.tables) == ["EnergyReport"]
    assert sheet.tables["EnergyReport"].ref == f"A1:G{len(fleet) + 1}"
    assert sheet.freeze_panes == "B2"
    cells = [[c.value for c in row] for row in sheet.iter_rows()]
    assert cells[0] == ["Ship", "2025-01-01T00:00:00+01:00", "2025-02-01T00:00:00+01:00",
                        "2025-03-01T00:00:00+01:00", "2025-04-01T00:00:00+02:00", "Total",
                        "Coverage"]
    for row in cells[1:-1]:
        assert row[1:5] == pytest.approx(expected(fleet[row[0]]))
    assert cells[-1][0] == "Total"
    assert cells[-1][5] == pytest.approx(sum(r[5] for r in cells[1:-1]))
    assert sheet["B2"].number_format == "#,##0.000"
    assert sheet["G2"].number_format == "0.0%"
    assert list(book["Coverage"].tables) == ["CoverageReport"]


@pytest.mark.parametrize(("params", "name"), [
    ({"tz": "Mars/Olympus"}, "tz"), ({"every": "2d"}, "every"), ({"format": "pdf"}, "format"),
    ({"ship": "no good"}, "ship"), ({"meter": "a b"}, "meter"), ({"start": "yesterday"}, "start"),
    # Liberia kept -0:44:30 until 1972: months there cannot be cut from 15-minute parts.
    ({"tz": "Africa/Monrovia", "start": "1970-01-01T00:00:00Z", "end": "1970-03-01T00:00:00Z"},
     "tz"),
    ({"start": END, "end": START}, "start"),
    # 35,000 quarter hours do not fit a worksheet's 16,384 columns.
    ({"every": "15m", "format": "xlsx", "end": "2025-12-31T00:00:00Z"}, "every"),
])
def test_bad_parameters_are_400_naming_them(stack: Stack, params: dict[str, str],
                                            name: str) -> None:
    status, _h, body = raw(stack, {"start": START, "end": END, **params})
    assert status == 400, body
    assert name in json.loads(body)["error"]


def test_unknown_ship_is_404(stack: Stack) -> None:
    status, _h, body = raw(stack, {"start": START, "end": END, "ship": unique_ship("never")})
    assert status == 404, body


def test_fleetctl_report_writes_the_same_table(stack: Stack, fleet: dict[str, list[Part]],
                                               tmp_path: Path) -> None:
    out = tmp_path / "report.xlsx"
    ships = list(fleet)
    done = subprocess.run(
        [sys.executable, "-m", "fleetctl", "report", "--start", START, "--end", END,
         "--tz", "Europe/Oslo", "--ship", ships[0], "--ship", ships[1], "-o", str(out)],
        env=stack.env_with(), capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "2 ships x 4 periods of 1mo in Europe/Oslo" in done.stderr
    sheet = openpyxl.load_workbook(out)["kWh"]
    cells = [[c.value for c in row] for row in sheet.iter_rows()]
    assert [r[0] for r in cells[1:]] == [*ships, "Total"]
    for row in cells[1:-1]:
        assert row[1:5] == pytest.approx(expected(fleet[row[0]]))
    _s, _h, body = raw(stack, _params(fleet, format="csv"))
    done = subprocess.run(
        [sys.executable, "-m", "fleetctl", "report", "--start", START, "--end", END,
         "--tz", "Europe/Oslo", "--ship", ",".join(ships), "-o", "-", "--format", "csv"],
        env=stack.env_with(), capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == body.decode()
    bad = subprocess.run(
        [sys.executable, "-m", "fleetctl", "report", "--start", START, "--end", END,
         "--tz", "Nowhere/Land", "-o", str(tmp_path / "x.csv")],
        env=stack.env_with(), capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 2 and "tz" in bad.stderr
