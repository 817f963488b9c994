"""Coverage of a ship with two meters (fleet.coverage): the mean of its meters' coverage on every
endpoint, as the report has it. Day 1: both meters complete (coverage 1); day 2: meter ``shore``
sends nothing (0.5). A second ship with one complete meter shows the fleet's mean over ships."""

from __future__ import annotations

from typing import Any

import pytest

from fleet.schema import Part
from fleet.timeutil import US, format_datetime, parse_datetime
from tests.conftest import Stack, unique_ship
from tests.integration.api_helpers import QUARTER_US, get, write_parts

pytestmark = pytest.mark.integration

T0 = parse_datetime("2019-07-01T00:00:00Z")
DAY_US = 86_400 * US
RANGE = {"start": format_datetime(T0), "end": format_datetime(T0 + 2 * DAY_US)}


@pytest.fixture(scope="module")
def ships(stack: Stack) -> tuple[str, str]:
    two, one = unique_ship("cov2m"), unique_ship("cov1m")
    parts = [Part(two, T0 + i * QUARTER_US, 1.0, 900.0) for i in range(192)]
    parts += [Part(two, T0 + i * QUARTER_US, 2.0, 900.0, meter="shore") for i in range(96)]
    parts += [Part(one, T0 + i * QUARTER_US, 1.0, 900.0) for i in range(192)]
    write_parts(stack, parts)
    return two, one


def expected(every_us: int) -> list[float]:
    """The two-meter ship's coverage per window of the two days."""
    n = 2 * DAY_US // every_us
    return [1.0 if i < n // 2 else 0.5 for i in range(n)]


def ok(stack: Stack, path: str, params: dict[str, str]) -> Any:
    reply = get(stack, path, {**RANGE, **params})
    assert reply.status == 200, reply.text
    return reply.json


EVERY = [({"every": "15m"}, QUARTER_US), ({"every": "15m", "tz": "UTC"}, QUARTER_US),
         ({"every": "1h"}, 3600 * US), ({"every": "1d"}, DAY_US)]


@pytest.mark.parametrize(("params", "every_us"), EVERY)
def test_ship_coverage_is_the_mean_of_its_meters(stack: Stack, ships: tuple[str, str],
                                                 params: dict[str, str], every_us: int) -> None:
    two, _one = ships
    body = ok(stack, f"/v1/ships/{two}/energy", params)
    assert [w["coverage"] for w in body["windows"]] == pytest.approx(expected(every_us))
    per_window = every_us // QUARTER_US
    assert [w["kwh"] for w in body["windows"]] == pytest.approx(
        [3.0 * per_window if c == 1.0 else 1.0 * per_window for c in expected(every_us)])


@pytest.mark.parametrize(("params", "every_us"), EVERY)
def test_fleet_coverage_is_the_mean_over_ships(stack: Stack, ships: tuple[str, str],
                                               params: dict[str, str], every_us: int) -> None:
    body = ok(stack, "/v1/fleet/energy", params)
    n = 2 * DAY_US // every_us
    assert [w["ships"] for w in body["windows"]] == [2] * n
    assert [w["coverage"] for w in body["windows"]] == pytest.approx(
        [(c + 1.0) / 2 for c in expected(every_us)])


@pytest.mark.parametrize(("params", "every_us"), EVERY)
def test_fleet_top_coverage(stack: Stack, ships: tuple[str, str], params: dict[str, str],
                            every_us: int) -> None:
    two, one = ships
    body = ok(stack, "/v1/fleet/top", {**params, "count": "1000"})
    rows = {r["ship"]: r for r in body["ships"]}
    assert rows[two]["coverage"] == pytest.approx(0.75)
    assert rows[one]["coverage"] == pytest.approx(1.0)
    assert [w["coverage"] for w in rows[two]["windows"]] == pytest.approx(expected(every_us))
    assert [w["coverage"] for w in rows[one]["windows"]] == pytest.approx(
        [1.0] * len(expected(every_us)))


def test_gaps_and_report_agree(stack: Stack, ships: tuple[str, str]) -> None:
    two, one = ships
    gaps = ok(stack, f"/v1/ships/{two}/gaps", {"every": "1h"})
    assert gaps["coverage"] == pytest.approx(0.75)
    assert [(g["start"], g["windows"], g["partial"], g["coverage"]) for g in gaps["gaps"]] == [
        (format_datetime(T0 + DAY_US), 24, 24, pytest.approx(0.5))]
    report = ok(stack, "/v1/reports/energy", {"every": "1d", "tz": "UTC",
                                              "ship": f"{two},{one}"})
    rows = {r["ship"]: r for r in report["rows"]}
    assert rows[two]["coverage"] == pytest.approx([1.0, 0.5])
    assert rows[one]["coverage"] == pytest.approx([1.0, 1.0])
    assert report["totals"]["coverage"] == pytest.approx([1.0, 0.75])
    # /data: the kWh, summed over the meters, unchanged.
    data = ok(stack, "/data", {"spaceship_id": two})
    assert [d["value"] for d in data["data"]] == [3.0] * 96 + [1.0] * 96
