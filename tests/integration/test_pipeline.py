"""End to end: a ship publishes with its own credentials, the bridge stores, HTTP reads back."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tests.conftest import MqttSession, Stack, eventually

pytestmark = pytest.mark.integration

DAY = {"start": "2018-08-24T00:00:00Z", "end": "2018-08-25T00:00:00Z"}


def readings(start_hour: int, minutes: int, values: list[float], day: str = "2018-08-24",
             offset_s: int = 0) -> list[dict[str, Any]]:
    out = []
    for i, v in enumerate(values):
        total = start_hour * 3600 + i * minutes * 60 + offset_s
        hh, rem = divmod(total, 3600)
        mm, ss = divmod(rem, 60)
        out.append({"datetime": f"{day}T{hh:02d}:{mm:02d}:{ss:02d}Z", "value": v})
    return out


def send(stack: Stack, payload: dict[str, Any] | bytes, ship: str | None = None,
         expect: str = "stored") -> tuple[str, MqttSession, dict[str, Any]]:
    """Publish as a (new) ship and wait for the bridge's answer on its ack topic."""
    ship_id, password = stack.ship(ship)
    session = stack.client(ship_id, password)
    session.subscribe(f"fleet/ships/{ship_id}/#")
    batch_id = uuid.uuid4().hex
    if isinstance(payload, dict):
        payload = json.dumps({**payload, "batch_id": batch_id}).encode()
    session.publish(f"fleet/ships/{ship_id}/readings", payload)
    ack = session.wait_for(lambda m: m.topic.endswith("/ack")
                           and json.loads(m.payload).get("batch_id") == batch_id)
    body = json.loads(ack.payload)
    assert body["status"] == expect, body
    return ship_id, session, body


def energy(stack: Stack, ship: str, **params: str) -> list[dict[str, Any]]:
    status, body = stack.http_get(f"/v1/ships/{ship}/energy", {**DAY, **params})
    assert status == 200, body
    windows: list[dict[str, Any]] = body["windows"]
    return windows


def coarse(stack: Stack, ship: str, count: int, every: str = "1h") -> list[dict[str, Any]]:
    """The ship's ``every`` windows once there are ``count`` of them. Hours and longer are read
    from the coarse series, which follow the parts' PUBACK asynchronously (contract section 6:
    exact once the pipeline goes quiet), so an answer read at once may not have them yet."""
    def complete() -> list[dict[str, Any]] | None:
        windows = energy(stack, ship, every=every)
        return windows if len(windows) == count else None

    found: list[dict[str, Any]] = eventually(
        complete, 10, message=f"{count} windows of {every} never appeared")
    return found


def data(stack: Stack, ship: str) -> dict[str, float]:
    status, body = stack.http_get("/data", {"spaceship_id": ship, **DAY})
    assert status == 200, body
    return {d["datetime"][11:16]: d["value"] for d in body["data"]}


def test_worked_example_kwh_hourly(stack: Stack) -> None:
    ship, _, ack = send(stack, {"units": "kWh", "data": readings(0, 60, [12, 26, 18])})
    assert ack == {"batch_id": ack["batch_id"], "status": "stored", "readings": 3, "rejected": 0}
    expected = {f"{h:02d}:{m:02d}": v for h, v in ((0, 3.0), (1, 6.5), (2, 4.5))
                for m in (0, 15, 30, 45)}
    assert data(stack, ship) == pytest.approx(expected)
    windows = energy(stack, ship)
    assert [w["coverage"] for w in windows] == pytest.approx([1.0] * 12)
    hourly = coarse(stack, ship, 3)
    assert [w["time"][11:16] for w in hourly] == ["00:00", "01:00", "02:00"]
    assert [w["kwh"] for w in hourly] == pytest.approx([12.0, 26.0, 18.0])


def test_worked_example_kw_every_5_minutes(stack: Stack) -> None:
    ship, _, _ = send(stack, {"units": "kW", "data": readings(0, 5, [22, 24, 23, 18, 22, 23, 8])})
    windows = energy(stack, ship)
    assert [w["time"][11:16] for w in windows] == ["00:00", "00:15", "00:30"]
    assert [w["kwh"] for w in windows] == pytest.approx([5.75, 5.25, 8 / 12])
    assert [w["coverage"] for w in windows] == pytest.approx([1.0, 1.0, 1 / 3])


def test_worked_example_kwh_every_15_minutes_original_timestamps(stack: Stack) -> None:
    payload = {"spaceship_id": None, "units": "kWh", "data": [
        {"datetime": f"2018-08-24T00-{m:02d}-00Z", "value": v}
        for m, v in ((0, 2), (15, 5), (30, 2), (45, 6))]}
    ship_id, password = stack.ship()
    payload["spaceship_id"] = ship_id
    ship, _, _ = send(stack, payload, ship=ship_id)
    assert data(stack, ship) == pytest.approx({"00:00": 2, "00:15": 5, "00:30": 2, "00:45": 6})
    assert password


def test_worked_examples_interval_and_default(stack: Stack) -> None:
    ship, _, _ = send(stack, {"units": "kW", "interval": "PT1H",
                              "data": [{"datetime": "2018-08-24T04:00:00Z", "value": 2}]})
    assert data(stack, ship) == pytest.approx({"04:00": .5, "04:15": .5, "04:30": .5, "04:45": .5})
    lone, _, _ = send(stack, {"units": "kW",
                              "data": [{"datetime": "2018-08-24T04:00:00Z", "value": 2}]})
    assert data(stack, lone) == pytest.approx({"04:00": 0.5})


def test_worked_example_unaligned_start(stack: Stack) -> None:
    ship, _, _ = send(stack, {"units": "kW", "data": readings(23, 5, [2, 1, 6], offset_s=1)})
    windows = energy(stack, ship)
    assert [w["time"][11:16] for w in windows] == ["23:00", "23:15"]
    assert windows[0]["kwh"] == pytest.approx(0.25 + 6 * 299 / 3600)
    assert windows[0]["coverage"] == pytest.approx(899 / 900)
    assert windows[1]["kwh"] == pytest.approx(6 / 3600)
    assert windows[1]["coverage"] == pytest.approx(1 / 900)


def test_label_end_and_fill(stack: Stack) -> None:
    ship, _, _ = send(stack, {"units": "kWh", "data": readings(4, 15, [1, 2])})
    ends = energy(stack, ship, label="end")
    assert [(w["time"][11:16], w["kwh"]) for w in ends] == [("04:15", 1.0), ("04:30", 2.0)]
    status, body = stack.http_get(f"/v1/ships/{ship}/energy", {
        "start": "2018-08-24T04:00:00Z", "end": "2018-08-24T05:00:00Z", "fill": "zero"})
    assert status == 200
    assert [w["kwh"] for w in body["windows"]] == [1.0, 2.0, 0, 0]


def test_resent_payload_is_counted_once(stack: Stack) -> None:
    ship_id, _ = stack.ship()
    payload = {"units": "kWh", "data": readings(6, 60, [4, 8])}
    for _ in range(3):
        send(stack, payload, ship=ship_id)
    hourly = coarse(stack, ship_id, 2)
    assert [w["kwh"] for w in hourly] == pytest.approx([4.0, 8.0])
    points = stack.influx_query(
        f"SELECT count(kwh) FROM {stack.cfg.influxdb.retention_policy}.energy "
        f"WHERE ship = '{ship_id}'")
    assert points[0]["series"][0]["values"][0][1] == 8  # 2 readings x 4 parts, not 24


@pytest.mark.parametrize(("payload", "reason"), [
    (b"not json at all", "not_json"),
    (b"[1, 2]", "not_object"),
    ({"data": [{"datetime": "2018-08-24T00:00:00Z", "value": 1}]}, "missing_units"),
    ({"units": "kW"}, "missing_data"),
    ({"units": "furlongs", "data": [{"datetime": "2018-08-24T00:00:00Z", "value": 1}]},
     "unknown_units"),
    ({"units": "kW", "data": []}, "empty_data"),
    ({"spaceship_id": "someone-else", "units": "kW",
      "data": [{"datetime": "2018-08-24T00:00:00Z", "value": 1}]}, "ship_mismatch"),
    ({"units": "kW", "data": [{"datetime": "2018-08-24T00:00:00Z", "value": 1}] * 10001},
     "too_many_readings"),
])
def test_whole_payload_refused(stack: Stack, payload: dict[str, Any] | bytes,
                               reason: str) -> None:
    ship_id, password = stack.ship()
    session = stack.client(ship_id, password)
    session.subscribe(f"fleet/ships/{ship_id}/rejected")
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    session.publish(f"fleet/ships/{ship_id}/readings", body)
    msg = session.wait_for(lambda m: True)
    refusal = json.loads(msg.payload)
    assert refusal["status"] == "rejected"
    assert refusal["reason"] == reason
    status, answer = stack.http_get(f"/v1/ships/{ship_id}/energy", DAY)
    assert status == 404, answer  # nothing was ever stored for this ship
    session.close()


@pytest.mark.parametrize(("bad", "reason"), [
    ({"value": 5}, "bad_datetime"),
    ({"datetime": "yesterday-ish", "value": 5}, "bad_datetime"),
    ({"datetime": "2018-08-24T05:00:00Z"}, "missing_value"),
    ({"datetime": "2018-08-24T05:00:00Z", "value": "five"}, "bad_value"),
    ({"datetime": "2018-08-24T05:00:00Z", "value": -1}, "negative"),
])
def test_bad_reading_refused_good_ones_kept(stack: Stack, bad: dict[str, Any],
                                            reason: str) -> None:
    good = readings(1, 15, [1, 2])
    ship, session, ack = send(stack, {"units": "kWh", "data": [*good, bad]})
    assert ack["readings"] == 2
    assert ack["rejected"] == 1
    rejected = json.loads(session.wait_for(lambda m: m.topic.endswith("/rejected")).payload)
    assert [r["reason"] for r in rejected["readings"]] == [reason]
    assert rejected["readings"][0]["index"] == 2
    assert data(stack, ship) == {"01:00": 1.0, "01:15": 2.0}
    session.close()


def test_non_finite_and_duplicates_refused(stack: Stack) -> None:
    raw = (b'{"units": "kWh", "batch_id": "nf-1", "data": ['
           b'{"datetime": "2018-08-24T07:00:00Z", "value": NaN},'
           b'{"datetime": "2018-08-24T07:15:00Z", "value": Infinity},'
           b'{"datetime": "2018-08-24T07:30:00Z", "value": 1},'
           b'{"datetime": "2018-08-24T07:30:00Z", "value": 2},'
           b'{"datetime": "2018-08-24T07:45:00Z", "value": 3}]}')
    ship_id, password = stack.ship()
    session = stack.client(ship_id, password)
    session.subscribe(f"fleet/ships/{ship_id}/#")
    session.publish(f"fleet/ships/{ship_id}/readings", raw)
    ack = json.loads(session.wait_for(lambda m: m.topic.endswith("/ack")).payload)
    assert (ack["readings"], ack["rejected"]) == (1, 4)
    rejected = json.loads(session.wait_for(lambda m: m.topic.endswith("/rejected")).payload)
    assert sorted(r["reason"] for r in rejected["readings"]) == [
        "duplicate_datetime", "duplicate_datetime", "not_finite", "not_finite"]
    assert data(stack, ship_id) == {"07:45": 3.0}
    session.close()


def test_energy_topic_carries_stored_windows(stack: Stack) -> None:
    _, session, _ = send(stack, {"units": "kWh", "data": readings(9, 15, [1.5])})
    msg = session.wait_for(lambda m: m.topic.endswith("/energy"))
    assert json.loads(msg.payload)["windows"] == [
        {"time": "2018-08-24T09:00:00Z", "kwh": 1.5, "coverage": 1.0}]
    session.close()


def test_ship_cannot_write_as_another(stack: Stack) -> None:
    victim, _ = stack.ship()
    intruder, password = stack.ship()
    session = stack.client(intruder, password)
    reason = session.publish(f"fleet/ships/{victim}/readings",
                             {"units": "kWh", "data": readings(0, 15, [99])})
    assert reason.value == 135  # not authorized (MQTT 5)
    # The intruder's own data flows, so the bridge is up: the victim's series stays unknown.
    send(stack, {"units": "kWh", "data": readings(0, 15, [1])}, ship=intruder)
    status, _ = stack.http_get(f"/v1/ships/{victim}/energy", DAY)
    assert status == 404
    session.close()


def test_refused_connections(stack: Stack) -> None:
    ship_id, password = stack.ship()
    # Positive control: the same account with its own password is let in and may publish.
    right = stack.client(ship_id, password)
    assert not right.connack.is_failure
    assert not right.publish(f"fleet/ships/{ship_id}/readings",
                             {"units": "kWh", "data": readings(0, 15, [5])}).is_failure
    right.close()
    anonymous = stack.client(None, None)
    assert anonymous.connack.is_failure
    wrong = stack.client(ship_id, password + "x")
    assert wrong.connack.is_failure
    for s in (anonymous, wrong):
        s.close()
    name = f"op-{uuid.uuid4().hex[:6]}"
    operator_pw = stack.accounts.add_operator(name)
    stack.reload_accounts((name, operator_pw))
    operator = stack.client(name, operator_pw)
    reason = operator.publish(f"fleet/ships/{ship_id}/readings",
                              {"units": "kWh", "data": readings(0, 15, [5])})
    assert reason.value == 135
    operator.close()


def test_bridge_metrics_count_rejections(stack: Stack) -> None:
    import urllib.request

    url = f"http://127.0.0.1:{stack.cfg.bridge.metrics_port}/metrics"

    def counts() -> dict[str, float]:
        with urllib.request.urlopen(url, timeout=5) as resp:
            text = resp.read().decode()
        out = {}
        for name in ('fleet_bridge_rejected_total{reason="negative"}',
                     'fleet_bridge_rejected_total{reason="not_finite"}',
                     'fleet_bridge_readings_total{outcome="accepted"}'):
            out[name] = next((float(row.split()[-1]) for row in text.splitlines()
                              if row.startswith(name + " ")), 0.0)
        return out

    before = counts()
    _, session, _ = send(stack, {"units": "kWh", "data": [
        *readings(2, 15, [1]), {"datetime": "2018-08-24T03:00:00Z", "value": -4},
        {"datetime": "2018-08-24T03:15:00Z", "value": -5}]})
    session.close()

    def delta() -> dict[str, float]:
        return {k: v - before[k] for k, v in counts().items()}

    # This message's two negative readings and one good one, counted now (not left by others).
    want = {'fleet_bridge_rejected_total{reason="negative"}': 2.0,
            'fleet_bridge_rejected_total{reason="not_finite"}': 0.0,
            'fleet_bridge_readings_total{outcome="accepted"}': 1.0}
    eventually(lambda: delta() == want, message=f"metric deltas differ from {want}")


def test_unknown_parameter_is_a_400_naming_it(stack: Stack) -> None:
    ship, _, _ = send(stack, {"units": "kWh", "data": readings(4, 15, [1])})
    status, body = stack.http_get(f"/v1/ships/{ship}/energy", {**DAY, "evry": "1h"})
    assert status == 400
    assert "'evry'" in body["error"]
    status, body = stack.http_get(f"/v1/ships/{ship}/energy", {**DAY, "label": ""})
    assert status == 400
    assert "label" in body["error"]


def test_all_readings_refused_is_acknowledged_as_rejected(stack: Stack) -> None:
    _, session, ack = send(stack, {"units": "kWh", "data": [
        {"datetime": "2018-08-24T05:00:00Z", "value": -1}, {"value": 3}]}, expect="rejected")
    assert (ack["reason"], ack["readings"], ack["rejected"]) == ("bad_readings", 0, 2)
    session.close()
