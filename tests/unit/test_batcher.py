"""The batcher's sorting of write failures, with a fake store for what a real InfluxDB will not
do on demand (429 with Retry-After, 413 at a chosen size); the real type conflict is in
tests/faults/test_data_faults.py."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

import pytest

from bridge.batcher import Batcher, Pending
from bridge.metrics import BridgeMetrics
from fleet.errors import StoreRejectedError, StoreTooLargeError, StoreUnavailableError


class FakeStore:
    """Refuses bodies holding 'bad' (the data's fault), bodies of more than ``max_lines`` lines
    (413), and is unavailable for its first ``outages`` calls."""

    def __init__(self, *, max_lines: int = 10**9, outages: int = 0) -> None:
        self.max_lines = max_lines
        self.outages = outages
        self.written: list[str] = []
        self.calls = 0
        self.sizes: list[int] = []  # points per successful write

    def write(self, body: bytes) -> None:
        self.calls += 1
        text = body.decode()
        if self.outages:
            self.outages -= 1
            raise StoreUnavailableError("down", retry_after=0.01)
        if len(text.split("\n")) > self.max_lines:
            raise StoreTooLargeError("413")
        if "bad" in text:
            raise StoreRejectedError("400: field type conflict")
        self.written.extend(text.split("\n"))
        self.sizes.append(len(text.split("\n")))


class Sink:
    def __init__(self) -> None:
        self.stored: list[int] = []
        self.refused: list[tuple[int, str]] = []

    def stored_items(self, items: Sequence[Pending]) -> None:
        self.stored.extend(i.mid for i in items)

    def refused_item(self, item: Pending, detail: str) -> None:
        self.refused.append((item.mid, detail))


def item(mid: int, lines: list[str]) -> Pending:
    return Pending(mid=mid, qos=1, generation=1, ship="s", batch_id=None, accepted=len(lines),
                   rejected=0, body="\n".join(lines), npoints=len(lines), parts=[])


def drain(store: FakeStore, items: list[Pending], batch_size: int = 1000) -> Sink:
    sink = Sink()

    class Adapter:
        stored = staticmethod(sink.stored_items)
        refused = staticmethod(sink.refused_item)

    batcher = Batcher(store, Adapter(), BridgeMetrics(), batch_size=batch_size,
                      flush_interval=0.01, retry_max_delay=0.05)
    for it in items:
        batcher.add(it)
    runner = threading.Thread(target=batcher.run)
    runner.start()
    batcher.stop(abandon_after=5)
    runner.join(10)
    assert not runner.is_alive()
    return sink


def test_unavailable_is_retried_then_everything_is_acknowledged_once() -> None:
    store = FakeStore(outages=3)
    sink = drain(store, [item(i, [f"p{i}"]) for i in range(5)])
    assert sorted(sink.stored) == [0, 1, 2, 3, 4]
    assert sink.refused == []
    assert store.calls == 4


def test_data_fault_is_narrowed_to_the_messages_concerned() -> None:
    items = [item(i, [f"p{i}", "bad" if i in (3, 6) else f"q{i}"]) for i in range(8)]
    sink = drain(FakeStore(), items)
    assert sorted(mid for mid, _ in sink.refused) == [3, 6]
    assert sorted(sink.stored) == [0, 1, 2, 4, 5, 7]
    assert all("type conflict" in detail for _, detail in sink.refused)


def test_too_large_splits_batches_and_single_messages() -> None:
    store = FakeStore(max_lines=3)
    items = [item(0, [f"a{n}" for n in range(10)]), item(1, ["b0", "b1"])]
    sink = drain(store, items)
    assert sorted(sink.stored) == [0, 1]  # each acknowledged once, after all its points
    assert sorted(store.written) == sorted([f"a{n}" for n in range(10)] + ["b0", "b1"])


def test_a_single_point_too_large_refuses_its_message_once() -> None:
    store = FakeStore(max_lines=0)
    sink = drain(store, [item(0, ["x", "y"])])
    assert [mid for mid, _ in sink.refused] == [0]
    assert sink.stored == []


def test_stopping_while_the_database_is_down_acknowledges_nothing() -> None:
    store = FakeStore(outages=10**6)
    sink = Sink()

    class Adapter:
        stored = staticmethod(sink.stored_items)
        refused = staticmethod(sink.refused_item)

    batcher = Batcher(store, Adapter(), BridgeMetrics(), batch_size=10, flush_interval=0.01,
                      retry_max_delay=0.05)
    batcher.add(item(0, ["p"]))
    runner = threading.Thread(target=batcher.run)
    runner.start()
    batcher.stop(abandon_after=0.3)
    runner.join(5)
    assert not runner.is_alive()
    assert sink.stored == [] and sink.refused == []  # left for the broker to deliver again
    assert not batcher.healthy


@pytest.mark.parametrize("batch_size", [1, 3, 1000])
def test_batches_respect_batch_size(batch_size: int) -> None:
    store = FakeStore()
    sink = drain(store, [item(i, [f"p{i}"]) for i in range(7)], batch_size=batch_size)
    assert sorted(sink.stored) == list(range(7))
    # All seven were queued before the writer ran: full batches (never over the size, never
    # smaller than it could be), the remainder last.
    full, rest = divmod(7, batch_size)
    assert store.sizes == [batch_size] * full + ([rest] if rest else [])
    assert store.calls == len(store.sizes)


class _Recorder:
    """A store and a sink recording, in one list, the order of writes and acknowledgements;
    ``stored`` of the message ``hold`` waits for ``release``, and of ``fail`` raises."""

    def __init__(self, hold: int | None = None, fail: int | None = None) -> None:
        self.events: list[str] = []
        self.hold, self.fail = hold, fail
        self.release = threading.Event()
        self.held = threading.Event()
        self.lock = threading.Lock()

    def write(self, body: bytes) -> None:
        with self.lock:
            self.events.append("write " + body.decode())

    def stored(self, items: Sequence[Pending]) -> None:
        for it in items:
            if it.mid == self.fail:
                raise ValueError("the sink broke")
            if it.mid == self.hold:
                self.held.set()
                assert self.release.wait(10)
            with self.lock:
                self.events.append(f"stored {it.mid}")

    def refused(self, item: Pending, detail: str) -> None:
        raise AssertionError(detail)


def _start(rec: _Recorder, items: list[Pending]) -> tuple[Batcher, threading.Thread]:
    batcher = Batcher(rec, rec, BridgeMetrics(), batch_size=1, flush_interval=0.01,
                      retry_max_delay=0.05)
    for it in items:
        batcher.add(it)
    runner = threading.Thread(target=batcher.run)
    runner.start()
    return batcher, runner


def _wait_for(pred: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return False


def test_the_next_batch_is_written_while_the_last_one_is_acknowledged() -> None:
    rec = _Recorder(hold=0)
    batcher, runner = _start(rec, [item(0, ["p0"]), item(1, ["p1"]), item(2, ["p2"])])
    assert rec.held.wait(5)
    # Message 0's acknowledgement is blocked, and the writer has gone on to write message 1.
    assert _wait_for(lambda: "write p1" in rec.events)
    assert "stored 0" not in rec.events
    rec.release.set()
    batcher.stop(abandon_after=5)
    runner.join(10)
    assert not runner.is_alive()
    # Acknowledgements in the order of the writes, each after its own write.
    acks = [e for e in rec.events if e.startswith("stored")]
    assert acks == ["stored 0", "stored 1", "stored 2"]
    for n in range(3):
        assert rec.events.index(f"write p{n}") < rec.events.index(f"stored {n}")


def test_a_batch_with_running_totals_is_finished_before_the_next_write() -> None:
    rec = _Recorder(hold=0)
    first = item(0, ["p0"])
    first.registers = [(0, 1.0)]
    batcher, runner = _start(rec, [first, item(1, ["p1"])])
    assert rec.held.wait(5)
    time.sleep(0.3)  # time enough for the writer to go on, were it allowed to
    assert rec.events == ["write p0"]
    rec.release.set()
    batcher.stop(abandon_after=5)
    runner.join(10)
    assert rec.events == ["write p0", "stored 0", "write p1", "stored 1"]


def test_a_failure_after_the_write_ends_the_writer() -> None:
    rec = _Recorder(fail=0)
    batcher, runner = _start(rec, [item(0, ["p0"])])
    runner.join(5)
    assert not runner.is_alive()  # the bridge's supervisor sees its writer dead and exits
    batcher.add(item(1, ["p1"]))
    assert "write p1" not in rec.events and "stored 0" not in rec.events
