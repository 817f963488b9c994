"""paho's per-message costs that are not MQTT's: received PUBLISH properties, one write per PUBACK.

paho 2.2 decodes each incoming MQTT 5 PUBLISH with a fresh ``Properties(PacketTypes.PUBLISH)``
whose ``__init__`` builds its two tables of 27 property names and types (through an overridden
``__setattr__``), and whose ``unpack`` first clears all 27 names one ``hasattr`` at a time, even
when, as on every ship's message, the packet has no properties at all. py-spy put that at about a
quarter of the bridge's CPU time at 12 readings per message (bench/results.md, "Bridge hot
path"). :class:`LeanProperties` is the same class with the tables shared (paho only reads them)
and nothing to clear on a new object; :func:`install` makes paho's packet decoder use it. Any
other paho (one without ``paho.mqtt._packet.Properties``) is left as it is.

After every PUBACK the broker sends for one of the bridge's own QoS 1 publishes (the energy
topic: one per ship and batch), paho's ``_update_inflight`` walks every message still waiting for
its PUBACK, looking for one queued behind the in-flight limit; with a hundred ships a batch that is
quadratic, and py-spy put it at 9% of the bridge's own time (bench/results.md).
:func:`lean_inflight` sends the queued ones from a note of them instead.

paho reads each packet with three or four ``recv`` calls and goes back to ``select()`` after
each one; :func:`buffered_reads` serves those reads from one large read and handles the whole
packets it holds (a bounded number) before returning to ``select()`` and to the writes.

And ``Client.ack`` queues each PUBACK as its own packet: a byte written to wake paho's network
thread, then one ``send`` for the 4 bytes, per message. :func:`ack_all` queues a batch's PUBACKs
as one packet (the same bytes, back to back: MQTT is a byte stream), falling back to ``ack``.
"""

from __future__ import annotations

import importlib
import struct
from collections import deque
from collections.abc import Sequence
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

_TEMPLATE = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
_TABLES = {"types": _TEMPLATE.types, "names": _TEMPLATE.names,
           "properties": _TEMPLATE.properties}


class LeanProperties(Properties):
    """:class:`Properties` sharing one copy of its (read-only) tables."""

    def __init__(self, packetType: int) -> None:  # noqa: N803 (paho's name)
        # object.__setattr__: Properties.__setattr__ allows these names only, after a string
        # replace and a list lookup each.
        object.__setattr__(self, "packetType", packetType)
        self.__dict__.update(_TABLES)

    def unpack(self, buffer: Any) -> tuple[Properties, int]:
        # A first byte 0 is a property length of 0 (one byte of variable byte integer): nothing
        # to read, and nothing to clear while only the four table attributes are set.
        if buffer[:1] == b"\x00" and len(self.__dict__) == 4:
            return self, 1
        result: tuple[Properties, int] = super().unpack(buffer)  # type: ignore[no-untyped-call]
        return result


def install() -> bool:
    """Make paho decode packets' properties with :class:`LeanProperties`; True if it could."""
    try:
        _packet = importlib.import_module("paho.mqtt._packet")  # private: may not exist
    except ImportError:
        return False
    if getattr(_packet, "Properties", None) not in (Properties, LeanProperties):
        return False
    vars(_packet)["Properties"] = LeanProperties
    return True


_PUBACK = struct.Struct("!BBH")  # PUBACK, remaining length 2, packet id (reason: success)


def ack_all(client: mqtt.Client, messages: Sequence[tuple[int, int]]) -> None:
    """``client.ack(mid, qos)`` for each (mid, qos), the QoS 1 ones as one queued write."""
    queue = getattr(client, "_packet_queue", None)  # private: a fake or another paho has none
    if queue is None or not getattr(client, "_manual_ack", False) or len(messages) < 2:
        for mid, qos in messages:
            client.ack(mid, qos)
        return
    pack = _PUBACK.pack
    packet = b"".join([pack(mqtt.PUBACK, 2, mid) for mid, qos in messages if qos == 1])
    if packet:
        queue(mqtt.PUBACK, packet, 0, 1)
    for mid, qos in messages:
        if qos != 1:
            client.ack(mid, qos)  # QoS 2 (PUBCOMP): the bridge subscribes at QoS 1, never here


def limit_inflight(client: mqtt.Client, limit: int) -> bool:
    """Set how many of ``client``'s own QoS 1 and 2 publishes may await acknowledgement, on an
    open connection too (which paho's setter refuses, doubting only a change between 0, no
    limit, and a limit); True if it could."""
    if limit < 1 or not isinstance(getattr(client, "_max_inflight_messages", None), int):
        return False
    client._max_inflight_messages = limit
    return True


def lean_inflight(client: mqtt.Client) -> bool:
    """Make ``client``'s ``_update_inflight`` send what waits behind the in-flight limit without
    walking every message in flight; True if it could (another paho, without these attributes,
    is left as it is).

    ``publish`` is wrapped to note the id of each message paho queued behind the limit, oldest
    first; ``_update_inflight`` then sends from that note, in the order paho would, skipping ids
    no longer queued. Whatever the note does not know (messages paho queued again itself when a
    connection was reset) is still sent by paho's own walk, which runs whenever the note is empty
    and a message may be queued (paho holds more messages than it counts in flight).
    """
    original = getattr(type(client), "_update_inflight", None)
    send = getattr(client, "_send_publish", None)
    if original is None or send is None or not all(
            hasattr(client, a) for a in ("_out_messages", "_inflight_messages",
                                         "_max_inflight_messages")):
        return False
    queued: deque[int] = deque()
    publish = client.publish

    def noting_publish(*args: Any, **kwargs: Any) -> mqtt.MQTTMessageInfo:
        info = publish(*args, **kwargs)
        m = client._out_messages.get(info.mid)
        if m is not None and m.state == mqtt.mqtt_ms_queued:
            queued.append(info.mid)  # deque appends and pops are thread-safe
        return info

    def update_inflight() -> Any:
        # Called by paho with its outgoing-message lock held, as its own walk is.
        out = client._out_messages
        while queued and client._inflight_messages < client._max_inflight_messages:
            m = out.get(queued.popleft())
            if m is None or m.qos != 1 or m.state != mqtt.mqtt_ms_queued:
                continue  # acknowledged, sent by the walk, or reset by a reconnect
            client._inflight_messages += 1
            m.state = mqtt.mqtt_ms_wait_for_puback
            rc = client._send_publish(m.mid, m.topic.encode("utf-8"), m.payload, m.qos, m.retain,
                                      m.dup, properties=m.properties)
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return rc
        if not queued and len(out) > client._inflight_messages:
            return original(client)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    vars(client)["publish"] = noting_publish
    vars(client)["_update_inflight"] = update_inflight
    return True


# paho reads each packet with a recv of 1 byte (the command), 1 byte per remaining-length byte,
# then the rest: three or four system calls a message, and its loop goes back to select() after
# every packet (loop_read reads as many packets as messages await acknowledgement, at least one,
# but stops at the first empty read). BufferedSocket serves those reads from one large recv, and
# tells paho's loop through pending() (paho's own check for bytes an SSL socket holds) that
# there is more to read without waiting in select().
READ_SIZE = 65536


class BufferedSocket:
    """A socket whose ``recv`` is served from the last large read; everything else is the
    socket's own."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._data = b""
        self._pos = 0

    def recv(self, bufsize: int) -> bytes:
        pos = self._pos
        if pos < len(self._data):
            out = self._data[pos:pos + bufsize]
            self._pos = pos + len(out)
            return out
        chunk: bytes = self._sock.recv(max(bufsize, READ_SIZE))  # raises as the socket does
        if len(chunk) <= bufsize:
            self._data, self._pos = b"", 0
            return chunk
        self._data, self._pos = chunk, bufsize
        return chunk[:bufsize]

    def pending(self) -> int:
        inner = getattr(self._sock, "pending", None)
        return len(self._data) - self._pos + (inner() if inner is not None else 0)

    def fileno(self) -> int:
        return int(self._sock.fileno())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def buffered_reads(client: mqtt.Client, *, max_reads: int = 256) -> bool:
    """Make ``client`` read through a :class:`BufferedSocket` and handle the whole packets of a
    read before it returns to select(), at most ``max_reads`` of them, so that its writes (the
    batch's PUBACKs, the energy topic) go out between; True if it could.

    paho's own ``loop_read`` handles as many packets per call as messages await acknowledgement
    in either direction, stopping early only when the socket has nothing left. While the bridge
    has its own publishes waiting for their PUBACKs (which come behind the broker's backlog of
    ship messages on the same stream) that is thousands, and with the buffer always holding the
    next message it did not return to select(), nor so to its writes, for seconds: measured, the
    PUBACKs of whole batches and every energy notice of a run waited in paho's queue until the
    broker's backlog was read, and the broker, short of PUBACKs, stopped sending at its
    in-flight limit. Here each packet is read by paho's ``_packet_read``, as its loop does."""
    create = getattr(type(client), "_create_socket", None)
    read_packet = getattr(client, "_packet_read", None)
    on_error = getattr(client, "_loop_rc_handle", None)
    if create is None or read_packet is None or on_error is None:
        return False

    def create_socket() -> Any:
        return BufferedSocket(create(client))

    def loop_read(max_packets: int = 1) -> Any:  # paho's signature; paho ignores it too
        for _ in range(max_reads):
            sock = client._sock
            if sock is None:
                return MQTTErrorCode.MQTT_ERR_NO_CONN
            rc = read_packet()
            if rc > 0:
                return on_error(rc)
            pending = getattr(sock, "pending", None)  # ours, or an SSL socket's
            if (rc == MQTTErrorCode.MQTT_ERR_AGAIN or client._sock is not sock
                    or pending is None or pending() <= 0):
                break  # what the socket holds beyond this read is select()'s to say
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    vars(client)["_create_socket"] = create_socket
    vars(client)["loop_read"] = loop_read
    return True
