"""InfluxDB frozen and killed, Mosquitto restarted, with ships publishing throughout."""

from __future__ import annotations

import signal
import time

import pytest

from tests.conftest import eventually
from tests.faults.conftest import Rig, rss_kib, run_in_thread, stream

pytestmark = [pytest.mark.integration, pytest.mark.faults]

INFLIGHT = 1000  # BRIDGE_ENV's FLEET_BRIDGE_MAX_INFLIGHT


@pytest.mark.timeout(150)
def test_influxdb_frozen_for_20_seconds(faults: Rig) -> None:
    """The bridge stops taking messages at its in-flight bound, its memory stays flat, and it
    catches up once the database answers again."""
    accounts = faults.ships(20, "freeze")
    ships = [s for s, _ in accounts]
    messages = stream(ships, 400)  # 8,000 messages at 300/s: about 27 s of publishing
    bridge = faults.bridge()
    assert bridge.pid is not None
    influx = faults.stack.influx
    pub = faults.publisher(accounts)
    thread, box = run_in_thread(pub, messages, rate=300, timeout=90)
    time.sleep(3)
    before_rss = rss_kib(bridge.pid)
    samples: list[tuple[float, float, int, float]] = []  # (t, readings taken, rss, inflight)
    influx.signal(signal.SIGSTOP)
    frozen = time.monotonic()
    try:
        while (t := time.monotonic() - frozen) < 20:
            samples.append((t,
                            faults.metric(bridge, "fleet_bridge_readings_total", outcome="accepted"),
                            rss_kib(bridge.pid),
                            faults.metric(bridge, "fleet_bridge_inflight_messages")))
            time.sleep(0.5)
    finally:
        influx.signal(signal.SIGCONT)
    thread.join(90)
    pub.close()
    (result,) = box
    assert result.total_acked == 8000
    assert max(max(t) for t in result.sent_at) > frozen + 22, "ships published throughout"

    saturated = [s for s in samples if s[0] >= 6]
    # Stops taking messages: no reading accepted between 6 s into the freeze and its end,
    # while the ships kept publishing.
    assert saturated[0][1] == saturated[-1][1], [s[1] for s in samples]
    assert saturated[0][1] > 0, "readings were taken before the freeze"
    # ...because the in-flight bound was reached (and not passed): the broker stopped sending.
    assert max(s[3] for s in saturated) == INFLIGHT, [s[3] for s in samples]
    # Memory flat: within 20% from the moment the bound was reached to the end of the freeze.
    peak = max(s[2] for s in saturated)
    assert peak <= 1.2 * saturated[0][2], (before_rss, [s[2] for s in samples])
    assert bridge.running()
    faults.check_stored(ships, messages, result, timeout=60)
    faults.assert_no_reports(ships)


@pytest.mark.timeout(120)
def test_influxdb_killed_and_restarted(faults: Rig) -> None:
    accounts = faults.ships(20, "influxkill")
    ships = [s for s, _ in accounts]
    messages = stream(ships, 150)
    bridge = faults.bridge()
    pid = bridge.pid
    influx = faults.stack.influx
    pub = faults.publisher(accounts)
    thread, box = run_in_thread(pub, messages, rate=300, timeout=60)
    time.sleep(2)
    influx.kill()
    killed = time.perf_counter()
    time.sleep(4)
    influx.start(timeout=60)
    thread.join(90)
    pub.close()
    (result,) = box
    assert result.total_acked == 3000
    assert max(max(t) for t in result.sent_at) > killed + 4, "ships published throughout"
    faults.check_stored(ships, messages, result, timeout=60)
    assert bridge.running() and bridge.pid == pid, "the bridge rode out the outage"
    assert faults.metric(bridge, "fleet_bridge_write_errors_total", kind="unavailable") > 0
    faults.assert_no_reports(ships)


@pytest.mark.timeout(120)
def test_mosquitto_restarted_with_messages_queued_for_the_bridge(faults: Rig) -> None:
    """The bridge is frozen so that messages queue for its session (and some sit in flight),
    then the broker restarts cleanly; publishers reconnect and resend what was not PUBACKed."""
    accounts = faults.ships(20, "brokerrestart")
    ships = [s for s, _ in accounts]
    messages = stream(ships, 150)
    bridge = faults.bridge()
    pid = bridge.pid
    broker = faults.stack.broker
    pub = faults.publisher(accounts)
    thread, box = run_in_thread(pub, messages, rate=300, timeout=60)
    time.sleep(1.5)
    bridge.signal(signal.SIGSTOP)
    try:
        time.sleep(2)  # about 600 messages queue for (or sit in flight to) the frozen bridge
        stored_before = len(faults.stored(ships))  # one window per message
        accepted_before = pub.acked  # PUBACKed by the broker
        broker.signal(signal.SIGTERM)  # clean shutdown: sessions and queues saved to disk
        assert broker.proc is not None
        broker.proc.wait(timeout=20)
        restarted = time.perf_counter()
        broker.start(timeout=20)
    finally:
        bridge.signal(signal.SIGCONT)
    thread.join(90)
    pub.close()
    (result,) = box
    assert result.total_acked == 3000
    assert max(max(t) for t in result.sent_at) > restarted + 1, "ships published throughout"
    # At the restart the broker held messages it had acknowledged and the bridge had not stored.
    assert accepted_before - stored_before >= 300, (accepted_before, stored_before)
    faults.check_stored(ships, messages, result, timeout=60)
    assert bridge.running() and bridge.pid == pid
    eventually(lambda: faults.metric(bridge, "fleet_bridge_connected") == 1, timeout=10)
    faults.assert_no_reports(ships)
