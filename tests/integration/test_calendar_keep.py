"""Kept calendar answers (query_service/calendar.py) follow new data, through the real bridge,
broker, InfluxDB and query service.

The query service runs with a generation watch of 30 s here, so only the bridge's rollup notice
can drop a kept answer in time: a ship stores new data, the test waits until the coarse value in
InfluxDB holds the new sum (and the bridge's notice went out), and reads at once through the
service, which must answer the new sum although the same question was answered (and kept) just
before. (`fleetctl rollup rebuild` and direct writes, which send no notice, are in
tests/integration/test_history.py: seen within the watch's bound.)
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from fleet import topics
from tests.conftest import Stack, eventually
from tests.integration.test_history import History, _history, _stop, hourly_kw, publish

pytestmark = pytest.mark.integration

DAY = {"start": "2025-03-03T00:00:00Z", "end": "2025-03-06T00:00:00Z", "every": "1d",
       "tz": "Europe/Oslo"}
FLEET = {"start": "2025-03-01T00:00:00Z", "end": "2025-04-01T00:00:00Z", "every": "1mo",
         "tz": "Europe/Oslo"}


@pytest.fixture(scope="module")
def slow_watch(stack: Stack) -> Iterator[History]:
    h = _history(stack, FLEET_HTTP_CALENDAR_WATCH="30")
    yield h
    _stop(h)


def _daily(h: History, ship: str, oslo_day_utc: str) -> float | None:
    """The daily coarse value stored in InfluxDB for the Oslo day starting at that UTC instant."""
    rows = h.influx(f"SELECT kwh FROM \"fleet_raw_rollup\".\"energy_1d\" WHERE ship = '{ship}' "
                    f"AND time = '{oslo_day_utc}'")
    series = rows[0].get("series") or []
    return float(series[0]["values"][0][1]) if series else None


def test_a_kept_answer_changes_once_the_coarse_series_catch_up(slow_watch: History) -> None:
    h = slow_watch
    ship = f"keep-{uuid.uuid4().hex[:6]}"
    # 2025-03-04 in Oslo is [03-03T23:00Z, 03-04T23:00Z).
    publish(h.stack, ship, [hourly_kw("2025-03-04T00:00:00Z", 1, 1.0)])
    eventually(lambda: _daily(h, ship, "2025-03-03T23:00:00Z") == 1.0, timeout=30)
    ship_id, password = h.stack.ship(ship)
    watcher = h.stack.client(ship_id, password)  # a ship reads its own tree: the notices
    watcher.subscribe(topics.rollup(ship_id))
    try:
        fleet_before = None
        for k in range(2, 8):
            first = h.energy(ship, **DAY)["windows"]
            assert h.energy(ship, **DAY)["windows"] == first  # kept now
            status, fleet_before = h.get("/v1/fleet/energy", **FLEET)
            assert status == 200
            assert h.get("/v1/fleet/energy", **FLEET)[1] == fleet_before
            total = sum(range(1, k + 1))
            watcher.messages.clear()
            # One more hour of the same Oslo day, of k kWh.
            publish(h.stack, ship, [hourly_kw(f"2025-03-04T{k:02d}:00:00Z", 1, float(k))])
            eventually(lambda t=total: _daily(h, ship, "2025-03-03T23:00:00Z") == t, timeout=30,
                       interval=0.02)
            watcher.wait_for(lambda m: json.loads(m.payload).get("values", 0) > 0, timeout=10)
            windows = h.energy(ship, **DAY)["windows"]
            day = next(w for w in windows if w["time"].startswith("2025-03-04"))
            assert day["kwh"] == total, (k, windows)
            status, fleet = h.get("/v1/fleet/energy", **FLEET)
            assert status == 200
            assert fleet["windows"] != fleet_before["windows"]
            assert fleet["windows"][0]["kwh"] == pytest.approx(
                fleet_before["windows"][0]["kwh"] + k)
    finally:
        watcher.close()
