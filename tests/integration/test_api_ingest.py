"""POST /data: a ship's readings over HTTP, published as the ship through the broker, stored by
the bridge like any MQTT payload."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import MqttSession, Stack, eventually, unique_ship
from tests.integration.api_helpers import basic, call, get

pytestmark = pytest.mark.integration

DAY = "2032-05-05"
RANGE = {"start": f"{DAY}T00:00:00Z", "end": f"{DAY}T03:00:00Z"}
EXAMPLE_1 = {"units": "kWh", "data": [{"datetime": f"{DAY}T00:00:00Z", "value": 12},
                                      {"datetime": f"{DAY}T01:00:00Z", "value": 26},
                                      {"datetime": f"{DAY}T02:00:00Z", "value": 18}]}


def post(stack: Stack, payload: Any, headers: dict[str, str]) -> Any:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return call(stack, "POST", "/data", body=body, token=None,
                headers={"Content-Type": "application/json", **headers})


@pytest.fixture
def watcher(stack: Stack) -> Any:
    """An operator watching every ship's readings topic."""
    name = unique_ship("op")
    password = stack.accounts.add_operator(name)
    stack.reload_accounts((name, password))
    session = stack.client(name, password)
    session.subscribe("fleet/ships/+/readings")
    yield session
    session.close()


def _published(session: MqttSession, ship: str) -> list[Any]:
    return [m for m in session.messages if m.topic == f"fleet/ships/{ship}/readings"]


def _after_marker(stack: Stack, session: MqttSession, ship: str, password: str) -> list[Any]:
    """What ``session`` saw published as ``ship`` before a good marker POST, once the marker
    itself arrived: proof the watcher works, and a barrier (the broker forwards a ship's
    messages in order, and each earlier one was acknowledged before its answer came back)."""
    marker = {**EXAMPLE_1, "batch_id": f"marker-{ship}"}
    assert post(stack, marker, basic(ship, password)).status == 202
    session.wait_for(lambda m: m.topic == f"fleet/ships/{ship}/readings"
                     and json.loads(m.payload).get("batch_id") == marker["batch_id"], timeout=10)
    seen = _published(session, ship)
    assert json.loads(seen[-1].payload)["batch_id"] == marker["batch_id"]
    return seen[:-1]


def test_post_is_published_as_the_ship_and_stored(stack: Stack, watcher: MqttSession) -> None:
    ship, password = stack.ship()
    payload = {**EXAMPLE_1, "spaceship_id": ship, "batch_id": "http-1"}
    reply = post(stack, payload, basic(ship, password))
    assert reply.status == 202, reply.text
    assert reply.json == {"ship": ship, "topic": f"fleet/ships/{ship}/readings",
                          "status": "published", "accepted": 3, "rejected": [],
                          "batch_id": "http-1"}
    # Published before the answer (the broker's PUBACK came first), body unchanged.
    message = watcher.wait_for(lambda m: m.topic == f"fleet/ships/{ship}/readings", timeout=5)
    assert json.loads(message.payload) == payload

    def stored() -> Any:
        status, body = stack.http_get(f"/v1/ships/{ship}/energy", {**RANGE, "every": "1h"})
        return body["windows"] if status == 200 and len(body["windows"]) == 3 else None

    windows = eventually(stored, 20, message="the bridge never stored the HTTP payload")
    assert [w["kwh"] for w in windows] == [12.0, 26.0, 18.0]


def test_partly_bad_payload_is_published_with_the_refusals(stack: Stack,
                                                           watcher: MqttSession) -> None:
    ship, password = stack.ship()
    payload = {"units": "kW", "data": [{"datetime": f"{DAY}T00:00:00Z", "value": 4},
                                       {"datetime": f"{DAY}T00:15:00Z", "value": -1}]}
    reply = post(stack, payload, basic(ship, password))
    assert reply.status == 202, reply.text
    assert reply.json["accepted"] == 1
    assert reply.json["rejected"] == [{"index": 1, "reason": "negative",
                                       "detail": "value -1 is negative"}]
    # Published as sent (the bridge refuses the bad reading itself); only the good one stored:
    # 4 kW over its 15 minutes (the spacing of the readings) is 1 kWh.
    message = watcher.wait_for(lambda m: m.topic == f"fleet/ships/{ship}/readings", timeout=5)
    assert json.loads(message.payload) == payload

    def stored() -> Any:
        status, body = stack.http_get(f"/v1/ships/{ship}/energy", {**RANGE, "every": "15m"})
        return body["windows"] if status == 200 and body["windows"] else None

    windows = eventually(stored, 20, message="the bridge never stored the good reading")
    assert [(w["time"], w["kwh"]) for w in windows] == [(f"{DAY}T00:00:00Z", 1.0)]


def test_other_ships_id_is_refused_and_nothing_published(stack: Stack,
                                                         watcher: MqttSession) -> None:
    ship, password = stack.ship()
    victim, _ = stack.ship()
    reply = post(stack, {**EXAMPLE_1, "spaceship_id": victim}, basic(ship, password))
    assert reply.status == 400, reply.text
    assert reply.json["reasons"][0]["reason"] == "ship_mismatch"
    assert victim in reply.json["error"]
    # Its own id with the other ship's password: the broker refuses the credentials.
    _, victim_password = stack.ship(victim)
    assert post(stack, EXAMPLE_1, basic(ship, victim_password)).status == 401
    assert _after_marker(stack, watcher, ship, password) == []
    assert _after_marker(stack, watcher, victim, victim_password) == []


def test_refusals_list_every_reason_and_publish_nothing(stack: Stack,
                                                       watcher: MqttSession) -> None:
    ship, password = stack.ship()
    auth = basic(ship, password)
    whole = [
        (b"not json", "not_json"),
        ({"data": []}, "missing_units"),
        ({"units": "furlongs", "data": [{"datetime": f"{DAY}T00:00:00Z", "value": 1}]},
         "unknown_units"),
        ({"units": "kW", "data": []}, "empty_data"),
    ]
    for payload, reason in whole:
        reply = post(stack, payload, auth)
        assert reply.status == 400, reply.text
        assert [r["reason"] for r in reply.json["reasons"]] == [reason]
        assert reason in reply.json["error"]
    every_reading = {"units": "kW", "data": [
        {"datetime": "yesterday", "value": 1}, {"datetime": f"{DAY}T00:00:00Z"},
        {"datetime": f"{DAY}T00:05:00Z", "value": "NaN"},
        {"datetime": f"{DAY}T00:10:00Z", "value": -2}]}
    reply = post(stack, every_reading, auth)
    assert reply.status == 400, reply.text
    assert [(r["index"], r["reason"]) for r in reply.json["reasons"]] == [
        (0, "bad_datetime"), (1, "missing_value"), (2, "bad_value"), (3, "negative")]
    assert _after_marker(stack, watcher, ship, password) == []


def test_credentials_are_checked_by_the_broker(stack: Stack) -> None:
    ship, password = stack.ship()
    for headers in ({}, basic(ship, "wrong"), basic("no-such-ship", password),
                    {"Authorization": "Basic !!!"}, basic("bad id", password),
                    {"Authorization": f"Bearer {stack.token}"}):
        reply = post(stack, EXAMPLE_1, headers)
        assert reply.status == 401, (headers, reply.text)
        assert reply.headers["WWW-Authenticate"].startswith("Basic")
        assert "reasons" not in reply.json  # nothing about the payload before authentication
    assert post(stack, b"not json", basic(ship, "wrong")).status == 401


def test_non_ship_account_is_refused_by_the_acl(stack: Stack) -> None:
    name = unique_ship("op")
    password = stack.accounts.add_operator(name)
    stack.reload_accounts((name, password))
    reply = post(stack, EXAMPLE_1, basic(name, password))
    assert reply.status == 403, reply.text
    assert "not authorized" in reply.json["error"]


def test_too_large_is_413(stack: Stack) -> None:
    ship, password = stack.ship()
    body = b'{"units": "kW", "data": [' + b" " * stack.cfg.ingest.max_payload_bytes + b"]}"
    reply = post(stack, body, basic(ship, password))
    assert reply.status == 413


def test_get_data_still_reads(stack: Stack) -> None:
    assert get(stack, "/data", {"spaceship_id": "nobody", **RANGE}).status == 404
