"""The query cache's bookkeeping (query_service/cache.py): which entries an energy message drops,
when an answer read from InfluxDB may be kept, and that without a broker link nothing is served
from memory. The broker round trip itself is exercised in tests/integration/test_query_cache.py."""

from __future__ import annotations

import asyncio

import pytest

from fleet.timeutil import WINDOW_US, parse_datetime
from query_service.cache import WindowCache, energy_windows, overlaps
from query_service.db import WindowRow

H = 3600 * 1_000_000
T0 = parse_datetime("2018-08-24T00:00:00Z")
DAY = (T0, T0 + 24 * H)


@pytest.mark.parametrize(("window", "expected"), [
    (T0 - WINDOW_US, False),        # ends where the range starts
    (T0 - WINDOW_US + 1, True),     # a window not on the grid reaching into it
    (T0, True),
    (T0 + 24 * H - WINDOW_US, True),  # the last window of the range
    (T0 + 24 * H, False),           # starts where the range ends
])
def test_overlap_is_half_open(window: int, expected: bool) -> None:
    assert overlaps(("s", *DAY, "15m"), window) is expected


def ready_cache(max_entries: int = 100) -> WindowCache:
    cache = WindowCache(max_entries)
    cache.clear(ready=True)  # as on SUBACK
    return cache


def rows(kwh: float) -> list[WindowRow]:
    return [WindowRow(T0, kwh, 900.0)]


def test_an_energy_message_drops_only_the_ships_overlapping_entries() -> None:
    cache = ready_cache()
    day = ("a", *DAY, "15m")
    next_day = ("a", DAY[1], DAY[1] + 24 * H, "15m")
    hourly = ("a", *DAY, "1h")
    other = ("b", *DAY, "15m")
    for key in (day, next_day, hourly, other):
        assert cache.put(key, rows(1.0), cache.snapshot(key[0]))
    assert cache.invalidate("a", [T0 + 5 * H]) == 2  # both series of that day, every step
    assert cache.get(day) is None and cache.get(hourly) is None
    assert cache.get(next_day) == rows(1.0) and cache.get(other) == rows(1.0)
    assert cache.invalidate("a", None) == 1  # unreadable message: all of the ship's entries
    assert cache.get(next_day) is None and cache.get(other) == rows(1.0)


def test_an_answer_read_while_its_ship_changed_is_not_kept() -> None:
    cache = ready_cache()
    key = ("a", *DAY, "15m")
    seen = cache.snapshot("a")
    cache.invalidate("a", [DAY[1] + 48 * H])  # even one that does not overlap: conservative
    assert not cache.put(key, rows(1.0), seen)
    seen = cache.snapshot("a")
    cache.invalidate("b", [T0])  # another ship: no matter
    assert cache.put(key, rows(2.0), seen)


def test_nothing_is_kept_across_a_link_change_or_without_a_link() -> None:
    cache = ready_cache()
    key = ("a", *DAY, "15m")
    seen = cache.snapshot("a")
    cache.clear(ready=False)  # disconnected while InfluxDB was answering
    cache.clear(ready=True)   # and subscribed again
    assert not cache.put(key, rows(1.0), seen)
    offline = WindowCache()
    assert not offline.put(key, rows(1.0), offline.snapshot("a"))


def test_the_cache_is_bounded_least_recently_used_first() -> None:
    cache = ready_cache(max_entries=2)
    keys = [("a", T0 + k * H, T0 + (k + 1) * H, "15m") for k in range(3)]
    cache.put(keys[0], rows(0), cache.snapshot("a"))
    cache.put(keys[1], rows(1), cache.snapshot("a"))
    assert cache.get(keys[0]) is not None  # used: keys[1] is now the oldest
    cache.put(keys[2], rows(2), cache.snapshot("a"))
    assert len(cache) == 2
    assert cache.get(keys[1]) is None and cache.get(keys[0]) is not None
    assert cache.invalidate("a", None) == 2


def test_energy_payloads() -> None:
    good = (b'{"ship":"a","unit":"kWh","windows":[{"time":"2018-08-24T00:15:00Z","kwh":1,'
            b'"coverage":1}]}')
    assert energy_windows(good) == [T0 + WINDOW_US]
    for bad in (b"", b"{}", b'{"windows":[{"t":1}]}', b'{"windows":[{"time":"nope"}]}', b"[1]"):
        assert energy_windows(bad) is None


class FakeInflux:
    def __init__(self) -> None:
        self.calls = 0
        self.kwh = 1.0

    async def windows(self, ship: str, start_us: int, end_us: int,
                      every: str) -> list[WindowRow]:
        self.calls += 1
        return rows(self.kwh)


def test_without_a_broker_link_every_read_goes_to_influxdb() -> None:
    cache = ready_cache()  # entries may be kept, but no link to check them with
    influx = FakeInflux()

    async def reads() -> list[float]:
        out = []
        for k in range(3):
            influx.kwh = float(k)
            got = await cache.windows(influx, "a", *DAY, "15m")  # type: ignore[arg-type]
            out.append(got[0].kwh)
        return out

    assert asyncio.run(reads()) == [0.0, 1.0, 2.0]
    assert influx.calls == 3 and cache.hits == 0
