"""Announcing rewritten coarse values: ``fleet/ships/<id>/rollup`` after each coarse write.

The query service keeps finished calendar answers in memory (query_service/calendar.py) and
drops those of a ship when this notice arrives. :class:`bridge.rollup.Rollup` calls
:meth:`CoarseNotice.written` (its ``on_written`` hook) with the ships whose coarse values a write
changed, AFTER the write returned: a reader that reads the coarse series after the notice
arrived finds the new values. QoS 1, so paho keeps a notice queued through a reconnect (the query
service drops everything while its own link is not whole anyway). The payload is informational
(``{"values": n}``): the topic names the ship, which is all a subscriber needs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable

import paho.mqtt.client as mqtt

from fleet import topics

log = logging.getLogger(__name__)


class CoarseNotice:
    """Publishes one notice per ship through the bridge's own MQTT client (thread-safe: paho's
    ``publish`` may be called from the rollup worker)."""

    def __init__(self, client: mqtt.Client | None) -> None:
        self.client = client  # None until the bridge's client exists: notices are then skipped
        self.published = 0

    def written(self, ships: Iterable[str], values: int) -> None:
        if self.client is None:
            # Only the journal recovery at start writes this early; the query service's
            # generation watch drops what those writes made stale.
            return
        body = json.dumps({"values": values}).encode()
        for ship in sorted(set(ships)):
            info = self.client.publish(topics.rollup(ship), body, qos=1)
            if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                # NO_CONN: queued by paho all the same (QoS 1), sent at the reconnect; anything
                # else is worth a line: the query service then keeps that ship's answers until its
                # generation watch drops them (query_service/calendar.py).
                log.warning("rollup notice for %s not queued: rc=%s", ship, info.rc)
            self.published += 1
