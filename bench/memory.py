"""Memory: the bridge's RSS through an InfluxDB outage, with Mosquitto's beside it.

A fresh bridge process (its own new session) takes 2,000 single-reading messages/s from 100
ships; after a baseline taken before the outage, InfluxDB is frozen (SIGSTOP) for the outage,
then thawed, and the run waits for every point (the stop rule). Sampled at 10 Hz: the bridge's
RSS, Mosquitto's RSS, and what the broker holds for the bridge (messages PUBACKed to the ships
and not yet PUBACKed by the bridge: its queue plus the bridge's in-flight window).

The bridge's memory is bounded if it stops taking messages at its in-flight bound while the
database is away: its RSS should stay within 20% of its level once that bound is reached, while
the broker's queue grows instead.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from dataclasses import dataclass, field

from bench.load import Publisher, expected_points, payload
from bench.stack import SHIPS, Bench, rss_kib
from bench.stats import ShortfallError, log

RATE = 2000.0


@dataclass
class Sample:
    t: float           # s since the outage began (negative: before)
    bridge_kib: int
    broker_kib: int
    held: int          # messages the broker holds for the bridge


@dataclass
class MemoryResult:
    outage_s: float
    baseline_kib: int = 0
    samples: list[Sample] = field(default_factory=list)

    def during(self, since: float = 0.0) -> list[Sample]:
        return [s for s in self.samples if since <= s.t <= self.outage_s]


def run_memory(b: Bench, outage_s: float) -> MemoryResult:
    res = MemoryResult(outage_s)
    base = b.new_base()
    b.start_bridge("pipeline")  # fresh process, fresh session
    bridge, broker = b.bridge, b.broker
    assert bridge is not None and bridge.pid is not None and broker.pid is not None
    per_ship = int((outage_s + 10) * RATE / SHIPS)
    messages = [[payload(s, i, 1, base) for i in range(per_ship)] for s, _ in b.ships]
    pub = Publisher("127.0.0.1", b.cfg.mqtt.port, b.ships, window=200, prefix="mem")
    pub.connect()
    box: list[object] = []
    thread = threading.Thread(target=lambda: box.append(pub.run(messages, rate=RATE,
                                                                timeout=outage_s + 120)),
                              daemon=True)
    stop = threading.Event()
    t_outage = [0.0]
    stored_key = 'fleet_bridge_messages_total{outcome="stored"}'

    def take() -> None:
        with contextlib.suppress(OSError):
            stored = int(b.bridge_metrics().get(stored_key, 0.0))
            res.samples.append(Sample(time.monotonic() - t_outage[0], rss_kib(bridge.pid or 0),
                                      rss_kib(broker.pid or 0), pub.acked - stored))

    def sample() -> None:
        while not stop.is_set():
            take()
            stop.wait(0.1)

    time.sleep(1.0)
    res.baseline_kib = rss_kib(bridge.pid)
    t_outage[0] = time.monotonic() + 3.0
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    thread.start()
    try:
        time.sleep(3.0)
        log(f"memory: InfluxDB frozen for {outage_s:.0f} s")
        b.influx.signal(signal.SIGSTOP)
        try:
            time.sleep(outage_s)
        finally:
            b.influx.signal(signal.SIGCONT)
        thread.join(outage_s + 180)
        b.wait_stored("memory run", base, base + per_ship * 900 + 3600,
                      expected_points(SHIPS, per_ship, 1, base), timeout=180)
    finally:
        stop.set()
        sampler.join(5)
        pub.close()
    time.sleep(0.5)  # the bridge counts a batch as stored just after InfluxDB has it
    take()
    if not box or getattr(box[0], "total_acked", -1) != per_ship * SHIPS:
        raise ShortfallError("memory run: not every message was acknowledged by the broker")
    b.stop_bridge()
    return res
