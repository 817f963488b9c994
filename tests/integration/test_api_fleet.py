"""Fleet and ship queries against a real stack: /v1/ships, /v1/fleet/energy, /v1/fleet/top,
/v1/ships/{id}/gaps and /v1/ships/{id}/anomalies, JSON and CSV, good and bad parameters.

The data is written straight to InfluxDB as 15-minute parts on a day no other test uses
(2031-03-01), so the fleet-wide sums are exactly known.
"""

from __future__ import annotations

import csv
import io
import json

import pytest

from fleet.schema import Part
from fleet.timeutil import parse_datetime
from tests.conftest import Stack, eventually, unique_ship
from tests.integration.api_helpers import QUARTER_US, get, write_parts

pytestmark = pytest.mark.integration

DAY = "2031-03-01"
T0 = parse_datetime(f"{DAY}T00:00:00Z")
SIX = {"start": f"{DAY}T00:00:00Z", "end": f"{DAY}T06:00:00Z"}
NOISE = [1.0, 1.1, 0.9, 1.05, 0.95]


def _a_parts(ship: str) -> list[Part]:
    """24 windows from 00:00: noisy ~1 kWh; 02:00 and 02:15 missing; 03:00 half covered;
    05:00 a spike of 10 kWh."""
    parts = []
    for i in range(24):
        t = T0 + i * QUARTER_US
        if i in (8, 9):
            continue
        if i == 12:
            parts.append(Part(ship, t, 0.5, 450.0))
        elif i == 20:
            parts.append(Part(ship, t, 10.0, 900.0))
        else:
            parts.append(Part(ship, t, NOISE[i % 5], 900.0))
    return parts


@pytest.fixture(scope="module")
def fleet(stack: Stack) -> dict[str, str]:
    names = {"a": unique_ship("fa"), "b": unique_ship("fb"), "c": unique_ship("fc")}
    parts = _a_parts(names["a"])
    parts += [Part(names["b"], T0 + i * QUARTER_US, 2.0, 900.0) for i in range(4)]
    parts.append(Part(names["c"], T0, 0.25, 900.0))
    write_parts(stack, parts)
    return names


def _kwh_a() -> float:
    return sum(p.kwh for p in _a_parts("x"))


def test_fleet_energy_sums_counts_and_means(stack: Stack, fleet: dict[str, str]) -> None:
    reply = get(stack, "/v1/fleet/energy", {"start": f"{DAY}T00:00:00Z",
                                            "end": f"{DAY}T02:00:00Z", "every": "1h"})
    assert reply.status == 200, reply.text
    body = reply.json
    assert body["every"] == "1h"
    first, second = body["windows"]
    a_hour0 = sum(NOISE[i % 5] for i in range(4))
    a_hour1 = sum(NOISE[i % 5] for i in range(4, 8))
    assert first["time"] == f"{DAY}T00:00:00Z"
    assert first["kwh"] == pytest.approx(a_hour0 + 8.0 + 0.25)
    assert first["ships"] == 3
    assert first["mean_kwh"] == pytest.approx((a_hour0 + 8.25) / 3)
    assert first["coverage"] == pytest.approx((3600 + 3600 + 900) / (3 * 3600))
    assert second == {"time": f"{DAY}T01:00:00Z", "kwh": pytest.approx(a_hour1), "ships": 1,
                      "mean_kwh": pytest.approx(a_hour1), "coverage": 1.0}


def test_fleet_energy_fill_and_label(stack: Stack, fleet: dict[str, str]) -> None:
    body = get(stack, "/v1/fleet/energy", {"start": f"{DAY}T05:00:00Z",
                                           "end": f"{DAY}T08:00:00Z", "every": "1h",
                                           "fill": "null", "label": "end"}).json
    assert [(w["time"][11:16], w["ships"]) for w in body["windows"]] == [
        ("06:00", 1), ("07:00", 0), ("08:00", 0)]
    assert body["windows"][1]["kwh"] is None
    assert body["windows"][1]["mean_kwh"] is None
    zero = get(stack, "/v1/fleet/energy", {"start": f"{DAY}T06:00:00Z",
                                           "end": f"{DAY}T07:00:00Z", "fill": "zero"}).json
    assert [w["kwh"] for w in zero["windows"]] == [0.0] * 4


def test_fleet_energy_csv(stack: Stack, fleet: dict[str, str]) -> None:
    params = {"start": f"{DAY}T00:00:00Z", "end": f"{DAY}T02:00:00Z", "every": "1h"}
    by_param = get(stack, "/v1/fleet/energy", {**params, "format": "csv"})
    by_accept = get(stack, "/v1/fleet/energy", params, headers={"Accept": "text/csv"})
    for reply in (by_param, by_accept):
        assert reply.status == 200
        assert reply.headers["Content-Type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(reply.text)))
        assert list(rows[0]) == ["time", "kwh", "ships", "mean_kwh", "coverage"]
        assert [r["ships"] for r in rows] == ["3", "1"]
    assert by_param.text == by_accept.text


def test_fleet_top(stack: Stack, fleet: dict[str, str]) -> None:
    reply = get(stack, "/v1/fleet/top", {**SIX, "count": "2"})
    assert reply.status == 200, reply.text
    body = reply.json
    assert body["count"] == 2
    assert [(s["rank"], s["ship"]) for s in body["ships"]] == [(1, fleet["a"]), (2, fleet["b"])]
    assert body["ships"][0]["kwh"] == pytest.approx(_kwh_a())
    assert body["ships"][1]["kwh"] == pytest.approx(8.0)
    assert "windows" not in body["ships"][0]
    with_series = get(stack, "/v1/fleet/top", {**SIX, "count": "3", "every": "1h"}).json
    third = with_series["ships"][2]
    assert third["ship"] == fleet["c"]
    assert third["windows"] == [{"time": f"{DAY}T00:00:00Z", "kwh": 0.25, "coverage": 0.25}]
    rows = list(csv.DictReader(io.StringIO(
        get(stack, "/v1/fleet/top", {**SIX, "count": "3", "format": "csv"}).text)))
    assert [r["ship"] for r in rows] == [fleet["a"], fleet["b"], fleet["c"]]


def test_gaps_merge_missing_and_partial_windows(stack: Stack, fleet: dict[str, str]) -> None:
    ship = fleet["a"]
    reply = get(stack, f"/v1/ships/{ship}/gaps", {"start": f"{DAY}T00:00:00Z",
                                                   "end": f"{DAY}T07:00:00Z"})
    assert reply.status == 200, reply.text
    body = reply.json
    assert body["gaps"] == [
        {"start": f"{DAY}T02:00:00Z", "end": f"{DAY}T02:30:00Z", "windows": 2, "missing": 2,
         "partial": 0, "coverage": 0.0},
        {"start": f"{DAY}T03:00:00Z", "end": f"{DAY}T03:15:00Z", "windows": 1, "missing": 0,
         "partial": 1, "coverage": 0.5},
        {"start": f"{DAY}T06:00:00Z", "end": f"{DAY}T07:00:00Z", "windows": 4, "missing": 4,
         "partial": 0, "coverage": 0.0},
    ]
    assert body["coverage"] == pytest.approx((21 * 900 + 450) / (7 * 3600))
    # Hourly: the two missing quarters and the half quarter fall in two partial hours.
    hourly = get(stack, f"/v1/ships/{ship}/gaps", {**SIX, "every": "1h"}).json["gaps"]
    assert [(g["start"][11:16], g["end"][11:16], g["partial"]) for g in hourly] == [
        ("02:00", "04:00", 2)]
    # A range cut inside a window: the span is cut too.
    cut = get(stack, f"/v1/ships/{ship}/gaps", {"start": f"{DAY}T02:10:00Z",
                                                 "end": f"{DAY}T02:20:00Z"}).json["gaps"]
    assert cut == [{"start": f"{DAY}T02:10:00Z", "end": f"{DAY}T02:20:00Z", "windows": 2,
                    "missing": 2, "partial": 0, "coverage": 0.0}]
    csv_rows = list(csv.DictReader(io.StringIO(
        get(stack, f"/v1/ships/{ship}/gaps", {**SIX, "format": "csv"}).text)))
    assert [r["start"] for r in csv_rows] == [f"{DAY}T02:00:00Z", f"{DAY}T03:00:00Z"]


def test_anomalies_find_the_spike_only(stack: Stack, fleet: dict[str, str]) -> None:
    reply = get(stack, f"/v1/ships/{fleet['a']}/anomalies", SIX)
    assert reply.status == 200, reply.text
    body = reply.json
    assert body["rule"]["history"] == 96
    assert body["rule"]["threshold"] == 3.5
    [spike] = body["anomalies"]
    assert spike["time"] == f"{DAY}T05:00:00Z"
    assert spike["kwh"] == 10.0
    assert spike["direction"] == "high"
    assert spike["median"] == pytest.approx(1.0)
    assert spike["score"] > 50
    end_label = get(stack, f"/v1/ships/{fleet['a']}/anomalies", {**SIX, "label": "end"}).json
    assert end_label["anomalies"][0]["time"] == f"{DAY}T05:15:00Z"
    # Too little history (ship b has four windows): nothing is judged.
    assert get(stack, f"/v1/ships/{fleet['b']}/anomalies", SIX).json["anomalies"] == []
    strict = get(stack, f"/v1/ships/{fleet['a']}/anomalies",
                 {**SIX, "threshold": "1000", "history": "8"}).json
    assert strict["anomalies"] == []
    csv_text = get(stack, f"/v1/ships/{fleet['a']}/anomalies", SIX,
                   headers={"Accept": "text/csv"}).text
    assert csv_text.splitlines()[0] == "time,kwh,median,scale,score,direction"


def test_ships_lists_presence_and_last_data(stack: Stack, fleet: dict[str, str]) -> None:
    status_only, password = stack.ship(unique_ship("st"))
    session = stack.client(status_only, password)
    try:
        session.client.publish(f"fleet/ships/{status_only}/status",
                               json.dumps({"status": "online",
                                           "timestamp": "2031-03-01T06:00:00Z"}),
                               qos=1, retain=True).wait_for_publish(5)
    finally:
        session.close()

    def listed() -> dict[str, dict[str, object]] | None:
        reply = get(stack, "/v1/ships", SIX)
        assert reply.status == 200, reply.text
        rows = {s["ship"]: s for s in reply.json["ships"]}
        return rows if rows.get(status_only, {}).get("presence") == "online" else None

    rows = eventually(listed, 10, message="the status never showed as presence")
    assert rows[status_only] == {
        "ship": status_only, "presence": "online", "presence_since": "2031-03-01T06:00:00Z",
        "last_reading": None, "last_window": None, "kwh": None}
    assert rows[fleet["a"]]["presence"] == "unknown"
    assert rows[fleet["a"]]["last_window"] == f"{DAY}T05:45:00Z"
    assert rows[fleet["a"]]["last_reading"] == f"{DAY}T06:00:00Z"
    assert rows[fleet["a"]]["kwh"] == pytest.approx(_kwh_a())
    plain = get(stack, "/v1/ships").json
    assert "start" not in plain
    assert all("kwh" not in s for s in plain["ships"])
    header = get(stack, "/v1/ships", {"format": "csv"}).text.splitlines()[0]
    assert header == "ship,presence,presence_since,last_reading,last_window"


def test_energy_csv_keeps_the_windows(stack: Stack, fleet: dict[str, str]) -> None:
    reply = get(stack, f"/v1/ships/{fleet['b']}/energy", {**SIX, "format": "csv"})
    assert reply.text.splitlines() == ["time,kwh,coverage"] + [
        f"{DAY}T00:{m:02d}:00Z,2.0,1.0" for m in (0, 15, 30, 45)]


BAD = [
    ("/v1/fleet/energy", {"end": SIX["end"]}, "start"),
    ("/v1/fleet/energy", {**SIX, "every": "5m"}, "every"),
    ("/v1/fleet/energy", {**SIX, "fill": "linear"}, "fill"),
    ("/v1/fleet/energy", {**SIX, "label": "middle"}, "label"),
    ("/v1/fleet/energy", {**SIX, "format": "xml"}, "format"),
    ("/v1/fleet/energy", {"start": SIX["end"], "end": SIX["start"]}, "start"),
    ("/v1/fleet/top", {**SIX, "count": "0"}, "count"),
    ("/v1/fleet/top", {**SIX, "count": "ten"}, "count"),
    ("/v1/fleet/top", {**SIX, "count": "1001"}, "count"),
    ("/v1/fleet/top", {"start": "yesterday", "end": SIX["end"]}, "start"),
    ("/v1/ships", {"start": SIX["start"]}, "end"),
    ("/v1/ships/bad.id/gaps", SIX, "id"),
    ("/v1/ships/x/gaps", {"start": SIX["start"]}, "end"),
    ("/v1/ships/x/anomalies", {**SIX, "threshold": "-1"}, "threshold"),
    ("/v1/ships/x/anomalies", {**SIX, "threshold": "nan"}, "threshold"),
    ("/v1/ships/x/anomalies", {**SIX, "history": "3"}, "history"),
    ("/v1/ships/x/anomalies", {**SIX, "every": "2h"}, "every"),
]


@pytest.mark.parametrize(("path", "params", "name"), BAD,
                         ids=[f"{p}-{n}-{i}" for i, (p, _, n) in enumerate(BAD)])
def test_bad_parameters_are_400_naming_them(stack: Stack, path: str, params: dict[str, str],
                                            name: str) -> None:
    reply = get(stack, path, params)
    assert reply.status == 400, reply.text
    assert name in reply.json["error"]


def test_unknown_ship_is_404(stack: Stack) -> None:
    for path in ("gaps", "anomalies"):
        reply = get(stack, f"/v1/ships/never-seen-ship/{path}", SIX)
        assert reply.status == 404, reply.text
        assert "never-seen-ship" in reply.json["error"]


def test_too_many_windows_is_400_suggesting_a_coarser_every(stack: Stack,
                                                            fleet: dict[str, str]) -> None:
    years = {"start": "2029-01-01T00:00:00Z", "end": "2031-01-01T00:00:00Z"}  # 70,080 quarters
    for path in ("/v1/fleet/energy", f"/v1/ships/{fleet['a']}/gaps", "/v1/ships",
                 f"/v1/ships/{fleet['a']}/energy"):
        reply = get(stack, path, years)
        assert reply.status == 400, (path, reply.text)
        error = reply.json["error"]
        assert "every" in error and "1h or 1d" in error and "70080" in error
        assert get(stack, path, {**years, "every": "1d"}).status == 200
    # top ranks by one sum over the range: windows count only when its series are asked for.
    assert get(stack, "/v1/fleet/top", years).status == 200
    assert get(stack, "/v1/fleet/top", {**years, "every": "15m"}).status == 400
    # The anomaly history counts too.
    reply = get(stack, f"/v1/ships/{fleet['a']}/anomalies",
                {"start": "2031-02-27T00:00:00Z", "end": "2031-03-01T00:00:00Z",
                 "every": "1d", "history": "9999"})
    assert reply.status == 200, reply.text
    reply = get(stack, f"/v1/ships/{fleet['a']}/anomalies",
                {"start": "2026-01-01T00:00:00Z", "end": "2031-01-01T00:00:00Z",
                 "every": "1h", "history": "10000"})  # 43,824 hours + 10,000 of history
    assert reply.status == 400
    assert "history" in reply.json["error"]
