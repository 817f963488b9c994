"""The scale-out benchmark rows (N partitioned bridges, the query cache), in the shape of the
benchmark's structure (bench/ingest.py, bench/queries.py):

- :data:`WORKER_CASES`: ingest rows at 12 readings per message through N bridges started the way
  ``make run`` starts them (``[bridge] workers``: plain subscriptions, ships split by CRC-32),
  to append to ``bench.ingest.INGEST_CASES`` beside its one-bridge and shared-group rows;
- :func:`run_cache_queries`: the 1-day ship series through the query service with its cache on
  and off (``[http] cache_entries``), at 1 and 16 clients, as ``bench.queries`` measures the
  other sides (InfluxDB's own rate for the same InfluxQL is its ``influx`` side).

Alone (a private stack on free ports, a few minutes): ``python -m bench.scale [--runs N]``.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from bench.ingest import INGEST_CASES, IngestCase, run_ingest
from bench.queries import QUERY_CASES, QueryEnv, QueryRow, _targets, preload, wrk
from bench.stack import Bench, start
from bench.stats import Figure, log
from fleet.config import load_config
from launcher.bridges import bridge_services, forget_session


def partitioned(workers: int) -> Callable[[Bench, IngestCase], contextlib.AbstractContextManager[None]]:
    """An ``IngestCase.around``: ``workers`` partitioned bridges in place of the pipeline bridge."""
    @contextlib.contextmanager
    def around(b: Bench, _case: IngestCase) -> Iterator[None]:
        b.stop_bridge()
        env = {**b.env, "FLEET_BRIDGE_CLIENT_ID": f"bench-workers-{b.new_base()}",
               "FLEET_BRIDGE_METRICS_PORT": "0"}
        cfg = load_config(env=env)
        services = bridge_services(cfg, env, workers)  # fresh sessions: no handoff needed
        try:
            for svc in services:
                svc.start(timeout=60)
            yield
        finally:
            for svc in services:
                svc.stop(timeout=30)
                if svc.env is not None:
                    with contextlib.suppress(Exception):
                        forget_session(cfg, svc.env["FLEET_BRIDGE_CLIENT_ID"])
            b.start_bridge("pipeline")
    return around


WORKER_CASES: list[IngestCase] = [
    IngestCase("12 readings/msg, two bridges ([bridge] workers = 2)", 12, 200,
               around=partitioned(2)),
    IngestCase("12 readings/msg, three bridges ([bridge] workers = 3)", 12, 200,
               around=partitioned(3)),
]


def run_cache_queries(b: Bench, runs: int, quick: bool) -> dict[str, QueryRow]:
    """The 1-day ship series (20 different days of one ship, preloaded by ``bench.queries``),
    one query-service process with the cache ("cache") and without ("nocache"), and InfluxDB
    itself ("influx"); keys ``<side>/<clients>`` as in ``bench.queries.QueryRow``. Leaves no
    query service running."""
    warm, seconds = (1, 2) if quick else (2, 8)
    b.accounts.ensure_service("fleet-query", "query")  # the cache's broker account
    b.accounts.reload_broker()
    env = QueryEnv(b.cfg.influxdb.database, b.cfg.influxdb.retention_policy, b.ships[0][0],
                   len(b.ships))
    case = QUERY_CASES[0](env)
    assert case.name == "ship 1-day 15m", case.name
    row = QueryRow()
    saved = dict(b.env)
    try:
        for side, entries in (("cache", "4096"), ("nocache", "0"), ("influx", "")):
            if side == "influx":  # InfluxDB's own rate for the same InfluxQL, beside them
                if b.query is not None:
                    b.query.stop(timeout=20)
                    b.query = None
            else:
                b.env["FLEET_HTTP_CACHE_ENTRIES"] = entries
                b.start_query()
            base, paths, headers = _targets(b, case, "influx" if side == "influx" else "http")
            for clients in (1, 16):
                key = f"{side}/{clients}"
                for name in ("p50", "p99", "rps", "wrk_cpu"):
                    getattr(row, name).setdefault(key, Figure())
                for _ in range(runs):
                    wrk(b, base, paths, headers, clients, warm)  # also fills the cache
                    res = wrk(b, base, paths, headers, clients, seconds)
                    elapsed = res["duration_us"] / 1e6
                    row.p50[key].add(res["p50_us"] / 1e6)
                    row.p99[key].add(res["p99_us"] / 1e6)
                    row.rps[key].add(res["requests"] / elapsed)
                    row.wrk_cpu[key].add(res["cpu"] / elapsed)
                log(f"  {case.name} {key}: p99 {row.p99[key].median * 1000:.1f} ms, "
                    f"{row.rps[key].median:,.0f} req/s")
    finally:
        b.env.clear()
        b.env.update(saved)
        if b.query is not None:
            b.query.stop(timeout=20)
            b.query = None
    return {case.name: row}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", choices=("ingest", "query"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fleet-bench-scale-") as tmp:
        b = start(Path(tmp))
        try:
            if args.only != "query":
                # The one-bridge and shared-group rows at 12 readings/msg, then N partitioned.
                ones = [c for c in INGEST_CASES if c.readings == 12 and c.offset_s == 0]
                run_ingest(b, args.runs, args.quick, cases=[*ones, *WORKER_CASES])
            if args.only != "ingest":
                preload(b)
                run_cache_queries(b, args.runs, args.quick)
        finally:
            b.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
