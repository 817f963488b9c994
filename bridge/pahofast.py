"""paho's per-message costs that are not MQTT's: received PUBLISH properties, one write per PUBACK.

paho 2.2 decodes each incoming MQTT 5 PUBLISH with a fresh ``Properties(PacketTypes.PUBLISH)``
whose ``__init__`` builds its two tables of 27 property names and types (through an overridden
``__setattr__``), and whose ``unpack`` first clears all 27 names one ``hasattr`` at a time, even
when, as on every ship's message, the packet has no properties at all. py-spy put that at about a
quarter of the bridge's CPU time at 12 readings per message (bench/results.md, "Bridge hot
path"). :class:`LeanProperties` is the same class with the tables shared (paho only reads them)
and nothing to clear on a new object; :func:`install` makes paho's packet decoder use it. Any
other paho (one without ``paho.mqtt._packet.Properties``) is left as it is.

And ``Client.ack`` queues each PUBACK as its own packet: a byte written to wake paho's network
thread, then one ``send`` for the 4 bytes, per message. :func:`ack_all` queues a batch's PUBACKs
as one packet (the same bytes, back to back: MQTT is a byte stream), falling back to ``ack``.
"""

from __future__ import annotations

import importlib
import struct
from collections.abc import Sequence
from typing import Any

import paho.mqtt.client as mqtt
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
