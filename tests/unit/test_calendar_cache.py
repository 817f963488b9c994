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
