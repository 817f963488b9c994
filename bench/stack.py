"""The benchmark's private stack: Mosquitto, InfluxDB, the bridge (real or a ceiling variant) and
the query service on free loopback ports under a temporary directory, and the ways the
measurements drive it (publisher processes, the stop rule, metrics, InfluxDB reads and writes).

The only module of the benchmark that imports the launcher's process helpers.
"""

from __future__ import annotations

import bisect
import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bench.load import WINDOW_S, run_base
from bench.stats import ShortfallError, log
from fleet import topics
from fleet.accounts import Accounts
from fleet.config import Config, load_config
from fleet.mqttclient import plain_client
from fleet.timeutil import format_datetime
from launcher.servers import (
    REPO_ROOT,
    Service,
    bridge_service,
    broker_dir,
    free_port,
    influxd_service,
    isolated_overrides,
    mosquitto_service,
    query_service,
    tcp_ready,
)

SHIPS = 100
BRIDGE_KINDS = {
    "pipeline": ["-m", "bridge"],
    "nocoarse": ["-m", "bench.nocoarse"],        # keeps no coarse series (bench.history)
    "null": ["-m", "bench.nullbridge"],          # normalizes, writes nothing
    "raw": ["-m", "bench.nullbridge", "--raw"],  # neither normalizes nor writes
}


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
    headers: dict[str, str] = field(default_factory=dict)  # the query service's bearer token
    bridge: Service | None = None
    bridge_kind: str = ""
    bridge_id: str = ""
    query: Service | None = None
    _started: int = 0
    _runs: int = 0

    def new_base(self, offset_s: int = 0) -> int:
        """A time range no other run of this bench has used (400 days from the returned start)."""
        self._runs += 1
        return run_base(self._runs, offset_s)

    # -- processes ---------------------------------------------------------------------------

    def start_bridge(self, kind: str = "pipeline", *, client_id: str | None = None,
                     **env: str) -> Service:
        """A bridge process of ``kind`` (see BRIDGE_KINDS); a fresh session unless ``client_id``
        names one kept from before (the backlog)."""
        if self.bridge is not None:
            self.stop_bridge()
        self._started += 1
        cid = client_id or f"bench-bridge-{self._started}"
        benv = {**self.env, "FLEET_BRIDGE_CLIENT_ID": cid, **env}
        svc = bridge_service(load_config(env=benv), benv)
        svc.argv = [sys.executable, *BRIDGE_KINDS[kind]]
        self.bridge, self.bridge_kind, self.bridge_id = svc.start(timeout=60), kind, cid
        return svc

    def stop_bridge(self, *, forget: bool = True) -> None:
        """Stop the bridge; with ``forget`` its session goes too, so nothing queues for it."""
        if self.bridge is None:
            return
        with contextlib.suppress(Exception):
            self.bridge.signal(signal.SIGCONT)
        self.bridge.stop(timeout=30)
        if forget:
            self.forget_session(self.bridge_id)
        self.bridge = None

    def start_group(self, n: int, env: dict[str, str]) -> list[Service]:
        """``n`` pipeline bridges (one ``[bridge] shared_group`` when n > 1) besides the main one
        (which must be stopped); stop them with :meth:`stop_group`."""
        group = []
        for i in range(n):
            benv = {**self.env, "FLEET_BRIDGE_CLIENT_ID": f"bench-group-{i}",
                    "FLEET_BRIDGE_METRICS_PORT": "0", **env}
            if n > 1:
                benv["FLEET_BRIDGE_SHARED_GROUP"] = "bench"
            group.append(bridge_service(load_config(env=benv), benv).start(timeout=60))
        return group

    def stop_group(self, group: list[Service]) -> None:
        for i, svc in enumerate(group):
            svc.stop(timeout=30)
            self.forget_session(f"bench-group-{i}")

    def forget_session(self, client_id: str) -> None:
        """Connect as ``client_id`` with a clean start and no expiry: the broker drops its
        session and whatever was queued for it."""
        done = threading.Event()
        client = plain_client(client_id, username=self.cfg.mqtt.username,
                              password=self.cfg.mqtt.password or None)
        client.on_connect = lambda *_a: done.set()
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 0
        client.connect(self.cfg.mqtt.host, self.cfg.mqtt.port, clean_start=True, properties=props)
        client.loop_start()
        try:
            if not done.wait(20):
                raise ShortfallError(f"could not clear the session of {client_id}")
        finally:
            client.disconnect()
            client.loop_stop()

    def start_query(self, *, gunicorn_workers: int = 0) -> Service:
        """The query service; with ``gunicorn_workers``, as docker-compose runs it."""
        if self.query is not None:
            self.query.stop(timeout=20)
        if not gunicorn_workers:
            self.query = query_service(self.cfg, self.env).start(timeout=60)
            return self.query
        prom = self.root / "prometheus"
        prom.mkdir(exist_ok=True)
        for f in prom.iterdir():
            f.unlink()
        env = {**self.env, "PROMETHEUS_MULTIPROC_DIR": str(prom)}
        argv = [sys.executable, "-m", "gunicorn", "query_service.main:gunicorn_app",
                "--worker-class", "aiohttp.GunicornWebWorker", "--workers", str(gunicorn_workers),
                "--bind", f"{self.cfg.http.host}:{self.cfg.http.port}"]
        self.query = Service("gunicorn", argv, self.root / "logs" / "gunicorn.log",
                             tcp_ready(self.cfg.http.host, self.cfg.http.port), env=env)
        self.query.start(timeout=60)
        return self.query

    def stop(self) -> None:
        self.stop_bridge(forget=False)
        for svc in (self.query, self.broker, self.influx):
            if svc is not None:
                with contextlib.suppress(Exception):
                    svc.signal(signal.SIGCONT)
                svc.stop(timeout=20)

    # -- InfluxDB ----------------------------------------------------------------------------

    def influxql(self, q: str) -> list[dict[str, Any]]:
        data = urllib.parse.urlencode({"q": q, "db": self.cfg.influxdb.database, "epoch": "u"})
        url = f"{self.cfg.influxdb.url}/query?{data}"
        with urllib.request.urlopen(url, timeout=60) as resp:  # noqa: S310 - our loopback URL
            return list(json.loads(resp.read())["results"])

    def count(self, start_s: int, end_s: int) -> int:
        """Points stored in [start, end)."""
        rp = self.cfg.influxdb.retention_policy
        res = self.influxql(f"SELECT count(kwh) FROM {rp}.energy WHERE time >= {start_s}s "
                            f"AND time < {end_s}s")
        series = res[0].get("series")
        return int(series[0]["values"][0][1]) if series else 0

    def stored_watch(self, start_s: int, end_s: int, seconds: float) -> StoredWatch:
        """A :class:`StoredWatch` over [start, end) whose run measures ``seconds`` in all (the
        sum of its readings' intervals), subscribed; close it after the run."""
        return StoredWatch(self, start_s, end_s, seconds)

    def wait_stored(self, what: str, start_s: int, end_s: int, expected: int,
                    timeout: float, watch: StoredWatch | None = None) -> float:
        """The stop rule: wall-clock time when InfluxDB holds exactly ``expected`` points in
        [start, end). A timeout, or more points than the payloads make, fails the run.

        Without ``watch`` InfluxDB is asked every 20 ms. A count over the run's points costs
        InfluxDB about 35 ms at 240,000 of them (measured here), so that probe kept InfluxDB
        more than half a core busy beside the pipeline it measured. With ``watch`` InfluxDB is
        asked once the bridges have announced every point on the energy topic (which they
        publish only after the write holding them succeeded: the watch sums the seconds they
        cover), and every 2 s before that as a backstop; the time returned is still that of a
        count that found every point or of the announcement that preceded it. A watch that
        never reaches its total would leave the stop rule to the backstop, which measures in
        steps of 2 s: a run is then reported as failed rather than timed that way."""
        deadline = time.monotonic() + timeout
        got = 0
        announced: float | None = None
        while time.monotonic() < deadline:
            # The announcement's time stands only if the first count after it finds every
            # point; a count that must be repeated gives its own time.
            fresh = announced is None and watch is not None
            if fresh and watch is not None:
                announced = watch.reached_at()
            checked = time.time()
            got = self.count(start_s, end_s)
            if got == expected:
                if fresh and announced is None and watch is not None:
                    # Stored before its announcement reached the watch (a notice leaves after
                    # the write): the earlier of the two times. A watch that never gets there
                    # miscounts, and would leave the run timed by the 2 s backstop.
                    watch.wait(5.0)
                    announced = watch.reached_at()
                    if announced is None:
                        raise ShortfallError(
                            f"{what}: every point is stored but the energy topic announced "
                            f"{watch.announced():,.0f} of {watch.seconds:,.0f} s of readings")
                    return min(announced, checked)
                return announced if fresh and announced is not None else checked
            if got > expected:
                raise ShortfallError(f"{what}: {got:,} points stored, the payloads make only "
                                     f"{expected:,}")
            if watch is None or announced is not None:
                time.sleep(0.02)
            else:
                watch.wait(min(2.0, max(0.0, deadline - time.monotonic())))
        raise ShortfallError(f"{what}: {got:,} of {expected:,} points stored after {timeout:.0f} s "
                             f"({expected - got:,} missing)")

    def writer(self) -> InfluxWriter:
        return InfluxWriter(self.cfg)

    # -- the bridge's metrics ----------------------------------------------------------------

    def bridge_metrics(self) -> dict[str, float]:
        """Every sample of the bridge's /metrics as ``name{labels}`` -> value."""
        port = self.env["FLEET_BRIDGE_METRICS_PORT"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                    timeout=5) as resp:
            out = {}
            for row in resp.read().decode().splitlines():
                if row and not row.startswith("#"):
                    key, _, value = row.rpartition(" ")
                    out[key] = float(value)
            return out

    # -- publishers in their own processes ---------------------------------------------------

    def publish(self, *, per_ship: int, readings: int, base: int, step: int | None = None,
                procs: int = 2,
                rate: float | None = None, window: int = 200, timeout: float = 300,
                after_ready: Callable[[], None] | None = None) -> list[dict[str, Any]]:
        """Publish from all ships split over ``procs`` processes started together; every
        message must be acknowledged by the broker."""
        children = []
        for k in range(procs):
            spec = {"host": "127.0.0.1", "port": self.cfg.mqtt.port, "accounts": self.ships[k::procs],
                    "per_ship": per_ship, "readings": readings, "base": base, "window": window,
                    "step": step,
                    "rate": rate / procs if rate else None, "timeout": timeout}
            children.append(subprocess.Popen(
                [sys.executable, "-m", "bench.pub", json.dumps(spec)], cwd=REPO_ROOT, env=self.env,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
        for child in children:
            assert child.stdout is not None
            if child.stdout.readline().strip() != "ready":
                raise ShortfallError("a publisher process did not connect its ships")
        if after_ready:
            after_ready()
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        out = []
        for child in children:
            stdout, _ = child.communicate(timeout=timeout + 60)
            out.append(json.loads(stdout.strip().splitlines()[-1]))
        acked, total = sum(p["acked"] for p in out), sum(p["total"] for p in out)
        if acked != total:
            raise ShortfallError(f"publishers: {acked:,} of {total:,} messages acknowledged by "
                                 f"the broker ({total - acked:,} missing)")
        return out


class InfluxWriter:
    """Line protocol to /write over one keep-alive connection (as the bridge's client)."""

    def __init__(self, cfg: Config) -> None:
        url = urllib.parse.urlsplit(cfg.influxdb.url)
        self.conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port or 8086,
                                               timeout=60)
        self.path = (f"/write?db={cfg.influxdb.database}&rp={cfg.influxdb.retention_policy}"
                     "&precision=ns")

    def write(self, body: bytes) -> None:
        self.conn.request("POST", self.path, body=body)
        resp = self.conn.getresponse()
        answer = resp.read()
        if resp.status != 204:
            raise ShortfallError(f"InfluxDB answered {resp.status} to a write: {answer[:200]!r}")

    def close(self) -> None:
        self.conn.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (and its reaped children) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(int(fields[k]) for k in (11, 12, 13, 14)) / ticks


def rss_kib(pid: int) -> int:
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith("VmRSS:"):
            return int(row.split()[1])
    return 0


class Announced:
    """Seconds of measuring in [start, end) that energy notices have announced, summed (each
    window's ``coverage`` x 900), with the wall-clock time each new total was reached.

    Seconds, not windows: a notice names each 15-minute window a batch touched once, with the
    coverage its parts add, however many parts (points) it holds. Five-minute readings make three
    points a window, announced in up to three notices. A redelivered batch is announced again, so
    the total can run ahead of what is stored; :meth:`Bench.wait_stored` confirms with a count."""

    def __init__(self, start_s: int, end_s: int, seconds: float) -> None:
        # Window starts are whole seconds, written by format_datetime in one fixed-width form,
        # so the strings compare as the times do, and the watch parses none of the tens of
        # thousands of window times a run announces (a watch that falls behind delays the rule).
        # A window is named by its start: one starting before ``start_s`` holds the run's first
        # part when the run starts off the 15-minute grid.
        first = start_s - start_s % WINDOW_S
        self._lo, self._hi = format_datetime(first * 1_000_000), format_datetime(end_s * 1_000_000)
        self.seconds = seconds  # what every point of the run announces
        self._totals: list[float] = []  # running total of announced seconds, per notice
        self._times: list[float] = []   # when each total was reached
        self._cond = threading.Condition()

    def add(self, doc: dict[str, Any], now: float) -> None:
        lo, hi = self._lo, self._hi
        seconds = WINDOW_S * sum(w["coverage"] for w in doc.get("windows", ())
                                 if lo <= w["time"] < hi)
        if not seconds:
            return
        with self._cond:
            self._totals.append((self._totals[-1] if self._totals else 0.0) + seconds)
            self._times.append(now)
            self._cond.notify_all()

    def _reached(self) -> int:
        """Index of the first total within rounding of :attr:`seconds` or past it, else -1."""
        k = bisect.bisect_left(self._totals, self.seconds * (1 - 1e-9))
        return k if k < len(self._totals) else -1

    def reached_at(self) -> float | None:
        """When the announced seconds first reached :attr:`seconds`; None while short of it."""
        with self._cond:
            k = self._reached()
            return self._times[k] if k >= 0 else None

    def announced(self) -> float:
        with self._cond:
            return self._totals[-1] if self._totals else 0.0

    def wait(self, timeout: float) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._reached() >= 0, timeout)


class StoredWatch(Announced):
    """:class:`Announced` fed by a subscriber to ``fleet/ships/+/energy``: a probe of the stop
    rule that costs InfluxDB nothing (:meth:`Bench.wait_stored`)."""

    def __init__(self, b: Bench, start_s: int, end_s: int, seconds: float) -> None:
        super().__init__(start_s, end_s, seconds)
        subscribed = threading.Event()
        password = b.accounts.ensure_service("fleet-query", "query")
        self._client = plain_client(f"bench-watch-{os.getpid()}-{time.monotonic_ns()}",
                                    username="fleet-query", password=password)
        self._client.on_connect = lambda c, *_a: c.subscribe(topics.energy("+"), qos=1)
        self._client.on_subscribe = lambda *_a: subscribed.set()
        self._client.on_message = lambda _c, _u, msg: self.add(orjson.loads(msg.payload),
                                                               time.time())
        self._client.connect(b.cfg.mqtt.host, b.cfg.mqtt.port)
        self._client.loop_start()
        if not subscribed.wait(20):
            self.close()
            raise ShortfallError("the stored-points watch could not subscribe to the energy topic")

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def __enter__(self) -> StoredWatch:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def start(root: Path) -> Bench:
    # The fleet's zone is Oslo: bench.history's calendar rows read the daily series kept in it.
    env = {**isolated_overrides(root), "FLEET_BRIDGE_PUBLISH_ENERGY": "true",
           "FLEET_QUERY_TIMEZONE": "Europe/Oslo"}
    cfg = load_config(env=env)
    accounts = Accounts(broker_dir(cfg))
    env["FLEET_MQTT_USERNAME"] = "fleet-bridge"
    env["FLEET_MQTT_PASSWORD"] = accounts.ensure_service("fleet-bridge", "bridge")
    # The query service's own account, as make run provisions it: with it the service follows the
    # energy topic and keeps its cache of recent answers (without it the cache stays off).
    accounts.ensure_service("fleet-query", "query")
    # The bench's own processes (publishers, agents, the null bridge) import it from the tree.
    env = {**os.environ, **env, "PYTHONPATH": str(REPO_ROOT)}
    cfg = load_config(env=env)
    ships = [(f"bench-{k:03d}", accounts.add_ship(f"bench-{k:03d}")) for k in range(SHIPS)]
    operator = ("bench-operator", accounts.add_operator("bench-operator"))
    headers: dict[str, str] = {}
    try:
        from fleet.tokens import TokenStore, tokens_path  # noqa: PLC0415 - moves with rooms

        headers["Authorization"] = "Bearer " + TokenStore(tokens_path(cfg.local.path)).create("bench")
    except ImportError:
        env["FLEET_HTTP_AUTH"] = "none"
    influx = influxd_service(cfg).start(timeout=60)
    broker = mosquitto_service(cfg).start(timeout=30)
    b = Bench(root, env, cfg, accounts, influx, broker, ships, operator, headers=headers)
    # The database must exist before direct writes; the bridge would create it too.
    b.influxql(f'CREATE DATABASE "{cfg.influxdb.database}"')
    b.influxql(f'CREATE RETENTION POLICY "{cfg.influxdb.retention_policy}" ON '
               f'"{cfg.influxdb.database}" DURATION INF REPLICATION 1 DEFAULT')
    log(f"stack up under {root} (mosquitto pid {broker.pid}, influxd pid {influx.pid})")
    return b


__all__ = ["SHIPS", "Bench", "InfluxWriter", "cpu_seconds", "free_port", "rss_kib", "start"]
