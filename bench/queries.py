"""Queries: the query service next to InfluxDB answering the same InfluxQL, under ``wrk``.

Each case is a set of HTTP paths and the InfluxQL statements the query service sends for them
(for the fleet query, both of its statements in one request). Every path is fetched once first and
its answer checked (status 200, the expected number of windows); under load every response's
status and body length is checked by wrk's Lua hook, and a run with a wrong answer fails.
wrk (closed loop: 1 connection, then 16 over 2 threads) warms up before each measured run; its
own CPU is reported beside. The query service runs as ``python -m query_service`` and, for the
16-connection rows, also under gunicorn with 4 aiohttp workers as docker-compose runs it.

Adding a query row: append a function to ``QUERY_CASES`` that takes a :class:`QueryEnv` and
returns a :class:`QueryCase` (paths, statements, expected windows per answer).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import history
from bench.stack import Bench
from bench.stats import Figure, ShortfallError, log
from fleet import coarse
from fleet.schema import FIELD_KWH, TAG_SHIP, Part, lines, quote_ident, source, window_query
from fleet.store import InfluxStore
from fleet.timeutil import US

DAY = 86400
QUERY_BASE = 1_514_764_800  # 2018-01-01T00:00:00Z: a year for ship 0, 30 days for the others


def iso(ts: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


@dataclass
class QueryEnv:
    db: str
    rp: str
    ship: str     # the ship with a year of data
    ships: int    # ships with 30 days
    names: tuple[str, ...] = ()  # every ship, in order


@dataclass
class QueryCase:
    name: str
    paths: list[str]        # query-service paths, round-robin
    statements: list[str]   # InfluxQL per path (";"-joined when the service sends several)
    windows: int            # windows each answer holds
    gunicorn: bool = True   # also measured under gunicorn
    influx_windows: int | None = None  # rows of InfluxDB's answer, when not ``windows``


def _ship_case(days: int) -> Callable[[QueryEnv], QueryCase]:
    def build(e: QueryEnv) -> QueryCase:
        # Different days so neither side answers from a cache; all within the loaded year.
        step = max(1, (365 - days) // 20)
        starts = [QUERY_BASE + d * DAY for d in range(0, 365 - days + 1, step)][:20]
        return QueryCase(
            f"ship {days}-day 15m",
            [f"/v1/ships/{e.ship}/energy?start={iso(s)}&end={iso(s + days * DAY)}&every=15m"
             for s in starts],
            [window_query(e.db, e.rp, e.ship, s * US, (s + days * DAY) * US, "15m")
             for s in starts],
            days * 96)
    return build


def _fleet_case(e: QueryEnv) -> QueryCase:
    lo, hi = QUERY_BASE * US, (QUERY_BASE + 30 * DAY) * US
    where = f"time >= {lo}u AND time < {hi}u"
    # The two statements of query_service.db.InfluxDB.fleet_windows.
    ships = (f"SELECT count(n) AS ships FROM (SELECT count({quote_ident(FIELD_KWH)}) AS n FROM "
             f"{source(e.db, e.rp)} WHERE {where} GROUP BY time(1d), {quote_ident(TAG_SHIP)} "
             f"fill(none)) WHERE {where} GROUP BY time(1d) fill(none)")
    return QueryCase(
        f"fleet 30-day daily totals, {e.ships} ships",
        [f"/v1/fleet/energy?start={iso(QUERY_BASE)}&end={iso(QUERY_BASE + 30 * DAY)}&every=1d"],
        [window_query(e.db, e.rp, None, lo, hi, "1d") + ";" + ships], 30)


QUERY_CASES: list[Callable[[QueryEnv], QueryCase]] = [
    _ship_case(1), _ship_case(30), _ship_case(365), _fleet_case, *history.QUERY_CASES,
]

SIDES = ("http", "influx", "gunicorn")


@dataclass
class QueryRow:
    p50: dict[str, Figure] = field(default_factory=dict)   # "side/clients" -> s
    p99: dict[str, Figure] = field(default_factory=dict)
    rps: dict[str, Figure] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)
    wrk_cpu: dict[str, Figure] = field(default_factory=dict)  # share of a core


def preload(b: Bench) -> None:
    """A year of 15-minute parts for ship 0, 30 days for the other 99."""
    writer = b.writer()
    batch: list[Part] = []
    try:
        for k, (ship, _) in enumerate(b.ships):
            for w in range((365 if k == 0 else 30) * 96):
                batch.append(Part(ship, (QUERY_BASE + w * 900) * US, (w % 11) * 0.5 + 1.0, 900.0))
                if len(batch) >= 5000:
                    writer.write(lines(batch).encode())
                    batch = []
        if batch:
            writer.write(lines(batch).encode())
    finally:
        writer.close()
    # Written around the bridge: bring the coarse series up to date (`fleetctl rollup rebuild`).
    store = InfluxStore(b.cfg.influxdb)
    try:
        coarse.ensure_policy(store)
        coarse.rebuild(store, coarse.fleet_zone(b.cfg), None, QUERY_BASE * US,
                       (QUERY_BASE + 366 * DAY) * US)
    finally:
        store.close()


def _get(url: str, headers: dict[str, str]) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers=headers)  # noqa: S310 - our loopback URL
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:  # noqa: S310
            return int(resp.status), bytes(resp.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


def _windows_http(body: bytes) -> int:
    doc = json.loads(body)
    for key in ("windows", "data", "series"):
        if isinstance(doc.get(key), list):
            return len(doc[key])
    raise ShortfallError(f"no windows in the query service's answer: {body[:200]!r}")


def _windows_influx(body: bytes) -> int:
    res = json.loads(body)["results"][0]
    if "error" in res:
        raise ShortfallError(f"InfluxDB refused a statement: {res['error']}")
    return sum(len(s["values"]) for s in res.get("series", []))


def _targets(b: Bench, case: QueryCase, side: str) -> tuple[str, list[str], dict[str, str]]:
    """Base URL, paths and headers of one side, after checking each answer once."""
    if side == "influx":
        base = b.cfg.influxdb.url.rstrip("/")
        paths = ["/query?" + urllib.parse.urlencode({"q": q, "db": b.cfg.influxdb.database,
                                                     "epoch": "u"}) for q in case.statements]
        headers: dict[str, str] = {}
    else:
        base = f"http://{b.cfg.http.host}:{b.cfg.http.port}"
        paths, headers = case.paths, b.headers
    for path in paths:
        status, body = _get(base + path, headers)
        if status != 200:
            raise ShortfallError(f"{case.name} ({side}): {status} for {path}: {body[:300]!r}")
        n = _windows_influx(body) if side == "influx" else _windows_http(body)
        want = case.windows
        if side == "influx" and case.influx_windows is not None:
            want = case.influx_windows
        if n != want:
            raise ShortfallError(f"{case.name} ({side}): {n} windows, expected {want}")
    return base, paths, headers


LUA = """
local paths = %(paths)s
local ok_len = %(lens)s
local headers = %(headers)s
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) good = 0; bad = 0; i = 0 end
function request()
  i = i %% #paths + 1
  return wrk.format("GET", paths[i], headers)
end
function response(status, hdrs, body)
  if status == 200 and ok_len[#body] then good = good + 1 else bad = bad + 1 end
end
function done(summary, latency, requests)
  local g, b = 0, 0
  for _, t in ipairs(threads) do g = g + t:get("good"); b = b + t:get("bad") end
  io.write(string.format('BENCHJSON {"good": %%d, "bad": %%d, "requests": %%d, '
    .. '"duration_us": %%d, "p50_us": %%d, "p99_us": %%d, "errors": %%d}\\n', g, b,
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout))
end
"""


def _lua_str(s: str) -> str:
    return json.dumps(s)  # a JSON string is a valid Lua string for these characters


def wrk(b: Bench, base: str, paths: list[str], headers: dict[str, str], clients: int,
        seconds: int) -> dict[str, Any]:
    """One wrk run; its JSON summary plus ``cpu`` (wrk's CPU seconds)."""
    lens: set[int] = set()
    for path in paths:
        lens.add(len(_get(base + path, headers)[1]))
    script = LUA % {
        "paths": "{" + ",".join(_lua_str(p) for p in paths) + "}",
        "lens": "{" + ",".join(f"[{n}]=true" for n in sorted(lens)) + "}",
        "headers": "{" + ",".join(f"[{_lua_str(k)}]={_lua_str(v)}" for k, v in headers.items())
                   + "}",
    }
    threads = 1 if clients == 1 else 2
    with tempfile.NamedTemporaryFile("w", suffix=".lua", dir=b.root, delete=False) as f:
        f.write(script)
    out = Path(f.name).with_suffix(".out")
    with out.open("w") as fh:
        proc = subprocess.Popen(["wrk", "-t", str(threads), "-c", str(clients), "-d",
                                 f"{seconds}s", "--timeout", "30s", "-s", f.name, base],
                                stdout=fh, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    text = out.read_text()
    found = [row for row in text.splitlines() if row.startswith("BENCHJSON ")]
    if proc.returncode != 0 or not found:
        raise ShortfallError(f"wrk failed ({proc.returncode}): {text[-500:]}")
    res: dict[str, Any] = json.loads(found[-1].split(" ", 1)[1])
    res["cpu"] = usage.ru_utime + usage.ru_stime
    return res


def run_queries(b: Bench, runs: int, quick: bool) -> dict[str, QueryRow]:
    warm, seconds = (1, 2) if quick else (2, 8)
    log("queries: preloading a year for one ship and 30 days for the others")
    preload(b)
    log("queries: preloading ten years for one ship and 2024 for every ship (calendar rows)")
    history.preload(b, quick)
    env = QueryEnv(b.cfg.influxdb.database, b.cfg.influxdb.retention_policy, b.ships[0][0],
                   len(b.ships), tuple(s for s, _ in b.ships))
    cases = [build(env) for build in QUERY_CASES]
    # BENCH_QUERY_CASES=calendar: only the calendar rows (bench/history.py), for a quick
    # before/after of them; any other value is a substring of the row names to keep.
    only = os.environ.get("BENCH_QUERY_CASES", "")
    if only:
        names = {build(env).name for build in history.QUERY_CASES} if only == "calendar" \
            else {c.name for c in cases if only in c.name}
        cases = [c for c in cases if c.name in names]
    rows: dict[str, QueryRow] = {c.name: QueryRow() for c in cases}
    for side in SIDES:
        if side != "influx":
            b.start_query(gunicorn_workers=4 if side == "gunicorn" else 0)
        for case in cases:
            if side == "gunicorn" and not case.gunicorn:
                continue
            base, paths, headers = _targets(b, case, side)
            for clients in ((16,) if side == "gunicorn" else (1, 16)):
                key = f"{side}/{clients}"
                row = rows[case.name]
                for name in ("p50", "p99", "rps", "wrk_cpu"):
                    getattr(row, name).setdefault(key, Figure())
                for _ in range(runs):
                    wrk(b, base, paths, headers, clients, warm)
                    res = wrk(b, base, paths, headers, clients, seconds)
                    if res["bad"] or res["errors"]:
                        raise ShortfallError(f"{case.name} ({key}): {res['bad']} wrong answers, "
                                             f"{res['errors']} errors of {res['requests']}")
                    if not res["requests"]:  # not one answer within the run: no figure
                        continue
                    elapsed = res["duration_us"] / 1e6
                    row.p50[key].add(res["p50_us"] / 1e6)
                    row.p99[key].add(res["p99_us"] / 1e6)
                    row.rps[key].add(res["requests"] / elapsed)
                    row.wrk_cpu[key].add(res["cpu"] / elapsed)
                    row.requests[key] = row.requests.get(key, 0) + int(res["requests"])
                if not row.p50[key].values:
                    log(f"  {case.name} {key}: no answer within {seconds} s")
                    continue
                log(f"  {case.name} {key}: p50 {row.p50[key].median * 1000:.1f} ms, p99 "
                    f"{row.p99[key].median * 1000:.1f} ms, {row.rps[key].median:,.0f} req/s "
                    f"(wrk {row.wrk_cpu[key].median:.0%} of a core)")
    if b.query is not None:
        b.query.stop(timeout=20)
        b.query = None
    return rows
