"""A publisher that costs the machine as little as the benchmark can make it: the ships of
:class:`bench.load.Publisher`, QoS 1 over MQTT 5, written to the sockets directly.

The ships a benchmark simulates are other machines in a real fleet; here they share the two cores
with the broker, the bridges and the database. The paho publisher spends about 140 µs of CPU per
message (measured: 0.46 of a core at 3,200 messages/s), a quarter of this machine taken from what
is measured. This one builds each PUBLISH from the message's bytes once, sends a ship's window of
them in one ``send``, and reads PUBACKs in bulk, for a few µs a message. Same accounts, topics,
messages, QoS, per-ship window and results (:class:`bench.load.LoadResult`); what it does not do
is reconnect: a connection lost in the middle of a run fails it (runs with faults use
:class:`bench.load.Publisher`).
"""

from __future__ import annotations

import math
import select
import socket
import struct
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.load import LoadResult
from bench.stats import ShortfallError
from fleet import topics

_CONNECT, _CONNACK, _PUBLISH_QOS1, _PUBACK, _PINGREQ, _DISCONNECT = 0x10, 0x20, 0x32, 0x40, 0xC0, 0xE0
_PID = struct.Struct("!H")


def _varint(n: int) -> bytes:
    """MQTT's variable byte integer."""
    out = bytearray()
    while True:
        n, byte = divmod(n, 128)
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(text: str) -> bytes:
    raw = text.encode()
    return _PID.pack(len(raw)) + raw


def connect_packet(client_id: str, username: str, password: str, keepalive: int = 60) -> bytes:
    """CONNECT, MQTT 5, clean start, no session expiry, no will."""
    flags = 0x80 | 0x40 | 0x02  # username, password, clean start
    body = (_string("MQTT") + bytes([5, flags]) + _PID.pack(keepalive) + b"\x00"
            + _string(client_id) + _string(username) + _string(password))
    return bytes([_CONNECT]) + _varint(len(body)) + body


def publish_parts(topic: str, payload: bytes) -> tuple[bytes, bytes]:
    """A QoS 1 PUBLISH without its packet id: the bytes before it and after it."""
    name = _string(topic)
    size = len(name) + 2 + 1 + len(payload)  # topic, packet id, empty properties, payload
    return bytes([_PUBLISH_QOS1]) + _varint(size) + name, b"\x00" + payload


def read_packets(buf: bytearray) -> list[tuple[int, bytes]]:
    """The whole packets at the front of ``buf`` as (first byte, body), removed from it."""
    out: list[tuple[int, bytes]] = []
    pos = 0
    end = len(buf)
    while pos < end:
        size, shift, k = 0, 0, pos + 1
        while True:
            if k >= end:
                del buf[:pos]
                return out
            byte = buf[k]
            size |= (byte & 0x7F) << shift
            shift += 7
            k += 1
            if not byte & 0x80:
                break
        if k + size > end:
            break
        out.append((buf[pos], bytes(buf[k:k + size])))
        pos = k + size
    del buf[:pos]
    return out


@dataclass
class _Ship:
    ship: str
    sock: socket.socket
    heads: list[tuple[bytes, bytes]] = field(default_factory=list)
    next: int = 0
    pid: int = 0
    inflight: dict[int, int] = field(default_factory=dict)  # packet id -> message index
    out: bytearray = field(default_factory=bytearray)
    inbuf: bytearray = field(default_factory=bytearray)


class LeanPublisher:
    """Ships publishing QoS 1 from the thread that calls :meth:`run`, one socket each."""

    def __init__(self, host: str, port: int, accounts: Sequence[tuple[str, str]], *,
                 window: int = 100, prefix: str = "load") -> None:
        self.host, self.port, self.window, self.prefix = host, port, window, prefix
        self.accounts = list(accounts)
        self.acked = 0
        self._ships: list[_Ship] = []

    def connect(self, timeout: float = 20.0) -> None:
        tag = uuid.uuid4().hex[:6]
        deadline = time.monotonic() + timeout
        for ship, password in self.accounts:
            sock = socket.create_connection((self.host, self.port), timeout=timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(connect_packet(f"{self.prefix}-{tag}-{ship}", ship, password))
            buf = bytearray()
            packets: list[tuple[int, bytes]] = []
            while not packets:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no CONNACK for {ship}")
                chunk = sock.recv(4096)
                if not chunk:
                    raise ShortfallError(f"the broker closed {ship}'s connection at CONNECT")
                buf += chunk
                packets = read_packets(buf)
            kind, body = packets[0]
            if kind != _CONNACK or len(body) < 2 or body[1] >= 0x80:
                raise ShortfallError(f"the broker refused {ship}: CONNACK {body[:2].hex()}")
            sock.setblocking(False)
            self._ships.append(_Ship(ship, sock, inbuf=buf))

    def run(self, messages: Sequence[Sequence[bytes]], *, rate: float | None = None,
            timeout: float = 120.0, stop: threading.Event | None = None) -> LoadResult:
        """Publish ``messages[k]`` from ship k and wait for every PUBACK (as
        :meth:`bench.load.Publisher.run`, unpaced: ``rate`` must be None)."""
        if rate is not None:
            raise ValueError("the lean publisher does not pace; use bench.load.Publisher")
        result = LoadResult([s.ship for s in self._ships],
                            [[math.nan] * len(m) for m in messages],
                            [[math.nan] * len(m) for m in messages])
        for s, msgs in zip(self._ships, messages, strict=True):
            topic = topics.readings(s.ship)
            s.heads = [publish_parts(topic, m) for m in msgs]
            s.next = 0
        total = sum(len(m) for m in messages)
        done = 0
        clock = time.perf_counter
        result.started = clock()
        deadline = time.monotonic() + timeout
        last_ping = time.monotonic()
        by_sock = {s.sock: (k, s) for k, s in enumerate(self._ships)}
        window = self.window
        pack = _PID.pack
        while done < total and time.monotonic() < deadline and not (stop and stop.is_set()):
            for k, s in enumerate(self._ships):
                sent_at = result.sent_at[k]
                heads = s.heads
                while len(s.inflight) < window and s.next < len(heads):
                    i = s.next
                    s.pid = s.pid % 65535 + 1
                    head, tail = heads[i]
                    s.out += head
                    s.out += pack(s.pid)
                    s.out += tail
                    s.inflight[s.pid] = i
                    s.next += 1
                    sent_at[i] = clock()
            writers = [s.sock for s in self._ships if s.out]
            readable, writable, _ = select.select(list(by_sock), writers, [], 0.05)
            for sock in writable:
                s = by_sock[sock][1]
                try:
                    n = sock.send(s.out)
                except BlockingIOError:
                    continue
                del s.out[:n]
            for sock in readable:
                k, s = by_sock[sock]
                try:
                    chunk = sock.recv(262144)
                except BlockingIOError:
                    continue
                if not chunk:
                    raise ShortfallError(f"the broker closed {s.ship}'s connection mid-run "
                                         "(the lean publisher does not reconnect)")
                s.inbuf += chunk
                now = clock()
                acked_at = result.acked_at[k]
                for kind, body in read_packets(s.inbuf):
                    if kind & 0xF0 != _PUBACK:
                        continue  # PINGRESP
                    i = s.inflight.pop(_PID.unpack_from(body)[0], -1)
                    if i < 0:
                        continue
                    done += 1
                    if len(body) > 2 and body[2] >= 0x80:
                        result.refused += 1
                    else:
                        acked_at[i] = now
                        self.acked += 1
            if time.monotonic() - last_ping > 20:
                last_ping = time.monotonic()
                for s in self._ships:
                    s.out += bytes([_PINGREQ, 0])
        result.finished = clock()
        return result

    def close(self) -> None:
        for s in self._ships:
            try:
                s.sock.setblocking(True)
                s.sock.sendall(bytes([_DISCONNECT, 0]))
            except OSError:
                pass
            s.sock.close()
        self._ships = []
