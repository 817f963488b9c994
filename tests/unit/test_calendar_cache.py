"""The calendar reader's cache of coarse-series reads, validated by the generation."""

from __future__ import annotations

import asyncio
from typing import Any

from fleet.config import Config
from query_service import calendar
from query_service.db import Series


class FakeInflux:
    def __init__(self) -> None:
        self.generation = 1
        self.value = 1.0
        self.sent: list[list[str]] = []

    async def query_all(self, statements: list[str], kind: str = "") -> list[list[Series]]:
        self.sent.append(statements[1:])
        gen = [Series("g", ("time", "value"), [[0, self.generation]], {})]
        rows = [[Series("e", ("time", "kwh"), [[0, self.value]], {})] for _ in statements[1:]]
        return [gen, *rows]


def run(influx: FakeInflux, statements: list[tuple[str, bool]]) -> list[Any]:
    result = asyncio.run(calendar._run(influx, Config(), statements, "t"))  # type: ignore[arg-type]
    return [r[0].values[0][1] for r in result]


def test_coarse_reads_are_kept_while_the_generation_stays_and_parts_never() -> None:
    calendar._cache.clear()
    influx = FakeInflux()
    statements = [("SELECT coarse", True), ("SELECT parts", False)]
    assert run(influx, statements) == [1.0, 1.0]
    influx.value = 2.0  # the database changed without a new generation: the cache holds
    assert run(influx, statements) == [1.0, 2.0]
    assert influx.sent[-1] == ["SELECT parts"]  # one round trip, the parts only
    influx.generation = 2  # a coarse write: cached reads are read again
    assert run(influx, statements) == [2.0, 2.0]
    assert influx.sent[-1] == ["SELECT coarse"]


class DailyInflux:
    """The coarse state (complete, UTC), the generation, and one daily point per statement."""

    def __init__(self) -> None:
        self.generation = 1
        self.kwh = 1.0
        self.sent: list[list[str]] = []

    async def query_all(self, statements: list[str], kind: str = "") -> list[list[Series]]:
        self.sent.append(statements)
        await asyncio.sleep(0)  # as a real round trip: other requests run meanwhile
        out: list[list[Series]] = []
        for s in statements:
            if calendar.STATE in s:
                out.append([Series("st", ("time", "ready", "version", "tz"),
                                   [[0, True, calendar.VERSION, "UTC"]], {})])
            elif calendar.GENERATION in s:
                out.append([Series("g", ("time", "value"), [[0, self.generation]], {})])
            else:
                out.append([Series("d", ("time", "kwh", "seconds", "n"),
                                   [[DAY0, self.kwh, 900.0, 1]], {"ship": "s1", "meter": "m"})])
        return out


DAY0 = 1_735_689_600_000_000  # 2025-01-01T00:00:00Z
DAY = 86_400_000_000


def totals(influx: DailyInflux) -> float:
    from zoneinfo import ZoneInfo
    answer = asyncio.run(calendar.period_totals(
        influx, Config(), DAY0, DAY0 + 2 * DAY, "1d", ZoneInfo("UTC"),  # type: ignore[arg-type]
        ships=["s1"]))
    return answer.totals[("s1", "m")][0].kwh


def test_finished_answers_serve_while_the_generation_stays_and_are_read_again_after() -> None:
    calendar._cache.clear()
    calendar._answers.clear()
    calendar._state_cache.clear()
    influx = DailyInflux()
    assert totals(influx) == 1.0
    assert calendar._answers  # coarse only, one generation: kept
    influx.kwh = 2.0  # changed without a new generation: the answer is served as it was
    sent = len(influx.sent)
    assert totals(influx) == 1.0
    assert len(influx.sent) == sent + 1 and len(influx.sent[-1]) == 1  # the generation only
    influx.generation = 2  # a coarse write: the answer is computed again from fresh reads
    sent = len(influx.sent)
    assert totals(influx) == 2.0
    assert len(influx.sent) == sent + 2  # the generation, then it again with the statements
    assert totals(influx) == 2.0
    assert len(influx.sent[-1]) == 1


def test_rendered_answers_follow_the_generation() -> None:
    import json

    from aiohttp import web
    from aiohttp.test_utils import make_mocked_request

    from query_service.calendar_views import ship_energy
    from query_service.typedefs import CONFIG, INFLUX

    calendar._cache.clear()
    calendar._answers.clear()
    calendar._state_cache.clear()
    influx = DailyInflux()
    app = web.Application()
    app[CONFIG] = Config()
    app[INFLUX] = influx  # type: ignore[misc]
    path = "/v1/ships/s1/energy?start=2025-01-01T00:00:00Z&end=2025-01-03T00:00:00Z&every=1d"

    async def kwh() -> float:
        req = make_mocked_request("GET", path, app=app, match_info={"id": "s1"})
        resp = await ship_energy(req)
        assert resp.text is not None
        return float(json.loads(resp.text)["windows"][0]["kwh"])

    assert asyncio.run(kwh()) == 1.0
    influx.kwh = 2.0
    assert asyncio.run(kwh()) == 1.0  # same generation: the kept answer and its rendering
    influx.generation = 2
    assert asyncio.run(kwh()) == 2.0  # a new generation: read and rendered again


def test_concurrent_requests_after_a_new_generation_all_read_it() -> None:
    calendar._cache.clear()
    calendar._answers.clear()
    calendar._state_cache.clear()
    influx = DailyInflux()
    assert totals(influx) == 1.0
    influx.kwh, influx.generation = 3.0, 2

    async def many() -> list[float]:
        from zoneinfo import ZoneInfo
        answers = await asyncio.gather(*(calendar.period_totals(
            influx, Config(), DAY0, DAY0 + 2 * DAY, "1d", ZoneInfo("UTC"),  # type: ignore[arg-type]
            ships=["s1"]) for _ in range(4)))
        return [a.totals[("s1", "m")][0].kwh for a in answers]

    assert asyncio.run(many()) == [3.0] * 4
