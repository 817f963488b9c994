"""Ship presence from the retained ``fleet/ships/<id>/status`` messages (CONTRACT section 2).

A paho MQTT 5 client on its own thread, logged in with the read-only "query" service account,
subscribes to ``fleet/ships/+/status`` in its on-connect callback (so a reconnect resubscribes and
the broker resends the retained statuses). Accepted payloads: ``online`` / ``offline`` as plain
text, or a JSON object whose ``status`` (or ``state``) is one of those, with an optional
timestamp in ``timestamp``, ``time`` or ``ts`` (ISO 8601 or epoch seconds). An empty retained
message clears the ship's presence. Without credentials the tracker stays off and every ship's
presence is ``unknown``.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from fleet.config import Config
from fleet.schema import SHIP_ID
from fleet.timeutil import US, format_datetime, parse_datetime
from fleet.tls import configure_client

log = logging.getLogger(__name__)

TOPIC = "fleet/ships/+/status"
STATES = ("online", "offline")


@dataclass(frozen=True, slots=True)
class Presence:
    state: str  # online | offline | unknown
    since: str | None  # the status message's timestamp, when it had one


UNKNOWN = Presence("unknown", None)


def parse_status(payload: bytes) -> Presence | None:
    """The presence a status payload announces; None for an unreadable one."""
    text = payload.decode("utf-8", errors="replace").strip()
    if text.lower() in STATES:
        return Presence(text.lower(), None)
    try:
        doc: Any = json.loads(text)
    except ValueError:
        return None
    if isinstance(doc, str) and doc.lower() in STATES:
        return Presence(doc.lower(), None)
    if not isinstance(doc, dict):
        return None
    state = doc.get("status", doc.get("state"))
    if not isinstance(state, str) or state.lower() not in STATES:
        return None
    since = None
    for key in ("timestamp", "time", "ts"):
        value = doc.get(key)
        try:
            if isinstance(value, str):
                since = format_datetime(parse_datetime(value))
            elif isinstance(value, int | float) and not isinstance(value, bool):
                since = format_datetime(int(value * US))
        except (ValueError, OverflowError):
            continue
        if since:
            break
    return Presence(state.lower(), since)


def service_password(config: Config) -> str:
    """``[http] mqtt_password``, else the account's secret under ``[local] data_dir``."""
    if config.http.mqtt_password or not config.http.mqtt_username:
        return config.http.mqtt_password
    secret = Path(config.local.path) / "mosquitto" / "secrets" / config.http.mqtt_username
    try:
        return secret.read_text(encoding="utf-8").strip()
    except OSError:
        return ""


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
        client = mqtt.Client(CallbackAPIVersion.VERSION2,
                             client_id=f"fleet-query-{uuid.uuid4().hex[:8]}",
                             protocol=MQTTProtocolVersion.MQTTv5)
        client.username_pw_set(config.http.mqtt_username, password)
        configure_client(client, config)  # TLS (and a client certificate) when configured
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.reconnect_delay_set(1, 30)
        client.connect_async(config.mqtt.host, config.mqtt.client_port, keepalive=config.mqtt.keepalive)
        client.loop_start()
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
        client.subscribe(TOPIC, qos=1)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        parts = msg.topic.split("/")
        if len(parts) == 4 and SHIP_ID.fullmatch(parts[2]):
            self.update(parts[2], bytes(msg.payload))
