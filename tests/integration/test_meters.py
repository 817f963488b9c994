"""Meters and running totals end to end: MQTT -> bridge(s) -> the parts in InfluxDB.

The parts are read from InfluxDB directly (sums per 15-minute window), so these tests check what
is stored, whatever the query endpoints make of it.
"""

from __future__ import annotations

import json
import random
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from fleet.normalize import normalize, window_sums, windows
from fleet.timeutil import US, format_datetime, parse_datetime
from fleet.totals import parts_of
from launcher.servers import free_port
from ship.source import meter_specs, simulated_meters
from tests.conftest import MqttSession, Stack, eventually
from tests.contract_examples import RUNNING_TOTALS
from tests.integration.agent_helpers import agent, simulated

pytestmark = pytest.mark.integration

DAY = "2018-08-24"
T0 = parse_datetime(f"{DAY}T00:00:00Z")


def at(hms: str) -> int:
    return parse_datetime(f"{DAY}T{hms}Z")


def session(stack: Stack, ship: str | None = None) -> tuple[str, MqttSession]:
    ship_id, password = stack.ship(ship)
    s = stack.client(ship_id, password)
    s.subscribe(f"fleet/ships/{ship_id}/#")
    return ship_id, s


def publish(s: MqttSession, ship: str, payload: dict[str, Any], *, wait: bool = True) -> str:
    batch_id = uuid.uuid4().hex
    s.publish(f"fleet/ships/{ship}/readings", {**payload, "batch_id": batch_id})
    if wait:
        wait_ack(s, batch_id)
    return batch_id


def wait_ack(s: MqttSession, batch_id: str, status: str = "stored") -> dict[str, Any]:
    msg = s.wait_for(lambda m: m.topic.endswith("/ack")
                     and json.loads(m.payload).get("batch_id") == batch_id)
    body: dict[str, Any] = json.loads(msg.payload)
    assert body["status"] == status, body
    return body


def total(meter: str, readings: list[tuple[int, float]]) -> dict[str, Any]:
    return {"units": "kWh", "kind": "total", "meter": meter,
            "data": [{"datetime": format_datetime(t), "value": v} for t, v in readings]}


def stored(stack: Stack, ship: str, meter: str | None = None, every: str = "15m",
           days: int = 2) -> dict[int, float]:
    """Window sums of the stored parts: one meter (``main`` is the untagged series) or all."""
    where = f"\"ship\" = '{ship}'"
    if meter is not None:
        where += f" AND \"meter\" = '{'' if meter == 'main' else meter}'"
    end = format_datetime(T0 + days * 86400 * US)
    q = (f"SELECT sum(kwh) FROM energy WHERE {where} AND time >= '{DAY}T00:00:00Z' "
         f"AND time < '{end}' GROUP BY time({every}) fill(none)")
    out: dict[int, float] = {}
    for r in stack.influx_query(q):
        for series in r.get("series", []):
            out.update((int(t), float(v)) for t, v in series["values"])
    return out


def reference(messages: list[list[tuple[int, float]]], every_s: int = 900) -> dict[int, float]:
    return {w: kwh for w, kwh, _ in window_sums(parts_of("x", messages), every_s)}


EXAMPLES = RUNNING_TOTALS  # the contract's worked examples (tests/contract_examples.py)


def test_contract_running_total_examples_through_mqtt(stack: Stack) -> None:
    ship, s = session(stack)
    try:
        for n, (messages, expected) in enumerate(EXAMPLES):
            meter = f"reg{n}"
            for message in messages:  # the late reading after the others, in its own message
                publish(s, ship, total(meter, [(at(t), float(v)) for t, v in message]))
            want = {at(k): float(v) for k, v in expected.items()}
            assert eventually(lambda m=meter, w=want: stored(stack, ship, m) == w
                              or None, message=f"example {n}") is True
        # The energy topic names the meter.
        msg = s.wait_for(lambda m: m.topic.endswith("/energy")
                         and json.loads(m.payload).get("meter") == "reg1")
        assert json.loads(msg.payload)["windows"]
        # Resending the late reading changes nothing; another value at its time replaces it.
        publish(s, ship, total("reg1", [(at("00:15:00"), 1001.0)]))
        assert stored(stack, ship, "reg1") == {at("00:00:00"): 1.0, at("00:15:00"): 5.0}
        publish(s, ship, total("reg1", [(at("00:15:00"), 1002.0)]))
        assert stored(stack, ship, "reg1") == {at("00:00:00"): 2.0, at("00:15:00"): 4.0}
    finally:
        s.close()


def test_bad_kind_and_meter_are_refused_on_the_ack_topic(stack: Stack) -> None:
    ship, s = session(stack)
    try:
        b = publish(s, ship, {"units": "kW", "kind": "total",
                              "data": [{"datetime": f"{DAY}T00:00:00Z", "value": 1}]}, wait=False)
        assert wait_ack(s, b, "rejected")["reason"] == "bad_kind"
        b = publish(s, ship, {"units": "kWh", "meter": "no such/meter",
                              "data": [{"datetime": f"{DAY}T00:00:00Z", "value": 1}]}, wait=False)
        assert wait_ack(s, b, "rejected")["reason"] == "bad_meter"
        b = publish(s, ship, total("r", [(at("00:00:00"), -5.0), (at("00:15:00"), 3.0)]),
                    wait=False)
        assert wait_ack(s, b)["rejected"] == 1
        rejected = s.wait_for(lambda m: m.topic.endswith("/rejected")
                              and json.loads(m.payload).get("batch_id") == b)
        assert json.loads(rejected.payload)["readings"][0]["reason"] == "negative"
    finally:
        s.close()


def test_shuffled_register_stream_through_two_bridges_in_a_group(stack: Stack) -> None:
    group = f"g{uuid.uuid4().hex[:6]}"
    bridges = []
    for _ in range(2):
        client_id = f"meters-{uuid.uuid4().hex[:6]}"
        bridges.append((stack.start_bridge(client_id, FLEET_BRIDGE_SHARED_GROUP=group,
                                           FLEET_BRIDGE_METRICS_PORT=str(free_port())),
                        client_id))
    rnd = random.Random(9)
    readings: list[tuple[int, float]] = []
    value = 5000.0
    for i in range(120):
        if i in (40, 90):
            value = rnd.uniform(0, 50)  # reset
        elif i % 17 == 5:
            value -= rnd.uniform(0, 0.05 * value)  # a small dip
        else:
            value += rnd.uniform(0, 3)
        readings.append((T0 + i * 300 * US + rnd.randrange(0, 60) * US, round(value, 3)))
    shuffled = readings[:]
    rnd.shuffle(shuffled)
    messages = []
    while shuffled:
        k = rnd.randint(1, 12)
        messages.append(shuffled[:k])
        shuffled = shuffled[k:]
    ship, s = session(stack)
    try:
        ids = [publish(s, ship, total("reg", m), wait=False) for m in messages]
        for b in ids:
            wait_ack(s, b)
        want = reference([readings])
        # Every bridge that got a copy (the group's and the session's plain one) settles it
        # before acking; the stored parts must equal the rule's, whichever finished last.
        def same() -> bool:
            got = stored(stack, ship, "reg")
            return got.keys() == want.keys() and all(
                abs(got[k] - want[k]) <= 1e-9 * max(1.0, abs(want[k])) for k in want)
        eventually(same, timeout=30, message="stored windows differ from the rule's sums")
    finally:
        s.close()
        for svc, client_id in bridges:  # stop them and discard their sessions
            svc.stop(timeout=15)
            stack.services.remove(svc)
            stack.client("fleet-bridge", stack.bridge_password, client_id=client_id).close()


def test_a_ship_with_three_meters(stack: Stack) -> None:
    ship, s = session(stack)
    five = [{"datetime": format_datetime(T0 + i * 300 * US), "value": v}
            for i, v in enumerate([12.0, 6.0, 6.0, 3.0, 3.0, 3.0])]
    try:
        publish(s, ship, {"units": "kW", "data": five})  # main: interval kW every 5 minutes
        publish(s, ship, {"units": "kWh", "meter": "hotel", "interval": "PT1H",
                          "data": [{"datetime": f"{DAY}T00:00:00Z", "value": 8},
                                   {"datetime": f"{DAY}T01:00:00Z", "value": 4}]})
        regs = [(at("00:00:00"), 100.0), (at("00:45:00"), 103.0), (at("02:00:00"), 113.0)]
        publish(s, ship, total("shore", regs))
        main = {at("00:00:00"): 2.0, at("00:15:00"): 0.75}
        hotel = {T0 + k * 900 * US: 2.0 if k < 4 else 1.0 for k in range(8)}
        shore = reference([regs])
        assert stored(stack, ship, "main") == pytest.approx(main)
        assert stored(stack, ship, "hotel") == pytest.approx(hotel)
        assert stored(stack, ship, "shore") == pytest.approx(shore)
        for every, seconds in (("15m", 900), ("1h", 3600), ("1d", 86400)):
            want: dict[int, float] = {}
            for series in (main, hotel, shore):
                for t, v in series.items():
                    w = t - t % (seconds * US)
                    want[w] = want.get(w, 0.0) + v
            assert stored(stack, ship, None, every) == pytest.approx(want), every
        status, body = stack.http_get(f"/v1/ships/{ship}/meters")
        assert status == 200, body
        assert [(m["meter"], m["kind"]) for m in body["meters"]] == [
            ("hotel", "interval"), ("main", "interval"), ("shore", "total")]
        by = {m["meter"]: m["last_reading"] for m in body["meters"]}
        assert by["shore"] == {"time": f"{DAY}T02:00:00Z", "register_kwh": 113.0}
        assert by["main"] == {"time": f"{DAY}T00:25:00Z", "kwh": 0.25, "seconds": 300.0}
        assert by["hotel"]["time"] == f"{DAY}T01:45:00Z"
        assert stack.http_get("/v1/ships/never-seen-ship/meters")[0] == 404
        # The energy topic carries one message per meter, each naming it.
        for meter in ("main", "hotel", "shore"):
            s.wait_for(lambda m, mt=meter: m.topic.endswith("/energy")
                       and json.loads(m.payload).get("meter") == mt)
    finally:
        s.close()


def test_upgrade_keeps_old_data_as_main_and_counts_a_resend_once(stack: Stack) -> None:
    """A database filled by the code before meters (no meter tag), then the same payload resent
    through today's bridge: one value per window, in the one untagged series."""
    ship, s = session(stack)
    payload = {"units": "kWh", "data": [{"datetime": f"{DAY}T00:00:00Z", "value": 12},
                                        {"datetime": f"{DAY}T01:00:00Z", "value": 26}]}
    # What the code before meters wrote for that payload (measurement, tag ship, no meter).
    old = "\n".join(f"energy,ship={ship} kwh={v},seconds=900.0 {(T0 + k * 900 * US) * 1000}"
                    for k, v in enumerate([3.0] * 4 + [6.5] * 4))
    url = f"{stack.cfg.influxdb.url}/write?db={stack.cfg.influxdb.database}&precision=ns"
    with urllib.request.urlopen(urllib.request.Request(url, data=old.encode()), timeout=10):
        pass
    try:
        publish(s, ship, payload)
        counts: dict[int, float] = {}
        q = (f"SELECT count(kwh), sum(kwh) FROM energy WHERE \"ship\" = '{ship}' "
             f"AND time >= '{DAY}T00:00:00Z' AND time < '{DAY}T02:00:00Z' "
             "GROUP BY time(15m) fill(none)")
        sums: dict[int, float] = {}
        for r in stack.influx_query(q):
            for series in r.get("series", []):
                for t, c, v in series["values"]:
                    counts[int(t)], sums[int(t)] = c, v
        assert set(counts.values()) == {1} and len(counts) == 8
        assert list(sums.values()) == [3.0] * 4 + [6.5] * 4
        series = stack.influx_query(f"SHOW SERIES FROM energy WHERE \"ship\" = '{ship}'")
        assert [v[0] for v in series[0]["series"][0]["values"]] == [f"energy,ship={ship}"]
        assert stored(stack, ship, "main") == dict(zip(sorted(sums), sums.values(), strict=True))
    finally:
        s.close()


def test_one_agent_with_an_interval_and_a_register_meter(stack: Stack, tmp_path: Path) -> None:
    """``fleetctl ship run --meter main --meter shore:total``: each meter stored as its own."""
    ship, password = stack.ship()
    start = "2024-01-01T00:00:00Z"
    args = ("--source", "simulate", "--interval", "PT5M", "--speed", "3000", "--start", start,
            "--duration", "PT2H", "--meter", "main", "--meter", "shore:total")
    proc = agent(stack, ship, password, tmp_path / "ship.spool", *args).start()
    try:
        assert proc.proc is not None and proc.proc.wait(timeout=60) == 0, proc.tail()
    finally:
        proc.stop()
    t0 = parse_datetime(start)
    sim = simulated_meters(ship, meter_specs(["main", "shore:total"]), 300.0, {}.get,
                           start_us=t0, duration_s=7200, speed=3000, wall=0.0)
    measured = sim.poll(time.time())
    main = [(r.start_us, r.value) for r in measured if r.meter == "main"]
    shore = [(r.start_us, r.value) for r in measured if r.meter == "shore"]
    assert len(main) == len(shore) == 24
    assert main == simulated(ship, t0, t0 + 7200 * US)  # meter main: the ship's own profile
    want_main = {w.start_us: w.kwh for w in windows(normalize(ship, main, power=True,
                                                              interval_s=300))}
    assert stored_since(stack, ship, "main", t0) == pytest.approx(want_main)
    assert stored_since(stack, ship, "shore", t0) == pytest.approx(reference([shore]))


def stored_since(stack: Stack, ship: str, meter: str, t0: int) -> dict[int, float]:
    tag = "" if meter == "main" else meter
    q = (f"SELECT sum(kwh) FROM energy WHERE \"ship\" = '{ship}' AND \"meter\" = '{tag}' AND "
         f"time >= {t0}u AND time < {t0 + 86400 * US}u GROUP BY time(15m) fill(none)")
    out: dict[int, float] = {}
    for r in stack.influx_query(q):
        for series in r.get("series", []):
            out.update((int(t), float(v)) for t, v in series["values"])
    return out


def test_a_late_register_reading_is_read_at_once_through_the_query_cache(stack: Stack) -> None:
    """The recomputed span's windows go out on the energy topic before the ack, so a cached
    answer covering them is dropped: read-your-write holds for running totals too."""
    ship, s = session(stack)
    rng = {"start": f"{DAY}T00:00:00Z", "end": f"{DAY}T06:00:00Z"}

    def kwh() -> list[float]:
        status, body = stack.http_get(f"/v1/ships/{ship}/energy", rng)
        assert status == 200, body
        return [w["kwh"] for w in body["windows"]]

    try:
        publish(s, ship, total("reg", [(at("00:00:00"), 1000.0), (at("04:00:00"), 1016.0)]))
        assert kwh() == kwh() == [1.0] * 16  # the second answer comes from the cache
        publish(s, ship, total("reg", [(at("00:15:00"), 1008.0)]))  # late, in its own message
        assert kwh() == [8.0] + [8.0 / 15] * 15
        assert kwh() == [8.0] + [8.0 / 15] * 15
    finally:
        s.close()
