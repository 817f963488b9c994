"""Ship presence from the retained ``fleet/ships/<id>/status`` messages (CONTRACT section 2).

A paho MQTT 5 client on its own thread, logged in with the read-only "query" service account,
subscribes to ``fleet/ships/+/status`` in its on-connect callback (so a reconnect resubscribes and
the broker resends the retained statuses). Payloads are read by :func:`fleet.presence.parse_status`
(the same parser as ``fleetctl fleet status``); an empty retained message clears the ship's
presence. Without credentials the tracker stays off and every ship's presence is ``unknown``.
"""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Any

import paho.mqtt.client as mqtt

from fleet import paths, topics
from fleet.config import Config
from fleet.mqttclient import connect_async, new_client
from fleet.presence import UNKNOWN, Presence, parse_status

log = logging.getLogger(__name__)

__all__ = ["UNKNOWN", "Presence", "PresenceTracker", "parse_status", "service_password"]


def service_password(config: Config) -> str:
    """``[http] mqtt_password``, else the account's secret under ``[local] data_dir``."""
    if config.http.mqtt_password or not config.http.mqtt_username:
        return config.http.mqtt_password
    return paths.read_secret(config.local.path, config.http.mqtt_username)


class PresenceTracker:
    """The last status seen per ship (thread-safe; written by paho's thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[str, Presence] = {}
        self._client: mqtt.Client | None = None
        self.enabled = False

    def get(self, ship: str) -> Presence:
        with self._lock:
            return self._states.get(ship, UNKNOWN)

    def ships(self) -> set[str]:
        with self._lock:
            return set(self._states)

    def update(self, ship: str, payload: bytes) -> None:
        with self._lock:
            if not payload:
                self._states.pop(ship, None)
                return
            presence = parse_status(payload)
            if presence is not None:
                self._states[ship] = presence

    def start(self, config: Config) -> None:
        """Connect in the background (paho retries until the broker answers)."""
        password = service_password(config)
        if not config.http.mqtt_username or not password:
            log.info("no password for the broker account %r: ship presence is reported as "
                     "unknown", config.http.mqtt_username)
            return
        client = new_client(config, f"fleet-query-{uuid.uuid4().hex[:8]}",
                            username=config.http.mqtt_username, password=password)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        connect_async(client, config)
        self._client = client
        self.enabled = True

    def stop(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any,
                    _props: Any) -> None:
        if reason.is_failure:
            log.warning("presence: the broker refused the connection: %s", reason)
            return
        client.subscribe(topics.STATUS_FILTER, qos=1)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        topic = topics.parse_ship_topic(msg.topic)
        if topic is not None:
            self.update(topic.ship, bytes(msg.payload))
