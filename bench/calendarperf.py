"""Calendar energy answers in-process: requests per second and p50/p99 of the view.

``python -m bench.calendarperf`` runs ``GET /v1/ships/{id}/energy`` (365 days ``every=1d`` and
10 years ``every=1mo``, ``tz=Europe/Oslo``) through :func:`query_service.calendar_views.ship_energy`
at 1 and 16 concurrent clients, against an in-memory InfluxDB stand-in that answers the coarse
state, the generation and daily points (one per day). It measures the service's own Python cost
per request (planning, statements, cache, summing, rendering), not InfluxDB's.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import sys
import time
from typing import Any

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from fleet.coarse import GENERATION, STATE, VERSION
from fleet.config import Config
from query_service.calendar_views import ship_energy
from query_service.db import Series
from query_service.typedefs import CONFIG, INFLUX

DAY_US = 86_400_000_000
_RANGE = re.compile(r"time >= (\d+)u AND time < (\d+)u")
END = "2026-01-01T00:00:00Z"
CASES = {
    "365d daily": f"start=2025-01-01T00:00:00Z&end={END}&every=1d&tz=Europe/Oslo",
    "10y monthly": f"start=2016-01-01T00:00:00Z&end={END}&every=1mo&tz=Europe/Oslo",
}


class FakeInflux:
    """Answers the calendar reader's statements: state ready in Europe/Oslo, generation 1, and one
    daily point per day of each statement's range."""

    def __init__(self) -> None:
        self.round_trips = 0
        self.generation = 1

    async def query_all(self, statements: list[str], kind: str = "") -> list[list[Series]]:
        self.round_trips += 1
        await asyncio.sleep(0)
        return [self._one(s) for s in statements]

    def _one(self, statement: str) -> list[Series]:
        if f'"{STATE}"' in statement:
            return [Series(STATE, ("time", "ready", "version", "tz"),
                           [[0, True, VERSION, "Europe/Oslo"]], {})]
        if f'"{GENERATION}"' in statement:
            return [Series(GENERATION, ("time", "value"), [[0, self.generation]], {})]
        m = _RANGE.search(statement)
        assert m, statement
        start, end = int(m.group(1)), int(m.group(2))
        first = start + (-start) % DAY_US - 3_600_000_000  # Oslo midnights (approximately)
        rows = [[t, 1.5, 3600.0, 96] for t in range(max(first, start), end, DAY_US)]
        return [Series("energy_coarse", ("time", "kwh", "seconds", "n"), rows,
                       {"ship": "s1", "meter": "main"})]

    async def ship_known(self, ship: str) -> bool:
        return True


async def _bench(query: str, clients: int, seconds: float, cold: bool) -> dict[str, float]:
    app = web.Application()
    app[CONFIG] = Config()
    influx = FakeInflux()
    app[INFLUX] = influx  # type: ignore[misc]
    path = f"/v1/ships/s1/energy?{query}"
    lat: list[float] = []
    stop = time.perf_counter() + seconds

    async def client() -> None:
        # One mocked request per client, built once: building one costs more than the answer.
        req = make_mocked_request("GET", path, app=app, match_info={"id": "s1"})
        while time.perf_counter() < stop:
            if cold:  # a coarse write before every request: nothing kept may serve
                influx.generation += 1
            t0 = time.perf_counter()
            resp = await ship_energy(req)
            lat.append(time.perf_counter() - t0)
            assert resp.status == 200

    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    wall = time.perf_counter() - t0
    lat.sort()
    return {"rps": len(lat) / wall, "p50_ms": statistics.median(lat) * 1e3,
            "p99_ms": lat[int(len(lat) * 0.99)] * 1e3,
            "round_trips": influx.round_trips / len(lat)}


def main(seconds: float = 3.0) -> None:
    """``--cold``: the generation changes before every request (the cost of a fresh answer)."""
    cold = "--cold" in sys.argv[1:]
    print(f"| case{' (cold)' if cold else ''} | clients | req/s | p50 ms | p99 ms | "
          "round trips/req |")
    print("|---|---|---|---|---|---|")
    for name, query in CASES.items():
        for clients in (1, 16):
            r: dict[str, Any] = asyncio.run(_bench(query, clients, seconds, cold))
            print(f"| {name} | {clients} | {r['rps']:.0f} | {r['p50_ms']:.2f} | "
                  f"{r['p99_ms']:.2f} | {r['round_trips']:.2f} |")


if __name__ == "__main__":
    main()
