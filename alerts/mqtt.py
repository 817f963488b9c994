"""The alert service's broker side: follows ``fleet/ships/+/energy`` (data stored) and
``fleet/ships/+/status`` (presence), and publishes the retained ``fleet/alerts/<ship>/<rule>``.

Subscribes in the on-connect callback, so a reconnect resubscribes (the broker then resends the
retained statuses); republishes every alert's current state at each connect, so the retained
topics are right even after a broker that lost them (retained QoS 1: publishing the same state
twice changes nothing). Each connect also asks for the last readings to be learnt again from
InfluxDB (``on_connected``), since energy messages (QoS 0) sent while disconnected are lost.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from alerts.engine import Engine
from alerts.metrics import AlertMetrics
from alerts.state import Tracked
from fleet.alertevents import AlertEvent
from fleet.config import Config
from fleet.schema import SHIP_ID
from fleet.timeutil import US, parse_datetime
from fleet.tls import configure_client

log = logging.getLogger(__name__)

ENERGY = "fleet/ships/+/energy"
STATUS = "fleet/ships/+/status"


def parse_presence(payload: bytes) -> tuple[str | None, int | None]:
    """(online | offline | None for an unreadable or empty status, its timestamp in µs)."""
    text = payload.decode("utf-8", errors="replace").strip()
    if text.lower() in {"online", "offline"}:
        return text.lower(), None
    try:
        doc: Any = json.loads(text)
    except ValueError:
        return None, None
    if isinstance(doc, str) and doc.lower() in {"online", "offline"}:
        return doc.lower(), None
    if not isinstance(doc, dict):
        return None, None
    state = doc.get("status", doc.get("state"))
    if not isinstance(state, str) or state.lower() not in {"online", "offline"}:
        return None, None
    for key in ("timestamp", "time", "ts"):
        value = doc.get(key)
        try:
            if isinstance(value, str):
                return state.lower(), parse_datetime(value)
            if isinstance(value, int | float) and not isinstance(value, bool):
                return state.lower(), int(value * US)
        except (ValueError, OverflowError):
            continue
    return state.lower(), None


def service_password(cfg: Config) -> str:
    """``[alerts] mqtt_password``, else the account's secret under ``[local] data_dir``."""
    if cfg.alerts.mqtt_password:
        return cfg.alerts.mqtt_password
    secret = Path(cfg.local.path) / "mosquitto" / "secrets" / cfg.alerts.mqtt_username
    try:
        return secret.read_text(encoding="utf-8").strip()
    except OSError:
        return ""


class AlertsMqtt:
    def __init__(self, cfg: Config, engine: Engine, metrics: AlertMetrics,
                 on_connected: Callable[[], None]) -> None:
        self.cfg = cfg
        self.engine = engine
        self.metrics = metrics
        self._on_connected = on_connected
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2,
                                  client_id=f"fleet-alerts-{uuid.uuid4().hex[:8]}",
                                  protocol=MQTTProtocolVersion.MQTTv5)
        self.client.username_pw_set(cfg.alerts.mqtt_username, service_password(cfg))
        configure_client(self.client, cfg)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 5)

    def start(self) -> None:
        self.client.connect_async(self.cfg.mqtt.host, self.cfg.mqtt.client_port,
                                  keepalive=self.cfg.mqtt.keepalive)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, event: AlertEvent, _tracked: Tracked | None = None) -> None:
        """An engine listener: the new state, retained. Queued by paho while disconnected."""
        self.client.publish(event.topic, event.payload(), qos=1, retain=True)

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any,
                    _props: Any) -> None:
        if reason.is_failure:
            log.warning("the broker refused the connection: %s", reason)
            self.metrics.delivery_failures.labels("mqtt").inc()
            return
        self.metrics.connected.set(1)
        client.subscribe([(ENERGY, 0), (STATUS, 1)])
        tracked = self.engine.snapshot()
        for t in tracked:
            self.publish(t.event)
        log.info("connected to the broker; %d alert states republished", len(tracked))
        self._on_connected()

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any,
                       _props: Any) -> None:
        self.metrics.connected.set(0)
        log.warning("disconnected from the broker (%s); reconnecting", reason)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        parts = msg.topic.split("/")
        if len(parts) != 4 or not SHIP_ID.fullmatch(parts[2]):
            return
        ship, kind = parts[2], parts[3]
        now = time.time_ns() // 1000
        if kind == "energy" and not msg.retain:
            self.engine.seen(ship, now)
        elif kind == "status":
            payload = bytes(msg.payload)
            if not payload:
                self.engine.presence(ship, None, now)
                return
            state, stamp = parse_presence(payload)
            if state is not None:
                self.engine.presence(ship, state, stamp or now)
