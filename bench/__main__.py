"""``make bench`` (``python -m bench``): the pipeline's figures next to its servers' ceilings.

Starts a private stack (Mosquitto, InfluxDB, bridge, query service) on free loopback ports under a
temporary directory, runs each measurement ``--runs`` times, and writes ``bench/results.md`` and
``bench/results.png``. Every figure is the median over the runs with its spread (min..max), and
each sits next to the ceiling measured in the same run: the same publisher into a bare paho
subscriber (the broker's), the same points written straight into InfluxDB in batches of 5,000
(the database's), the same InfluxQL asked of InfluxDB directly (the query service's).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.load import Publisher
from bench.pub import payload
from fleet import coarse
from fleet.accounts import Accounts
from fleet.config import Config, load_config
from fleet.schema import Part, line, window_query
from fleet.store import InfluxStore
from fleet.timeutil import US
from launcher.servers import (
    REPO_ROOT,
    Service,
    bridge_service,
    broker_dir,
    influxd_service,
    isolated_overrides,
    mosquitto_service,
    query_service,
)

HERE = Path(__file__).resolve().parent
SHIPS = 100
DAY = 86400

# Targets from issue 4 (this 2-core machine).
TARGET_INGEST_RATIO = 0.70
TARGET_INGEST_12 = 150_000
TARGET_LATENCY_P99 = 1.0
TARGET_BACKLOG_S = 30.0
TARGET_QUERY_1D_P99_MS = 10.0
TARGET_FLEET_30D_MS = 100.0


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


@dataclass
class Figure:
    """One measurement over repeated runs."""

    values: list[float] = field(default_factory=list)

    def add(self, v: float) -> None:
        self.values.append(v)

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    def fmt(self, unit: str = "", digits: int = 0, scale: float = 1.0) -> str:
        if not self.values:
            return "n/a"
        vals = [v * scale for v in self.values]
        med = statistics.median(vals)
        if len(vals) == 1:
            return f"{med:,.{digits}f}{unit}"
        return f"{med:,.{digits}f}{unit} ({min(vals):,.{digits}f}..{max(vals):,.{digits}f})"


def pct(values: Sequence[float], q: float) -> float:
    s = sorted(values)
    if not s:
        return float("nan")
    return s[min(len(s) - 1, max(0, round(q / 100 * len(s)) - 1))]


# -- the stack -------------------------------------------------------------------------------------

@dataclass
class Bench:
    root: Path
    env: dict[str, str]
    cfg: Config
    accounts: Accounts
    influx: Service
    broker: Service
    ships: list[tuple[str, str]]
    operator: tuple[str, str]
    bridge: Service | None = None
    query: Service | None = None
    headers: dict[str, str] = field(default_factory=dict)  # the query service's bearer token

    def start_bridge(self) -> Service:
        env = {**self.env, "FLEET_BRIDGE_CLIENT_ID": "bench-bridge"}
        self.bridge = bridge_service(load_config(env=env), env).start(timeout=60)
        return self.bridge

    def start_query(self) -> Service:
        self.query = query_service(self.cfg, self.env).start(timeout=60)
        return self.query

    def stop(self) -> None:
        for svc in (self.query, self.bridge, self.broker, self.influx):
            if svc is not None:
                with contextlib.suppress(Exception):
                    svc.signal(signal.SIGCONT)
                svc.stop(timeout=20)

    def influxql(self, q: str) -> list[dict[str, Any]]:
        data = urllib.parse.urlencode({"q": q, "db": self.cfg.influxdb.database, "epoch": "u"})
        url = f"{self.cfg.influxdb.url}/query?{data}"
        with urllib.request.urlopen(url, timeout=60) as resp:  # noqa: S310 - our loopback URL
            return list(json.loads(resp.read())["results"])

    def count(self, start_s: int, end_s: int) -> int:
        rp = self.cfg.influxdb.retention_policy
        res = self.influxql(f"SELECT count(kwh) FROM {rp}.energy WHERE time >= {start_s}s "
                            f"AND time < {end_s}s")
        series = res[0].get("series")
        return int(series[0]["values"][0][1]) if series else 0

    def write_direct(self, body: bytes) -> None:
        cfg = self.cfg.influxdb
        req = urllib.request.Request(  # noqa: S310 - our loopback URL
            f"{cfg.url}/write?db={cfg.database}&rp={cfg.retention_policy}&precision=ns",
            data=body, method="POST")
        with urllib.request.urlopen(req, timeout=60) as resp:  # noqa: S310
            assert resp.status == 204

    def bridge_metric(self, name: str) -> float:
        port = self.env["FLEET_BRIDGE_METRICS_PORT"]
        url = f"http://127.0.0.1:{port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            for row in resp.read().decode().splitlines():
                if row.startswith(name + " "):
                    return float(row.split()[1])
        return 0.0


def start(root: Path) -> Bench:
    env = {**isolated_overrides(root), "FLEET_BRIDGE_PUBLISH_ENERGY": "true"}
    cfg = load_config(env=env)
    accounts = Accounts(broker_dir(cfg))
    env["FLEET_MQTT_PASSWORD"] = accounts.ensure_service("fleet-bridge", "bridge")
    env = {**os.environ, **env}
    cfg = load_config(env=env)
    ships = [(f"bench-{k:03d}", accounts.add_ship(f"bench-{k:03d}")) for k in range(SHIPS)]
    operator = ("bench-operator", accounts.add_operator("bench-operator"))
    headers: dict[str, str] = {}
    try:
        from fleet.tokens import TokenStore, tokens_path  # noqa: PLC0415 - issue 5's module

        headers["Authorization"] = "Bearer " + TokenStore(tokens_path(cfg.local.path)).create("bench")
    except ImportError:
        env["FLEET_HTTP_AUTH"] = "none"
    influx = influxd_service(cfg).start(timeout=60)
    broker = mosquitto_service(cfg).start(timeout=30)
    influx_ready = Bench(root, env, cfg, accounts, influx, broker, ships, operator,
                         headers=headers)
    # The database must exist before direct writes; the bridge would create it too.
    influx_ready.influxql(f'CREATE DATABASE "{cfg.influxdb.database}"')
    influx_ready.influxql(f'CREATE RETENTION POLICY "{cfg.influxdb.retention_policy}" ON '
                          f'"{cfg.influxdb.database}" DURATION INF REPLICATION 1 DEFAULT')
    return influx_ready


# -- publishers in their own processes ------------------------------------------------------------

def publish(b: Bench, *, per_ship: int, readings: int, base: int, procs: int = 2,
            rate: float | None = None, window: int = 200,
            after_ready: Callable[[], None] | None = None) -> list[dict[str, Any]]:
    """Publish from all ships split over ``procs`` processes started together."""
    groups = [b.ships[k::procs] for k in range(procs)]
    children = []
    for group in groups:
        spec = {"host": "127.0.0.1", "port": b.cfg.mqtt.port, "accounts": group,
                "per_ship": per_ship, "readings": readings, "base": base, "window": window,
                "rate": rate / procs if rate else None}
        children.append(subprocess.Popen(
            [sys.executable, "-m", "bench.pub", json.dumps(spec)], cwd=REPO_ROOT,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
    for child in children:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
    if after_ready:
        after_ready()
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    out = []
    for child in children:
        stdout, _ = child.communicate(timeout=300)
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


# -- ingest -----------------------------------------------------------------------------------------

def broker_ceiling(b: Bench, per_ship: int, readings: int, base: int) -> float:
    """Messages/s from the same publishers into one bare paho subscriber (no bridge)."""
    total = per_ship * SHIPS
    sub = subprocess.Popen([sys.executable, "-m", "bench.sub", "127.0.0.1", str(b.cfg.mqtt.port),
                            *b.operator, str(total)], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                           text=True)
    assert sub.stdout is not None
    assert sub.stdout.readline().strip() == "ready"
    pubs = publish(b, per_ship=per_ship, readings=readings, base=base)
    stdout, _ = sub.communicate(timeout=180)
    got = json.loads(stdout.strip().splitlines()[-1])
    start = float(min(p["start"] for p in pubs))
    if got["count"] < total:
        log(f"ceiling subscriber saw {got['count']} of {total}")
    return float(got["count"] / (got["last"] - start))


def influx_ceiling(b: Bench, per_ship: int, readings: int, base: int) -> float:
    """Points/s written straight into InfluxDB in batches of 5,000 (the bridge's batch size)."""
    lines = []
    for ship, _ in b.ships:
        for i in range(per_ship):
            start = base + i * (900 if readings == 1 else readings * 300)
            for k in range(readings):
                t = start + k * 300
                lines.append(line(Part(ship, t * US, (i + k) % 17 + 0.25, 300.0)))
    batches = ["\n".join(lines[i:i + 5000]).encode() for i in range(0, len(lines), 5000)]
    t0 = time.perf_counter()
    for body in batches:
        b.write_direct(body)
    return len(lines) / (time.perf_counter() - t0)


def pipeline(b: Bench, per_ship: int, readings: int, base: int) -> float:
    """Readings/s from the first publish to the last reading stored and queryable."""
    total = per_ship * SHIPS * readings
    span = per_ship * (900 if readings == 1 else readings * 300) + 3600
    pubs = publish(b, per_ship=per_ship, readings=readings, base=base)
    start = float(min(p["start"] for p in pubs))
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if b.count(base, base + span) >= total:
            break
        time.sleep(0.02)
    done = time.time()
    return total / (done - start)


# -- latency ------------------------------------------------------------------------------------------

def latency(b: Bench, base: int, seconds: float = 8.0, rate: float = 1000.0) -> list[float]:
    """PUBACK to queryable (s) for single-reading messages at ``rate``/s from 100 ships.

    A poller asks InfluxDB every few ms how many points each ship has in the run's range; a
    message (ship k, index i) is queryable once ship k has more than i (each ship's messages are
    stored in order). The poll interval and the query's own time bound the resolution.
    """
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
                ship = series["tags"]["ship"]
                n = int(series["values"][0][1])
                got = seen[ship]
                while len(got) < n:
                    got.append(now)
            stop.wait(0.005)

    poller = threading.Thread(target=poll, daemon=True)
    pub = Publisher("127.0.0.1", b.cfg.mqtt.port, b.ships, window=200, prefix="lat")
    pub.connect()
    poller.start()
    result = pub.run(messages, rate=rate, timeout=seconds + 60)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and sum(len(v) for v in seen.values()) < per_ship * SHIPS:
        time.sleep(0.05)
    stop.set()
    poller.join(10)
    pub.close()
    out = []
    for k, (ship, _) in enumerate(b.ships):
        for i, acked in enumerate(result.acked_at[k]):
            if i < len(seen[ship]):
                out.append(max(0.0, seen[ship][i] - acked))
    return out


# -- backlog ------------------------------------------------------------------------------------------

def backlog(b: Bench, base: int, readings: int) -> float:
    """100 ships back from a 24-hour outage with 5-minute readings: seconds until all stored."""
    per_ship = 288 // readings
    total = 288 * SHIPS
    pubs = publish(b, per_ship=per_ship, readings=readings, base=base)
    start = float(min(p["start"] for p in pubs))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and b.count(base, base + 2 * DAY) < total:
        time.sleep(0.02)
    return time.time() - start


# -- queries ------------------------------------------------------------------------------------------

QUERY_BASE = 1_514_764_800  # 2018-01-01T00:00:00Z


def preload_queries(b: Bench) -> None:
    """A year of 15-minute parts for ship 0, 30 days for the other 99 (written directly)."""
    batch: list[str] = []
    for k, (ship, _) in enumerate(b.ships):
        days = 365 if k == 0 else 30
        for w in range(days * 96):
            t = QUERY_BASE + w * 900
            batch.append(line(Part(ship, t * US, (w % 11) * 0.5 + 1.0, 900.0)))
            if len(batch) >= 5000:
                b.write_direct("\n".join(batch).encode())
                batch = []
    if batch:
        b.write_direct("\n".join(batch).encode())
    # Written around the bridge: bring the coarse series up to date (`fleetctl rollup rebuild`).
    store = InfluxStore(b.cfg.influxdb)
    try:
        coarse.ensure_policy(store)
        coarse.rebuild(store, coarse.fleet_zone(b.cfg), None, QUERY_BASE * US,
                       (QUERY_BASE + 366 * DAY) * US)
    finally:
        store.close()


def iso(ts: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


async def hammer(urls: Sequence[str], seconds: float, clients: int,
                 headers: dict[str, str] | None = None) -> tuple[list[float], float]:
    """``clients`` concurrent loops GETting ``urls`` round-robin; latencies (s) and requests/s."""
    lat: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    conn = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=conn, headers=headers) as session:
        async def worker(offset: int) -> None:
            nonlocal errors
            i = offset
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                async with session.get(urls[i % len(urls)]) as resp:
                    await resp.read()
                    if resp.status != 200:
                        errors += 1
                lat.append(time.perf_counter() - t0)
                i += 1
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(c) for c in range(clients)))
        elapsed = time.perf_counter() - t0
    if errors:
        log(f"{errors} requests failed for {urls[0]}")
    return lat, len(lat) / elapsed


@dataclass
class QueryCase:
    name: str
    http: list[str]
    influx: list[str]


def query_cases(b: Bench) -> list[QueryCase]:
    cfg = b.cfg
    http = f"http://127.0.0.1:{cfg.http.port}"
    db, rp = cfg.influxdb.database, cfg.influxdb.retention_policy

    def influx_url(q: str) -> str:
        return (f"{cfg.influxdb.url}/query?"
                + urllib.parse.urlencode({"q": q, "db": db, "epoch": "u"}))

    ship = b.ships[0][0]
    cases = []
    for name, days in (("ship 1-day 15m", 1), ("ship 30-day 15m", 30), ("ship 365-day 15m", 365)):
        # Different days so neither side serves a cached answer; all within the loaded year.
        starts = [QUERY_BASE + d * DAY for d in range(0, 365 - days + 1, max(1, (365 - days) // 20)
                                                      or 1)][:20]
        cases.append(QueryCase(
            name,
            [f"{http}/v1/ships/{ship}/energy?start={iso(s)}&end={iso(s + days * DAY)}&every=15m"
             for s in starts],
            [influx_url(window_query(db, rp, ship, s * US, (s + days * DAY) * US, "15m"))
             for s in starts]))
    fleet_http = [f"{http}/v1/fleet/energy?start={iso(QUERY_BASE)}"
                  f"&end={iso(QUERY_BASE + 30 * DAY)}&every=1d"]
    cases.append(QueryCase(
        "fleet 30-day daily totals, 100 ships", fleet_http,
        [influx_url(window_query(db, rp, None, QUERY_BASE * US, (QUERY_BASE + 30 * DAY) * US,
                                 "1d"))]))
    return cases


def endpoint_exists(url: str, headers: dict[str, str]) -> bool:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers),  # noqa: S310
                                    timeout=10) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


# -- memory -------------------------------------------------------------------------------------------

def rss_kib(pid: int, key: str = "VmRSS") -> int:
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith(key + ":"):
            return int(row.split()[1])
    return 0


@contextlib.contextmanager
def sampling(pid: int, every: float = 0.25) -> Iterator[list[tuple[float, int]]]:
    samples: list[tuple[float, int]] = []
    stop = threading.Event()
    t0 = time.monotonic()

    def run() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                samples.append((time.monotonic() - t0, rss_kib(pid)))
            stop.wait(every)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join(5)


def outage(b: Bench, base: int, seconds: float) -> list[tuple[float, int]]:
    """Ships publish at 2,000 msgs/s while InfluxDB is frozen for ``seconds``; RSS samples."""
    assert b.bridge is not None and b.bridge.pid is not None
    per_ship = int((seconds + 5) * 2000 / SHIPS)
    done = threading.Event()
    result: list[Any] = []

    def load() -> None:
        result.append(publish(b, per_ship=per_ship, readings=1, base=base, rate=2000))
        done.set()

    with sampling(b.bridge.pid, 0.5) as samples:
        thread = threading.Thread(target=load, daemon=True)
        thread.start()
        time.sleep(2)
        b.influx.signal(signal.SIGSTOP)
        try:
            time.sleep(seconds)
        finally:
            b.influx.signal(signal.SIGCONT)
        thread.join(300)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and b.count(base, base + per_ship * 900 + 900) \
                < per_ship * SHIPS:
            time.sleep(0.2)
    return [(t - 2, kib) for t, kib in samples]


# -- report -------------------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="repetitions of each measurement")
    parser.add_argument("--outage", type=float, default=60.0, help="InfluxDB outage, seconds")
    parser.add_argument("--out", type=Path, default=HERE / "results.md")
    parser.add_argument("--only", choices=("query", "ingest"),
                        help="run only the query (or the pipeline ingest) measurements and "
                             "print them (results.md is left alone)")
    args = parser.parse_args()
    started = time.time()
    root = Path(tempfile.mkdtemp(prefix="fleet-bench-"))
    b = start(root)
    res: dict[str, Any] = {}
    try:
        if args.only == "query":
            b.start_query()
            res = run_queries(b, args.runs)
            print("\n".join(query_table(res)))
            log(f"queries only, {time.time() - started:.0f}s")
            return 0
        if args.only == "ingest":
            b.start_bridge()
            bases = iter(range(1_600_000_000, 4_000_000_000, 400 * DAY))
            for readings, size in ((1, 600), (12, 200)):
                figure = Figure([pipeline(b, size, readings, next(bases))
                                 for _ in range(args.runs)])
                print(f"ingest, {readings} reading(s)/message: {figure.fmt()} readings/s")
            return 0
        res = run_all(b, args.runs, args.outage)
    finally:
        b.stop()
    res["duration"] = time.time() - started
    res["runs"] = args.runs
    args.out.write_text(report(res), encoding="utf-8")
    chart(res, args.out.with_suffix(".png"))
    log(f"wrote {args.out} and {args.out.with_suffix('.png')} in {res['duration']:.0f}s")
    print(report(res))
    return 0


def run_all(b: Bench, runs: int, outage_s: float) -> dict[str, Any]:
    r: dict[str, Any] = {}
    bases = iter(range(1_600_000_000, 4_000_000_000, 400 * DAY))
    ceil_broker = {1: Figure(), 12: Figure()}
    ceil_influx = {1: Figure(), 12: Figure()}
    ingest = {1: Figure(), 12: Figure()}
    sizes = {1: 600, 12: 200}  # messages per ship: 60,000 and 20,000 messages
    log("ceilings (no bridge running)")
    for _ in range(runs):
        for readings in (1, 12):
            ceil_broker[readings].add(broker_ceiling(b, sizes[readings], readings, next(bases)))
            ceil_influx[readings].add(influx_ceiling(b, sizes[readings], readings, next(bases)))
    bridge = b.start_bridge()
    assert bridge.pid is not None
    b.start_query()
    log("ingest through the pipeline")
    with sampling(bridge.pid) as load_rss:
        for _ in range(runs):
            for readings in (1, 12):
                ingest[readings].add(pipeline(b, sizes[readings], readings, next(bases)))
        log("latency at 1,000 readings/s")
        p50, p99 = Figure(), Figure()
        for _ in range(runs):
            lat = latency(b, next(bases))
            p50.add(pct(lat, 50))
            p99.add(pct(lat, 99))
        log("24-hour backlog from 100 ships")
        back = {1: Figure(), 12: Figure()}
        for _ in range(runs):
            for readings in (12, 1):
                back[readings].add(backlog(b, next(bases), readings))
    r.update(ceil_broker=ceil_broker, ceil_influx=ceil_influx, ingest=ingest, p50=p50, p99=p99,
             backlog=back, load_rss_peak=max(k for _, k in load_rss),
             load_rss_start=load_rss[0][1])
    r["ratio"] = {n: Figure([i / min(c, f) for i, c, f in zip(
        ingest[n].values, [x * n for x in ceil_broker[n].values], ceil_influx[n].values,
        strict=True)]) for n in (1, 12)}

    r.update(run_queries(b, runs))

    log(f"bridge memory through a {outage_s:.0f}-second InfluxDB outage")
    samples = outage(b, next(bases), outage_s)
    r["outage"] = samples
    r["outage_s"] = outage_s

    # Last, as it leaves the single bridge's session queuing what the pair stores.
    log("ingest, 12 readings per message, two bridges in a shared group")
    r["ingest_shared"] = two_bridges(b, runs, sizes[12], bases)
    return r


def two_bridges(b: Bench, runs: int, per_ship: int, bases: Iterator[int]) -> Figure:
    """The 12-readings ingest with the load split by ``[bridge] shared_group`` over two
    processes, the way to use a second core (one bridge is bound to one by Python's GIL)."""
    if b.bridge is not None:
        b.bridge.stop(timeout=20)
    pair = []
    try:
        for i in range(2):
            env = {**b.env, "FLEET_BRIDGE_CLIENT_ID": f"bench-shared-{i}",
                   "FLEET_BRIDGE_SHARED_GROUP": "bench", "FLEET_BRIDGE_METRICS_PORT": "0"}
            pair.append(bridge_service(load_config(env=env), env).start(timeout=60))
        return Figure([pipeline(b, per_ship, 12, next(bases)) for _ in range(runs)])
    finally:
        for svc in pair:
            svc.stop(timeout=20)


def run_queries(b: Bench, runs: int) -> dict[str, Any]:
    """The query measurements (the query service must be running)."""
    r: dict[str, Any] = {}
    log("queries")
    preload_queries(b)
    cases = query_cases(b)
    r["fleet_http"] = endpoint_exists(cases[-1].http[0], b.headers)
    qres: dict[str, dict[str, Figure]] = {}
    for case in cases:
        figs = {k: Figure() for k in ("http_p50", "http_p99", "http_rps", "seq_p50", "seq_p99",
                                       "influx_p50", "influx_p99", "influx_rps",
                                       "influx_seq_p50", "influx_seq_p99")}
        for _ in range(runs):
            if case.http and (r["fleet_http"] or not case.name.startswith("fleet")):
                lat1, _ = asyncio.run(hammer(case.http, 1.0, 1, b.headers))
                figs["seq_p50"].add(pct(lat1, 50))
                figs["seq_p99"].add(pct(lat1, 99))
                lat, rps = asyncio.run(hammer(case.http, 2.0, 16, b.headers))
                figs["http_p50"].add(pct(lat, 50))
                figs["http_p99"].add(pct(lat, 99))
                figs["http_rps"].add(rps)
            lat1, _ = asyncio.run(hammer(case.influx, 1.0, 1))
            figs["influx_seq_p50"].add(pct(lat1, 50))
            figs["influx_seq_p99"].add(pct(lat1, 99))
            lat, rps = asyncio.run(hammer(case.influx, 2.0, 16))
            figs["influx_p50"].add(pct(lat, 50))
            figs["influx_p99"].add(pct(lat, 99))
            figs["influx_rps"].add(rps)
        qres[case.name] = figs
    r["queries"] = qres
    return r


def report(r: dict[str, Any]) -> str:
    ing, cb, ci, ratio = r["ingest"], r["ceil_broker"], r["ceil_influx"], r["ratio"]
    lines = [
        "# Benchmark results",
        "",
        f"Reproduce with `make bench` (`python -m bench --runs {r['runs']}`); this run took "
        f"{r['duration']:.0f} s on {os.cpu_count()} cores. Figures: median (min..max) over "
        f"{r['runs']} runs, each next to the ceilings measured in the same run.",
        "",
        "## Ingest (QoS 1, 100 ships, stored and queryable)",
        "",
        "| readings per message | pipeline, readings/s | broker ceiling (bare paho subscriber), "
        "readings/s | InfluxDB ceiling (batches of 5,000), points/s | pipeline / lower ceiling "
        "| target |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for n, target in ((1, f">= {TARGET_INGEST_RATIO:.0%} of the paho ceiling"),
                      (12, f">= {TARGET_INGEST_12:,} readings/s")):
        broker_readings = Figure([v * n for v in cb[n].values])
        lines.append(f"| {n} | {ing[n].fmt()} | {broker_readings.fmt()} | {ci[n].fmt()} | "
                     f"{ratio[n].fmt('', 2)} | {target} |")
    if "ingest_shared" in r:
        lines.append(f"| 12, two bridges (`[bridge] shared_group`) | {r['ingest_shared'].fmt()} "
                     f"| | | | >= {TARGET_INGEST_12:,} readings/s |")
    lines += [
        "",
        "## Latency (PUBACK to queryable, 1,000 single-reading messages/s from 100 ships)",
        "",
        "| p50 | p99 | target |",
        "| --- | --- | --- |",
        f"| {r['p50'].fmt(' ms', 0, 1000)} | {r['p99'].fmt(' ms', 0, 1000)} | p99 < "
        f"{TARGET_LATENCY_P99 * 1000:.0f} ms |",
        "",
        "## Backlog (100 ships back from a 24-hour outage, 5-minute readings: 28,800 readings)",
        "",
        "| sent as | time until all stored | target |",
        "| --- | --- | --- |",
        f"| 12 readings per message (2,400 messages) | {r['backlog'][12].fmt(' s', 2)} | "
        f"< {TARGET_BACKLOG_S:.0f} s |",
        f"| 1 reading per message (28,800 messages) | {r['backlog'][1].fmt(' s', 2)} | "
        f"< {TARGET_BACKLOG_S:.0f} s |",
        "",
    ]
    lines += query_table(r)
    samples = r["outage"]
    during = [k for t, k in samples if 0 <= t <= r["outage_s"]]
    settle = [k for t, k in samples if 10 <= t <= r["outage_s"]]
    lines += [
        "",
        "## Bridge memory (RSS)",
        "",
        "| condition | RSS |",
        "| --- | --- |",
        f"| start of the load runs | {r['load_rss_start'] / 1024:.1f} MiB |",
        f"| peak under full load (ingest, latency, backlog runs) | "
        f"{r['load_rss_peak'] / 1024:.1f} MiB |",
        f"| {r['outage_s']:.0f}-second InfluxDB outage at 2,000 msgs/s: at 10 s / peak / end | "
        f"{(settle[0] if settle else 0) / 1024:.1f} / {max(during, default=0) / 1024:.1f} / "
        f"{(during[-1] if during else 0) / 1024:.1f} MiB |",
        f"| growth from 10 s into the outage to its peak (target: within 20%) | "
        f"{(max(settle) / settle[0] - 1) * 100 if settle else float('nan'):+.1f}% |",
        "",
    ]
    lines += verdicts(r, (max(settle) / settle[0] - 1) if settle else float("nan"))
    return "\n".join(lines)


def verdicts(r: dict[str, Any], growth: float) -> list[str]:
    """Each target, met or missed, and by how much (medians)."""
    q = r["queries"]
    one_day = q.get("ship 1-day 15m", {})
    fleet = q.get("fleet 30-day daily totals, 100 ships", {})
    rate_1d = (Figure([h / i for h, i in zip(one_day["http_rps"].values,
                                              one_day["influx_rps"].values, strict=False)])
               if one_day and one_day["http_rps"].values else Figure())
    rows: list[tuple[str, float, float, bool]] = [
        # (what, measured, target, higher is better)
        ("ingest, 1 reading/msg, ratio to the lower ceiling", r["ratio"][1].median,
         TARGET_INGEST_RATIO, True),
        ("ingest, 12 readings/msg, readings/s (one bridge)", r["ingest"][12].median,
         TARGET_INGEST_12, True),
    ]
    if "ingest_shared" in r:
        rows.append(("ingest, 12 readings/msg, readings/s (two bridges)",
                     r["ingest_shared"].median, TARGET_INGEST_12, True))
    rows += [
        ("latency p99, ms", r["p99"].median * 1000, TARGET_LATENCY_P99 * 1000, False),
        ("24-hour backlog, 1 reading/msg, s", r["backlog"][1].median, TARGET_BACKLOG_S, False),
    ]
    if one_day:
        rows += [("1-day series p99 (1 client), ms", one_day["seq_p99"].median * 1000,
                  TARGET_QUERY_1D_P99_MS, False),
                 ("1-day series, HTTP rate / InfluxDB rate", rate_1d.median, 0.5, True)]
    if fleet and fleet["seq_p50"].values:
        rows.append(("fleet 30-day totals (1 client p50), ms", fleet["seq_p50"].median * 1000,
                     TARGET_FLEET_30D_MS, False))
    rows.append(("bridge memory growth through the outage, %", growth * 100, 20.0, False))
    lines = ["## Targets", "", "| target | measured | goal | verdict |", "| --- | --- | --- | --- |"]
    for what, value, goal, higher in rows:
        met = value >= goal if higher else value <= goal
        off = abs(value / goal - 1) * 100 if goal else float("nan")
        verdict = "met" if met else f"missed by {off:.0f}%"
        lines.append(f"| {what} | {value:,.2f} | {'>=' if higher else '<='} {goal:,.2f} "
                     f"| {verdict} |")
    lines += [
        "",
        "What is in the way where a target is missed: one bridge is one Python process, held",
        "to about one core by the GIL, and during the ingest runs the two cores are saturated",
        "(bridge ~90%, publishers ~50%, Mosquitto ~35%, InfluxDB ~20%). A py-spy profile of the",
        "bridge's GIL holders at 12 readings per message (`py-spy record --gil -p <bridge pid>`",
        "during `python -m bench --only ingest`): 77% in paho's network thread, of which paho",
        "decoding MQTT 5 packets and properties is about 15% and our callback 49% (validating and",
        "normalizing 23%, line protocol 6%); 15% the writer thread (acknowledgements, the energy",
        "topic). Two bridges in a shared group use the second core (row above).",
        "",
    ]
    return lines


def query_table(r: dict[str, Any]) -> list[str]:
    lines = [
        "## Queries (15-minute series; 16 concurrent clients unless noted)",
        "",
        "| query | HTTP, 1 client p50 / p99 | InfluxDB, 1 client p50 / p99 | HTTP p50 / p99 "
        "| HTTP req/s | InfluxDB p50 / p99 | InfluxDB req/s | HTTP / InfluxDB rate |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, f in r["queries"].items():
        rate = (Figure([h / i for h, i in zip(f["http_rps"].values, f["influx_rps"].values,
                                              strict=False)])
                if f["http_rps"].values else Figure())
        lines.append(
            f"| {name} | {f['seq_p50'].fmt(' ms', 1, 1000)} / {f['seq_p99'].fmt(' ms', 1, 1000)} "
            f"| {f['influx_seq_p50'].fmt(' ms', 1, 1000)} / "
            f"{f['influx_seq_p99'].fmt(' ms', 1, 1000)} | {f['http_p50'].fmt(' ms', 1, 1000)} / "
            f"{f['http_p99'].fmt(' ms', 1, 1000)} | "
            f"{f['http_rps'].fmt()} | {f['influx_p50'].fmt(' ms', 1, 1000)} / "
            f"{f['influx_p99'].fmt(' ms', 1, 1000)} | {f['influx_rps'].fmt()} | "
            f"{rate.fmt('', 2)} |")
    if not r["fleet_http"]:
        lines.append("")
        lines.append("GET /v1/fleet/energy did not answer 200 in this run: fleet totals were "
                     "measured through InfluxQL only.")
    return lines


def chart(r: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib as mpl  # noqa: PLC0415 - optional dependency (the bench extra)
        mpl.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        log("matplotlib is missing (pip install -e '.[bench]'): no chart")
        return
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    ax = axes[0]
    labels = ["1 reading/msg", "12 readings/msg"]
    xs = range(2)
    for off, (name, vals) in enumerate((
            ("pipeline", [r["ingest"][n].median for n in (1, 12)]),
            ("broker ceiling", [r["ceil_broker"][n].median * n for n in (1, 12)]),
            ("InfluxDB ceiling", [r["ceil_influx"][n].median for n in (1, 12)]))):
        ax.bar([x + (off - 1) * 0.27 for x in xs], vals, 0.27, label=name)
    ax.set_xticks(list(xs), labels)
    ax.set_ylabel("readings per second")
    ax.set_yscale("log")
    ax.set_title("Ingest, 100 ships, QoS 1")
    ax.legend()
    ax = axes[1]
    names = list(r["queries"])
    http = [r["queries"][n]["http_rps"].median for n in names]
    influx = [r["queries"][n]["influx_rps"].median for n in names]
    ys = range(len(names))
    ax.barh([y + 0.2 for y in ys], influx, 0.4, label="InfluxDB direct")
    ax.barh([y - 0.2 for y in ys], http, 0.4, label="query service")
    ax.set_yticks(list(ys), names)
    ax.set_xlabel("requests per second (16 clients)")
    ax.set_title("Queries")
    ax.legend()
    ax = axes[2]
    ts = [t for t, _ in r["outage"]]
    ax.plot(ts, [k / 1024 for _, k in r["outage"]])
    ax.axvspan(0, r["outage_s"], alpha=0.15, color="red", label="InfluxDB frozen")
    ax.set_xlabel("seconds")
    ax.set_ylabel("bridge RSS, MiB")
    ax.set_ylim(bottom=0)
    ax.set_title("Bridge memory through an outage")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
