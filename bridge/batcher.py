"""Batches normalized messages into InfluxDB writes; acknowledges messages only once stored.

The MQTT thread calls :meth:`Batcher.add`; one writer thread runs :meth:`Batcher.run`. Memory is
bounded by the broker, not here: the bridge announces a Receive Maximum of ``max_inflight``, so
while a write is failing (messages stay unacknowledged) the broker stops delivering once that many
are outstanding.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from bridge.metrics import BridgeMetrics
from fleet.errors import StoreRejectedError, StoreTooLargeError, StoreUnavailableError
from fleet.schema import Part

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Pending:
    """One MQTT message whose data awaits a write."""

    mid: int
    qos: int
    generation: int  # connection it arrived on: a PUBACK is only valid on that connection
    ship: str
    batch_id: str | None
    accepted: int
    rejected: int
    body: str  # its points, line protocol
    npoints: int
    parts: list[Part] = field(repr=False)


class Store(Protocol):
    def write(self, body: bytes) -> None: ...


class Sink(Protocol):
    """What happens to messages after a write: acknowledged (stored) or refused (data's fault)."""

    def stored(self, items: Sequence[Pending]) -> None: ...

    def refused(self, item: Pending, detail: str) -> None: ...


class Coarse(Protocol):
    """The coarse series' hooks (:class:`bridge.rollup.Rollup`): ``before`` durably marks what a
    batch's parts touch, ``after`` (once they are written, or refused) queues the update."""

    def before(self, parts: Iterable[Part]) -> object: ...

    def after(self, entry: Any) -> None: ...


class Batcher:
    def __init__(self, store: Store, sink: Sink, metrics: BridgeMetrics, *, batch_size: int,
                 flush_interval: float, retry_max_delay: float,
                 coarse: Coarse | None = None) -> None:
        self.coarse = coarse
        self.store = store
        self.sink = sink
        self.metrics = metrics
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.retry_max_delay = retry_max_delay
        self._queue: deque[Pending] = deque()
        self._queued_points = 0
        self._oldest = 0.0
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._abandon = threading.Event()
        self.healthy = True  # False while InfluxDB is failing

    def add(self, item: Pending) -> None:
        with self._cond:
            if not self._queue:
                self._oldest = time.monotonic()
            self._queue.append(item)
            self._queued_points += item.npoints
            if self._queued_points >= self.batch_size:
                self._cond.notify()

    def pending(self) -> int:
        with self._cond:
            return len(self._queue)

    def stop(self, abandon_after: float = 5.0) -> None:
        """Flush what is queued, then let :meth:`run` return.

        If InfluxDB is down, give up after ``abandon_after`` seconds: unacknowledged messages
        stay with the broker and are delivered again on the next start.
        """
        self._stopping.set()
        with self._cond:
            self._cond.notify()
        timer = threading.Timer(abandon_after, self._abandon.set)
        timer.daemon = True
        timer.start()

    def _take(self) -> list[Pending] | None:
        """Wait for a full batch or the flush deadline; None when stopping and drained."""
        with self._cond:
            while True:
                if self._queue:
                    due = self._oldest + self.flush_interval
                    if (self._queued_points >= self.batch_size or time.monotonic() >= due
                            or self._stopping.is_set()):
                        break
                    self._cond.wait(max(0.0, due - time.monotonic()))
                elif self._stopping.is_set():
                    return None
                else:
                    self._cond.wait(0.5)
            batch: list[Pending] = []
            points = 0
            while self._queue and (not batch or points + self._queue[0].npoints <= self.batch_size):
                item = self._queue.popleft()
                batch.append(item)
                points += item.npoints
            self._queued_points -= points
            self._oldest = time.monotonic()
            return batch

    def run(self) -> None:
        while not self._abandon.is_set():
            batch = self._take()
            if batch is None:
                return
            entry = (self.coarse.before(p for item in batch for p in item.parts)
                     if self.coarse is not None else None)
            try:
                if self._write(batch):
                    self.sink.stored(batch)
            finally:
                if self.coarse is not None:
                    self.coarse.after(entry)

    def _write(self, batch: list[Pending]) -> bool:
        """Write until stored (True). On the data's fault, bisect to the messages concerned and
        refuse those; on 413, split. Parts stored or refused on the way are handed to the sink
        here, and False returned, as when the write is abandoned at shutdown."""
        try:
            self._put("\n".join(item.body for item in batch), sum(i.npoints for i in batch))
            return True
        except _AbandonedError:
            return False
        except StoreTooLargeError:
            self.metrics.write_errors.labels("too_large").inc()
            if len(batch) == 1:
                return self._write_in_pieces(batch[0])
        except StoreRejectedError as exc:
            self.metrics.write_errors.labels("rejected").inc()
            if len(batch) == 1:
                log.error("InfluxDB refused the data of one message from %s: %s",
                          batch[0].ship, exc)
                self.sink.refused(batch[0], str(exc))
                return False
        # Idempotent writes make rewriting the points of the good half harmless.
        half = len(batch) // 2
        for part in (batch[:half], batch[half:]):
            if self._write(part):
                self.sink.stored(part)
            elif self._abandon.is_set():
                break
        return False

    def _write_in_pieces(self, item: Pending) -> bool:
        """One message too large for one request: its points in smaller requests. Refused (once)
        if a piece is refused or a single point is too large."""
        error = ""
        chunks = [item.body.split("\n")]
        while chunks:
            lines = chunks.pop()
            try:
                self._put("\n".join(lines), len(lines))
            except _AbandonedError:
                return False
            except (StoreTooLargeError, StoreRejectedError) as exc:
                if len(lines) == 1 or isinstance(exc, StoreRejectedError):
                    error = error or str(exc)
                else:
                    half = len(lines) // 2
                    chunks += [lines[half:], lines[:half]]
        if error:
            self.sink.refused(item, error)
            return False
        return True

    def _put(self, body: str, npoints: int) -> None:
        """One write, retried with capped backoff while InfluxDB is unavailable. Raises the
        store's errors for the data's fault or a 413, or _AbandonedError at shutdown."""
        data = body.encode()
        delay = 0.2
        while True:
            started = time.perf_counter()
            try:
                self.store.write(data)
            except StoreUnavailableError as exc:
                self.metrics.write_errors.labels("unavailable").inc()
                if self.healthy:
                    log.warning("InfluxDB unavailable, holding the batch and retrying: %s", exc)
                self.healthy = False
                wait = exc.retry_after if exc.retry_after is not None else delay
                delay = min(delay * 2, self.retry_max_delay)
                if self._abandon.wait(min(wait, self.retry_max_delay)):
                    raise _AbandonedError from exc
                continue
            if not self.healthy:
                log.warning("InfluxDB is back; writing again")
                self.healthy = True
            self.metrics.write_seconds.observe(time.perf_counter() - started)
            self.metrics.batch_points.observe(npoints)
            self.metrics.points.inc(npoints)
            return


class _AbandonedError(Exception):
    """The batcher is stopping while InfluxDB is unavailable: leave the messages unacknowledged."""
