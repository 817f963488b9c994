"""Load for fault tests and benchmarks: the messages, how many points they make, and many ships
publishing QoS 1 from one thread.

Each ship is its own paho client under its own account (anonymous is refused). One thread drives
them all with ``select()``: a publish is one ``send()`` on the caller's thread, with no wake-up of a
paho network thread per message, which is what makes a Python publisher fast enough to load a
broker. Each ship keeps at most ``window`` messages unacknowledged; an optional total ``rate``
paces the whole fleet. A ship whose connection drops (broker restart) reconnects and paho sends its
unacknowledged messages again (DUP), so every message is eventually acknowledged or reported.
"""

from __future__ import annotations

import contextlib
import json
import math
import select
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt

from fleet import topics
from fleet.mqttclient import plain_client

# 15-minute windows: a reading that straddles a window boundary is stored as one part per window.
WINDOW_S = 900
# Run k of a measurement uses its own 400 days from base k, so no two runs' points share a range.
# 1_599_999_300 is a 15-minute boundary (2020-09-13T12:15:00Z) and 400 days are whole windows.
ALIGNED_BASE = 1_599_999_300
RUN_SPAN_S = 400 * 86400


def run_base(k: int, offset_s: int = 0) -> int:
    """Start time of the k-th run's range, ``offset_s`` past a 15-minute boundary."""
    return ALIGNED_BASE + k * RUN_SPAN_S + offset_s


def iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def reading_s(readings: int, step_s: int | None = None) -> int:
    """Seconds one reading covers: 15-minute kWh readings one to a message, else 5-minute kW."""
    return step_s or (WINDOW_S if readings == 1 else 300)


def message_span_s(readings: int, step_s: int | None = None) -> int:
    """Seconds of measuring one message holds."""
    return readings * reading_s(readings, step_s)


def payload(ship: str, i: int, readings: int, base: int, step_s: int | None = None) -> bytes:
    """Message i of a ship: ``readings`` consecutive readings of ``reading_s`` seconds each,
    following message i - 1 without a gap. One 15-minute reading is sent as kWh, anything else as
    kW (a single shorter one with its ``interval``)."""
    step = reading_s(readings, step_s)
    start = base + i * readings * step
    data = [{"datetime": iso(start + k * step), "value": (i + k) % 17 + 0.25}
            for k in range(readings)]
    doc: dict[str, Any] = {"units": "kWh" if step == WINDOW_S and readings == 1 else "kW",
                           "data": data}
    if readings == 1 and step != WINDOW_S:
        doc["interval"] = step
    return json.dumps(doc, separators=(",", ":")).encode()


def pieces(start_s: int, seconds: int) -> int:
    """Parts one reading over [start, start + seconds) is stored as: one per window it touches."""
    first = start_s // WINDOW_S
    last = (start_s + seconds - 1) // WINDOW_S
    return last - first + 1


def expected_points(ships: int, per_ship: int, readings: int, base: int,
                    step_s: int | None = None) -> int:
    """Points the messages of :func:`payload` make in InfluxDB (no two share a time and ship).

    At a 15-minute boundary it is one per reading; 700 s past one, a 15-minute reading makes two
    parts and one 5-minute reading in three straddles a boundary.
    """
    step = reading_s(readings, step_s)
    n = per_ship * readings
    return ships * sum(pieces(base + k * step, step) for k in range(n))


def expected_seconds(ships: int, per_ship: int, readings: int, step_s: int | None = None) -> int:
    """Seconds of measuring the messages of :func:`payload` cover in all: what the bridges'
    energy notices add up to once every point is stored (readings follow each other without a
    gap or an overlap)."""
    return ships * per_ship * message_span_s(readings, step_s)


@dataclass
class LoadResult:
    """Per ship and message: when it was published and when its PUBACK came (NaN: never)."""

    ships: list[str]
    sent_at: list[list[float]]
    acked_at: list[list[float]]
    refused: int = 0  # PUBACKs with a failure reason code (e.g. 131, 135)
    started: float = 0.0
    finished: float = 0.0

    def acked(self, s: int) -> list[int]:
        return [i for i, t in enumerate(self.acked_at[s]) if not math.isnan(t)]

    @property
    def total_acked(self) -> int:
        return sum(len(self.acked(s)) for s in range(len(self.ships)))

    @property
    def total(self) -> int:
        return sum(len(x) for x in self.sent_at)


@dataclass
class _Ship:
    ship: str
    client: mqtt.Client
    topic: str
    connected: bool = False
    retry_at: float = 0.0
    inflight: int = 0
    next: int = 0
    mids: dict[int, int] = field(default_factory=dict)


class Publisher:
    """Ships publishing over MQTT 5, driven from the thread that calls :meth:`run`."""

    def __init__(self, host: str, port: int, accounts: Sequence[tuple[str, str]], *,
                 window: int = 100, prefix: str = "load") -> None:
        self.host, self.port, self.window = host, port, window
        self._ships: list[_Ship] = []
        self._result: LoadResult | None = None
        self.acked = 0  # PUBACKs received so far (read from other threads while running)
        tag = uuid.uuid4().hex[:6]
        for k, (ship, password) in enumerate(accounts):
            client = plain_client(f"{prefix}-{tag}-{ship}", username=ship, password=password)
            client.max_inflight_messages_set(0)  # the window below is the limit
            client.max_queued_messages_set(0)
            client.on_connect = self._on_connect
            client.on_disconnect = self._on_disconnect
            client.on_publish = self._on_publish
            client.user_data_set(k)
            self._ships.append(_Ship(ship, client, topics.readings(ship)))

    # -- paho callbacks (called from loop_read on our own thread) ---------------------------------

    def _on_connect(self, _c: mqtt.Client, k: int, _f: Any, reason: Any, _p: Any) -> None:
        if not reason.is_failure:
            self._ships[k].connected = True

    def _on_disconnect(self, _c: mqtt.Client, k: int, _f: Any, _r: Any, _p: Any) -> None:
        s = self._ships[k]
        s.connected = False
        s.retry_at = time.monotonic() + 0.2

    def _on_publish(self, _c: mqtt.Client, k: int, mid: int, reason: Any, _p: Any) -> None:
        s = self._ships[k]
        i = s.mids.pop(mid, None)
        if i is None or self._result is None:
            return
        s.inflight -= 1
        if reason.is_failure:
            self._result.refused += 1
        else:
            self._result.acked_at[k][i] = time.perf_counter()
            self.acked += 1

    # -- driving -----------------------------------------------------------------------------------

    def connect(self, timeout: float = 20.0) -> None:
        for s in self._ships:
            s.client.connect(self.host, self.port, keepalive=60)
        deadline = time.monotonic() + timeout
        while not all(s.connected for s in self._ships):
            if time.monotonic() > deadline:
                raise TimeoutError("not every ship got a CONNACK")
            self._io(0.05)

    def _io(self, wait: float) -> None:
        socks: dict[Any, _Ship] = {}
        writers = []
        for s in self._ships:
            sock = s.client.socket()
            if sock is None:
                continue
            socks[sock] = s
            if s.client.want_write():
                writers.append(sock)
        if not socks:
            time.sleep(wait)
            return
        readable, writable, _ = select.select(list(socks), writers, [], wait)
        for sock in readable:
            socks[sock].client.loop_read()
        for sock in writable:
            socks[sock].client.loop_write()

    def _housekeeping(self) -> None:
        now = time.monotonic()
        for s in self._ships:
            if s.connected:
                s.client.loop_misc()
            elif now >= s.retry_at:
                s.retry_at = now + 0.5
                with contextlib.suppress(OSError):
                    s.client.reconnect()

    def run(self, messages: Sequence[Sequence[bytes]], *, rate: float | None = None,
            timeout: float = 120.0, stop: threading.Event | None = None) -> LoadResult:
        """Publish ``messages[k]`` from ship k, interleaved across ships, and wait for PUBACKs.

        Returns when every message is acknowledged, ``timeout`` passes or ``stop`` is set.
        """
        n = len(self._ships)
        result = LoadResult([s.ship for s in self._ships],
                            [[math.nan] * len(m) for m in messages],
                            [[math.nan] * len(m) for m in messages])
        self._result = result
        for s in self._ships:
            s.next = 0
        total = sum(len(m) for m in messages)
        sent = 0
        t0 = time.perf_counter()
        result.started = t0
        deadline = time.monotonic() + timeout
        last_misc = 0.0
        window = self.window
        cursor = 0
        while time.monotonic() < deadline and not (stop is not None and stop.is_set()):
            budget = total - sent if rate is None else int(rate * (time.perf_counter() - t0)) - sent
            progressed = True
            while budget > 0 and progressed:
                progressed = False
                # Round robin from where the last pass stopped: under a rate every ship sends in
                # turn (ship k's message i is the (i * n + k)-th), not the first ships first.
                for j in range(n):
                    k = (cursor + j) % n
                    s = self._ships[k]
                    msgs = messages[k]
                    if s.next >= len(msgs) or s.inflight >= window or not s.connected:
                        continue
                    i = s.next
                    info = s.client.publish(s.topic, msgs[i], qos=1)
                    s.mids[info.mid] = i
                    s.inflight += 1
                    s.next += 1
                    result.sent_at[k][i] = time.perf_counter()
                    sent += 1
                    budget -= 1
                    progressed = True
                    if budget <= 0:
                        cursor = k + 1
                        break
            outstanding = sum(s.inflight for s in self._ships)
            if sent >= total and outstanding == 0:
                break
            if rate is not None and sent < total:
                wait = max(0.0, min(0.01, (sent + 1) / rate - (time.perf_counter() - t0)))
            else:
                wait = 0.01
            self._io(wait)
            now = time.monotonic()
            if now - last_misc > 0.5:
                last_misc = now
                self._housekeeping()
        result.finished = time.perf_counter()
        self._result = None
        return result

    def close(self) -> None:
        for s in self._ships:
            try:
                s.client.disconnect()
                s.client.loop_write()
            except OSError:
                pass
            sock = s.client.socket()
            if sock is not None:
                sock.close()
