"""The alert service's broker side: follows ``fleet/ships/+/energy`` (data stored) and
``fleet/ships/+/status`` (presence), and publishes the retained ``fleet/alerts/<ship>/<rule>``.

Presence is read with :func:`fleet.presence.parse_status` (the one parser of the retained
status). Subscribes in the on-connect callback, so a reconnect resubscribes (the broker then resends the
retained statuses); republishes every alert's current state at each connect, so the retained
topics are right even after a broker that lost them (retained QoS 1: publishing the same state
twice changes nothing). Each connect also asks for the last readings to be learnt again from
InfluxDB (``on_connected``), since energy messages (QoS 0) sent while disconnected are lost.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

from alerts.engine import Engine
from alerts.metrics import AlertMetrics
from alerts.state import Tracked
from fleet import paths, topics
from fleet.alertevents import AlertEvent
from fleet.config import Config
from fleet.mqttclient import connect_async, new_client
from fleet.presence import parse_status
from fleet.timeutil import parse_datetime

log = logging.getLogger(__name__)

ENERGY = topics.every_ship(topics.ENERGY)


def service_password(cfg: Config) -> str:
    """``[alerts] mqtt_password``, else the account's secret under ``[local] data_dir``."""
    return cfg.alerts.mqtt_password or paths.read_secret(cfg.local.path, cfg.alerts.mqtt_username)


class AlertsMqtt:
    def __init__(self, cfg: Config, engine: Engine, metrics: AlertMetrics,
                 on_connected: Callable[[], None]) -> None:
        self.cfg = cfg
        self.engine = engine
        self.metrics = metrics
        self._on_connected = on_connected
        # A fresh session each time: it resubscribes on connect and republishes its states.
        self.client = new_client(cfg, f"fleet-alerts-{uuid.uuid4().hex[:8]}",
                                 username=cfg.alerts.mqtt_username,
                                 password=service_password(cfg), reconnect_max_delay=5)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    def start(self) -> None:
        connect_async(self.client, self.cfg, clean_start=True)

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
        client.subscribe([(ENERGY, 0), (topics.STATUS_FILTER, 1)])
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
        parsed = topics.parse_ship_topic(msg.topic)
        if parsed is None:
            return
        now = time.time_ns() // 1000
        if parsed.kind == topics.ENERGY and not msg.retain:
            self.engine.seen(parsed.ship, now)
        elif parsed.kind == topics.STATUS:
            payload = bytes(msg.payload)
            if not payload:
                self.engine.presence(parsed.ship, None, now)
                return
            presence = parse_status(payload)
            if presence is not None:
                since = parse_datetime(presence.since) if presence.since else now
                self.engine.presence(parsed.ship, presence.state, since)
