"""The bridge's MQTT side driven by a fake client (as Telegraf's mqtt_consumer tests do): what
comes in reaches the batcher, what is stored is acknowledged, what is refused is reported."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from paho.mqtt.client import ConnectFlags, MQTTMessage, _ConnectionState
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from bridge.batcher import Pending
from bridge.metrics import BridgeMetrics
from bridge.mqtt import OWN_INFLIGHT, Bridge, bridge_client
from fleet.config import Config


class FakeClient:
    """Records what the bridge does with its MQTT client."""

    def __init__(self) -> None:
        self.acks: list[tuple[int, int]] = []
        self.published: list[tuple[str, Any, int]] = []
        self.connected_with: dict[str, Any] = {}

    def ack(self, mid: int, qos: int) -> None:
        self.acks.append((mid, qos))

    def publish(self, topic: str, payload: Any, qos: int = 0, retain: bool = False) -> None:
        self.published.append((topic, payload, qos))

    def connect_async(self, host: str, port: int, **kwargs: Any) -> None:
        self.connected_with = {"host": host, "port": port, **kwargs}

    def loop_start(self) -> None:
        pass

    def on_topic(self, topic: str) -> list[dict[str, Any]]:
        return [json.loads(p) for t, p, _q in self.published if t == topic]


class FakeBatcher:
    def __init__(self) -> None:
        self.added: list[Pending] = []

    def add(self, item: Pending) -> None:
        self.added.append(item)


def _bridge() -> tuple[Bridge, FakeClient, FakeBatcher]:
    client, batcher = FakeClient(), FakeBatcher()
    bridge = Bridge(Config(), lambda _b: batcher, BridgeMetrics(),
                    client_factory=lambda _cfg: client)
    return bridge, client, batcher


def _message(topic: str, payload: dict[str, Any] | bytes, mid: int) -> MQTTMessage:
    msg = MQTTMessage(mid=mid, topic=topic.encode())
    msg.payload = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    msg.qos = 1
    return msg


READING = {"units": "kWh", "interval": 900, "batch_id": "b-1",
           "data": [{"datetime": "2031-03-01T00:00:00Z", "value": 2.0},
                    {"datetime": "2031-03-01T00:15:00Z", "value": 3.0}]}


def test_a_message_reaches_the_batcher_as_parts() -> None:
    bridge, client, batcher = _bridge()
    bridge._on_message(client, None, _message("fleet/ships/s-1/readings", READING, 7))
    [item] = batcher.added
    assert (item.mid, item.qos, item.ship, item.batch_id, item.accepted) == (7, 1, "s-1", "b-1", 2)
    assert [p.kwh for p in item.parts] == [2.0, 3.0]
    assert client.acks == []  # nothing is acknowledged before it is stored


def test_stored_acknowledges_with_the_mid_and_confirms_the_batch() -> None:
    bridge, client, batcher = _bridge()
    bridge._on_message(client, None, _message("fleet/ships/s-1/readings", READING, 7))
    bridge.stored(batcher.added)
    assert client.acks == [(7, 1)]
    assert client.on_topic("fleet/ships/s-1/ack") == [
        {"batch_id": "b-1", "status": "stored", "readings": 2, "rejected": 0}]
    assert client.on_topic("fleet/ships/s-1/energy")[0]["ship"] == "s-1"


def test_a_stale_connection_is_not_acknowledged() -> None:
    bridge, client, batcher = _bridge()
    bridge._on_message(client, None, _message("fleet/ships/s-1/readings", READING, 7))
    bridge.generation += 1  # reconnected: the broker delivers it again
    bridge.stored(batcher.added)
    assert client.acks == []


def test_a_refused_payload_is_rejected_and_acknowledged() -> None:
    bridge, client, batcher = _bridge()
    bridge._on_message(client, None, _message("fleet/ships/s-1/readings", b"not json", 9))
    assert batcher.added == []
    assert client.acks == [(9, 1)]
    [rejected] = client.on_topic("fleet/ships/s-1/rejected")
    assert rejected["status"] == "rejected"
    assert rejected["reason"]


def test_storage_refusal_is_reported_and_acknowledged() -> None:
    bridge, client, batcher = _bridge()
    bridge._on_message(client, None, _message("fleet/ships/s-1/readings", READING, 4))
    bridge.refused(batcher.added[0], "field type conflict")
    assert client.acks == [(4, 1)]
    assert client.on_topic("fleet/ships/s-1/ack")[0]["reason"] == "storage_refused"


def test_an_unexpected_topic_is_acknowledged_and_ignored() -> None:
    bridge, client, batcher = _bridge()
    bridge._on_message(client, None, _message("fleet/ships/bad id/readings", READING, 3))
    assert (batcher.added, client.acks, client.published) == ([], [(3, 1)], [])


def test_start_asks_for_a_persistent_session_and_the_inflight_bound() -> None:
    cfg = Config()
    cfg = dataclasses.replace(cfg, bridge=dataclasses.replace(cfg.bridge, max_inflight=123))
    client = FakeClient()
    bridge = Bridge(cfg, lambda _b: FakeBatcher(), BridgeMetrics(),
                    client_factory=lambda _cfg: client)
    bridge.start()
    props = client.connected_with["properties"]
    assert client.connected_with["clean_start"] is False
    assert props.ReceiveMaximum == 123
    assert props.SessionExpiryInterval == cfg.bridge.session_expiry
    assert client.connected_with["port"] == cfg.mqtt.client_port


def test_own_publishes_in_flight_keep_to_the_brokers_receive_maximum() -> None:
    """paho ignores the Receive Maximum of a CONNACK; more unacknowledged publishes than that is
    a protocol error (EMQX disconnects), so the bridge sets paho's limit from it."""
    client = bridge_client(Config())
    bridge = Bridge(Config(), lambda _b: FakeBatcher(), BridgeMetrics(),
                    client_factory=lambda _cfg: client)
    assert client._max_inflight_messages == OWN_INFLIGHT
    client._state = _ConnectionState.MQTT_CS_CONNECTED  # as when paho calls on_connect
    props = Properties(PacketTypes.CONNACK)  # type: ignore[no-untyped-call]
    props.ReceiveMaximum = 32
    success = ReasonCode(PacketTypes.CONNACK, "Success")
    bridge._on_connect(client, None, ConnectFlags(False), success, props)
    assert client._max_inflight_messages == 32
    bridge._on_connect(client, None, ConnectFlags(False), success, None)  # none said: 65,535
    assert client._max_inflight_messages == OWN_INFLIGHT
