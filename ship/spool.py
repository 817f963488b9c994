"""The ship's local spool: every reading is written here before it is published.

SQLite in WAL mode with ``synchronous=FULL``: a committed reading survives a process kill and a
power loss. Three tables::

    reading(seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- spool order, never reused
            start_us INTEGER,                       -- interval-beginning, UTC microseconds
            value REAL, units TEXT, interval_s REAL,
            batch TEXT,                             -- NULL: not sent yet; else its batch id
            meter TEXT, kind TEXT,                  -- the meter (main...), interval or total
            UNIQUE(meter, start_us))
    batch(id TEXT PRIMARY KEY, count, first_sent, last_sent, attempts)
    meta(key TEXT PRIMARY KEY, value TEXT)          -- counters, cursors, state for `ship status`

A batch is a set of readings published together under one ``batch_id``; it is deleted (with its
readings) only when the bridge confirms it on ``fleet/ships/<id>/ack``. Until then it is resent
with the same id and the same readings, which storage absorbs (rule 5: idempotent per part).
A batch id carries the spool's random id, so an ack meant for an earlier spool of the same ship
(the file deleted, the session still holding acks) never deletes anything here.

One reading per meter and start: a second reading with the same meter and start is ignored
(it would overwrite the same stored parts anyway) and counted as ``duplicates``.

Cap: at most ``max_readings`` rows. Adding past it drops the oldest rows (sent or not), counts
them in ``dropped`` and logs it: the newest data wins, and nothing is dropped silently.

Used from one thread only (the agent's); ``ship status`` may read it from another process
meanwhile (WAL readers do not block the writer).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import secrets
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fleet.errors import FleetError
from fleet.schema import METER_ID
from fleet.timeutil import format_datetime

log = logging.getLogger(__name__)

SCHEMA_VERSION = "2"  # 2: meter and kind per reading (a version 1 spool is upgraded at open)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS reading (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    start_us INTEGER NOT NULL,
    value REAL NOT NULL,
    units TEXT NOT NULL,
    interval_s REAL NOT NULL,
    batch TEXT,
    meter TEXT NOT NULL DEFAULT 'main',
    kind TEXT NOT NULL DEFAULT 'interval',
    UNIQUE(meter, start_us)
);
CREATE INDEX IF NOT EXISTS reading_batch ON reading(batch);
CREATE TABLE IF NOT EXISTS batch (
    id TEXT PRIMARY KEY,
    count INTEGER NOT NULL,
    first_sent REAL NOT NULL,
    last_sent REAL NOT NULL,
    attempts INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class SpoolError(FleetError):
    """The spool cannot be opened or used."""


class SpoolDiskFullError(SpoolError):
    """The disk (or the spool's page limit) is full: nothing more can be written."""


@dataclass(frozen=True, slots=True)
class Reading:
    """One measurement: interval-beginning UTC start, value in ``units`` over ``interval_s``,
    of ``meter``; ``kind`` ``total``: the value is the meter's register (running total) at
    ``start_us``, in an energy unit."""

    start_us: int
    value: float
    units: str
    interval_s: float
    meter: str = "main"
    kind: str = "interval"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.value) and self.value >= 0):
            raise ValueError(f"value must be finite and >= 0, got {self.value!r}")
        if not (math.isfinite(self.interval_s) and self.interval_s > 0):
            raise ValueError(f"interval must be positive, got {self.interval_s!r}")
        if not METER_ID.fullmatch(self.meter):
            raise ValueError(f"meter must be 1-32 characters of [A-Za-z0-9_-], got {self.meter!r}")
        if self.kind not in ("interval", "total"):
            raise ValueError(f"kind must be interval or total, got {self.kind!r}")


@dataclass(frozen=True, slots=True)
class Batch:
    """Readings published together under ``id``; all share units, interval, meter and kind."""

    id: str
    readings: list[Reading]
    attempts: int


@dataclass(frozen=True, slots=True)
class SpoolStats:
    """What ``fleetctl ship status`` prints."""

    ship: str
    spool_id: str
    depth: int
    unsent: int
    unconfirmed_batches: int
    oldest_us: int | None
    newest_us: int | None
    dropped: int
    rejected: int
    duplicates: int
    meta: dict[str, str]


def _is_disk_full(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code == sqlite3.SQLITE_FULL or "full" in str(exc).lower()


class Spool:
    """The spool file of one ship (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str], ship: str, *, max_readings: int = 1_000_000,
                 readonly: bool = False) -> None:
        self.path = Path(path)
        self.ship = ship
        self.max_readings = max_readings
        try:
            if readonly:
                if not self.path.is_file():
                    raise SpoolError(f"no spool at {self.path}")
                self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True,
                                           isolation_level=None, timeout=10)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(self.path, isolation_level=None, timeout=10)
        except (sqlite3.Error, OSError) as exc:
            raise SpoolError(f"cannot open the spool {self.path}: {exc}") from exc
        try:
            if not readonly:
                self._init()
            self.spool_id = self.get_meta("spool_id") or ""
            owner = self.get_meta("ship")
        except sqlite3.Error as exc:
            self._db.close()
            if _is_disk_full(exc):
                raise SpoolDiskFullError(f"disk full: cannot initialize the spool {self.path}"
                                         f" ({exc})") from exc
            raise SpoolError(f"cannot use the spool {self.path}: {exc}") from exc
        if owner and ship and owner != ship:
            self._db.close()
            raise SpoolError(f"the spool {self.path} belongs to ship {owner!r}, not {ship!r}")
        if not ship:
            self.ship = owner or ""
        self._count = self._scalar("SELECT count(*) FROM reading")

    def _init(self) -> None:
        db = self._db
        db.execute("PRAGMA journal_mode=WAL")
        # FULL: each commit is fsynced, so a reading survives a power loss, not only a kill.
        # Commits are per poll of the source, not per reading, so this stays cheap.
        db.execute("PRAGMA synchronous=FULL")
        with self._tx():
            self._upgrade_v1()
            # Statement by statement: executescript() would COMMIT the open transaction.
            for stmt in filter(None, (s.strip() for s in _SCHEMA.split(";"))):
                db.execute(stmt)
            if self._meta_raw("spool_id") is None:
                self._set("spool_id", secrets.token_hex(4))
                self._set("ship", self.ship)
                self._set("created", format_datetime(int(time.time() * 1e6)))
                self._set("schema", SCHEMA_VERSION)

    def _upgrade_v1(self) -> None:
        """A version 1 spool (before meters): its readings become meter ``main``, kept with
        their batches, in a table unique per (meter, start) instead of per start."""
        cols = [r[1] for r in self._db.execute("PRAGMA table_info(reading)")]
        if not cols or "meter" in cols:
            return
        self._db.execute("ALTER TABLE reading RENAME TO reading_v1")
        self._db.execute("DROP INDEX IF EXISTS reading_batch")
        self._db.execute(_SCHEMA.split(";", maxsplit=1)[0])
        self._db.execute("INSERT INTO reading(seq, start_us, value, units, interval_s, batch) "
                         "SELECT seq, start_us, value, units, interval_s, batch FROM reading_v1")
        self._db.execute("DROP TABLE reading_v1")
        self._db.execute("INSERT INTO meta(key, value) VALUES ('schema', ?) ON CONFLICT(key) "
                         "DO UPDATE SET value = excluded.value", (SCHEMA_VERSION,))
        log.info("spool %s upgraded to schema %s (meters)", self.path, SCHEMA_VERSION)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- helpers ------------------------------------------------------------------------------

    @contextmanager
    def _tx(self) -> Iterator[None]:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            yield
            self._db.execute("COMMIT")
        except BaseException as exc:
            # SQLite rolls back by itself after some errors (SQLITE_FULL among them).
            if self._db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
            if not isinstance(exc, sqlite3.Error):
                raise
            if _is_disk_full(exc):
                raise SpoolDiskFullError(f"disk full: cannot write the spool {self.path} "
                                         f"({exc})") from exc
            raise SpoolError(f"spool {self.path}: {exc}") from exc

    def _scalar(self, sql: str, args: tuple[object, ...] = ()) -> int:
        row = self._db.execute(sql, args).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def _meta_raw(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set(self, key: str, value: str) -> None:
        self._db.execute("INSERT INTO meta(key, value) VALUES (?, ?) "
                         "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))

    def _bump(self, key: str, n: int) -> None:
        self._db.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE "
                         "SET value = CAST(value AS INTEGER) + excluded.value", (key, n))

    # -- meta ---------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        try:
            return self._meta_raw(key)
        except sqlite3.Error as exc:
            raise SpoolError(f"spool {self.path}: {exc}") from exc

    def set_meta(self, **values: str) -> None:
        """Set meta keys in one transaction."""
        with self._tx():
            for key, value in values.items():
                self._set(key, value)

    # -- readings -----------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        """Readings held (sent or not) and not yet confirmed."""
        return self._count

    def add(self, readings: Iterable[Reading], **meta: str) -> int:
        """Append readings in one transaction (with ``meta`` updates, e.g. a source cursor).

        Returns how many were added (duplicates of a held start are ignored). When the spool is
        over its cap afterwards, the oldest readings are dropped, counted and logged.
        """
        rows = [(r.start_us, r.value, r.units, r.interval_s, r.meter, r.kind) for r in readings]
        dropped_range: tuple[int, int, int] | None = None
        with self._tx():
            before = self._db.total_changes
            self._db.executemany("INSERT OR IGNORE INTO reading(start_us, value, units, "
                                 "interval_s, meter, kind) VALUES (?, ?, ?, ?, ?, ?)", rows)
            added = self._db.total_changes - before
            if added < len(rows):
                self._bump("duplicates", len(rows) - added)
            for key, value in meta.items():
                self._set(key, value)
            excess = self._count + added - self.max_readings
            if excess > 0:
                dropped_range = self._drop_oldest(excess)
        self._count = min(self._count + added, self.max_readings)
        if dropped_range is not None:
            n, first, last = dropped_range
            log.warning("spool full (cap %d readings): dropped the %d oldest (%s .. %s); %s "
                        "dropped in total", self.max_readings, n, format_datetime(first),
                        format_datetime(last), self.get_meta("dropped"))
        return added

    def _drop_oldest(self, n: int) -> tuple[int, int, int]:
        first, last = self._db.execute(
            "SELECT min(start_us), max(start_us) FROM (SELECT start_us FROM reading "
            "ORDER BY seq LIMIT ?)", (n,)).fetchone()
        self._db.execute("DELETE FROM reading WHERE seq IN "
                         "(SELECT seq FROM reading ORDER BY seq LIMIT ?)", (n,))
        # A batch whose readings are all gone has nothing left to confirm.
        self._db.execute("DELETE FROM batch WHERE id NOT IN "
                         "(SELECT DISTINCT batch FROM reading WHERE batch IS NOT NULL)")
        self._bump("dropped", n)
        return n, int(first), int(last)

    # -- batches ------------------------------------------------------------------------------

    def unsent(self) -> int:
        return self._scalar("SELECT count(*) FROM reading WHERE batch IS NULL")

    def new_batch(self, limit: int, *, newest: bool = False, min_seq: int = 0,
                  now: float | None = None) -> Batch | None:
        """Assign up to ``limit`` unsent readings to a new batch and return it (None: none).

        Oldest first, or with ``newest`` the most recent ones (live readings beside a backlog);
        only readings with ``seq > min_seq``. A batch stops where units, interval, meter or kind
        change (one payload is one meter's).
        """
        order = "DESC" if newest else "ASC"
        rows = self._db.execute(
            f"SELECT seq, start_us, value, units, interval_s, meter, kind FROM reading "
            f"WHERE batch IS NULL AND seq > ? ORDER BY seq {order} LIMIT ?",
            (min_seq, limit)).fetchall()
        if not rows:
            return None
        if newest:
            rows.reverse()
            key = rows[-1][3:]
            cut = len(rows)
            while cut > 0 and rows[cut - 1][3:] == key:
                cut -= 1
            rows = rows[cut:]
        else:
            key = rows[0][3:]
            rows = list(_takewhile_same(rows, key))
        seqs = [r[0] for r in rows]
        batch_id = f"{self.spool_id}-{seqs[0]}-{seqs[-1]}"
        when = time.time() if now is None else now
        with self._tx():
            self._db.executemany("UPDATE reading SET batch = ? WHERE seq = ?",
                                 [(batch_id, s) for s in seqs])
            self._db.execute("INSERT INTO batch(id, count, first_sent, last_sent, attempts) "
                             "VALUES (?, ?, ?, ?, 1)", (batch_id, len(rows), when, when))
        return Batch(batch_id, [Reading(*r[1:]) for r in rows], 1)

    def outstanding(self) -> list[tuple[str, float, int]]:
        """Batches sent and unconfirmed: (id, last_sent, attempts), oldest first."""
        return [(str(i), float(t), int(a)) for i, t, a in self._db.execute(
            "SELECT id, last_sent, attempts FROM batch ORDER BY first_sent, id")]

    def batch(self, batch_id: str) -> Batch | None:
        row = self._db.execute("SELECT attempts FROM batch WHERE id = ?", (batch_id,)).fetchone()
        if row is None:
            return None
        rows = self._db.execute("SELECT start_us, value, units, interval_s, meter, kind FROM "
                                "reading WHERE batch = ? ORDER BY seq", (batch_id,)).fetchall()
        return Batch(batch_id, [Reading(*r) for r in rows], int(row[0]))

    def mark_resent(self, batch_id: str, now: float | None = None) -> None:
        with self._tx():
            self._db.execute("UPDATE batch SET last_sent = ?, attempts = attempts + 1 "
                             "WHERE id = ?", (time.time() if now is None else now, batch_id))

    def confirm(self, batch_id: str, *, rejected: int = 0, all_rejected: bool = False,
                status: str = "stored", now: float | None = None) -> int:
        """The bridge answered for ``batch_id``: delete its readings; return how many (0: an
        unknown batch, e.g. the ack of a copy already confirmed). ``rejected`` readings of it (or
        ``all_rejected``) were refused and are counted as such."""
        when = format_datetime(int((time.time() if now is None else now) * 1e6))
        with self._tx():
            if self._db.execute("SELECT 1 FROM batch WHERE id = ?", (batch_id,)).fetchone() is None:
                return 0
            cur = self._db.execute("DELETE FROM reading WHERE batch = ?", (batch_id,))
            n = cur.rowcount
            self._db.execute("DELETE FROM batch WHERE id = ?", (batch_id,))
            if all_rejected:
                rejected = n
            if rejected > 0:
                self._bump("rejected", rejected)
            self._set("last_confirmed", when)
            self._set("last_confirmed_batch", f"{batch_id} ({status}, {n} readings)")
            self._bump("confirmed", n)
        self._count -= n
        return n

    def release_all(self) -> None:
        """Forget every batch, returning its readings to the unsent pool (tests, repairs)."""
        with self._tx():
            self._db.execute("UPDATE reading SET batch = NULL")
            self._db.execute("DELETE FROM batch")

    def max_seq(self) -> int:
        return self._scalar("SELECT coalesce(max(seq), 0) FROM reading")

    def stats(self) -> SpoolStats:
        try:
            oldest, newest = self._db.execute(
                "SELECT min(start_us), max(start_us) FROM reading").fetchone()
            depth = self._scalar("SELECT count(*) FROM reading")
            meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
            return SpoolStats(
                ship=meta.get("ship", self.ship), spool_id=meta.get("spool_id", ""),
                depth=depth, unsent=self.unsent(),
                unconfirmed_batches=self._scalar("SELECT count(*) FROM batch"),
                oldest_us=oldest, newest_us=newest,
                dropped=int(meta.get("dropped", 0)), rejected=int(meta.get("rejected", 0)),
                duplicates=int(meta.get("duplicates", 0)), meta=meta)
        except sqlite3.Error as exc:
            raise SpoolError(f"spool {self.path}: {exc}") from exc


def _takewhile_same(rows: list[tuple[int, int, float, str, float, str, str]],
                    key: tuple[str, float, str, str],
                    ) -> Iterator[tuple[int, int, float, str, float, str, str]]:
    for r in rows:
        if r[3:] != key:
            return
        yield r


def open_readonly(path: str | os.PathLike[str]) -> Spool:
    """Open an existing spool for reading (``fleetctl ship status``)."""
    return Spool(path, "", readonly=True)


__all__ = ["Batch", "Reading", "Spool", "SpoolDiskFullError", "SpoolError", "SpoolStats",
           "open_readonly"]
