"""The kept calendar answers' link rules (query_service/cache.py AnswerKeep, driven through the
WindowCache that owns the broker link)."""

from __future__ import annotations

from typing import Any

from query_service.cache import WindowCache


def _linked() -> WindowCache:
    cache = WindowCache()
    cache.clear(ready=True)  # as on SUBACK
    cache.calendar.clear(watched=True)  # as after the generation watch's first read
    return cache


def test_kept_until_a_notice_of_its_ship_or_any_for_all_ships() -> None:
    cache = _linked()
    keep = cache.calendar
    seen = keep.snapshot()
    assert keep.put(("a",), ("s1",), "A", seen)
    assert keep.put(("all",), None, "ALL", seen)
    assert keep.get(("a",)) == "A"
    assert keep.invalidate("s2") == 1  # the all-ships answer only
    assert keep.get(("a",)) == "A" and keep.get(("all",)) is None
    assert keep.invalidate("s1") == 1
    assert keep.get(("a",)) is None


def test_not_kept_when_a_notice_came_while_it_was_read() -> None:
    keep = _linked().calendar
    seen = keep.snapshot()
    keep.invalidate("other")
    assert not keep.put(("a",), ("s1",), "A", seen)


class _Msg:
    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.payload = b"{}"


def test_the_link_dropping_drops_everything_and_keeps_nothing_until_subscribed() -> None:
    cache = _linked()
    keep = cache.calendar
    assert keep.put(("a",), ("s1",), "A", keep.snapshot())
    reading = keep.snapshot()  # a read in flight when the link drops
    cache._on_disconnect(None, None, None, None, None)  # type: ignore[arg-type]
    assert keep.get(("a",)) is None
    assert not keep.put(("a",), ("s1",), "A", reading)
    assert not keep.put(("a",), ("s1",), "A", keep.snapshot())  # not whole: nothing kept
    cache._on_subscribe(None, None, 1, [_Granted()], None)  # type: ignore[arg-type]
    assert keep.put(("a",), ("s1",), "A", keep.snapshot())
    cache._on_message(None, None, _Msg("fleet/ships/s1/rollup"))  # type: ignore[arg-type]
    assert keep.get(("a",)) is None


def test_the_generation_watch_failing_keeps_nothing() -> None:
    keep = _linked().calendar
    assert keep.put(("a",), ("s1",), "A", keep.snapshot())
    keep.clear(watched=False)
    assert keep.get(("a",)) is None
    assert not keep.put(("a",), ("s1",), "A", keep.snapshot())


class _Granted:
    is_failure = False

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(name)
