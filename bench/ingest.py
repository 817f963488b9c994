"""Ingest: the pipeline's readings/s next to the ceilings of each stage, run interleaved.

Every row is the same 100 ships publishing the same messages (``bench.load.payload``) from the
same publisher processes, and every "done" is the same stop rule: the exact number of points the
messages make, stored (``Bench.wait_stored``), or the acknowledged count, seen by a subscriber.

- pipeline: publishers -> Mosquitto -> bridge -> InfluxDB, until every point is queryable;
- broker: a native subscriber (``mosquitto_sub -q 1``), what Mosquitto can deliver to one client;
- bare paho subscriber: stock paho in its own process with the bridge's session settings
  (persistent session, QoS 1, manual acks, the same Receive Maximum), acknowledging each message
  and doing nothing else (``bench.pahosub``): the reference issue 11's one-bridge targets name;
- bridge, no database: the bridge's own process and MQTT session (manual acks, same batching)
  with the write replaced by nothing, once normalizing and once not (``bench.nullbridge``);
- InfluxDB: the line protocol the bridge writes for these messages, in the batch size the bridge
  used in this run's pipeline row (from its ``fleet_bridge_batch_points``), over one keep-alive
  connection, as the bridge's writer thread does.

Adding a variant: append an :class:`IngestCase` to ``INGEST_CASES`` (see its fields).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from bench import history
from bench.load import expected_points, expected_seconds, message_span_s, payload
from bench.stack import SHIPS, Bench, cpu_seconds
from bench.stats import Figure, ShortfallError, log
from fleet import topics
from fleet.mqttclient import plain_client
from fleet.normalize import process_payload
from fleet.schema import lines


@dataclass(frozen=True)
class IngestCase:
    """One ingest row.

    ``readings`` per message, ``per_ship`` messages from each of the 100 ships, times
    ``offset_s`` past a 15-minute boundary. ``ceilings`` measures the broker, bridge-without-
    database and InfluxDB rows beside it. ``bridges`` > 1 runs that many bridges in one
    ``[bridge] shared_group``; ``bridge_env`` is given to every bridge of the row. ``around``,
    when set, is entered around the row's pipeline runs (a context manager taking the bench and
    the case: set up a cache, a config, another service) and must leave the bench as it found it.
    """

    name: str
    readings: int
    per_ship: int
    offset_s: int = 0
    ceilings: bool = False
    bridges: int = 1
    bridge_env: dict[str, str] = field(default_factory=dict)
    around: Callable[[Bench, IngestCase], contextlib.AbstractContextManager[None]] | None = None
    quick_per_ship: int = 0  # messages per ship in --quick (default: a tenth)

    def size(self, quick: bool) -> int:
        return (self.quick_per_ship or max(3, self.per_ship // 10)) if quick else self.per_ship


INGEST_CASES: list[IngestCase] = [
    IngestCase("1 reading/msg", 1, 600, ceilings=True),          # 60,000 messages
    IngestCase("12 readings/msg", 12, 200, ceilings=True),       # 20,000 messages
    # 700 s past a boundary every 15-minute reading is two parts: the points double.
    IngestCase("1 reading/msg, 700 s off the 15-min grid", 1, 600, offset_s=700),
    IngestCase("12 readings/msg, two bridges (shared group)", 12, 200, bridges=2),
    # Beside "12 readings/msg", whose bridge keeps the coarse series: the same without them.
    IngestCase("12 readings/msg, coarse series off", 12, 200, around=history.without_coarse),
]

ROWS = ("pipeline", "null", "raw", "broker", "paho", "influx")


@dataclass
class IngestResult:
    readings: dict[str, dict[str, Figure]]  # case -> row -> readings/s
    points: dict[str, dict[str, Figure]]    # case -> row -> points/s (pipeline, influx)
    batch_points: dict[str, Figure]         # case -> mean points per InfluxDB write (pipeline)
    sub_cpu: dict[str, Figure]              # case -> mosquitto_sub CPU share during its row
    cases: list[IngestCase]
    paho_cpu: dict[str, Figure] = field(default_factory=dict)  # case -> paho subscriber CPU share


def span(case: IngestCase, per_ship: int, base: int) -> tuple[int, int]:
    return base, base + per_ship * message_span_s(case.readings) + 3600


def run_ingest(b: Bench, runs: int, quick: bool,
               cases: list[IngestCase] | None = None) -> IngestResult:
    cases = INGEST_CASES if cases is None else cases
    res = IngestResult({c.name: {r: Figure() for r in ROWS} for c in cases},
                       {c.name: {r: Figure() for r in ROWS} for c in cases},
                       {c.name: Figure() for c in cases}, {c.name: Figure() for c in cases}, cases,
                       {c.name: Figure() for c in cases})
    for run in range(runs):
        log(f"ingest run {run + 1}/{runs}: pipeline")
        b.start_bridge("pipeline")
        for c in cases:
            per_ship = c.size(quick)
            base = b.new_base(c.offset_s)
            rate, pts, batch = pipeline(b, c, per_ship, base)
            res.readings[c.name]["pipeline"].add(rate)
            res.points[c.name]["pipeline"].add(pts)
            res.batch_points[c.name].add(batch)
            log(f"  {c.name}: {rate:,.0f} readings/s, {batch:,.0f} points per write")
        for kind in ("null", "raw"):
            log(f"ingest run {run + 1}/{runs}: bridge without the database ({kind})")
            b.start_bridge(kind)
            for c in (c for c in cases if c.ceilings):
                rate = bridge_ceiling(b, c, c.size(quick), b.new_base(c.offset_s))
                res.readings[c.name][kind].add(rate)
                log(f"  {c.name}: {rate:,.0f} readings/s")
        b.stop_bridge()
        log(f"ingest run {run + 1}/{runs}: broker and InfluxDB ceilings (no bridge)")
        for c in (c for c in cases if c.ceilings):
            per_ship = c.size(quick)
            msgs, cpu = broker_ceiling(b, c, per_ship, b.new_base(c.offset_s))
            res.readings[c.name]["broker"].add(msgs * c.readings)
            res.sub_cpu[c.name].add(cpu)
            pmsgs, pcpu = paho_ceiling(b, c, per_ship, b.new_base(c.offset_s))
            res.readings[c.name]["paho"].add(pmsgs * c.readings)
            res.paho_cpu[c.name].add(pcpu)
            batch = res.batch_points[c.name].values[-1]
            pts, readings = influx_ceiling(b, c, per_ship, b.new_base(c.offset_s), int(batch))
            res.points[c.name]["influx"].add(pts)
            res.readings[c.name]["influx"].add(readings)
            log(f"  {c.name}: broker {msgs * c.readings:,.0f} readings/s (mosquitto_sub "
                f"{cpu:.0%} of a core), bare paho subscriber {pmsgs * c.readings:,.0f} "
                f"({pcpu:.0%} of a core), InfluxDB {pts:,.0f} points/s in writes of {batch:,.0f}")
    return res


@contextlib.contextmanager
def _bridges(b: Bench, case: IngestCase) -> Iterator[None]:
    """The bridges the case asks for, in place of the running pipeline bridge."""
    if case.bridges == 1 and not case.bridge_env:
        yield
        return
    b.stop_bridge()
    group = []
    try:
        group = b.start_group(case.bridges, case.bridge_env)
        yield
    finally:
        b.stop_group(group)
        b.start_bridge("pipeline")


def _batch_totals(b: Bench) -> tuple[float, float]:
    try:
        m = b.bridge_metrics()
    except OSError:
        return 0.0, 0.0
    return m.get("fleet_bridge_batch_points_sum", 0.0), m.get("fleet_bridge_batch_points_count", 0.0)


def pipeline(b: Bench, case: IngestCase, per_ship: int, base: int) -> tuple[float, float, float]:
    """(readings/s, points/s, mean points per write) from the first publish to the last point
    stored and queryable."""
    readings = per_ship * SHIPS * case.readings
    points = expected_points(SHIPS, per_ship, case.readings, base)
    lo, hi = span(case, per_ship, base)
    around = case.around(b, case) if case.around else contextlib.nullcontext()
    with around, _bridges(b, case):
        s0, n0 = _batch_totals(b)
        with b.stored_watch(lo, hi, expected_seconds(SHIPS, per_ship, case.readings)) as watch:
            pubs = b.publish(per_ship=per_ship, readings=case.readings, base=base)
            start = float(min(p["start"] for p in pubs))
            done = b.wait_stored(f"ingest, {case.name}", lo, hi, points, timeout=300,
                                 watch=watch)
        s1, n1 = _batch_totals(b)
    elapsed = done - start
    batch = (s1 - s0) / (n1 - n0) if n1 > n0 else float("nan")
    return readings / elapsed, points / elapsed, batch


def bridge_ceiling(b: Bench, case: IngestCase, per_ship: int, base: int) -> float:
    """Readings/s through the bridge process writing nothing: until it has acknowledged (stored,
    in its own terms) every message, per its ``fleet_bridge_messages_total{outcome="stored"}``."""
    key = 'fleet_bridge_messages_total{outcome="stored"}'
    before = b.bridge_metrics().get(key, 0.0)
    total = per_ship * SHIPS
    pubs = b.publish(per_ship=per_ship, readings=case.readings, base=base)
    start = float(min(p["start"] for p in pubs))
    deadline = time.monotonic() + 300
    done = 0.0
    while time.monotonic() < deadline:
        got = b.bridge_metrics().get(key, 0.0) - before
        if got >= total:
            done = time.time()
            break
        time.sleep(0.01)
    else:
        raise ShortfallError(f"bridge without database, {case.name}: {got:,.0f} of {total:,} "
                             f"messages handled ({total - got:,.0f} missing)")
    return total * case.readings / (done - start)


class _LineCounter:
    """Counts the topic lines mosquitto_sub prints, and the marker lines among them."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.lines = 0
        self.markers = 0
        self.last = 0.0
        self.want = -1
        self.reached = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        tail = b""
        while chunk := os.read(fd, 1 << 16):
            self.last = time.time()
            self.lines += chunk.count(b"\n")
            text = tail + chunk
            self.markers += text.count(b"/status\n") - tail.count(b"/status\n")
            tail = text[-16:]
            if 0 <= self.want <= self.lines - self.markers:
                self.reached.set()


def broker_ceiling(b: Bench, case: IngestCase, per_ship: int, base: int) -> tuple[float, float]:
    """Messages/s Mosquitto delivers to ``mosquitto_sub -q 1`` (which acknowledges each one) from
    the same publishers, and that subscriber's CPU share (a core = 1.0)."""
    total = per_ship * SHIPS
    user, password = b.operator
    ship, ship_pw = b.ships[0]
    proc = subprocess.Popen(
        ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(b.cfg.mqtt.port), "-u", user, "-P",
         password, "-q", "1", "-V", "mqttv5", "-F", "%t", "-t", topics.READINGS_FILTER,
         "-t", topics.status(ship)], stdout=subprocess.PIPE)
    counter = _LineCounter(proc)
    # Subscribed once a marker on the ship's status topic comes through.
    marker = plain_client(f"bench-marker-{time.time_ns()}", username=ship, password=ship_pw)
    marker.connect(b.cfg.mqtt.host, b.cfg.mqtt.port)
    marker.loop_start()
    try:
        deadline = time.monotonic() + 20
        while counter.markers == 0:
            if time.monotonic() > deadline:
                raise ShortfallError("mosquitto_sub did not subscribe within 20 s")
            marker.publish(topics.status(ship), b"{}", qos=1).wait_for_publish(5)
            time.sleep(0.1)
    finally:
        marker.disconnect()
        marker.loop_stop()
    time.sleep(0.3)
    counter.want = total
    cpu0 = cpu_seconds(proc.pid)
    pubs = b.publish(per_ship=per_ship, readings=case.readings, base=base)
    start = float(min(p["start"] for p in pubs))
    reached = counter.reached.wait(120)
    got = counter.lines - counter.markers
    cpu = cpu_seconds(proc.pid) - cpu0
    proc.terminate()
    proc.wait(10)
    if not reached:
        raise ShortfallError(f"broker ceiling, {case.name}: mosquitto_sub saw {got:,} of {total:,}"
                             f" messages ({total - got:,} missing)")
    elapsed = counter.last - start
    return total / elapsed, cpu / elapsed


def paho_ceiling(b: Bench, case: IngestCase, per_ship: int, base: int) -> tuple[float, float]:
    """Messages/s a bare stock-paho subscriber (``bench.pahosub``: the bridge's session settings,
    acknowledging each message and nothing else) takes from the same publishers, until it has
    seen every message; and its CPU share (a core = 1.0) meanwhile."""
    total = per_ship * SHIPS
    cid = f"bench-paho-{time.time_ns()}"
    spec = {"host": "127.0.0.1", "port": b.cfg.mqtt.port, "username": b.cfg.mqtt.username,
            "password": b.cfg.mqtt.password, "client_id": cid, "topic": topics.READINGS_FILTER,
            "session_expiry": b.cfg.bridge.session_expiry,
            "receive_maximum": b.cfg.bridge.max_inflight, "total": total, "timeout": 240}
    proc = subprocess.Popen([sys.executable, "-m", "bench.pahosub", json.dumps(spec)],
                            env=b.env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise ShortfallError("the bare paho subscriber did not subscribe")
        pubs = b.publish(per_ship=per_ship, readings=case.readings, base=base)
        start = float(min(p["start"] for p in pubs))
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)
        b.forget_session(cid)  # nothing queues for it afterwards
    res = json.loads(out.strip().splitlines()[-1])
    if not res.get("ok"):
        raise ShortfallError(f"bare paho subscriber, {case.name}: saw {res.get('seen', 0):,} of "
                             f"{total:,} messages")
    elapsed = float(res["last"]) - start
    return total / elapsed, float(res["cpu"]) / elapsed


def influx_ceiling(b: Bench, case: IngestCase, per_ship: int, base: int,
                   batch: int) -> tuple[float, float]:
    """(points/s, readings/s) of the bridge's line protocol for these messages written straight
    into InfluxDB in writes of ``batch`` points, one after another on one keep-alive connection."""
    parts = [p for s, _ in b.ships for i in range(per_ship)
             for p in process_payload(s, payload(s, i, case.readings, base)).parts]
    points = expected_points(SHIPS, per_ship, case.readings, base)
    if len(parts) != points:
        raise ShortfallError(f"InfluxDB ceiling, {case.name}: the payloads make {len(parts):,} "
                             f"parts, the stop rule expects {points:,}")
    batch = max(1, batch)
    bodies = [lines(parts[i:i + batch]).encode() for i in range(0, len(parts), batch)]
    writer = b.writer()
    try:
        t0 = time.perf_counter()
        for body in bodies:
            writer.write(body)
        elapsed = time.perf_counter() - t0
    finally:
        writer.close()
    lo, hi = span(case, per_ship, base)
    b.wait_stored(f"InfluxDB ceiling, {case.name}", lo, hi, points, timeout=60)
    return points / elapsed, per_ship * SHIPS * case.readings / elapsed


def summary(res: IngestResult) -> dict[str, Any]:
    """Medians per case and row (for the JSON results)."""
    return {c: {r: f.median for r, f in rows.items() if f.values}
            for c, rows in res.readings.items()}


def main() -> int:
    """``python -m bench.ingest [--case NAME ...] [--runs N] [--quick]``: only the ingest rows
    named (all of bench.ingest and bench.scale by default) on a private stack, the ingest table
    on stdout: a short before/after measurement, not a results file."""
    import tempfile  # noqa: PLC0415 - only for running alone
    from pathlib import Path  # noqa: PLC0415

    from bench.report import ingest_table, targets_table  # noqa: PLC0415 - report imports this
    from bench.scale import WORKER_CASES  # noqa: PLC0415 - scale imports this
    from bench.stack import start  # noqa: PLC0415

    every = [*INGEST_CASES, *WORKER_CASES]
    parser = argparse.ArgumentParser(prog="python -m bench.ingest")
    parser.add_argument("--case", action="append", choices=[c.name for c in every],
                        help="an ingest row to run (repeatable; default: all)")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    cases = [c for c in every if args.case is None or c.name in args.case]
    with tempfile.TemporaryDirectory(prefix="fleet-bench-ingest-") as tmp:
        b = start(Path(tmp))
        try:
            res = run_ingest(b, args.runs, args.quick, cases=cases)
        finally:
            b.stop()
    print("\n".join([*ingest_table(res), "", *targets_table({"ingest": res})]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
