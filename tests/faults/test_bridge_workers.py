"""Several partitioned bridges (``[bridge] workers``) under faults, fed by plain ``mosquitto_pub -l``.

No resending agent here: a bare publisher's messages published while the broker restarts or a
bridge is down must still be stored, which ``$share`` cannot promise (NOTES.md). Every message the
broker acknowledged (``mosquitto_pub -d`` prints each PUBACK) is stored exactly once: the stored
windows equal those of the acknowledged messages and the point count matches.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
import uuid
from collections.abc import Sequence

import pytest

from fleet.config import load_config
from launcher.bridges import start_bridges
from launcher.servers import Service, free_port
from tests.faults.conftest import BRIDGE_ENV, Rig, stream

pytestmark = [pytest.mark.integration, pytest.mark.faults]

PUBACK = re.compile(rb"received PUBACK \(Mid: (\d+)")


class LinePublisher:
    """One ``mosquitto_pub -l -q 1 -d`` per ship, its stdin fed at a steady rate by a thread;
    line k is message id k + 1, so the PUBACKs in its debug output say which lines the broker
    accepted."""

    def __init__(self, host: str, port: int, ship: str, password: str,
                 lines: Sequence[bytes]) -> None:
        self.lines = lines
        self.acked: set[int] = set()
        self.proc = subprocess.Popen(
            ["mosquitto_pub", "-h", host, "-p", str(port), "-u", ship, "-P", password,
             "-i", f"lp-{ship}", "-q", "1", "-t", f"fleet/ships/{ship}/readings", "-l", "-d"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for row in self.proc.stdout:
            m = PUBACK.search(row)
            if m:
                self.acked.add(int(m.group(1)) - 1)

    def feed(self, rate: float) -> None:
        assert self.proc.stdin is not None
        try:
            for line in self.lines:
                self.proc.stdin.write(line + b"\n")
                self.proc.stdin.flush()
                time.sleep(1 / rate)
        except BrokenPipeError:  # it exited (a lost connection it gave up on): the rest is unsent
            return

    def finish(self, timeout: float = 30.0) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(5)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


def _publishers(faults: Rig, accounts: Sequence[tuple[str, str]],
                messages: Sequence[Sequence[bytes]], rate: float) -> tuple[list[LinePublisher],
                                                                          list[threading.Thread]]:
    cfg = faults.stack.cfg.mqtt
    pubs = [LinePublisher(cfg.host, cfg.port, ship, pw, messages[k])
            for k, (ship, pw) in enumerate(accounts)]
    feeders = [threading.Thread(target=p.feed, args=(rate,), daemon=True) for p in pubs]
    for t in feeders:
        t.start()
    return pubs, feeders


def _bridges(faults: Rig, base: str, workers: int) -> list[Service]:
    env = faults.stack.env_with(**BRIDGE_ENV, FLEET_BRIDGE_CLIENT_ID=base,
                                FLEET_BRIDGE_WORKERS=str(workers),
                                FLEET_BRIDGE_METRICS_PORT=str(free_port()))
    services = start_bridges(load_config(env=env), env, die_with_parent=False)
    for svc in services:
        assert svc.env is not None
        faults.bridges.append((svc, svc.env["FLEET_BRIDGE_CLIENT_ID"]))
    return services


def _restart_broker(faults: Rig) -> None:
    faults.stack.broker.stop(timeout=15)  # SIGTERM: Mosquitto saves its sessions and queues
    faults.stack.broker.start(timeout=20)


def _kill_and_restart(svc: Service) -> None:
    svc.kill()  # SIGKILL: its unacknowledged messages come again, its queue waits
    svc.start(timeout=30)


def _check(faults: Rig, ships: list[str], messages: list[list[bytes]],
           pubs: list[LinePublisher]) -> None:
    total = sum(len(m) for m in messages)
    acked = sum(len(p.acked) for p in pubs)
    assert acked >= 0.9 * total, f"only {acked} of {total} messages were acknowledged"
    faults.check_stored(ships, messages, accepted=lambda k, i: i in pubs[k].acked, timeout=60)
    # Exactly once: three 5-minute parts per message, one point each.
    cfg = faults.stack.cfg.influxdb
    names = "|".join(ships)
    res = faults.stack.influx_query(
        f'SELECT count("kwh") FROM "{cfg.retention_policy}"."energy" '
        f'WHERE "ship" =~ /^({names})$/ AND time >= 0')
    count = int(res[0]["series"][0]["values"][0][1])
    assert 3 * acked <= count <= 3 * total
    faults.assert_no_reports(ships)


@pytest.mark.timeout(90)
def test_two_bridges_broker_restart_and_kills(faults: Rig) -> None:
    accounts = faults.ships(20, "wk")
    ships = [s for s, _ in accounts]
    messages = stream(ships, 240)  # 4,800 messages, 14,400 readings, 16 s at 15/s per ship
    bridges = _bridges(faults, f"wk-{uuid.uuid4().hex[:6]}", 2)
    assert len(bridges) == 2
    pubs, feeders = _publishers(faults, accounts, messages, rate=15)
    time.sleep(3)
    _kill_and_restart(bridges[1])
    time.sleep(3)
    _restart_broker(faults)
    time.sleep(3)
    _kill_and_restart(bridges[1])
    for t in feeders:
        t.join(60)
    for p in pubs:
        p.finish()
    _check(faults, ships, messages, pubs)
    # Both bridges stored their own ships' messages.
    for svc in bridges:
        assert faults.metric(svc, "fleet_bridge_messages_total", outcome="stored") > 0


@pytest.mark.timeout(90)
def test_workers_change_from_two_to_three_mid_stream(faults: Rig) -> None:
    accounts = faults.ships(20, "wn")
    ships = [s for s, _ in accounts]
    messages = stream(ships, 240)
    base = f"wn-{uuid.uuid4().hex[:6]}"
    two = _bridges(faults, base, 2)
    pubs, feeders = _publishers(faults, accounts, messages, rate=15)
    time.sleep(3)
    _restart_broker(faults)
    time.sleep(2)
    for svc in two:  # as a restart of `make run` with a new [bridge] workers does
        svc.stop(timeout=15)
    three = _bridges(faults, base, 3)  # handoff 2 -> 3 while the ships keep publishing
    assert len(three) == 3
    time.sleep(2)
    _kill_and_restart(three[2])
    for t in feeders:
        t.join(60)
    for p in pubs:
        p.finish()
    _check(faults, ships, messages, pubs)
    for svc in three:
        assert svc.env is not None
        assert "FLEET_BRIDGE_HANDOFF" not in svc.env  # settled: restarts run the new partition
        assert faults.metric(svc, "fleet_bridge_messages_total", outcome="stored") > 0
