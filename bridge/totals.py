"""Running totals in the bridge: store the readings, then recompute the parts of their spans.

Rule 6 makes a register reading's energy depend on its stored neighbours, which may arrive in any
order, days apart and through other bridges. So the bridge stores the readings themselves
(measurement ``register``, :func:`fleet.totals.register_lines`, written with the batch) and, on
the writer thread, before the batch's PUBACK, :meth:`Settler.settle` recomputes for each ship's
meter in the batch the span from the stored reading before the earliest new one (``prev``) to the
stored reading after the latest (``next``), from the stored readings, and overwrites the span's
part keys.

Why an overwrite is enough: a span's part keys are its 15-minute boundaries and its reading times;
readings are only ever added or given another value, never removed, so the keys only gain
members. Writing every key of the recomputed span therefore replaces every earlier part in it.

Why it is right with several bridges (the race: two bridges each read the span before the other
wrote its reading). Each settle is: write the readings (the batch), then repeat { read the span's
readings R (chunked), compute, write the parts; re-read the span's readings R' } until R' == R.
A round's span is the union of the settle's earlier rounds' spans and the current prev..next
(both ends are stored readings, which never go away), so it only widens.
Claim: once every settle has returned, every part key k holds the value of the final readings.
The value at k depends only on the final consecutive pair (p, q) with p <= k < q. Take the last
write W to k, by a round of settle X computed from snapshot R over its span [s0, s1] (k inside).
That round's verification V found R' == R: had it not, X's next round, whose span contains
[s0, s1], would have written k after W. Suppose q (or p, or its final value) is not in R. It
was written by some settle Y. If Y wrote it before V, then V read it (it lies in [s0, s1]: R has
no reading in (p, q), so s1 >= q and s0 <= p), so R' != R: a contradiction. If Y wrote it after
V, Y then read its span, which runs from its reading before q (<= p <= k) to after q, so Y (or,
were k = p not yet stored then, the later settle that stores p, by the same argument) wrote k
after W: a contradiction with W being last. So R holds p and q with their final values and X
wrote the right value at k. (A sketch; tests/unit/test_bridge_totals.py drives random
interleavings of bridges through a fake store, and fails without the widening above.)
A bridge that dies mid-settle never PUBACKs; the broker delivers the message again and the
settle is redone. The loop ends when the span's readings stop changing under it, i.e. as soon as
concurrent writers to that span finish.

Memory: readings are read in pages of ``chunk`` and parts written in chunks of ``chunk``, so a
span of years costs time, not memory.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from fleet.errors import StoreError
from fleet.schema import Part, lines, quote_ident, quote_string
from fleet.store import InfluxStore
from fleet.totals import FIELD_VALUE, REGISTER, pair_energy, span_parts

log = logging.getLogger(__name__)

CHUNK = 5000

_MAX_NS = 9_214_646_400 * 1_000_000 * 1000  # 2262-01-01, the end of InfluxDB's time range

Reading = tuple[int, float]


class Registers(Protocol):
    """Where the readings and parts live (InfluxDB; a fake in the unit tests)."""

    def before(self, ship: str, meter: str, t_us: int) -> Reading | None:
        """The last stored reading strictly before ``t_us``."""

    def after(self, ship: str, meter: str, t_us: int) -> Reading | None:
        """The first stored reading strictly after ``t_us``."""

    def page(self, ship: str, meter: str, lo_us: int, hi_us: int, limit: int) -> list[Reading]:
        """Up to ``limit`` stored readings with lo_us <= time <= hi_us, in time order."""

    def write_parts(self, parts: Sequence[Part]) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Span:
    """The stored readings a settle computed from: [start_us, end_us] and their digest."""

    start_us: int
    end_us: int
    digest: bytes
    readings: int


class Settler:
    """Recomputes the parts of register spans (see the module docstring)."""

    def __init__(self, registers: Registers, *, chunk: int = CHUNK, max_rounds: int = 1000) -> None:
        self.registers = registers
        self.chunk = chunk
        self.max_rounds = max_rounds
        self.rounds = 0  # recomputations forced by a concurrent writer, since start (tests, logs)

    def settle(self, ship: str, meter: str, lo_us: int, hi_us: int,
               on_parts: Callable[[Sequence[Part]], None] | None = None) -> Span:
        """Recompute the span around the stored readings lo_us..hi_us (already written)."""
        start, end = lo_us, hi_us
        for attempt in range(self.max_rounds):
            prev = self.registers.before(ship, meter, lo_us)
            nxt = self.registers.after(ship, meter, hi_us)
            # A round only widens the span: an earlier round may have written stale parts out
            # to its own ends, and the verified round must cover (and so overwrite) them all.
            start = min(start, prev[0] if prev is not None else lo_us)
            end = max(end, nxt[0] if nxt is not None else hi_us)
            span = self._compute(ship, meter, start, end, on_parts)
            if self._digest(ship, meter, start, end) == span.digest:
                return span
            self.rounds += 1
            log.info("register %s/%s changed under its recomputation (another bridge); "
                     "recomputing (round %d)", ship, meter, attempt + 2)
        raise StoreError(f"register {ship}/{meter}: the span kept changing over "
                         f"{self.max_rounds} recomputations")

    def _readings(self, ship: str, meter: str, start: int, end: int) -> Iterable[Reading]:
        cursor = start
        while cursor <= end:
            page = self.registers.page(ship, meter, cursor, end, self.chunk)
            yield from page
            if len(page) < self.chunk:
                return
            cursor = page[-1][0] + 1

    def _digest(self, ship: str, meter: str, start: int, end: int) -> bytes:
        h = hashlib.sha256()
        for t, v in self._readings(ship, meter, start, end):
            h.update(f"{t}:{v!r};".encode())
        return h.digest()

    def _compute(self, ship: str, meter: str, start: int, end: int,
                 on_parts: Callable[[Sequence[Part]], None] | None) -> Span:
        h = hashlib.sha256()
        buffer: list[Part] = []
        prev: Reading | None = None
        n = 0
        for t, v in self._readings(ship, meter, start, end):
            h.update(f"{t}:{v!r};".encode())
            n += 1
            if prev is not None:
                for part in span_parts(ship, meter, prev[0], t, pair_energy(prev[1], v)):
                    buffer.append(part)
                    if len(buffer) >= self.chunk:
                        self._flush(buffer, on_parts)
            prev = (t, v)
        self._flush(buffer, on_parts)
        return Span(start, end, h.digest(), n)

    def _flush(self, buffer: list[Part], on_parts: Callable[[Sequence[Part]], None] | None) -> None:
        if not buffer:
            return
        self.registers.write_parts(buffer)
        if on_parts is not None:
            on_parts(buffer)
        buffer.clear()


class InfluxRegisters:
    """:class:`Registers` over InfluxDB's v1 API (the bridge's synchronous store)."""

    def __init__(self, store: InfluxStore) -> None:
        self.store = store
        cfg = store.cfg
        self._from = (f"{quote_ident(cfg.database)}.{quote_ident(cfg.retention_policy)}."
                      f"{quote_ident(REGISTER)}")

    def _select(self, ship: str, meter: str, where: str, tail: str) -> list[Reading]:
        q = (f"SELECT {quote_ident(FIELD_VALUE)} FROM {self._from} WHERE "
             f"{quote_ident('ship')} = {quote_string(ship)} AND "
             f"{quote_ident('meter')} = {quote_string(meter)} AND {where} {tail}")
        out: list[Reading] = []
        for result in self.store.query(q):
            for series in result.get("series", []):
                out.extend((int(t), float(v)) for t, v in series["values"])
        return out

    def before(self, ship: str, meter: str, t_us: int) -> Reading | None:
        rows = self._select(ship, meter, f"time < {t_us}u", "ORDER BY time DESC LIMIT 1")
        return rows[0] if rows else None

    def after(self, ship: str, meter: str, t_us: int) -> Reading | None:
        rows = self._select(ship, meter, f"time > {t_us}u AND time < {_MAX_NS}",
                            "ORDER BY time ASC LIMIT 1")
        return rows[0] if rows else None

    def page(self, ship: str, meter: str, lo_us: int, hi_us: int, limit: int) -> list[Reading]:
        return self._select(ship, meter, f"time >= {lo_us}u AND time <= {hi_us}u",
                            f"ORDER BY time ASC LIMIT {int(limit)}")

    def write_parts(self, parts: Sequence[Part]) -> None:
        self.store.write(lines(parts).encode())

    def close(self) -> None:
        self.store.close()


def settle_with_retry(settler: Settler, ship: str, meter: str, lo_us: int, hi_us: int, *,
                      abandoned: Callable[[float], bool], max_delay: float = 30.0,
                      on_parts: Callable[[Sequence[Part]], None] | None = None) -> Span | None:
    """:meth:`Settler.settle`, retried with capped backoff while InfluxDB fails; None when the
    bridge gives up at shutdown (``abandoned(wait)`` waits and says so): the message then stays
    unacknowledged and is delivered again."""
    delay = 0.2
    logged = False
    while True:
        try:
            return settler.settle(ship, meter, lo_us, hi_us, on_parts)
        except StoreError as exc:
            if not logged:
                log.warning("recomputing register %s/%s failed, retrying: %s", ship, meter, exc)
                logged = True
            if abandoned(delay):
                return None
            delay = min(delay * 2, max_delay)


__all__ = ["InfluxRegisters", "Registers", "Settler", "Span", "settle_with_retry"]
