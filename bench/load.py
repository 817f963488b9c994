"""Load for fault tests and benchmarks: many ships publishing QoS 1 from one thread.

Each ship is its own paho client under its own account (anonymous is refused). One thread drives
them all with ``select()``: a publish is one ``send()`` on the caller's thread, with no wake-up of a
paho network thread per message, which is what makes a Python publisher fast enough to load a
broker. Each ship keeps at most ``window`` messages unacknowledged; an optional total ``rate``
paces the whole fleet. A ship whose connection drops (broker restart) reconnects and paho sends its
unacknowledged messages again (DUP), so every message is eventually acknowledged or reported.
"""

from __future__ import annotations

import contextlib
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
        while time.monotonic() < deadline and not (stop is not None and stop.is_set()):
            budget = total - sent if rate is None else int(rate * (time.perf_counter() - t0)) - sent
            progressed = True
            while budget > 0 and progressed:
                progressed = False
                for k in range(n):
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
