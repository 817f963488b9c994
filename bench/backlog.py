"""Backlog: a real outage of the bridge. The bridge is stopped (its persistent session stays with
Mosquitto), 100 ships' 24 hours of 5-minute readings (28,800) are published and queue in that
session, then the bridge starts again; the figure is the time from its start to the last reading
stored (the exact count), and with the agent also to the last agent holding every confirmation.

Sent three ways: plain publishers with 12 readings per message (2,400 messages) and with one
(28,800 messages), and the ship agent (``ship.agent.Agent``, its own batching: one message per
ship), which also waits for its end-to-end acks.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field

from bench.load import expected_points
from bench.stack import SHIPS, Bench
from bench.stats import Figure, ShortfallError, log

DAY_READINGS = 288  # 24 hours of 5-minute readings
WAYS = ("12 readings/msg", "1 reading/msg", "ship agent")


@dataclass
class BacklogResult:
    stored: dict[str, Figure] = field(default_factory=lambda: {w: Figure() for w in WAYS})
    confirmed: Figure = field(default_factory=Figure)  # agents: all acks received, s after start


def run_backlog(b: Bench, runs: int, quick: bool) -> BacklogResult:
    res = BacklogResult()
    readings = 36 if quick else DAY_READINGS
    for run in range(runs):
        for way in WAYS:
            base = b.new_base()
            stored, confirmed = outage(b, way, base, readings, run)
            res.stored[way].add(stored)
            if confirmed is not None:
                res.confirmed.add(confirmed)
            log(f"backlog run {run + 1}/{runs}, {way}: all stored {stored:.2f} s after the "
                f"bridge started" + (f", agents confirmed at {confirmed:.2f} s" if confirmed
                                     is not None else ""))
    return res


def outage(b: Bench, way: str, base: int, readings: int, run: int) -> tuple[float, float | None]:
    client_id = f"bench-backlog-{run}-{way.split(maxsplit=1)[0]}"
    b.start_bridge("pipeline", client_id=client_id)  # subscribes: the session exists
    b.stop_bridge(forget=False)
    points = expected_points(SHIPS, readings, 1, base, 300)
    hi = base + readings * 300 + 3600
    agents = None
    if way == "ship agent":
        agents = _agents(b, base, readings)
    else:
        n = 12 if way.startswith("12") else 1
        b.publish(per_ship=readings // n, readings=n, base=base, step=300)
    if b.count(base, hi) != 0:
        raise ShortfallError(f"backlog, {way}: points stored while the bridge was stopped")
    time.sleep(0.5)
    started = time.time()
    b.start_bridge("pipeline", client_id=client_id)
    done = b.wait_stored(f"backlog, {way}", base, hi, points, timeout=300)
    confirmed = None
    if agents is not None:
        out, _ = agents.communicate(timeout=300)
        summary = json.loads(out.strip().splitlines()[-1])
        if summary.get("finished") != SHIPS or summary.get("confirmed") != points:
            raise ShortfallError(f"backlog, ship agent: {summary}")
        confirmed = float(summary["done"]) - started
    b.stop_bridge()
    return done - started, confirmed


def _agents(b: Bench, base: int, readings: int) -> subprocess.Popen[str]:
    spec = {"dir": str(b.root / f"agents-{base}"), "base": base, "readings": readings,
            "accounts": b.ships}
    # No resend while the bridge is away (the first ack takes the outage to come).
    env = {**b.env, "FLEET_SHIP_ACK_TIMEOUT": "600", "FLEET_SHIP_DRAIN_RATE": "100000"}
    proc = subprocess.Popen([sys.executable, "-m", "bench.agents", json.dumps(spec)],
                            env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line != "queued":
        raise ShortfallError(f"the agents did not queue their readings: {line}")
    return proc
