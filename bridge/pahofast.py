"""paho's per-message cost that is not MQTT's: the Properties object of every received PUBLISH.

paho 2.2 decodes each incoming MQTT 5 PUBLISH with a fresh ``Properties(PacketTypes.PUBLISH)``
whose ``__init__`` builds its two tables of 27 property names and types (through an overridden
``__setattr__``), and whose ``unpack`` first clears all 27 names one ``hasattr`` at a time, even
when, as on every ship's message, the packet has no properties at all. py-spy put that at about a
quarter of the bridge's CPU time at 12 readings per message (bench/results.md, "Bridge hot
path"). :class:`LeanProperties` is the same class with the tables shared (paho only reads them)
and nothing to clear on a new object; :func:`install` makes paho's packet decoder use it. Any
other paho (one without ``paho.mqtt._packet.Properties``) is left as it is.
"""

from __future__ import annotations

import importlib
from typing import Any

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
