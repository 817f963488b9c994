"""Keeping the coarse series (hourly, daily in the fleet's zone) exact as the bridge stores parts.

Per batch, in the writer thread (:class:`bridge.batcher.Batcher` calls :meth:`Rollup.before` and
:meth:`Rollup.after` around the parts write and the sink's ``stored``):

1. **Journal.** Before the parts are written, one journal point names the whole fleet-local days
   (per ship, as their UTC hours) that the batch touches and that no outstanding mark of this
   bridge covers yet (measurement ``rollup_journal``, tag ``bridge`` = this bridge's client id,
   retention policy ``<retention_policy>_journal``, 30 days). It is a durable "dirty" mark: if
   the bridge dies after the parts are written and before the coarse values follow, the journal
   still says which values to recompute. A batch whose days are all marked already writes no
   point: its entry *pins* those marks (each mark stays outstanding, so the checkpoint stays
   below it, until every entry relying on it is reconciled), and the next batch after that
   writes a new one. So a ship sending its current hour costs about one journal point a day, and
   a backlog one per day it covers, instead of one per batch; recovery recomputes whole days,
   which reconcile reads anyway. The entry in memory keeps only the hours really touched.
2. **Parts**, then the PUBACK, exactly as without coarse series (the coarse update never holds the
   PUBACK back: it runs in a worker thread).
3. **Reconcile.** The worker takes released entries (merging what is queued; under sustained load
   it first lets them gather, :data:`COALESCE` seconds after a loop that found entries queued
   behind it, doubling per such loop up to :data:`MAX_COALESCE`, back to :data:`COALESCE` once a
   loop finds nothing queued; a worker that had to wait for work takes the next entry at once;
   so an hour touched by many batches is reconciled once, and coarse values lag the parts by at
   most about :data:`MAX_COALESCE` plus one loop; waiting only delays
   the loop, and each loop still reads after every parts write it covers), and for every coarse
   value touching their hours runs :func:`fleet.coarse.reconcile`: read the parts, write each
   value that differs from its parts' sum, and read the parts again, until a read made after its
   last write agrees with what is stored. While parts keep arriving (entries queued), a loop
   pauses after :data:`PACED_ROUNDS` round(s) and goes on one gathering time later (its next round starts with
   a read, its journal entries stay outstanding), merged with the entries queued meanwhile: the
   same loop, spread out, so the argument below is unchanged. It goes on only with the days
   holding a value it wrote in its last round: every other value was read equal to its parts
   after every parts write of its entries, which is all the argument asks of the loop for that
   value. Nothing is ever incremented. A failure (InfluxDB down) is retried with backoff, never
   dropped; the entries stay queued.
4. **Checkpoint.** ``rollup_checkpoint`` (per bridge) records the journal time below which every
   entry is reconciled. At start, each bridge queues every journal entry newer than each bridge's
   checkpoint (its own after a crash; a bridge that never comes back is covered by the others:
   reconciling a value again is harmless), so durable marks survive a crash.

**Why two bridges cannot leave a value stale** (the read-then-write race: A reads the parts, B
writes new parts, B writes the coarse value, A writes its older sum over it). InfluxDB serves
reads and writes on one node in order; take the final state of one value V, the last parts write
P touching V, and the last coarse write W of V, made by a reconcile loop L.

- P's own loop X (in the bridge that wrote P, or the one that restarts it) reads the parts after
  P, so it reads the final sum F. If X wrote V, that write is at or before W, so L's read after W
  also comes after P and reads F; L stops only when that read equals what is stored, W's value:
  so V = F. If X wrote nothing, X found V already equal to F at a moment after P: either that was
  after W (then W's value is F) or before W (then P < W < L's last read, which reads F, and L
  stops only if V = F).
- "Stops" is per value: a loop leaves V only after a read made after its own last write of V
  (or, never having written V, a read after its entries' parts writes) agreed; rounds narrowed
  to the values still unconfirmed keep that.
- So after the pipeline goes quiet every value equals the sum of its parts. Any loop that raced
  (A above) sees, in its read after writing, parts it did not sum, and goes round again.

**Upgrades.** ``rollup_state`` says whether the coarse series are complete and in which zone the
daily ones are kept. At start, when it is missing, of another schema version or of another zone
(``[query] timezone`` changed), the bridge builds them in the background from the stored parts, a
week at a time, logging progress, then marks them ready; readers use the parts until then.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from bridge.metrics import BridgeMetrics
from fleet import coarse
from fleet.calendar import DAY_US, HOUR_US, period_start
from fleet.config import Config
from fleet.errors import StoreError, StoreUnavailableError
from fleet.schema import Part, quote_ident, quote_string
from fleet.store import InfluxStore
from fleet.timeutil import format_datetime

log = logging.getLogger(__name__)

JOURNAL = "rollup_journal"
CHECKPOINT = "rollup_checkpoint"
JOURNAL_RETENTION = "30d"
BACKFILL_CHUNK_US = 7 * DAY_US
# How long a journal write is retried before the batch goes ahead without its durable mark.
JOURNAL_PATIENCE = 10.0
# Under sustained load (entries queued while the last update ran), how long the worker lets
# entries gather after the oldest was queued: an hour touched by many batches in that time is
# reconciled once (one round of reads for all of them), and the worker leaves the GIL and InfluxDB
# to the parts writer meanwhile. An idle worker takes an entry at once (no added delay).
COALESCE = 0.5
# While every loop finds new entries queued behind it (parts arriving without a pause), the
# gathering time doubles per loop up to this: under sustained load the worker reconciles each
# touched value about once per MAX_COALESCE instead of once per half second, and the coarse values
# lag the parts by at most about MAX_COALESCE plus one loop. It falls back to COALESCE as soon as
# a loop finds nothing queued.
MAX_COALESCE = 4.0
# Rounds (read, write what differs) of one reconcile before the worker pauses for the gathering
# time when parts keep arriving, instead of chasing every batch with another round at once; the
# read-back of what it wrote is the first round after the pause, merged with the new entries.
PACED_ROUNDS = 1


def journal_policy(cfg: Config) -> str:
    return f"{cfg.influxdb.retention_policy}_journal"


@dataclass(slots=True)
class Entry:
    """One batch's touched hours (ship -> UTC hour starts) and its journal time (0: not
    journaled, when InfluxDB refused the journal point)."""

    touched: dict[str, set[int]]
    at_us: int = 0
    pins: tuple[int, ...] = ()  # earlier journal times whose marks cover some of ``touched``


@dataclass(slots=True)
class _Queue:
    entries: list[Entry] = field(default_factory=list)
    first_at: float = 0.0  # monotonic time the oldest queued entry arrived
    # journal time -> entries holding it (their own mark, or one they rely on), not reconciled
    outstanding: dict[int, int] = field(default_factory=dict)
    done_us: int = 0


def encode(touched: dict[str, set[int]]) -> str:
    """``ship:h0-h1,h2;ship2:...`` with hours as epoch hour numbers, runs as ranges."""
    out = []
    for ship in sorted(touched):
        hours = sorted(h // HOUR_US for h in touched[ship])
        runs: list[str] = []
        start = prev = hours[0]
        for h in [*hours[1:], None]:
            if h is not None and h == prev + 1:
                prev = h
                continue
            runs.append(str(start) if start == prev else f"{start}-{prev}")
            if h is not None:
                start = prev = h
        out.append(f"{ship}:{','.join(runs)}")
    return ";".join(out)


def decode(text: str) -> dict[str, set[int]]:
    out: dict[str, set[int]] = {}
    for item in filter(None, text.split(";")):
        ship, _, runs = item.partition(":")
        hours = out.setdefault(ship, set())
        for run in filter(None, runs.split(",")):
            a, _, b = run.partition("-")
            hours.update(h * HOUR_US for h in range(int(a), int(b or a) + 1))
    return out


def touched_hours(parts: Iterable[Part]) -> dict[str, set[int]]:
    out: dict[str, set[int]] = {}
    # Fields unpacked, no set made per part: this runs for every part the bridge stores.
    for ship, start, _kwh, _seconds, _meter in parts:
        hour = start - start % HOUR_US
        hours = out.get(ship)
        if hours is None:
            out[ship] = {hour}
        else:
            hours.add(hour)
    return out


def gathering(window: float, *, busy: bool) -> float:
    """The next gathering time after a loop: doubled (up to :data:`MAX_COALESCE`) when entries
    queued behind it, else back to :data:`COALESCE`."""
    return min(window * 2, MAX_COALESCE) if busy else COALESCE


@functools.lru_cache(maxsize=4096)
def _day_span(hour_us: int, tz: ZoneInfo) -> tuple[int, int]:
    """The whole hours covering every fleet-local day that touches the hour at ``hour_us``."""
    a, b, _hours, _days = coarse.span(hour_us, hour_us + HOUR_US, tz)
    return a, b


def spans(hours: set[int]) -> list[tuple[int, int]]:
    """Contiguous [start, end) ranges covering ``hours``, merged across gaps under two days (one
    read of a few more parts beats another round of statements)."""
    out: list[tuple[int, int]] = []
    for h in sorted(hours):
        if out and h - out[-1][1] < 2 * DAY_US:
            out[-1] = (out[-1][0], h + HOUR_US)
        else:
            out.append((h, h + HOUR_US))
    return out


class Rollup:
    """Journal, worker thread and background build of the coarse series for one bridge."""

    def __init__(self, cfg: Config, store: InfluxStore, io: coarse.CoarseIO | None = None,
                 metrics: BridgeMetrics | None = None,
                 on_written: Callable[[set[str], int], None] | None = None) -> None:
        self.cfg = cfg
        self.metrics = metrics
        self.store = store
        self.io = io if io is not None else coarse.InfluxCoarse(store)
        if on_written is not None:  # told after every coarse write (bridge/coarsenotice.py)
            self.io = _Announced(self.io, on_written)
        self.tz = coarse.fleet_zone(cfg)
        self.bridge_id = cfg.bridge.client_id
        self._q = _Queue()
        self._busy = False  # entries arrived while the last update ran: let the next ones gather
        self._window = COALESCE  # how long they gather (grows under sustained load)
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._last_us = 0
        self._checkpointed = 0.0
        self._mark = 0
        self._threads: list[threading.Thread] = []
        self.failures = 0
        self.journal_failures = 0
        self._journal_off_until = 0.0
        # (ship, day span) -> the outstanding journal time marking it, and the reverse
        self._marks: dict[tuple[str, int, int], int] = {}
        self._marked_by: dict[int, list[tuple[str, int, int]]] = {}
        self.backfilled = threading.Event()

    # -- set-up -------------------------------------------------------------------------------

    def prepare(self) -> None:
        """Create the retention policies (the bridge calls this at start, InfluxDB up)."""
        coarse.ensure_policy(self.store)
        db = quote_ident(self.cfg.influxdb.database)
        rp = quote_ident(journal_policy(self.cfg))
        res = self.store.query(f"SHOW RETENTION POLICIES ON {db}")
        names = {row[0] for s in res[0].get("series", []) for row in s.get("values", [])}
        if journal_policy(self.cfg) not in names:
            self.store.query(f"CREATE RETENTION POLICY {rp} ON {db} DURATION "
                             f"{JOURNAL_RETENTION} REPLICATION 1", write=True)

    def start(self) -> None:
        """Queue unfinished journal entries, then start the worker and (if needed) the build."""
        self._recover()
        for target, name in ((self._work, "rollup-worker"), (self._backfill, "rollup-build")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 5.0) -> None:
        """Finish what is queued (up to ``timeout``), then stop; the journal keeps the rest."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._q.entries and time.monotonic() < deadline:
                self._cond.wait(0.1)
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout=max(0.1, deadline - time.monotonic()))

    def pending(self) -> int:
        with self._cond:
            return len(self._q.entries) + len(self._q.outstanding)

    # -- the batcher's hooks (writer thread) ---------------------------------------------------

    def before(self, parts: Iterable[Part]) -> Entry:
        """Journal the fleet days ``parts`` touch that no outstanding mark covers yet (retried
        while InfluxDB is unavailable)."""
        entry = Entry(touched_hours(parts))
        if not entry.touched:
            return entry
        new: dict[str, set[tuple[int, int]]] = {}
        pins: set[int] = set()
        with self._cond:
            for ship, hours in entry.touched.items():
                for h in hours:
                    day = _day_span(h, self.tz)
                    held = self._marks.get((ship, *day))
                    if held is None:
                        new.setdefault(ship, set()).add(day)
                    else:
                        pins.add(held)
            for t in pins:
                self._q.outstanding[t] += 1
        entry.pins = tuple(sorted(pins))
        if not new:
            return entry  # every touched day is durably marked by an entry not yet reconciled
        at = max(time.time_ns() // 1000, self._last_us + 1)
        self._last_us = at
        marked = {ship: {h for a, b in days for h in range(a, b, HOUR_US)}
                  for ship, days in new.items()}
        body = (f"{JOURNAL},bridge={self.bridge_id} touched={_field(encode(marked))} "
                f"{at * 1000}").encode()
        if time.monotonic() < self._journal_off_until:
            return entry  # queued in memory all the same: only crash-durability is missing
        delay = 0.2
        give_up = time.monotonic() + JOURNAL_PATIENCE
        while not self._stop.is_set():
            try:
                self.store.write(body, retention_policy=journal_policy(self.cfg))
            except StoreError as exc:
                if self.metrics is not None:  # counted like any failed write of the bridge
                    self.metrics.write_errors.labels(
                        "unavailable" if _retryable(exc) else "rejected").inc()
                if _missing(exc) or not _retryable(exc) or time.monotonic() > give_up:
                    # Never hold the parts (and the PUBACK) back for the journal: the coarse
                    # update still runs from memory; only a crash before it would miss it
                    # (`fleetctl rollup rebuild` mends that).
                    self.journal_failures += 1
                    if _missing(exc):
                        self._journal_off_until = time.monotonic() + 60.0
                    log.error("journal point not written (%s); this batch's coarse values are "
                              "updated but not durably marked", exc)
                    break
                log.warning("journal write failed, retrying: %s", exc)
                self._stop.wait(delay)
                delay = min(delay * 2, self.cfg.bridge.retry_max_delay)
                continue
            entry.at_us = at
            with self._cond:
                self._q.outstanding[at] = self._q.outstanding.get(at, 0) + 1
                keys = [(ship, a, b) for ship, days in new.items() for a, b in days]
                for key in keys:
                    self._marks[key] = at
                self._marked_by[at] = keys
            break
        return entry

    def after(self, entry: Entry) -> None:
        """The parts of ``entry`` are written (or refused): queue its coarse values."""
        if not entry.touched:
            return
        with self._cond:
            if not self._q.entries:
                self._q.first_at = time.monotonic()
            self._q.entries.append(entry)
            self._cond.notify_all()

    # -- worker ---------------------------------------------------------------------------------

    def _take(self) -> list[Entry]:
        """The queued entries: under load once the oldest has waited the gathering time, else (and
        when stopping) at once; empty after a second with nothing queued."""
        with self._cond:
            if not self._q.entries and not self._stop.is_set():
                # Waiting for work: whatever load there was has passed, so what comes next is
                # taken at once.
                self._busy, self._window = False, COALESCE
                self._cond.wait(1.0)
            while self._busy and self._q.entries and not self._stop.is_set():
                left = self._q.first_at + self._window - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            taken, self._q.entries = self._q.entries, []
            return taken

    def _work(self) -> None:
        delay = 0.2
        taken: list[Entry] = []
        while True:
            if not taken:
                taken = self._take()
                if not taken:
                    if self._stop.is_set():
                        self._checkpoint(force=True)
                        return  # stopping, nothing queued
                    self._checkpoint()
                    continue
            try:
                # Paced only under sustained load: after a quiet spell a loop runs to its end at
                # once, so a batch stored then is in the coarse series a moment after its PUBACK.
                unfinished = self.update(taken, paced=self._busy and not self._stop.is_set())
            except Exception as exc:  # a bug must not end the updates silently either
                self.failures += 1
                if isinstance(exc, StoreError | _NotCleanError):
                    log.warning("coarse series update failed, retrying in %.1fs: %s", delay, exc)
                else:
                    log.exception("coarse series update failed, retrying in %.1fs", delay)
                if self._stop.wait(delay):
                    return  # the journal keeps them for the next start
                delay = min(delay * 2, self.cfg.bridge.retry_max_delay)
                # Merge what arrived meanwhile into the retry: memory stays bounded by the
                # distinct (ship, hour) pairs waiting, however long InfluxDB refuses.
                with self._cond:
                    taken.extend(self._q.entries)
                    self._q.entries = []
                taken = _merge(taken)
                continue
            delay = 0.2
            if unfinished:
                # Parts kept arriving for these values: the same loops go on after a pause, from
                # a read made after their last write, together with what arrived meanwhile (one
                # round of reads for all of it). Only the days holding a value written in the last
                # round are read again: every other value was read equal to its parts after the
                # parts writes of these entries, which is all the argument asks of this loop.
                # Their journal entries stay outstanding.
                with self._cond:
                    queued = bool(self._q.entries)
                if queued:  # only while parts keep arriving; else the read-back follows at once
                    self._stop.wait(self._window)
                    self._window = gathering(self._window, busy=True)
                with self._cond:
                    taken = [Entry(unfinished), *_merge(taken)[1:], *self._q.entries]
                    self._q.entries = []
                taken = _merge(taken)
                continue
            with self._cond:
                self._busy = bool(self._q.entries)
                self._window = gathering(self._window, busy=self._busy)
            self._advance(taken)
            taken = []

    def update(self, entries: list[Entry], *, paced: bool = False) -> dict[str, set[int]]:
        """Reconcile every coarse value touching the entries' hours (raises on failure).

        ``paced``: stop after :data:`PACED_ROUNDS` rounds when parts keep arriving and return the
        hours (ship -> UTC hour starts) of the values written in the last round, whose read-back
        is still to come (the caller goes on later, starting with a read of those); empty when
        every value is confirmed."""
        merged: dict[str, set[int]] = {}
        for e in entries:
            for ship, hours in e.touched.items():
                merged.setdefault(ship, set()).update(hours)
        by_span: dict[tuple[int, int], list[str]] = {}
        for ship, hours in merged.items():
            for a, b in spans(hours):
                # Reconcile reads whole fleet days anyway: ships touching the same days share
                # one round of statements.
                wide = coarse.span(a, b, self.tz)
                by_span.setdefault((wide[0], wide[1]), []).append(ship)
        unfinished: dict[str, set[int]] = {}
        for (a, b), ships in sorted(by_span.items()):
            if paced:
                outcome = coarse.reconcile(self.io, sorted(ships), a, b, self.tz,
                                           max_rounds=PACED_ROUNDS)
                for key in outcome.unconfirmed:  # its hour's read span covers its day too
                    unfinished.setdefault(key.ship, set()).add(
                        key.start_us - key.start_us % HOUR_US)
                continue
            outcome = coarse.reconcile(self.io, sorted(ships), a, b, self.tz)
            if not outcome.clean:
                raise _NotCleanError(f"values of {len(ships)} ship(s) kept changing")
        return unfinished

    def _advance(self, done: list[Entry]) -> None:
        with self._cond:
            for e in done:
                for t in (e.at_us, *e.pins) if e.at_us else e.pins:
                    left = self._q.outstanding.get(t, 0) - 1
                    if left > 0:
                        self._q.outstanding[t] = left
                        continue
                    self._q.outstanding.pop(t, None)
                    for key in self._marked_by.pop(t, ()):  # its days need a new mark now
                        if self._marks.get(key) == t:
                            del self._marks[key]
                self._q.done_us = max(self._q.done_us, e.at_us)
            self._cond.notify_all()
        self._checkpoint()

    def _checkpoint(self, force: bool = False) -> None:
        """Record how far the journal is done: at most once a second (redoing the entries of
        that second after a crash is harmless), stamped now so the journal's retention keeps the
        latest."""
        now = time.monotonic()
        if not force and now - self._checkpointed < 1.0:
            return
        with self._cond:
            mark = (min(self._q.outstanding) - 1 if self._q.outstanding else self._q.done_us)
        if mark <= 0 or mark == self._mark:
            return
        body = f"{CHECKPOINT},bridge={self.bridge_id} done={mark}i {time.time_ns()}".encode()
        try:
            self.store.write(body, retention_policy=journal_policy(self.cfg))
        except StoreError as exc:  # the next one will do; redoing entries is harmless
            log.warning("rollup checkpoint not written: %s", exc)
            return
        self._checkpointed, self._mark = now, mark

    # -- recovery and build ---------------------------------------------------------------------

    def _recover(self) -> None:
        try:
            self._recover_entries()
        except StoreError as exc:
            if not _missing(exc):
                raise
            log.error("coarse series: the journal's retention policy %s is missing (%s); "
                      "coarse values are kept from memory only", journal_policy(self.cfg), exc)

    def _recover_entries(self) -> None:
        src = (f"{quote_ident(self.cfg.influxdb.database)}."
               f"{quote_ident(journal_policy(self.cfg))}.")
        checkpoints: dict[str, int] = {}
        res = self.store.query(f"SELECT last(done) AS done FROM {src}{quote_ident(CHECKPOINT)} "
                               "GROUP BY bridge")
        for series in res[0].get("series", []) if res else []:
            checkpoints[series["tags"]["bridge"]] = int(series["values"][0][1])
        res = self.store.query(f"SHOW TAG VALUES FROM {src}{quote_ident(JOURNAL)} "
                               "WITH KEY = bridge")
        bridges = {row[1] for s in res[0].get("series", []) for row in s.get("values", [])}
        found = 0
        for bridge in sorted(bridges):
            since = checkpoints.get(bridge, 0)
            res = self.store.query(
                f"SELECT touched FROM {src}{quote_ident(JOURNAL)} WHERE bridge = "
                f"{quote_string(bridge)} AND time > {since}u")
            for series in res[0].get("series", []) if res else []:
                for t, touched in series["values"]:
                    entry = Entry(decode(str(touched)), int(t) if bridge == self.bridge_id else 0)
                    self._q.entries.append(entry)
                    if entry.at_us:
                        self._q.outstanding[entry.at_us] = 1
                        self._last_us = max(self._last_us, entry.at_us)
                    found += 1
        if found:
            log.info("coarse series: %d unfinished journal entries found; updating them", found)

    def _backfill(self) -> None:
        delay = 1.0
        while not self._stop.is_set():
            try:
                self.build()
                self.backfilled.set()
                return
            except StoreError as exc:
                log.warning("coarse series build interrupted, resuming in %.0fs: %s", delay, exc)
            except Exception:  # a bug: keep trying (and saying so) rather than stop silently
                log.exception("coarse series build failed, retrying in %.0fs", delay)
            self._stop.wait(delay)
            delay = min(delay * 2, 60.0)

    def build(self) -> None:
        """Build the coarse series from the stored parts when ``rollup_state`` says they are
        missing, of another version or zone (an upgraded installation)."""
        state = coarse.read_state(self.store)
        zone = self.tz.key
        if state is not None and state.version == coarse.VERSION and state.tz == zone \
                and state.ready:
            coarse.write_state(self.store, state)  # stamped anew: it outlives any retention
            return
        if state is not None and state.tz and state.tz != zone:
            log.warning("coarse series: daily series kept in %s, [query] timezone is now %s: "
                        "rebuilding them", state.tz, zone)
            coarse.drop_daily(self.store)
        coarse.write_state(self.store, coarse.State(coarse.VERSION, zone, ready=False))
        extent = coarse.parts_extent(self.store)
        if extent is not None:
            first = period_start(extent[0], "1d", self.tz)
            pieces = coarse.chunks(first, extent[1] + HOUR_US, BACKFILL_CHUNK_US)
            log.info("coarse series: building from the stored parts, %d week(s) from %s",
                     len(pieces), _day(first))
            for i, (a, b) in enumerate(pieces, 1):
                if self._stop.is_set():
                    return
                outcome = coarse.reconcile(self.io, None, a, b, self.tz)
                if not outcome.clean:
                    raise StoreError("coarse values kept changing during the build")
                log.info("coarse series: built %d/%d weeks (%d values written)", i, len(pieces),
                         outcome.written)
        coarse.write_state(self.store, coarse.State(coarse.VERSION, zone, ready=True))
        log.info("coarse series: complete (daily series in %s)", zone)


class _Announced:
    """A :class:`fleet.coarse.CoarseIO` that calls ``on_written(ships, n)`` after each write."""

    def __init__(self, io: coarse.CoarseIO, on_written: Callable[[set[str], int], None]) -> None:
        self._io, self._on_written = io, on_written

    def part_sums(self, ships: Sequence[str] | None, start_us: int, end_us: int,
                  bucket_us: int) -> dict[tuple[str, str], list[tuple[int, coarse.Sum]]]:
        return self._io.part_sums(ships, start_us, end_us, bucket_us)

    def stored(self, ships: Sequence[str] | None, start_us: int,
               end_us: int) -> dict[coarse.Key, coarse.Sum]:
        return self._io.stored(ships, start_us, end_us)

    def read(self, ships: Sequence[str] | None, start_us: int, end_us: int, bucket_us: int
             ) -> tuple[dict[tuple[str, str], list[tuple[int, coarse.Sum]]],
                        dict[coarse.Key, coarse.Sum]]:
        return self._io.read(ships, start_us, end_us, bucket_us)

    def write(self, values: dict[coarse.Key, coarse.Sum]) -> None:
        self._io.write(values)
        try:
            self._on_written({k.ship for k in values}, len(values))
        except Exception:  # never fail the reconcile for a notice (the watch still sees it)
            log.exception("coarse write notice failed")

    def horizon(self) -> int | None:
        return self._io.horizon()


def _merge(entries: list[Entry]) -> list[Entry]:
    """One entry holding every touched hour, plus the journal times to mark done (as empty
    entries: they carry no hours)."""
    touched: dict[str, set[int]] = {}
    for e in entries:
        for ship, hours in e.touched.items():
            touched.setdefault(ship, set()).update(hours)
    return [Entry(touched), *(Entry({}, e.at_us, e.pins) for e in entries if e.at_us or e.pins)]


class _NotCleanError(Exception):
    pass


def _retryable(exc: StoreError) -> bool:
    return isinstance(exc, StoreUnavailableError)


def _missing(exc: StoreError) -> bool:
    """The journal's retention policy or database does not exist (create_database = false)."""
    return "not found" in str(exc)


def _field(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _day(us: int) -> str:
    return format_datetime(us)[:10]


def describe(r: Rollup) -> dict[str, Any]:
    return {"pending": r.pending(), "failures": r.failures}
