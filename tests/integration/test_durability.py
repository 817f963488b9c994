"""Nothing lost: the bridge killed mid-stream, the broker restarted with messages queued, and
more messages queued for an absent bridge than Mosquitto's default limit of 1000."""

from __future__ import annotations

import json
import signal
import threading
import time
import urllib.request
from collections.abc import Iterator

import pytest

from tests.conftest import Stack, eventually, start_stack

pytestmark = pytest.mark.integration

BASE = 1_535_068_800  # 2018-08-24T00:00:00Z


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack of its own: these tests stop and kill its bridge and broker."""
    stack = start_stack(tmp_path_factory.mktemp("durability"))
    if stack.containerized:
        stack.stop()
        pytest.skip("stops and kills server processes: needs the local binaries")
    try:
        yield stack
    finally:
        stack.stop()


def payload(i: int) -> bytes:
    """Message i: one 15-minute kWh reading of value i % 7 + 1 in its own window."""
    ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(BASE + i * 900))
    return json.dumps({"units": "kWh", "interval": "PT15M",
                       "data": [{"datetime": ts, "value": i % 7 + 1}]}).encode()


def stored(stack: Stack, ship: str) -> tuple[int, float]:
    res = stack.influx_query(
        f"SELECT count(kwh), sum(kwh) FROM {stack.cfg.influxdb.retention_policy}.energy "
        f"WHERE ship = '{ship}'")
    series = res[0].get("series")
    if not series:
        return 0, 0.0
    _, count, total = series[0]["values"][0]
    return int(count), float(total)


def expected(n: int) -> tuple[int, float]:
    return n, float(sum(i % 7 + 1 for i in range(n)))


def publish_all(stack: Stack, ship: str, password: str, n: int, pause: float = 0.0) -> None:
    session = stack.client(ship, password, client_id=f"{ship}-pub")
    infos = []
    for i in range(n):
        infos.append(session.client.publish(f"fleet/ships/{ship}/readings", payload(i), qos=1))
        if pause:
            time.sleep(pause)
    for info in infos:
        info.wait_for_publish(timeout=30)
    session.close()


def test_bridge_killed_mid_stream_loses_nothing(own: Stack) -> None:
    ships = [own.ship() for _ in range(3)]
    bridge = own.start_bridge(client_id="restart-me")
    n = 1000  # about 5 s of publishing: both kills land mid-stream (checked below)
    threads = [threading.Thread(target=publish_all, args=(own, s, p, n, 0.005)) for s, p in ships]
    for t in threads:
        t.start()
    at_kill: list[tuple[list[int], bool]] = []
    last = 0
    for _ in range(2):
        # Each bridge (the first, then the restarted one) has stored something of its own.
        eventually(lambda last=last: stored(own, ships[0][0])[0] > last,
                   message="bridge stores nothing")
        time.sleep(0.3)
        counts = [stored(own, s)[0] for s, _ in ships]
        publishing = all(t.is_alive() for t in threads)
        bridge.kill()  # SIGKILL: no flush, no goodbye
        at_kill.append((counts, publishing))
        last = counts[0]
        bridge.start(timeout=30)  # same client id: the persistent session comes back
    for t in threads:
        t.join(timeout=60)
    # Mid-stream: at each kill the ships were still publishing and part of each stream was stored.
    for counts, publishing in at_kill:
        assert publishing and counts[0] > 0 and max(counts) < n, at_kill
    for ship, _ in ships:
        assert eventually(lambda s=ship: stored(own, s) == expected(n), timeout=60,
                          message=f"{ship} incomplete"), stored(own, ship)
    bridge.stop()


def test_queue_beyond_default_limit_and_broker_restart(own: Stack) -> None:
    ship, password = own.ship()
    bridge = own.start_bridge(client_id="away-bridge")
    bridge.stop()  # its session (with its subscription) stays on the broker
    n = 1500  # more than Mosquitto's default max_queued_messages (1000)
    publish_all(own, ship, password, n)
    own.broker.signal(signal.SIGTERM)  # clean shutdown: the queue is saved to disk
    assert own.broker.proc is not None
    own.broker.proc.wait(timeout=20)
    own.broker.start(timeout=20)
    bridge.start(timeout=30)
    assert eventually(lambda: stored(own, ship) == expected(n), timeout=60), stored(own, ship)
    bridge.stop()


def metric(stack: Stack, name: str) -> float:
    url = f"http://127.0.0.1:{stack.cfg.bridge.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as resp:
        for row in resp.read().decode().splitlines():
            if row.startswith(name + " "):
                return float(row.split()[-1])
    return float("nan")


def test_in_flight_is_bounded_by_receive_maximum(own: Stack) -> None:
    """With InfluxDB frozen the broker stops at the bridge's Receive Maximum (100 here, well
    above Mosquitto's default of 20 in flight); nothing is lost once it thaws."""
    ship, password = own.ship()
    bridge = own.start_bridge(client_id="bounded", FLEET_BRIDGE_MAX_INFLIGHT="100",
                              FLEET_INFLUXDB_TIMEOUT="2")
    own.influx.signal(signal.SIGSTOP)
    try:
        publish_all(own, ship, password, 300)
        assert eventually(lambda: metric(own, "fleet_bridge_inflight_messages") == 100)
        time.sleep(1.0)  # and it stays there: the broker holds the rest
        assert metric(own, "fleet_bridge_inflight_messages") == 100
    finally:
        own.influx.signal(signal.SIGCONT)
    assert eventually(lambda: stored(own, ship) == expected(300), timeout=60), stored(own, ship)
    bridge.stop()
