"""Which ships a bridge handles when ``[bridge] workers`` bridges share the load.

Every bridge holds a PLAIN subscription to every ship's readings in its own persistent session
(client id per index), because Mosquitto restores plain subscriptions after a restart and queues
for them, while shared (``$share``) ones are lost until the client subscribes again (NOTES.md).
Bridge ``i`` of ``N`` handles the ships whose stable hash (CRC-32 of the id) modulo ``N`` is ``i``
and acknowledges every other message at once, unparsed. So each ship's messages are handled in
order by exactly one bridge, and a message published while a bridge is away waits in that
bridge's session.

A change of ``N`` (a to b) is a handoff. Every bridge (``max(a, b)`` of them) first runs in union
mode: it handles the ships it owns under a OR under b (overlap is harmless: storage is
idempotent). Once all of them are subscribed, the launcher publishes a marker on
``fleet.topics.BRIDGE_HANDOFF``; each bridge passes it in order in its own session queue and, once
everything queued before it is stored, drops the old ownership. A message published before the
marker is in the old owner's queue ahead of the marker, so the old owner handles it; one published
after the marker reaches the new owner, which was already subscribed. No gap, whatever the lag of
any bridge.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, replace

from fleet.errors import ConfigError


def ship_hash(ship: str) -> int:
    """The stable hash of a ship id: CRC-32 of its UTF-8 bytes (the same in every process and
    release, unlike Python's ``hash``)."""
    return zlib.crc32(ship.encode())


def owner(ship: str, workers: int) -> int:
    """The index of the bridge that handles ``ship`` when ``workers`` bridges run."""
    return ship_hash(ship) % workers


@dataclass(frozen=True, slots=True)
class Partition:
    """Bridge ``index`` of ``workers``; ``handoff_from`` is the old ``workers`` during a handoff
    (0: none) and ``epoch`` the marker that ends it."""

    index: int = 0
    workers: int = 1
    handoff_from: int = 0
    epoch: str = ""

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ConfigError("bridge partition: workers must be at least 1")
        if self.handoff_from < 0:
            raise ConfigError("bridge partition: handoff_from must be >= 0")
        span = max(self.workers, self.handoff_from)
        if not 0 <= self.index < span:
            raise ConfigError(f"bridge partition: index {self.index} outside 0..{span - 1}")
        if self.index >= self.workers and not self.handoff_from:
            raise ConfigError(f"bridge partition: index {self.index} of {self.workers} "
                              "only exists during a handoff")

    @property
    def everything(self) -> bool:
        """One bridge, no handoff: it handles every ship (no hash needed)."""
        return self.workers == 1 and self.handoff_from in (0, 1)

    def owns(self, ship: str) -> bool:
        h = ship_hash(ship)
        if h % self.workers == self.index:
            return True
        return bool(self.handoff_from) and h % self.handoff_from == self.index

    def settled(self) -> Partition:
        """The partition once the handoff marker is passed."""
        return replace(self, handoff_from=0, epoch="")

    def label(self) -> str:
        text = f"{self.index}/{self.workers}"
        return f"{text} (handing off from {self.handoff_from})" if self.handoff_from else text

    @classmethod
    def parse(cls, partition: str, handoff: str = "") -> Partition:
        """From ``[bridge] partition`` (``"i/N"``, empty: one bridge) and ``[bridge] handoff``
        (``"OLD@EPOCH"``, empty: none), as the launcher sets them."""
        if not partition:
            index, workers = 0, 1
        else:
            try:
                left, right = partition.split("/")
                index, workers = int(left), int(right)
            except ValueError:
                raise ConfigError(f"bridge.partition must be INDEX/WORKERS, got {partition!r}"
                                  ) from None
        old, epoch = 0, ""
        if handoff:
            try:
                left, epoch = handoff.split("@", 1)
                old = int(left)
            except ValueError:
                raise ConfigError(f"bridge.handoff must be OLD_WORKERS@EPOCH, got {handoff!r}"
                                  ) from None
            if old < 1 or not epoch:
                raise ConfigError(f"bridge.handoff must be OLD_WORKERS@EPOCH, got {handoff!r}")
        return cls(index, workers, old, epoch)


def client_id(base: str, index: int) -> str:
    """Bridge ``index``'s client id (its persistent session's name): bridge 0 keeps ``base``, so
    going from one bridge to several keeps the first one's session and queue."""
    return base if index == 0 else f"{base}.w{index}"
