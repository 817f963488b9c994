"""bridge.totals with a fake store: spans, chunking, and two bridges racing on one span."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.totals import Settler, settle_with_retry
from fleet.errors import StoreUnavailableError
from fleet.normalize import window_sums
from fleet.schema import Part
from fleet.timeutil import US, parse_datetime
from fleet.totals import parts_of

Reading = tuple[int, float]


def at(hms: str) -> int:
    return parse_datetime(f"2018-08-24T{hms}Z")


class FakeRegisters:
    """Readings and parts keyed as InfluxDB keys them: a write to a stored key overwrites it."""

    def __init__(self) -> None:
        self.readings: dict[tuple[str, str], dict[int, float]] = {}
        self.parts: dict[tuple[str, str, int], Part] = {}
        self.before_write: Callable[[], None] | None = None  # runs once, before a parts write
        self.fail_reads = 0
        self.max_page = 0

    def write_readings(self, ship: str, meter: str, readings: Sequence[Reading]) -> None:
        self.readings.setdefault((ship, meter), {}).update(readings)

    def _sorted(self, ship: str, meter: str) -> list[Reading]:
        if self.fail_reads:
            self.fail_reads -= 1
            raise StoreUnavailableError("down")
        return sorted(self.readings.get((ship, meter), {}).items())

    def before(self, ship: str, meter: str, t_us: int) -> Reading | None:
        rows = [r for r in self._sorted(ship, meter) if r[0] < t_us]
        return rows[-1] if rows else None

    def after(self, ship: str, meter: str, t_us: int) -> Reading | None:
        rows = [r for r in self._sorted(ship, meter) if r[0] > t_us]
        return rows[0] if rows else None

    def page(self, ship: str, meter: str, lo_us: int, hi_us: int, limit: int) -> list[Reading]:
        rows = [r for r in self._sorted(ship, meter) if lo_us <= r[0] <= hi_us][:limit]
        self.max_page = max(self.max_page, len(rows))
        return rows

    def write_parts(self, parts: Sequence[Part]) -> None:
        hook, self.before_write = self.before_write, None
        if hook is not None:
            hook()
        for p in parts:
            self.parts[(p.ship, p.meter, p.start_us)] = p

    def close(self) -> None:
        pass

    def windows(self) -> dict[int, float]:
        return {w: kwh for w, kwh, _ in window_sums(self.parts.values())}


def ingest(store: FakeRegisters, settler: Settler, readings: Sequence[Reading],
           meter: str = "m") -> None:
    """What a bridge does with one message: store the readings, then settle their span."""
    store.write_readings("s", meter, readings)
    settler.settle("s", meter, min(t for t, _ in readings), max(t for t, _ in readings))


def reference(messages: Sequence[Sequence[Reading]]) -> dict[int, float]:
    return {w: kwh for w, kwh, _ in window_sums(parts_of("s", messages, "m"))}


def test_late_reading_splits_the_stored_span() -> None:
    store = FakeRegisters()
    settler = Settler(store)
    ingest(store, settler, [(at("00:00:00"), 1000.0), (at("00:30:00"), 1006.0)])
    assert store.windows() == {at("00:00:00"): 3.0, at("00:15:00"): 3.0}
    ingest(store, settler, [(at("00:15:00"), 1001.0)])
    assert store.windows() == {at("00:00:00"): 1.0, at("00:15:00"): 5.0}
    # Resent: nothing changes. Another value at a stored time replaces it.
    ingest(store, settler, [(at("00:15:00"), 1001.0)])
    assert store.windows() == {at("00:00:00"): 1.0, at("00:15:00"): 5.0}
    ingest(store, settler, [(at("00:15:00"), 1002.0)])
    assert store.windows() == {at("00:00:00"): 2.0, at("00:15:00"): 4.0}


def test_two_bridges_racing_on_one_span_end_right() -> None:
    """Bridge A computes from readings that miss B's, and writes its parts after B's: A's
    verification sees B's reading and recomputes."""
    store = FakeRegisters()
    a, b = Settler(store), Settler(store)
    ingest(store, a, [(at("00:00:00"), 1000.0), (at("01:00:00"), 1012.0)])
    late_a = [(at("00:15:00"), 1001.0)]
    late_b = [(at("00:40:00"), 1010.0)]
    # A has read the span (without B's reading) and is about to write; B runs all the way.
    store.before_write = lambda: ingest(store, b, late_b)
    ingest(store, a, late_a)
    assert a.rounds == 1  # A noticed and recomputed
    assert store.windows() == reference([[(at("00:00:00"), 1000.0), (at("01:00:00"), 1012.0)],
                                         late_a, late_b])


def test_without_the_verification_the_race_would_lose() -> None:
    """The same interleaving with a settler that trusts its first read: stale parts win."""
    store = FakeRegisters()
    a, b = Settler(store, max_rounds=1), Settler(store)
    ingest(store, a, [(at("00:00:00"), 1000.0), (at("01:00:00"), 1012.0)])
    store.before_write = lambda: ingest(store, b, [(at("00:40:00"), 1010.0)])
    with pytest.raises(Exception, match="kept changing"):
        ingest(store, a, [(at("00:15:00"), 1001.0)])
    full = reference([[(at("00:00:00"), 1000.0), (at("00:15:00"), 1001.0),
                       (at("00:40:00"), 1010.0), (at("01:00:00"), 1012.0)]])
    assert store.windows() != full


def test_long_spans_are_read_and_written_in_chunks() -> None:
    store = FakeRegisters()
    settler = Settler(store, chunk=7)
    t0 = at("00:00:00")
    readings = [(t0 + i * 300 * US, 10.0 * i) for i in range(50)]
    written: list[int] = []
    store.write_readings("s", "m", readings)
    settler.settle("s", "m", t0, readings[-1][0], on_parts=lambda ps: written.append(len(ps)))
    assert store.max_page <= 7 and max(written) <= 7
    assert store.windows() == reference([readings])


def test_retry_while_the_store_is_down() -> None:
    store = FakeRegisters()
    settler = Settler(store)
    store.write_readings("s", "m", [(at("00:00:00"), 1.0), (at("00:30:00"), 3.0)])
    store.fail_reads = 3
    waits: list[float] = []
    span = settle_with_retry(settler, "s", "m", at("00:00:00"), at("00:30:00"),
                             abandoned=lambda d: bool(waits.append(d)))
    assert span is not None and len(waits) == 3
    assert store.windows() == {at("00:00:00"): 1.0, at("00:15:00"): 1.0}
    store.fail_reads = 100
    assert settle_with_retry(settler, "s", "m", at("00:00:00"), at("00:30:00"),
                             abandoned=lambda _d: True) is None


class InterleavingRegisters(FakeRegisters):
    """Before some parts writes, another bridge's whole message runs (chosen by hypothesis)."""

    def __init__(self, pending: list[list[Reading]], interrupt: list[bool]) -> None:
        super().__init__()
        self.pending = pending
        self.interrupt = interrupt

    def write_parts(self, parts: Sequence[Part]) -> None:
        if self.pending and self.interrupt and self.interrupt.pop():
            ingest(self, Settler(self), self.pending.pop())
        for p in parts:
            self.parts[(p.ship, p.meter, p.start_us)] = p


_reading = st.tuples(st.integers(0, 40).map(lambda k: at("00:00:00") + k * 300 * US),
                     st.sampled_from([0.0, 3.0, 100.0, 101.5, 104.0, 95.0, 500.0]))


@settings(max_examples=120, deadline=None)
@given(st.lists(st.lists(_reading, min_size=1, max_size=5), min_size=2, max_size=8),
       st.lists(st.booleans(), max_size=30))
def test_any_interleaving_of_bridges_ends_as_the_rule_says(
        messages: list[list[Reading]], interrupt: list[bool]) -> None:
    """Messages handled by bridges that interrupt each other between reading and writing end
    with the parts of all the readings taken together. (Each message holds one value per
    time; across messages a time may repeat with another value, and then the value that was
    stored last wins, so those are made to agree.)"""
    values: dict[int, float] = {}
    messages = [[(t, values.setdefault(t, v)) for t, v in dict(m).items()] for m in messages]
    store = InterleavingRegisters(list(reversed(messages[1:])), interrupt)
    ingest(store, Settler(store), messages[0])
    while store.pending:  # what no interruption picked up
        ingest(store, Settler(store), store.pending.pop())
    assert store.windows() == reference(messages)
