"""Coarse series and calendar queries against the real servers.

Each group of tests has a database of its own, its own bridge(s) and query service: the fleet's
zone here is Europe/Oslo, so Oslo days read the daily series, UTC and New York the hourly one,
Asia/Kolkata the parts.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from fleet.calendar import local_iso, parse_tz, periods
from fleet.coarse import generation_line
from fleet.errors import StoreUnavailableError
from fleet.store import InfluxStore
from fleet.timeutil import format_datetime, parse_datetime
from launcher.servers import Service, free_port
from tests.conftest import MqttSession, Stack, eventually

pytestmark = pytest.mark.integration

FLEET_TZ = "Europe/Oslo"
# Two [http] calendar_watch intervals (1 s by default) and their reads: how late a coarse write
# that sends no rollup notice may show in a kept calendar answer.
WATCH_BOUND = 3.0


@dataclass
class History:
    stack: Stack
    db: str
    port: int
    services: list[Service]

    def env(self, **more: str) -> dict[str, str]:
        return {"FLEET_INFLUXDB_DATABASE": self.db, "FLEET_QUERY_TIMEZONE": FLEET_TZ,
                "FLEET_BRIDGE_METRICS_PORT": "0", "FLEET_HTTP_PORT": str(self.port), **more}

    def bridge(self, **more: str) -> Service:
        svc = self.stack.start_bridge(client_id=f"hist-{uuid.uuid4().hex[:6]}", **self.env(**more))
        self.services.append(svc)
        return svc

    def get(self, path: str, **params: str) -> tuple[int, Any]:
        return self.stack.http_get(path, params, port=self.port)

    def energy(self, ship: str, **params: str) -> dict[str, Any]:
        status, body = self.get(f"/v1/ships/{ship}/energy", **params)
        assert status == 200, body
        return dict(body)

    def influx(self, q: str) -> list[dict[str, Any]]:
        data = urllib.parse.urlencode({"q": q, "db": self.db, "epoch": "u"})
        with urllib.request.urlopen(f"{self.stack.cfg.influxdb.url}/query?{data}",
                                    timeout=10) as resp:
            return list(json.loads(resp.read())["results"])

    def write(self, body: str, rp: str) -> None:
        url = (f"{self.stack.cfg.influxdb.url}/write?db={self.db}&rp={rp}&precision=ns")
        req = urllib.request.Request(url, data=body.encode(), method="POST")
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 204

    def fleetctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "fleetctl", *args],
                              env=self.stack.env_with(**self.env()), capture_output=True,
                              text=True, timeout=60, check=False)

    def ready(self) -> bool:
        rows = self.influx('SELECT * FROM "fleet_raw_rollup"."rollup_state" '
                           'ORDER BY time DESC LIMIT 1')
        series = rows[0].get("series") or []
        return bool(series) and dict(zip(series[0]["columns"], series[0]["values"][0],
                                         strict=True)).get("ready") is True


def _history(stack: Stack, bridges: int = 1, **more: str) -> History:
    h = History(stack, f"hist_{uuid.uuid4().hex[:8]}", free_port(), [])
    for _ in range(bridges):
        h.bridge(**more)
    svc = stack.start_query(**h.env())
    h.services.append(svc)
    eventually(h.ready, message="the bridge marks the (empty) coarse series complete")
    return h


def _stop(h: History) -> None:
    for svc in h.services:
        svc.stop(timeout=10)
        if svc in h.stack.services:
            h.stack.services.remove(svc)


@pytest.fixture(scope="module")
def hist(stack: Stack) -> Iterator[History]:
    h = _history(stack)
    yield h
    _stop(h)


def publish(stack: Stack, ship: str, payloads: list[dict[str, Any]]) -> None:
    """Publish each payload as ``ship`` and wait for every ack."""
    ship_id, password = stack.ship(ship)
    session: MqttSession = stack.client(ship_id, password)
    session.subscribe(f"fleet/ships/{ship_id}/ack")
    ids = []
    for p in payloads:
        batch_id = uuid.uuid4().hex
        ids.append(batch_id)
        # paho's own publish: MqttSession.publish polls for each PUBACK in turn.
        session.client.publish(f"fleet/ships/{ship_id}/readings",
                               json.dumps({**p, "batch_id": batch_id}), qos=1)
    for batch_id in ids:
        body = json.loads(session.wait_for(
            lambda m, b=batch_id: json.loads(m.payload).get("batch_id") == b).payload)
        assert body["status"] == "stored", body
    session.close()


def hourly_kw(start: str, hours: int, value: float = 1.0) -> dict[str, Any]:
    t0 = parse_datetime(start)
    return {"units": "kW", "interval": "PT1H", "data": [
        {"datetime": format_datetime(t0 + i * 3600 * 10**6), "value": value}
        for i in range(hours)]}


def verified(h: History) -> bool:
    done = h.fleetctl("rollup", "verify")
    return done.returncode == 0


def test_contract_calendar_examples(hist: History) -> None:
    oslo, kolkata = f"cal-{uuid.uuid4().hex[:6]}", f"cal-{uuid.uuid4().hex[:6]}"
    publish(hist.stack, oslo, [hourly_kw("2025-03-29T00:00:00Z", 72)])
    publish(hist.stack, kolkata, [hourly_kw("2025-01-01T00:00:00Z", 24)])
    eventually(lambda: verified(hist), timeout=30, message="coarse series follow the parts")
    body = hist.energy(oslo, start="2025-03-28T00:00:00Z", end="2025-04-02T00:00:00Z",
                       every="1d", tz="Europe/Oslo")
    assert [(w["time"], w["kwh"], w["coverage"]) for w in body["windows"]] == [
        ("2025-03-29T00:00:00+01:00", 23.0, 23 / 24),
        ("2025-03-30T00:00:00+01:00", 23.0, 1.0),
        ("2025-03-31T00:00:00+02:00", 24.0, 1.0),
        ("2025-04-01T00:00:00+02:00", 2.0, 2 / 24),
    ]
    assert body["tz"] == "Europe/Oslo"
    body = hist.energy(kolkata, start="2025-01-01T00:00:00Z", end="2025-01-02T00:00:00Z",
                       every="1d", tz="Asia/Kolkata")
    assert [(w["time"], w["kwh"]) for w in body["windows"]] == [
        ("2025-01-01T00:00:00+05:30", 18.5), ("2025-01-02T00:00:00+05:30", 5.5)]
    # The daily series holds the Oslo days (one point per local day, at its UTC midnight).
    rows = hist.influx(f'SELECT kwh FROM "fleet_raw_rollup"."energy_1d" WHERE ship = \'{oslo}\'')
    assert [v[1] for v in rows[0]["series"][0]["values"]] == [23.0, 23.0, 24.0, 2.0]


def test_contract_calendar_examples_hold_exactly_at_five_minute_readings(hist: History) -> None:
    """The worked examples with the cadence ships send (5-minute kW readings: parts of 1/12 kWh,
    not a binary fraction): a day is the sum of its 15-minute windows, exactly, not the parts
    added one by one (which gives 18.500000000000007 for the Kolkata day)."""
    def five_minute_kw(start: str, hours: int) -> dict[str, Any]:
        t0 = parse_datetime(start)
        return {"units": "kW", "interval": "PT5M", "data": [
            {"datetime": format_datetime(t0 + i * 300 * 10**6), "value": 1}
            for i in range(hours * 12)]}

    oslo, kolkata = f"cal5-{uuid.uuid4().hex[:6]}", f"cal5-{uuid.uuid4().hex[:6]}"
    publish(hist.stack, oslo, [five_minute_kw("2025-03-29T00:00:00Z", 72)])
    publish(hist.stack, kolkata, [five_minute_kw("2025-01-01T00:00:00Z", 24)])
    eventually(lambda: verified(hist), timeout=30, message="coarse series follow the parts")
    body = hist.energy(kolkata, start="2025-01-01T00:00:00Z", end="2025-01-02T00:00:00Z",
                       every="1d", tz="Asia/Kolkata")
    assert [(w["time"], w["kwh"]) for w in body["windows"]] == [
        ("2025-01-01T00:00:00+05:30", 18.5), ("2025-01-02T00:00:00+05:30", 5.5)]
    body = hist.energy(oslo, start="2025-03-28T00:00:00Z", end="2025-04-02T00:00:00Z",
                       every="1d", tz="Europe/Oslo")
    assert [(w["time"], w["kwh"]) for w in body["windows"]] == [
        ("2025-03-29T00:00:00+01:00", 23.0), ("2025-03-30T00:00:00+01:00", 23.0),
        ("2025-03-31T00:00:00+02:00", 24.0), ("2025-04-01T00:00:00+02:00", 2.0)]
    for every, tz, want in (("1h", "Asia/Kolkata", 1.0), ("1mo", "Asia/Kolkata", 24.0)):
        body = hist.energy(kolkata, start="2024-12-01T00:00:00Z", end="2025-02-01T00:00:00Z",
                           every=every, tz=tz)
        assert {w["kwh"] for w in body["windows"]} == {want}, (every, body["windows"][:3])
    status, report = hist.get("/v1/reports/energy", start="2025-03-01T00:00:00+01:00",
                              end="2025-05-01T00:00:00+02:00", every="1mo", tz="Europe/Oslo",
                              ship=oslo)
    assert status == 200, report
    assert report["rows"][0]["kwh"] == [70.0, 2.0], report  # Oslo's March ends at 22:00Z


BAD = [
    ({"tz": "Mars/Olympus"}, "tz"), ({"tz": ""}, "tz"), ({"every": "2w"}, "every"),
    ({"every": "1mo", "tz": "Europe/Amsterdam", "start": "1930-01-01T00:00:00Z",
      "end": "1930-03-01T00:00:00Z"}, "tz"),
    ({"every": "1d", "start": "1800-01-01T00:00:00Z"}, "every"),  # more than max_windows
    ({"meter": "bad meter"}, "meter"), ({"by": "ship"}, "by"),
]


def test_bad_tz_or_every_is_400_naming_it(hist: History) -> None:
    ship = f"cal-{uuid.uuid4().hex[:6]}"
    publish(hist.stack, ship, [hourly_kw("2025-01-01T00:00:00Z", 1)])
    for params, name in BAD:
        query = {"start": "2025-01-01T00:00:00Z", "end": "2025-01-02T00:00:00Z", **params}
        for path in (f"/v1/ships/{ship}/energy", "/v1/fleet/energy"):
            status, body = hist.get(path, **query)
            assert status == 400, (params, body)
            assert name in body["error"], (params, body)


def corpus(rng: random.Random, start: str, days: int) -> list[dict[str, Any]]:
    """kW every 20 minutes (some seconds off, some gaps), in messages of up to 150 readings."""
    t0 = parse_datetime(start)
    data = []
    for i in range(days * 72):
        if rng.random() < 0.1:
            continue
        at = t0 + i * 1200 * 10**6 + rng.choice((0, 0, 0, 7 * 10**6))
        data.append({"datetime": format_datetime(at), "value": round(rng.uniform(0, 50), 3)})
    return [{"units": "kW", "data": data[i:i + 150]} for i in range(0, len(data), 150)]


def expected_periods(windows: list[dict[str, Any]], start: int, end: int, every: str,
                     tz: str) -> list[tuple[str, float, float]]:
    zone = parse_tz(tz)
    plist = periods(start, end, every, zone)
    starts = [p.start_us for p in plist]
    sums: dict[int, list[float]] = {}
    for w in windows:
        t = parse_datetime(w["time"])
        i = max(j for j, s in enumerate(starts) if s <= t)
        acc = sums.setdefault(i, [0.0, 0.0])
        acc[0] += w["kwh"]
        acc[1] += w["coverage"] * 900
    return [(local_iso(plist[i].start_us, zone), kwh, sec / (plist[i].length_us / 10**6))
            for i, (kwh, sec) in sorted(sums.items())]


def same(answer: list[dict[str, Any]], expected: list[tuple[str, float, float]]) -> bool:
    if [w["time"] for w in answer] != [e[0] for e in expected]:
        return False
    return all(math.isclose(w["kwh"], e[1], rel_tol=1e-9, abs_tol=1e-9)
               and math.isclose(w["coverage"], e[2], rel_tol=1e-9, abs_tol=1e-12)
               for w, e in zip(answer, expected, strict=True))


def test_randomized_corpus_out_of_order_equals_the_15_minute_sums(hist: History) -> None:
    rng = random.Random(8)
    ships = [f"rnd-{uuid.uuid4().hex[:6]}" for _ in range(2)]
    for ship in ships:
        recent = corpus(rng, "2025-03-20T00:00:00Z", 16)   # across Oslo's DST change
        backlog = corpus(rng, "2024-12-20T00:00:00Z", 21)  # across a new year
        resends = rng.sample(recent + backlog, 6)
        corrected = [{**p, "data": [{**r, "value": r["value"] * 2} for r in p["data"]]}
                     for p in rng.sample(backlog, 3)]
        publish(hist.stack, ship, list(reversed(recent)))
        publish(hist.stack, ship, backlog)
        publish(hist.stack, ship, resends + corrected)
    eventually(lambda: verified(hist), timeout=40, message="coarse series follow the parts")
    start, end = "2024-12-19T05:15:00Z", "2025-04-05T13:45:00Z"
    s_us, e_us = parse_datetime(start), parse_datetime(end)
    cases = [("1h", "UTC"), ("1d", "UTC"), ("1d", "Europe/Oslo"), ("1d", "Asia/Kolkata"),
             ("1w", "Europe/Oslo"), ("1mo", "Europe/Oslo"), ("1mo", "America/New_York"),
             ("1y", "Europe/Oslo"), ("1y", "UTC")]
    for ship in ships:
        windows = hist.energy(ship, start=start, end=end)["windows"]
        assert len(windows) > 3000
        for every, tz in cases:
            answer = hist.energy(ship, start=start, end=end, every=every, tz=tz)["windows"]
            assert same(answer, expected_periods(windows, s_us, e_us, every, tz)), (every, tz)
    status, top = hist.get("/v1/fleet/top", start=start, end=end, count="1000", meter="main",
                           tz="Europe/Oslo", every="1mo")
    assert status == 200, top
    ranked = {r["ship"]: r for r in top["ships"]}
    for ship in ships:
        windows = hist.energy(ship, start=start, end=end)["windows"]
        assert ranked[ship]["kwh"] == pytest.approx(sum(w["kwh"] for w in windows), rel=1e-9)
        assert same(ranked[ship]["windows"],
                    expected_periods(windows, s_us, e_us, "1mo", "Europe/Oslo"))
    status, fleet15 = hist.get("/v1/fleet/energy", start=start, end=end)
    assert status == 200
    for every, tz in (("1mo", "Europe/Oslo"), ("1d", "Asia/Kolkata")):
        status, body = hist.get("/v1/fleet/energy", start=start, end=end, every=every, tz=tz)
        assert status == 200, body
        want = expected_periods(fleet15["windows"], s_us, e_us, every, tz)
        assert [(w["time"], round(w["kwh"], 6)) for w in body["windows"]] == [
            (t, round(k, 6)) for t, k, _c in want]


def test_rollup_verify_finds_a_tampered_value_and_rebuild_mends_it(hist: History) -> None:
    ship = f"tam-{uuid.uuid4().hex[:6]}"
    publish(hist.stack, ship, [hourly_kw("2025-02-03T00:00:00Z", 48, 2.0)])
    eventually(lambda: verified(hist), timeout=30, message="coarse series follow the parts")
    day = {"start": "2025-02-03T00:00:00Z", "end": "2025-02-05T00:00:00Z", "every": "1d",
           "tz": "Europe/Oslo"}
    before = hist.energy(ship, **day)["windows"]
    hour = parse_datetime("2025-02-03T05:00:00Z") * 1000
    oslo_day = parse_datetime("2025-02-03T23:00:00Z") * 1000
    hist.write(f"energy_1h,ship={ship} kwh=99.0,seconds=3600.0,n=4.0 {hour}\n"
               f"energy_1d,ship={ship} kwh=7.0,seconds=86400.0,n=96.0 {oslo_day}\n"
               f"energy_1h,ship={ship} kwh=5.0,seconds=3600.0,n=4.0 "
               f"{parse_datetime('2025-02-10T00:00:00Z') * 1000}\n"
               f"{generation_line()}", "fleet_raw_rollup")  # as any writer of them does
    # The reader trusts the daily series: the tampered day shows (proof that it reads them),
    # within the generation watch's bound although no notice announced the write (the answer
    # was kept just before).
    eventually(lambda: hist.energy(ship, **day)["windows"][1]["kwh"] == 7.0, timeout=WATCH_BOUND,
               interval=0.05, message="a direct coarse write seen within the watch's bound")
    found = hist.fleetctl("rollup", "verify")
    assert found.returncode == 1, found.stdout + found.stderr
    assert f"energy_1h ship={ship} 2025-02-03T05:00:00Z: stored kwh=99.0" in found.stdout
    assert f"energy_1d ship={ship} 2025-02-03T23:00:00Z: stored kwh=7.0" in found.stdout
    assert f"energy_1h ship={ship} 2025-02-10T00:00:00Z: stored kwh=5.0 seconds=3600.0 " \
           "parts=4, its parts sum to nothing" in found.stdout
    assert "3 difference(s)" in found.stdout
    mended = hist.fleetctl("rollup", "rebuild", "--ship", ship, "--since", "2025-02-01T00:00:00Z")
    assert mended.returncode == 0, mended.stderr
    assert "rebuilding: week" in mended.stderr and "3 coarse value(s) written" in mended.stdout
    assert verified(hist)
    eventually(lambda: hist.energy(ship, **day)["windows"] == before, timeout=WATCH_BOUND,
               interval=0.05, message="rollup rebuild seen within the watch's bound")


def _stored(store: InfluxStore, lines: list[str]) -> bool:
    try:
        store.write("\n".join(lines).encode())
    except StoreUnavailableError:
        return False
    return True


def test_data_stored_before_coarse_series_gets_them_at_bridge_start(stack: Stack) -> None:
    h = History(stack, f"hist_{uuid.uuid4().hex[:8]}", free_port(), [])
    ship = f"old-{uuid.uuid4().hex[:6]}"
    t0 = parse_datetime("2024-06-01T00:00:00Z")
    lines = [f"energy,ship={ship} kwh=0.25,seconds=900.0 {(t0 + i * 900 * 10**6) * 1000}"
             for i in range(96 * 20)]
    lines += [f"energy,meter=shore,ship={ship} kwh=1.0,seconds=900.0 "
              f"{(t0 + i * 900 * 10**6) * 1000}" for i in range(96)]
    store = InfluxStore(dataclasses.replace(stack.cfg.influxdb, database=h.db))
    try:
        store.ensure_database()  # what a bridge of before the coarse series did
        eventually(lambda: _stored(store, lines), message="the old parts are written")
    finally:
        store.close()
    assert not h.influx('SHOW MEASUREMENTS')[0]["series"][0]["values"] == [["energy_1h"]]
    try:
        h.bridge()
        h.services.append(stack.start_query(**h.env()))
        eventually(h.ready, timeout=30, message="the bridge builds the coarse series")
        assert verified(h)
        body = h.energy(ship, start="2024-06-01T00:00:00Z", end="2024-06-21T00:00:00Z",
                        every="1w", tz="Europe/Oslo", by="meter")
        assert sorted(body["meters"]) == ["main", "shore"]
        assert sum(w["kwh"] for w in body["meters"]["main"]) == pytest.approx(24 * 20)
        assert sum(w["kwh"] for w in body["meters"]["shore"]) == pytest.approx(96.0)
        shore = h.energy(ship, start="2024-06-01T00:00:00Z", end="2024-06-03T00:00:00Z",
                         every="1d", meter="shore")
        assert [w["kwh"] for w in shore["windows"]] == [96.0]
    finally:
        _stop(h)


def test_two_bridges_in_a_shared_group_writing_into_the_same_hours(stack: Stack) -> None:
    h = _history(stack, bridges=2, FLEET_BRIDGE_SHARED_GROUP=f"g{uuid.uuid4().hex[:6]}",
                 FLEET_BRIDGE_FLUSH_INTERVAL="0.01", FLEET_BRIDGE_BATCH_SIZE="3")
    try:
        rng = random.Random(2)
        ship = f"two-{uuid.uuid4().hex[:6]}"
        t0 = parse_datetime("2025-05-05T22:00:00Z")
        payloads = []
        for _ in range(200):  # single readings into four hours, resent and corrected at random
            at = t0 + rng.randrange(16) * 900 * 10**6
            payloads.append({"units": "kWh", "interval": "PT15M", "data": [
                {"datetime": format_datetime(at), "value": rng.randrange(1, 9)}]})
        publish(stack, ship, payloads)
        eventually(lambda: verified(h), timeout=40, message="both bridges' coarse values agree")
        windows = h.energy(ship, start="2025-05-05T00:00:00Z", end="2025-05-07T00:00:00Z")
        total = sum(w["kwh"] for w in windows["windows"])
        for tz in ("Europe/Oslo", "UTC"):
            days = h.energy(ship, start="2025-05-05T00:00:00Z", end="2025-05-07T00:00:00Z",
                            every="1d", tz=tz)["windows"]
            assert sum(w["kwh"] for w in days) == pytest.approx(total)
        journals = h.influx('SELECT count(touched) FROM "fleet_raw_journal"."rollup_journal" '
                            'GROUP BY bridge')
        assert len(journals[0]["series"]) == 2  # both bridges stored some of it
    finally:
        _stop(h)


def test_a_bridge_that_died_after_storing_parts_leaves_marks_another_start_finishes(
        hist: History) -> None:
    """As if a bridge was killed between writing the parts and updating the coarse series: its
    journal entry (written before the parts) is found and finished by the next bridge to start."""
    ship = f"die-{uuid.uuid4().hex[:6]}"
    t0 = parse_datetime("2025-07-01T10:00:00Z")
    hist.write("\n".join(f"energy,ship={ship} kwh=1.5,seconds=900.0 {(t0 + i * 900 * 10**6) * 1000}"
                         for i in range(8)), "fleet_raw")
    hour = t0 // (3600 * 10**6)
    hist.write(f'rollup_journal,bridge=dead-1 touched="{ship}:{hour}-{hour + 1}" '
               f"{time.time_ns()}", "fleet_raw_journal")
    assert not verified(hist)
    svc = hist.bridge()
    try:
        eventually(lambda: verified(hist), timeout=30, message="the marks are finished")
    finally:
        svc.stop(timeout=10)
        hist.stack.services.remove(svc)
        hist.services.remove(svc)
    body = hist.energy(ship, start="2025-07-01T00:00:00Z", end="2025-07-02T00:00:00Z",
                       every="1d", tz="Europe/Oslo")
    assert [w["kwh"] for w in body["windows"]] == [12.0]


def test_a_query_reaching_before_the_parts_retention_says_so(hist: History) -> None:
    """Parts kept 30 days (here only the query service is told so: the stored data is older)."""
    ship = f"ret-{uuid.uuid4().hex[:6]}"
    publish(hist.stack, ship, [hourly_kw("2025-08-04T00:00:00Z", 48)])
    eventually(lambda: verified(hist), timeout=30, message="coarse series follow the parts")
    port = free_port()
    svc = hist.stack.start_query(**{**hist.env(), "FLEET_HTTP_PORT": str(port),
                                    "FLEET_INFLUXDB_RETENTION": "720h"})
    try:
        whole = {"start": "2025-08-04T00:00:00Z", "end": "2025-08-06T00:00:00Z"}
        status, body = hist.stack.http_get(f"/v1/ships/{ship}/energy", whole, port=port)
        assert status == 200 and "truncated_before" in body and body["windows"] == []
        # Whole UTC days come from the coarse series, kept longer: a full answer, no truncation.
        status, body = hist.stack.http_get(f"/v1/ships/{ship}/energy",
                                           {**whole, "every": "1d"}, port=port)
        assert status == 200 and "truncated_before" not in body
        assert [w["kwh"] for w in body["windows"]] == [24.0, 24.0]
        status, body = hist.stack.http_get(f"/v1/ships/{ship}/energy",
                                           {**whole, "every": "1d", "start":
                                            "2025-08-04T00:30:00Z"}, port=port)
        assert status == 200 and "truncated_before" in body
        assert [w["kwh"] for w in body["windows"]] == [23.0, 24.0]
    finally:
        svc.stop(timeout=10)
        hist.stack.services.remove(svc)


def test_running_totals_recomputed_by_the_bridge_reach_the_coarse_series(hist: History) -> None:
    ship = f"tot-{uuid.uuid4().hex[:6]}"
    total = {"units": "kWh", "kind": "total", "meter": "shore"}
    publish(hist.stack, ship, [{**total, "data": [
        {"datetime": "2025-09-01T00:00:00Z", "value": 1000},
        {"datetime": "2025-09-01T02:00:00Z", "value": 1008}]}])
    publish(hist.stack, ship, [{**total, "data": [  # late: splits the stored span
        {"datetime": "2025-09-01T01:00:00Z", "value": 1001}]}])
    eventually(lambda: verified(hist), timeout=30, message="coarse series follow the parts")
    body = hist.energy(ship, start="2025-09-01T00:00:00Z", end="2025-09-02T00:00:00Z",
                       every="1h", by="meter")
    assert [w["kwh"] for w in body["meters"]["shore"]] == [1.0, 7.0]
    day = hist.energy(ship, start="2025-08-31T22:00:00Z", end="2025-09-01T22:00:00Z",
                      every="1d", tz="Europe/Oslo", meter="shore")
    assert [w["kwh"] for w in day["windows"]] == [8.0]
