"""Latency: PUBACK to queryable for single-reading messages, 100 ships at N messages/s in all.

"100 ships at N/s" means each ship sends one message every 100/N s, the ships staggered evenly
(ship k's message i is due at (i * 100 + k) / N s), from one publisher thread that keeps to that
schedule; the run reports how late it was against it. A poller asks InfluxDB every few ms how many
points each ship has in the run's range: message (ship k, index i) is queryable once ship k has
more than i (each ship's messages are stored in order). A message never seen queryable before the
stop rule's timeout counts as infinitely late in the percentiles and is reported, never dropped.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

from bench.load import Publisher, payload
from bench.stack import SHIPS, Bench
from bench.stats import Figure, ShortfallError, log, pct


@dataclass
class LatencyResult:
    rate: float
    p50: Figure
    p99: Figure
    unseen: int
    send_lag_p99: Figure  # how late the publisher was against the schedule, s
    achieved: Figure      # messages/s actually sent


def run_latency(b: Bench, runs: int, quick: bool, rate: float = 1000.0) -> LatencyResult:
    seconds = 2.0 if quick else 8.0
    res = LatencyResult(rate, Figure(), Figure(), 0, Figure(), Figure())
    if b.bridge is None:
        b.start_bridge("pipeline")
    for run in range(runs):
        lat, unseen, lag, achieved = measure(b, b.new_base(), seconds, rate)
        res.p50.add(pct(lat, 50))
        res.p99.add(pct(lat, 99))
        res.send_lag_p99.add(lag)
        res.achieved.add(achieved)
        res.unseen += unseen
        log(f"latency run {run + 1}/{runs}: p50 {pct(lat, 50) * 1000:.0f} ms, p99 "
            f"{pct(lat, 99) * 1000:.0f} ms, {unseen} unseen, sent {achieved:,.0f}/s")
    return res


def measure(b: Bench, base: int, seconds: float, rate: float) -> tuple[list[float], int, float,
                                                                       float]:
    per_ship = int(seconds * rate / SHIPS)
    messages = [[payload(s, i, 1, base) for i in range(per_ship)] for s, _ in b.ships]
    seen: dict[str, list[float]] = {s: [] for s, _ in b.ships}  # when count reached i+1
    stop = threading.Event()
    rp = b.cfg.influxdb.retention_policy
    q = (f"SELECT count(kwh) FROM {rp}.energy WHERE time >= {base}s AND "
         f"time < {base + per_ship * 900}s GROUP BY ship")

    def poll() -> None:
        while not stop.is_set():
            res = b.influxql(q)[0].get("series", [])
            now = time.perf_counter()
            for series in res:
                got = seen[series["tags"]["ship"]]
                n = int(series["values"][0][1])
                while len(got) < n:
                    got.append(now)
            stop.wait(0.005)

    poller = threading.Thread(target=poll, daemon=True)
    pub = Publisher("127.0.0.1", b.cfg.mqtt.port, b.ships, window=200, prefix="lat")
    pub.connect()
    poller.start()
    try:
        result = pub.run(messages, rate=rate, timeout=seconds + 60)
        if result.total_acked != result.total:
            raise ShortfallError(f"latency: {result.total - result.total_acked:,} of "
                                 f"{result.total:,} messages not acknowledged by the broker")
        total = per_ship * SHIPS
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and sum(len(v) for v in seen.values()) < total:
            time.sleep(0.02)
    finally:
        stop.set()
        poller.join(10)
        pub.close()
    out: list[float] = []
    unseen = 0
    lags: list[float] = []
    for k, (ship, _) in enumerate(b.ships):
        for i, acked in enumerate(result.acked_at[k]):
            due = result.started + (i * SHIPS + k) / rate
            lags.append(result.sent_at[k][i] - due)
            if i < len(seen[ship]):
                out.append(max(0.0, seen[ship][i] - acked))
            else:
                out.append(math.inf)
                unseen += 1
    sent_last = max(max(row) for row in result.sent_at)
    return out, unseen, pct(lags, 99), total / (sent_last - result.started)
