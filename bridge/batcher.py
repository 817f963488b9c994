"""Batches normalized messages into InfluxDB writes; acknowledges messages only once stored.

The MQTT thread calls :meth:`Batcher.add`; one writer thread runs :meth:`Batcher.run`. Memory is
bounded by the broker, not here: the bridge announces a Receive Maximum of ``max_inflight``, so
while a write is failing (messages stay unacknowledged) the broker stops delivering once that many
are outstanding.

What follows a write (the sink's acknowledgements and energy notices, the coarse series' update)
runs on a finisher thread of its own, in the order of the writes, while the writer already sends
the next batch: one write is in flight at a time, as before, but the database is no longer idle
while the bridge acknowledges. The writer runs at most ``FINISH_DEPTH`` batches ahead; a batch
holding running totals is finished before the next write (its registers are read back and
recomputed, which a write of the same meter's next readings must not overtake).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from bridge.metrics import BridgeMetrics
from fleet.errors import StoreRejectedError, StoreTooLargeError, StoreUnavailableError
from fleet.schema import DEFAULT_METER, Part

log = logging.getLogger(__name__)

# Written batches whose finishing (acks, notices, coarse update) may still be waiting: enough to
# keep the database busy while one is finished, few enough to keep their memory small.
FINISH_DEPTH = 2


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
    meter: str = DEFAULT_METER
    # kind "total": the register readings (start_us, kWh) that ``body`` stores; their parts are
    # recomputed from the stored readings once written (bridge.totals), before the PUBACK.
    registers: list[tuple[int, float]] = field(default_factory=list, repr=False)


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
        self._finisher = _Finisher(FINISH_DEPTH, on_error=self._wake)  # replaced by each run()

    def add(self, item: Pending) -> None:
        with self._cond:
            first = not self._queue
            if first:
                self._oldest = time.monotonic()
            self._queue.append(item)
            self._queued_points += item.npoints
            # The first item wakes the writer too, so that it waits for this item's flush
            # deadline and not for the rest of its idle wait (up to 0.5 s more per lone message).
            if first or self._queued_points >= self.batch_size:
                self._cond.notify()

    def wait_abandoned(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s; True when stopping has given up on the database."""
        return self._abandon.wait(timeout)

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
                if self._finisher.error is not None:
                    return None  # run() ends, and the bridge with it (see _Finisher)
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
        finisher = _Finisher(FINISH_DEPTH, on_error=self._wake)
        self._finisher = finisher
        try:
            while not self._abandon.is_set():
                batch = self._take()
                if batch is None:
                    return
                entry = (self.coarse.before(p for item in batch for p in item.parts)
                         if self.coarse is not None else None)
                written = False
                try:
                    written = self._write(batch)
                finally:
                    finisher.submit(self._finish_job(batch if written else None, entry))
                if any(item.registers for item in batch):
                    finisher.drain()
        finally:
            finisher.close()

    def _wake(self) -> None:
        """The finisher failed: wake the writer waiting for a batch, so that it ends now."""
        with self._cond:
            self._cond.notify_all()

    def _finish_job(self, batch: list[Pending] | None, entry: object) -> Callable[[], None]:
        def job() -> None:
            try:
                if batch is not None:
                    self.sink.stored(batch)
            finally:
                if self.coarse is not None:
                    self.coarse.after(entry)
        return job

    def _stored(self, items: list[Pending]) -> None:
        """The sink's ``stored``, in turn after what was written before (the finisher)."""
        self._finisher.submit(lambda: self.sink.stored(items))
        if any(item.registers for item in items):
            self._finisher.drain()  # as in run(): totals are settled before the next write

    def _refused(self, item: Pending, detail: str) -> None:
        self._finisher.submit(lambda: self.sink.refused(item, detail))

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
                self._refused(batch[0], str(exc))
                return False
        # Idempotent writes make rewriting the points of the good half harmless.
        half = len(batch) // 2
        for part in (batch[:half], batch[half:]):
            if self._write(part):
                self._stored(part)
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
            self._refused(item, error)
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


class _Finisher:
    """Runs jobs in order on a thread of its own; :meth:`submit` waits while ``depth`` are queued.

    A job that raises stops the finisher: the error is logged and raised again in the writer at
    its next :meth:`submit` or :meth:`drain`, so the writer thread dies as it did when it ran the
    job itself (the bridge's supervisor loop exits on that).
    """

    def __init__(self, depth: int, on_error: Callable[[], None] = lambda: None) -> None:
        self._depth = depth
        self._on_error = on_error
        self._jobs: deque[Callable[[], None]] = deque()
        self._cond = threading.Condition()
        self._busy = False
        self._closed = False
        self._started = False
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="influx-finisher", daemon=True)

    def submit(self, job: Callable[[], None]) -> None:
        with self._cond:
            if not self._started:
                self._started = True
                self._thread.start()
            while len(self._jobs) >= self._depth and self.error is None:
                self._cond.wait()
            self._raise()
            self._jobs.append(job)
            self._cond.notify_all()

    def drain(self) -> None:
        """Wait until every submitted job has run."""
        with self._cond:
            while (self._jobs or self._busy) and self.error is None:
                self._cond.wait()
            self._raise()

    def close(self) -> None:
        """Run what is queued, then end the thread (what failed is not raised here)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._started:
            self._thread.join()

    def _raise(self) -> None:
        if self.error is not None:
            raise RuntimeError("finishing a written batch failed") from self.error

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._jobs and not self._closed:
                    self._cond.wait()
                if not self._jobs:
                    return
                job = self._jobs.popleft()
                self._busy = True
                self._cond.notify_all()
            try:
                job()
            except BaseException as exc:
                log.exception("finishing a written batch failed")
                with self._cond:
                    self.error = exc
                    self._busy = False
                    self._cond.notify_all()
                self._on_error()
                return
            with self._cond:
                self._busy = False
                self._cond.notify_all()
