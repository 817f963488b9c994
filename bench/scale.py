"""Issue 11's benchmark rows, as functions the benchmark's structure can call:

- :func:`ingest_bridges`: readings/s at 12 readings per message through N bridges started the
  way ``make run`` starts them (``[bridge] workers``: plain subscriptions, ships split by CRC-32),
  or through N members of a ``$share`` group (``shared=True``) for comparison;
- :func:`ship_series`: the 1-day ship series at 16 clients (and p99 at 1 client) through the query
  service with its cache on and off, next to InfluxDB's own rate for the same InfluxQL.

Alone (a private stack on free ports, about two minutes): ``python -m bench.scale [--runs N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.__main__ import Bench, hammer, pct, pipeline, preload_queries, query_cases, start
from fleet.config import load_config
from launcher.bridges import bridge_services, forget_session
from launcher.servers import Service, query_service


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ingest_bridges(b: Bench, workers: int, base: int, *, per_ship: int = 200,
                   shared: bool = False, cpu: list[float] | None = None) -> float:
    """Readings/s, 12 readings per message, with ``workers`` bridges (b.bridge must be stopped);
    each bridge's CPU seconds during the run are appended to ``cpu`` when given."""
    name = f"bench-{'shared' if shared else 'part'}-{workers}"
    env = {**b.env, "FLEET_BRIDGE_CLIENT_ID": name, "FLEET_BRIDGE_METRICS_PORT": "0"}
    if shared:
        env["FLEET_BRIDGE_SHARED_GROUP"] = "bench"
    cfg = load_config(env=env)
    services = bridge_services(cfg, env, workers)
    try:
        for svc in services:
            svc.start(timeout=60)
        pids = [svc.pid for svc in services if svc.pid is not None]
        before = [cpu_seconds(p) for p in pids]
        rate = pipeline(b, per_ship, 12, base)
        if cpu is not None:
            cpu.extend(cpu_seconds(p) - t for p, t in zip(pids, before, strict=True))
        return rate
    finally:
        for svc in services:
            svc.stop(timeout=20)
            if svc.env is not None:
                with contextlib.suppress(Exception):
                    forget_session(cfg, svc.env["FLEET_BRIDGE_CLIENT_ID"])


@contextlib.contextmanager
def _query(b: Bench, cache_entries: int) -> Iterator[Service]:
    env = {**b.env, "FLEET_HTTP_CACHE_ENTRIES": str(cache_entries)}
    svc = query_service(load_config(env=env), env).start(timeout=60)
    try:
        yield svc
    finally:
        svc.stop(timeout=20)


def ship_series(b: Bench, seconds: float = 2.0) -> dict[str, float]:
    """The 1-day ship series (20 different days of one ship, preloaded): requests/s at 16
    clients and p99 (ms) at 1 client, cache on and off, and InfluxDB's rate (b.query stopped)."""
    b.accounts.ensure_service("fleet-query", "query")  # the cache's broker account
    b.accounts.reload_broker()
    case = next(c for c in query_cases(b) if c.name == "ship 1-day 15m")
    out: dict[str, float] = {}
    for label, entries in (("cache", 4096), ("nocache", 0)):
        with _query(b, entries):
            asyncio.run(hammer(case.http, 0.5, 4, b.headers))  # warm up (fills the cache)
            lat1, _ = asyncio.run(hammer(case.http, seconds / 2, 1, b.headers))
            _, rps = asyncio.run(hammer(case.http, seconds, 16, b.headers))
            out[f"{label}_rps"] = rps
            out[f"{label}_p99_ms"] = pct(lat1, 99) * 1000
    _, out["influx_rps"] = asyncio.run(hammer(case.influx, seconds, 16))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--only", choices=("ingest", "query"))
    args = parser.parse_args()
    bases = iter(range(1_600_000_000, 4_000_000_000, 400 * 86400))
    with tempfile.TemporaryDirectory(prefix="fleet-bench-scale-") as tmp:
        b = start(Path(tmp))
        try:
            rows: dict[str, Any] = {}
            cases = (("1 bridge", 1, False), ("2 bridges", 2, False), ("3 bridges", 3, False),
                     ("2 in a $share group", 2, True))
            for label, workers, shared in cases if args.only != "query" else ():
                cpu: list[float] = []
                rows[label] = [round(ingest_bridges(b, workers, next(bases), shared=shared,
                                                    cpu=cpu)) for _ in range(args.runs)]
                print(f"ingest 12 readings/msg, {label}: {rows[label]} readings/s; bridge CPU "
                      f"s per run: {[round(c, 2) for c in cpu]}", flush=True)
            if args.only != "ingest":
                preload_queries(b)
            for _ in range(args.runs if args.only != "ingest" else 0):
                series = ship_series(b)
                print("1-day ship series: " + ", ".join(f"{k} {v:.1f}" for k, v in series.items()),
                      flush=True)
        finally:
            for svc in (b.query, b.bridge, b.broker, b.influx):
                if svc is not None:
                    with contextlib.suppress(Exception):
                        svc.signal(signal.SIGCONT)
                    svc.stop(timeout=20)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
