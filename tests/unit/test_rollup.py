"""Coarse series: reconcile against a fake store that forces the two-bridge interleaving, the
journal's encoding, and the batcher's hooks around a write."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from bridge.batcher import Batcher, Pending
from bridge.metrics import BridgeMetrics
from bridge.rollup import (
    COALESCE,
    MAX_COALESCE,
    Entry,
    Rollup,
    decode,
    encode,
    gathering,
    spans,
    touched_hours,
)
from fleet.calendar import HOUR_US, QUARTER_US, parse_tz
from fleet.coarse import Key, Sum, reconcile
from fleet.config import Config
from fleet.errors import StoreRejectedError, StoreUnavailableError
from fleet.schema import Part

OSLO = parse_tz("Europe/Oslo")
H0 = 1_735_776_000 * 1_000_000  # 2025-01-02T00:00:00Z


class FakeIO:
    """Parts and coarse values in dicts; ``on_write`` runs before a coarse write is applied (the
    moment another bridge can slip in between a read and a write)."""

    def __init__(self) -> None:
        self.parts: dict[tuple[str, str, int], tuple[float, float]] = {}
        self.coarse: dict[Key, Sum] = {}
        self.on_write: Callable[[], None] | None = None
        self.writes = 0

    def put(self, ship: str, start_us: int, kwh: float) -> None:
        self.parts[(ship, "main", start_us)] = (kwh, 900.0)

    def part_sums(self, ships: Sequence[str] | None, start_us: int, end_us: int,
                  bucket_us: int) -> dict[tuple[str, str], list[tuple[int, Sum]]]:
        acc: dict[tuple[str, str, int], list[float]] = {}
        for (ship, meter, t), (kwh, sec) in sorted(self.parts.items(), key=lambda i: i[0][2]):
            if (ships is None or ship in ships) and start_us <= t < end_us:
                v = acc.setdefault((ship, meter, t - t % bucket_us), [0.0, 0.0, 0.0])
                v[0], v[1], v[2] = v[0] + kwh, v[1] + sec, v[2] + 1
        out: dict[tuple[str, str], list[tuple[int, Sum]]] = {}
        for (ship, meter, t), v in sorted(acc.items(), key=lambda i: i[0][2]):
            out.setdefault((ship, meter), []).append((t, Sum(v[0], v[1], v[2])))
        return out

    def stored(self, ships: Sequence[str] | None, start_us: int, end_us: int) -> dict[Key, Sum]:
        return {k: v for k, v in self.coarse.items()
                if (ships is None or k.ship in ships) and start_us <= k.start_us < end_us}

    def read(self, ships: Sequence[str] | None, start_us: int, end_us: int, bucket_us: int
             ) -> tuple[dict[tuple[str, str], list[tuple[int, Sum]]], dict[Key, Sum]]:
        return self.part_sums(ships, start_us, end_us, bucket_us), self.stored(ships, start_us,
                                                                               end_us)

    def write(self, values: dict[Key, Sum]) -> None:
        hook, self.on_write = self.on_write, None
        if hook is not None:
            hook()
        self.writes += 1
        self.coarse.update(values)

    def horizon(self) -> int | None:
        return None


def truth(io: FakeIO, ship: str) -> float:
    return sum(kwh for (s, _m, t), (kwh, _sec) in io.parts.items()
               if s == ship and H0 <= t < H0 + HOUR_US)


def test_a_bridge_slipping_in_between_read_and_write_does_not_leave_a_stale_value() -> None:
    io = FakeIO()
    io.put("a", H0, 1.0)

    def bridge_b() -> None:  # B stores a part into the same hour and brings it up to date
        io.put("a", H0 + QUARTER_US, 2.0)
        assert reconcile(io, ["a"], H0, H0 + HOUR_US, OSLO).clean

    io.on_write = bridge_b
    outcome = reconcile(io, ["a"], H0, H0 + HOUR_US, OSLO)  # bridge A
    assert outcome.clean and outcome.rounds >= 2
    assert io.coarse[Key("hour", "a", "main", H0)] == Sum(3.0, 1800.0, 2.0)
    day = next(k for k in io.coarse if k.level == "day")
    assert io.coarse[day].kwh == 3.0 == truth(io, "a")


def test_the_forced_interleaving_is_real_one_read_then_write_would_be_stale() -> None:
    io = FakeIO()
    io.put("a", H0, 1.0)

    def bridge_b() -> None:
        io.put("a", H0 + QUARTER_US, 2.0)
        reconcile(io, ["a"], H0, H0 + HOUR_US, OSLO)

    io.on_write = bridge_b
    outcome = reconcile(io, ["a"], H0, H0 + HOUR_US, OSLO, max_rounds=1)
    assert not outcome.clean
    assert io.coarse[Key("hour", "a", "main", H0)].kwh == 1.0  # A's stale write won


def test_corrections_and_vanished_values_are_recomputed_never_incremented() -> None:
    io = FakeIO()
    io.put("a", H0, 1.0)
    reconcile(io, ["a"], H0, H0 + HOUR_US, OSLO)
    io.put("a", H0, 5.0)  # a resend with another value: the part is replaced
    io.coarse[Key("hour", "a", "main", H0 + 5 * HOUR_US)] = Sum(9.0, 900.0, 1.0)  # tampered
    outcome = reconcile(io, ["a"], H0, H0 + 6 * HOUR_US, OSLO)
    assert outcome.clean
    assert io.coarse[Key("hour", "a", "main", H0)] == Sum(5.0, 900.0, 1.0)
    assert io.coarse[Key("hour", "a", "main", H0 + 5 * HOUR_US)].n == 0
    writes = io.writes
    assert reconcile(io, ["a"], H0, H0 + 6 * HOUR_US, OSLO).written == 0
    assert io.writes == writes


def test_journal_encoding_round_trips() -> None:
    touched = {"a": {H0, H0 + HOUR_US, H0 + 2 * HOUR_US, H0 + 9 * HOUR_US}, "b-2": {H0}}
    text = encode(touched)
    assert text == f"a:{H0 // HOUR_US}-{H0 // HOUR_US + 2},{H0 // HOUR_US + 9};b-2:{H0 // HOUR_US}"
    assert decode(text) == touched
    parts = [Part("a", H0 + 60 * 10**6, 1.0, 840.0), Part("a", H0 + HOUR_US, 1.0, 900.0)]
    assert touched_hours(parts) == {"a": {H0, H0 + HOUR_US}}
    assert spans({H0, H0 + HOUR_US, H0 + 100 * HOUR_US}) == [
        (H0, H0 + 2 * HOUR_US), (H0 + 100 * HOUR_US, H0 + 101 * HOUR_US)]


class Hooks:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def before(self, parts: Iterable[Part]) -> object:
        self.log.append(f"before {len(list(parts))}")
        return "entry"

    def after(self, entry: Any) -> None:
        self.log.append(f"after {entry}")


class Store:
    def __init__(self, log: list[str], refuse: bool = False) -> None:
        self.log, self.refuse = log, refuse

    def write(self, body: bytes) -> None:
        self.log.append("parts")
        if self.refuse:
            raise StoreRejectedError("400")


class Sink:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def stored(self, items: Sequence[Pending]) -> None:
        self.log.append("stored")

    def refused(self, item: Pending, detail: str) -> None:
        self.log.append("refused")


def _run(refuse: bool) -> list[str]:
    log: list[str] = []
    b = Batcher(Store(log, refuse), Sink(log), BridgeMetrics(), batch_size=10,
                flush_interval=0.01, retry_max_delay=0.1, coarse=Hooks(log))
    part = Part("a", H0, 1.0, 900.0)
    b.add(Pending(mid=1, qos=1, generation=1, ship="a", batch_id=None, accepted=1, rejected=0,
                  body="x", npoints=1, parts=[part]))
    b.stop()
    b.run()
    return log


def test_batcher_marks_before_the_parts_and_queues_after_they_are_stored_or_refused() -> None:
    assert _run(False) == ["before 1", "parts", "stored", "after entry"]
    assert _run(True) == ["before 1", "parts", "refused", "after entry"]


def test_days_of_a_half_hour_zone_are_summed_from_half_hours() -> None:
    io = FakeIO()
    kolkata = parse_tz("Asia/Kolkata")
    for i in range(96 * 2):  # two UTC days of 1 kWh per quarter
        io.put("k", H0 + i * QUARTER_US, 1.0)
    assert reconcile(io, ["k"], H0, H0 + 48 * HOUR_US, kolkata).clean
    days = sorted((k.start_us, v.kwh) for k, v in io.coarse.items() if k.level == "day")
    # Kolkata days begin at 18:30 UTC: 2 Jan 00:00Z is 05:30 local, 74 quarters before midnight.
    assert days == [(H0 - 22 * QUARTER_US, 74.0), (H0 + 74 * QUARTER_US, 96.0),
                    (H0 + 170 * QUARTER_US, 22.0)]


class JournalStore:
    """Records writes per retention policy; ``fail`` raises on journal writes."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.fail = fail
        self.writes: list[tuple[str | None, str]] = []

    def write(self, body: bytes, retention_policy: str | None = None) -> None:
        if self.fail is not None and retention_policy == "fleet_raw_journal":
            raise self.fail
        self.writes.append((retention_policy, body.decode()))

    def query(self, q: str, *, write: bool = False) -> list[dict[str, Any]]:
        return [{}]


def _rollup(store: JournalStore, io: FakeIO) -> Rollup:
    return Rollup(Config(), store, io)  # type: ignore[arg-type]


def test_journal_before_parts_then_update_and_checkpoint_below_unfinished_entries() -> None:
    store, io = JournalStore(), FakeIO()
    r = _rollup(store, io)
    io.put("a", H0 + 30 * HOUR_US, 2.0)
    outer = r.before([Part("a", H0, 2.0, 900.0)])
    inner = r.before([Part("a", H0 + 30 * HOUR_US, 1.0, 900.0)])  # e.g. a rewrite in stored()
    assert [rp for rp, _ in store.writes] == ["fleet_raw_journal", "fleet_raw_journal"]
    # The mark names the whole fleet day (UTC here) of the touched hour.
    assert f'touched="a:{H0 // HOUR_US}-{H0 // HOUR_US + 23}"' in store.writes[0][1]
    r.after(inner)
    taken = r._take()
    r.update(taken)
    r._advance(taken)
    r._checkpoint(force=True)
    checkpoint = store.writes[-1][1]
    assert checkpoint.startswith("rollup_checkpoint,bridge=fleet-bridge-1 done=")
    assert int(checkpoint.split("done=")[1].split("i")[0]) == outer.at_us - 1  # outer unfinished
    assert io.coarse[Key("hour", "a", "main", H0 + 30 * HOUR_US)].kwh == 2.0


def test_a_missing_journal_never_holds_the_parts_back() -> None:
    store = JournalStore(StoreUnavailableError("retention policy not found: fleet_raw_journal"))
    r = _rollup(store, FakeIO())
    entry = r.before([Part("a", H0, 1.0, 900.0)])
    assert entry.at_us == 0 and entry.touched and r.journal_failures == 1
    r.after(entry)
    assert r.pending() == 1  # still updated, from memory


def test_a_day_already_marked_is_not_journaled_again_until_its_mark_is_reconciled() -> None:
    store, io = JournalStore(), FakeIO()
    r = _rollup(store, io)
    first = r.before([Part("a", H0, 2.0, 900.0)])
    again = r.before([Part("a", H0 + 5 * HOUR_US, 1.0, 900.0), Part("a", H0, 2.0, 900.0)])
    other = r.before([Part("b", H0, 1.0, 900.0), Part("a", H0 + 7 * HOUR_US, 1.0, 900.0)])
    journal = [body for rp, body in store.writes if rp == "fleet_raw_journal"]
    assert len(journal) == 2 and 'touched="b:' in journal[1] and "a:" not in journal[1]
    assert again.at_us == 0 and again.pins == (first.at_us,)
    assert other.at_us > first.at_us and other.pins == (first.at_us,)
    assert again.touched == {"a": {H0, H0 + 5 * HOUR_US}}  # in memory: only the touched hours
    # The first mark stays durable (the checkpoint below it) while an entry relying on it waits.
    r._advance([first, other])
    r._checkpoint(force=True)
    assert store.writes[-1][1].split("done=")[1].startswith(f"{first.at_us - 1}i")
    r._advance([again])
    r._checkpoint(force=True)
    assert store.writes[-1][1].split("done=")[1].startswith(f"{other.at_us}i")
    # Reconciled: the day needs a new mark for the next batch touching it.
    later = r.before([Part("a", H0 + 9 * HOUR_US, 1.0, 900.0)])
    assert later.at_us > other.at_us and later.pins == ()


def test_a_paced_loop_goes_on_with_only_the_days_it_wrote_and_confirms_them() -> None:
    io = FakeIO()
    r = _rollup(JournalStore(), io)
    io.put("a", H0, 2.0)
    io.put("a", H0 + 30 * HOUR_US, 1.0)  # the next (UTC) day
    day2 = H0 + 24 * HOUR_US
    assert r.update([Entry({"a": {H0 + 30 * HOUR_US}})]) == {}  # day 2 stored and confirmed
    reads: list[tuple[int, int]] = []
    part_sums = io.part_sums

    def counted(ships: Sequence[str] | None, a: int, b: int,
                bucket: int) -> dict[tuple[str, str], list[tuple[int, Sum]]]:
        reads.append((a, b))
        return part_sums(ships, a, b, bucket)

    io.part_sums = counted  # type: ignore[method-assign]
    left = r.update([Entry({"a": {H0, H0 + 30 * HOUR_US}})], paced=True)
    # Day 1 was written in this round, day 2 read equal to its parts: only day 1 goes on.
    assert left == {"a": {H0}}
    assert io.coarse[Key("day", "a", "main", H0)] == Sum(2.0, 900.0, 1.0)
    io.put("a", H0, 3.0)  # a correction stored meanwhile (its own entry follows)
    reads.clear()
    left = r.update([Entry(left), Entry({"a": {H0}})], paced=True)
    assert left == {"a": {H0}} and all(b <= day2 for _a, b in reads)  # day 2 not read again
    assert r.update([Entry(left)], paced=True) == {}  # read back equal: the loop is done
    assert io.coarse[Key("hour", "a", "main", H0)].kwh == 3.0


def test_the_gathering_time_doubles_under_sustained_load_up_to_its_bound_and_falls_back() -> None:
    window, seen = COALESCE, []
    for _ in range(6):
        window = gathering(window, busy=True)
        seen.append(window)
    assert seen == [1.0, 2.0, 4.0, 4.0, 4.0, 4.0] and MAX_COALESCE == 4.0
    assert gathering(window, busy=False) == COALESCE == 0.5
