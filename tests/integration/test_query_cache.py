"""The query service's cache (query_service/cache.py) never answers stale, through the real
bridge, broker and InfluxDB of the session's stack.

- Read-your-write: a ship publishes, waits for its ``ack``, and reads at once; the answer has the
  new value, every time, although the same range was read (and cached, rendered and kept) just
  before, through ``/v1/ships/{id}/energy`` and the original ``/data`` alike.
- The link to the broker cut (broker frozen): data written meanwhile (straight into InfluxDB,
  so no energy message can announce it) is in the next answer: the cache was bypassed.
"""

from __future__ import annotations

import json
import os
import signal
import urllib.request
from typing import Any

import pytest

from fleet.schema import Part, line
from fleet.timeutil import parse_datetime
from tests.conftest import Stack, eventually

pytestmark = pytest.mark.integration

DAY = "2018-09-10"
RANGE = {"start": f"{DAY}T00:00:00Z", "end": f"{DAY}T23:59:59Z", "every": "15m"}


def _reading(value: float, batch: str, hour: int = 0) -> dict[str, Any]:
    return {"units": "kWh", "interval": "PT15M", "batch_id": batch,
            "data": [{"datetime": f"{DAY}T{hour:02d}:00:00Z", "value": value}]}


def _kwh(stack: Stack, ship: str, hour: int = 0) -> float | None:
    status, body = stack.http_get(f"/v1/ships/{ship}/energy", RANGE)
    assert status == 200, body
    want = f"{DAY}T{hour:02d}:00:00Z"
    return next((w["kwh"] for w in body["windows"] if w["time"] == want), None)


def _data_kwh(stack: Stack, ship: str) -> float | None:
    """The same window through the original API (its own rendered answers are kept too)."""
    status, body = stack.http_get("/data", {"spaceship_id": ship, "start": RANGE["start"],
                                            "end": RANGE["end"]})
    assert status == 200, body
    want = f"{DAY}T00:00:00Z"
    return next((w["value"] for w in body["data"] if w["datetime"] == want), None)


def test_read_your_write_right_after_the_ack(stack: Stack) -> None:
    ship, password = stack.ship()
    session = stack.client(ship, password)
    try:
        session.subscribe(f"fleet/ships/{ship}/ack")
        for k in range(25):
            value = 10.0 + k
            session.publish(f"fleet/ships/{ship}/readings", _reading(value, f"b{k}"))
            session.wait_for(lambda m, b=f"b{k}": json.loads(m.payload).get("batch_id") == b)
            # At once after the ack, twice: the first read may fill the cache, the second is
            # served from it; both must carry the value just stored.
            assert _kwh(stack, ship) == value
            assert _kwh(stack, ship) == value
            assert _data_kwh(stack, ship) == value
            assert _data_kwh(stack, ship) == value
    finally:
        session.close()


def test_no_stale_answer_with_the_broker_link_cut(stack: Stack) -> None:
    ship, password = stack.ship()
    session = stack.client(ship, password)
    try:
        session.subscribe(f"fleet/ships/{ship}/ack")
        session.publish(f"fleet/ships/{ship}/readings", _reading(5.0, "first", hour=3))
        session.wait_for(lambda m: json.loads(m.payload).get("batch_id") == "first")
    finally:
        session.close()
    assert _kwh(stack, ship, 3) == 5.0
    assert _kwh(stack, ship, 3) == 5.0  # cached now
    pid = stack.broker.pid
    assert pid is not None and not stack.containerized
    os.kill(pid, signal.SIGSTOP)  # the link stays open but nothing comes through it
    try:
        cfg = stack.cfg.influxdb
        body = line(Part(ship, parse_datetime(f"{DAY}T03:00:00Z"), 7.5, 900.0)).encode()
        req = urllib.request.Request(
            f"{cfg.url}/write?db={cfg.database}&rp={cfg.retention_policy}&precision=ns",
            data=body, method="POST")
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 204
        assert _kwh(stack, ship, 3) == 7.5
        assert _kwh(stack, ship, 3) == 7.5
    finally:
        os.kill(pid, signal.SIGCONT)
    # The link back: the cache works again and still answers right.
    eventually(lambda: _kwh(stack, ship, 3) == 7.5, timeout=20)
