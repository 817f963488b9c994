"""The bridge's side of :mod:`bridge.partition`: skip the ships another bridge owns, and pass the
launcher's handoff marker in order with the readings.

A message for a ship this bridge does not own is acknowledged at once without parsing its
payload (the topic alone decides). The handoff marker goes through the batcher like a message
with no points, so it is "stored" only once everything queued before it is stored; only then does
the bridge drop its old ownership and write ``<ready_file>.handoff`` (the epoch) for the launcher.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt

from bridge import pahofast
from bridge.batcher import Pending
from bridge.partition import Partition
from fleet.config import Config
from fleet.topics import BRIDGE_HANDOFF as HANDOFF_TOPIC

if TYPE_CHECKING:
    from bridge.mqtt import Bridge

log = logging.getLogger(__name__)


def handoff_file(ready_file: str) -> Path | None:
    """Where a bridge records the last handoff epoch it passed (next to its ready file)."""
    return Path(ready_file + ".handoff") if ready_file else None


class Ownership:
    def __init__(self, cfg: Config) -> None:
        self.shared = bool(cfg.bridge.shared_group)
        self.partition = Partition.parse(cfg.bridge.partition, cfg.bridge.handoff)
        self._ready_file = cfg.bridge.ready_file
        self._owned: dict[str, bool] = {}
        self._lock = threading.Lock()
        self._skipped: Any = None  # the metric's child for skipped messages, made once
        # (mid, qos) of other bridges' messages not yet acknowledged; only paho's network thread
        # touches it (on_message, on_disconnect, and after each read of the socket).
        self._skipped_acks: list[tuple[int, int]] = []
        if self.partition.epoch:
            # A handoff this bridge already passed (it was restarted since): nothing to wait for.
            f = handoff_file(self._ready_file)
            if f is not None and f.is_file() and f.read_text().strip() == self.partition.epoch:
                self.partition = self.partition.settled()
        log.info("bridge partition %s", "shared group" if self.shared else self.partition.label())

    def topics(self, readings: str) -> list[tuple[str, int]]:
        """What to subscribe to (QoS 1): the readings, and the handoff marker unless in a
        ``$share`` group (whose members each handle whatever the broker gives them)."""
        return [(readings, 1)] if self.shared else [(readings, 1), (HANDOFF_TOPIC, 1)]

    def intercept(self, bridge: Bridge, msg: mqtt.MQTTMessage) -> bool:
        """True when the message is dealt with here: another bridge's ship (acknowledged) or the
        handoff marker (queued behind the readings before it)."""
        if self.shared:
            return False
        topic = msg.topic
        if topic == HANDOFF_TOPIC:
            self._marker(bridge, msg)
            return True
        if self.partition.everything:
            return False
        parts = topic.split("/", 3)
        ship = parts[2] if len(parts) == 4 else ""
        known = self._owned  # before the partition: passed() replaces the partition first
        owned = known.get(ship)
        if owned is None:
            owned = self.partition.owns(ship)
            if len(known) < 100_000:
                known[ship] = owned
        if owned:
            return False
        # Acknowledged with the others read in the same pass of paho's loop (flush_skipped):
        # one write for them all instead of a packet, a wake-up and a send each.
        self._skipped_acks.append((msg.mid, msg.qos))
        if self._skipped is None:
            self._skipped = bridge.metrics.messages.labels("other_bridge")
        self._skipped.inc()
        return True

    def flush_skipped(self, client: mqtt.Client) -> None:
        """Acknowledge the skipped messages read so far, in one write."""
        if self._skipped_acks:
            acks, self._skipped_acks = self._skipped_acks, []
            pahofast.ack_all(client, acks)

    def drop_skipped(self) -> None:
        """The connection is gone: its packet ids mean nothing on the next one, and the broker
        delivers those messages again (skipped again, acknowledged then)."""
        self._skipped_acks = []

    def install(self, client: mqtt.Client) -> None:
        """Flush the skipped messages' acks after each read of the socket by paho's loop."""
        read = getattr(client, "loop_read", None)
        if read is None or self.shared or self.partition.everything:
            return

        def loop_read(*args: Any, **kwargs: Any) -> Any:
            try:
                return read(*args, **kwargs)
            finally:
                self.flush_skipped(client)

        vars(client)["loop_read"] = loop_read

    def _marker(self, bridge: Bridge, msg: mqtt.MQTTMessage) -> None:
        try:
            doc = json.loads(msg.payload)
            epoch, workers = str(doc["epoch"]), int(doc["workers"])
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring an unreadable handoff marker: %r", bytes(msg.payload)[:200])
            bridge.client.ack(msg.mid, msg.qos)
            return
        if epoch != self.partition.epoch or workers != self.partition.workers:
            bridge.client.ack(msg.mid, msg.qos)  # an old handoff's, or not ours
            return
        bridge.metrics.inflight.inc()
        bridge.batcher.add(Pending(mid=msg.mid, qos=msg.qos, generation=bridge.generation,
                                   ship="", batch_id=epoch, accepted=0, rejected=0, body="",
                                   npoints=0, parts=[]))

    def passed(self, item: Pending) -> None:
        """The marker's turn came in the writer thread: all before it is stored."""
        with self._lock:
            if item.batch_id != self.partition.epoch:
                return
            self.partition = self.partition.settled()
            self._owned = {}
        log.info("handoff %s passed: now bridge %s", item.batch_id, self.partition.label())
        f = handoff_file(self._ready_file)
        if f is not None:
            f.write_text(f"{item.batch_id}\n", encoding="utf-8")
