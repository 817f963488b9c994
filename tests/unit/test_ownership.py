"""bridge.ownership: another bridge's messages are acknowledged unparsed, all those one read of
the socket brought in one write, and none across a lost connection."""

from __future__ import annotations

from types import SimpleNamespace

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from bridge.metrics import BridgeMetrics
from bridge.ownership import Ownership
from bridge.partition import owner
from fleet.config import load_config


def _setup(partition: str) -> tuple[Ownership, SimpleNamespace]:
    cfg = load_config(env={"FLEET_BRIDGE_PARTITION": partition})
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5,
                         manual_ack=True)  # not connected: paho keeps what it would send
    own = Ownership(cfg)
    own.install(client)
    return own, SimpleNamespace(client=client, metrics=BridgeMetrics())


def _message(ship: str, mid: int) -> mqtt.MQTTMessage:
    msg = mqtt.MQTTMessage(mid, f"fleet/ships/{ship}/readings".encode())
    msg.qos = 1
    return msg


def _others(n: int) -> list[str]:
    return [s for s in (f"ship-{k}" for k in range(100)) if owner(s, 2) == 0][:n]


def test_skipped_messages_are_acknowledged_together_after_the_read() -> None:
    own, bridge = _setup("1/2")
    ships = _others(3)
    assert all(own.intercept(bridge, _message(s, mid)) for mid, s in enumerate(ships, start=1))
    assert not bridge.client._out_packet  # nothing written per message
    bridge.client.loop_read()  # paho's loop reads the socket (nothing to read here), then...
    packets = [p["packet"] for p in bridge.client._out_packet]
    assert packets == [b"\x40\x02\x00\x01\x40\x02\x00\x02\x40\x02\x00\x03"]
    assert bridge.metrics.messages.labels("other_bridge")._value.get() == 3


def test_an_owned_message_is_left_to_the_bridge() -> None:
    own, bridge = _setup("0/2")
    assert not own.intercept(bridge, _message(_others(1)[0], 9))
    bridge.client.loop_read()
    assert not bridge.client._out_packet


def test_skipped_acks_of_a_lost_connection_are_never_sent() -> None:
    own, bridge = _setup("1/2")
    assert own.intercept(bridge, _message(_others(1)[0], 5))
    own.drop_skipped()  # the bridge's on_disconnect
    bridge.client.loop_read()
    assert not bridge.client._out_packet
