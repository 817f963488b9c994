"""The bridge killed (SIGKILL) mid-stream, alone and as one of a shared-subscription pair."""

from __future__ import annotations

import time

import pytest

from tests.conftest import eventually
from tests.faults.conftest import Rig, run_in_thread, stream

pytestmark = [pytest.mark.integration, pytest.mark.faults]


@pytest.mark.timeout(120)
def test_bridge_sigkilled_three_times_during_a_stream(faults: Rig) -> None:
    accounts = faults.ships(20, "kill")
    ships = [s for s, _ in accounts]
    messages = stream(ships, 260)  # 5,200 messages, 15,600 readings
    bridge = faults.bridge()
    pub = faults.publisher(accounts)
    thread, box = run_in_thread(pub, messages, rate=700, timeout=60)
    pids = []
    kills = []
    # Each kill at a share of the stream, not after a fixed sleep: a slow restart on a busy
    # machine must not push the last kill past the stream's end.
    for share in (0.2, 0.45, 0.7):
        eventually(lambda share=share: pub.acked >= share * 5200, timeout=60, interval=0.02,
                   message="the publisher stalled")
        pids.append(bridge.pid)
        kills.append(time.perf_counter())
        bridge.kill()  # SIGKILL: no flush, no goodbye; its unacknowledged messages come again
        bridge.start(timeout=30)
    thread.join(90)
    pub.close()
    (result,) = box
    assert result.total_acked == 5200, "the broker did not acknowledge every message"
    # All three kills landed mid-stream: the publisher was still sending after the last.
    assert max(max(t) for t in result.sent_at) > kills[-1] + 0.5
    faults.check_stored(ships, messages, result)
    faults.assert_no_reports(ships)
    assert len(set(pids)) == 3


@pytest.mark.timeout(120)
def test_shared_subscription_survives_one_bridge_killed(faults: Rig) -> None:
    """The survivor keeps storing its share; the killed member's share waits for it.

    Measured with Mosquitto 2.0.11: the broker keeps giving the killed member (its persistent
    session outlives the connection) its round-robin share of new messages, queued for it, not
    handed to the survivor. Nothing is lost: they are stored when that member comes back, which
    is what a supervisor does (``make run`` restarts it); a member that never returns holds its
    share until its session expires (``[bridge] session_expiry``).
    """
    accounts = faults.ships(20, "shared")
    ships = [s for s, _ in accounts]
    messages = stream(ships, 200)
    group = f"g{int(time.time())}"
    first = faults.bridge(FLEET_BRIDGE_SHARED_GROUP=group)
    second = faults.bridge(FLEET_BRIDGE_SHARED_GROUP=group)
    pub = faults.publisher(accounts)
    thread, box = run_in_thread(pub, messages, rate=500, timeout=60)
    eventually(lambda: faults.metric(first, "fleet_bridge_messages_total", outcome="stored", default=0.0) > 50
               and faults.metric(second, "fleet_bridge_messages_total", outcome="stored", default=0.0) > 50,
               timeout=20, message="both bridges should take part")
    first.kill()
    killed_at = time.perf_counter()
    before = faults.metric(second, "fleet_bridge_messages_total", outcome="stored", default=0.0)
    thread.join(90)
    pub.close()
    (result,) = box
    assert result.total_acked == 4000
    assert max(max(t) for t in result.sent_at) > killed_at + 2, "the kill should land mid-stream"
    # The survivor carried on: it stored its share of what was published after the kill.
    eventually(lambda: faults.metric(second, "fleet_bridge_messages_total", outcome="stored", default=0.0)
               - before > 1000, timeout=20, message="the surviving bridge stalled")
    assert second.running()
    first.start(timeout=30)  # as the supervisor would: the killed member's share comes back
    faults.check_stored(ships, messages, result, timeout=60)
    faults.assert_no_reports(ships)
