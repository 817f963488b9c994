"""The ship agent against a real broker, bridge and InfluxDB: nothing lost, nothing doubled.

Each agent is a real ``fleetctl ship run`` process. The simulator's readings are deterministic
(a function of ship and time), so what an agent measured over [start, start + duration) is known,
and the stored 15-minute sums are compared with those computed by fleet.normalize.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.timeutil import US, parse_datetime
from tests.conftest import Stack, eventually, start_stack, unique_ship
from tests.integration.agent_helpers import (
    agent,
    assert_same_windows,
    closed_port,
    expected_windows,
    readings_file,
    simulated,
    spool_state,
    stored_count,
    stored_windows,
)

pytestmark = pytest.mark.integration

START = "2024-01-01T00:00:00Z"
START_US = parse_datetime(START)


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack of its own with one bridge: these tests stop and kill its broker."""
    stack = start_stack(tmp_path_factory.mktemp("agent"))
    try:
        stack.start_bridge(client_id="agent-bridge")
        yield stack
    finally:
        stack.stop()


def _broker_outage(own: Stack, tmp_path: Path, kill: bool) -> None:
    ship, password = own.ship(unique_ship("out"))
    spool = tmp_path / "ship.spool"
    # 8 simulated hours at 3000x: 96 readings, one every 0.1 s, for about 10 s; the agent
    # retries its connection every second, so it measures on for several seconds after the
    # outage.
    proc = agent(own, ship, password, spool, "--source", "simulate", "--interval", "PT5M",
                 "--speed", "3000", "--start", START, "--duration", "PT8H",
                 FLEET_SHIP_RECONNECT_MAX_DELAY="1").start()
    try:
        eventually(lambda: stored_count(own, ship) > 0, timeout=20, message="nothing stored")
        if kill:
            own.broker.kill()  # SIGKILL: what arrived since the last snapshot is gone
        else:
            own.broker.stop()
        time.sleep(3)  # the agent keeps measuring into its spool
        assert proc.running()
        assert spool_state(spool)["depth"] > 0
        own.broker.start(timeout=20)
        assert proc.proc is not None
        assert proc.proc.wait(timeout=60) == 0, proc.tail()
    finally:
        proc.stop()
    expected = expected_windows(ship, simulated(ship, START_US, START_US + 8 * 3600 * US))
    assert stored_count(own, ship) == 96  # one part per 5-minute reading: each stored once
    assert_same_windows(stored_windows(own, ship), expected)
    assert spool_state(spool)["depth"] == 0


def test_broker_stopped_and_restarted_while_measuring(own: Stack, tmp_path: Path) -> None:
    _broker_outage(own, tmp_path, kill=False)


def test_broker_killed_and_restarted_while_measuring(own: Stack, tmp_path: Path) -> None:
    _broker_outage(own, tmp_path, kill=True)


def _spool_offline(own: Stack, ship: str, password: str, spool: Path, source: Path,
                   n: int, **env: str) -> None:
    """Run the agent with no broker reachable until the file is in its spool, then SIGKILL it."""
    offline = agent(own, ship, password, spool, "--source", str(source), name="offline",
                    FLEET_MQTT_PORT=str(closed_port()), **env).start()
    try:
        eventually(lambda: spool_state(spool)["depth"] + spool_state(spool)["dropped"] >= n,
                   timeout=20, message="the file never reached the spool")
        assert offline.running()
    finally:
        offline.kill()


def test_agent_killed_while_draining_a_backlog(own: Stack, tmp_path: Path) -> None:
    ship, password = own.ship(unique_ship("drain"))
    spool, source = tmp_path / "ship.spool", tmp_path / "day.jsonl"
    readings = readings_file(source, START_US, 288)  # 24 hours at 5 minutes
    _spool_offline(own, ship, password, spool, source, 288)
    assert spool_state(spool)["depth"] == 288

    # Drain slowly (24 readings a second, 12 per batch) and SIGKILL the agent half-way.
    slow = agent(own, ship, password, spool, "--source", str(source), name="slow",
                 FLEET_SHIP_DRAIN_RATE="24", FLEET_SHIP_BATCH_SIZE="12",
                 FLEET_SHIP_MAX_INFLIGHT="1").start()
    try:
        eventually(lambda: 0 < stored_count(own, ship) and spool_state(spool)["depth"] < 260,
                   timeout=30, message="the drain never started")
    finally:
        slow.kill()
    left = spool_state(spool)["depth"]
    assert 0 < left < 288

    # Restarted with the defaults: the file is not read again (the spool keeps its cursor), the
    # rest drains and the agent exits once everything is confirmed.
    rest = agent(own, ship, password, spool, "--source", str(source), name="rest").start()
    assert rest.proc is not None
    try:
        # A hang guard, not a speed check (how fast a backlog drains is make bench's figure).
        assert rest.proc.wait(timeout=90) == 0, rest.tail()
    finally:
        rest.stop()
    assert stored_count(own, ship) == 288
    assert_same_windows(stored_windows(own, ship), expected_windows(ship, readings))


def test_a_day_of_backlog_is_drained_and_confirmed(own: Stack, tmp_path: Path) -> None:
    ship, password = own.ship(unique_ship("catch"))
    spool, source = tmp_path / "ship.spool", tmp_path / "day.jsonl"
    readings = readings_file(source, START_US + 86400 * US, 288)
    _spool_offline(own, ship, password, spool, source, 288)
    online = agent(own, ship, password, spool, "--source", str(source), name="online").start()
    assert online.proc is not None
    try:
        # A hang guard only: the time a day's backlog takes is measured by make bench (backlog,
        # ship agent), not asserted here where a loaded machine would make it flaky.
        assert online.proc.wait(timeout=90) == 0, online.tail()
    finally:
        online.stop()
    assert stored_count(own, ship) == 288
    assert_same_windows(stored_windows(own, ship), expected_windows(ship, readings))


def test_spool_cap_drops_the_oldest_and_counts_them(own: Stack, tmp_path: Path) -> None:
    ship, password = own.ship(unique_ship("cap"))
    spool, source = tmp_path / "ship.spool", tmp_path / "many.jsonl"
    readings = readings_file(source, START_US + 2 * 86400 * US, 120)
    capped = agent(own, ship, password, spool, "--source", str(source), name="capped",
                   FLEET_MQTT_PORT=str(closed_port()), FLEET_SHIP_SPOOL_MAX_READINGS="50").start()
    try:
        eventually(lambda: spool_state(spool)["dropped"] == 70, timeout=20,
                   message="the oldest were not dropped")
        assert spool_state(spool)["depth"] == 50
        time.sleep(0.5)
        assert capped.running(), capped.tail()
        assert "spool full" in capped.log_path.read_text()
    finally:
        capped.stop()
    # Back online: the 50 newest are stored, the 70 dropped are not (and were counted).
    online = agent(own, ship, password, spool, "--source", str(source), name="capped-online",
                   FLEET_SHIP_SPOOL_MAX_READINGS="50").start()
    assert online.proc is not None
    try:
        assert online.proc.wait(timeout=60) == 0, online.tail()
    finally:
        online.stop()
    assert stored_count(own, ship) == 50
    assert_same_windows(stored_windows(own, ship), expected_windows(ship, readings[70:]))
    assert spool_state(spool)["dropped"] == 70
