"""bridge.pahofast: paho decodes a PUBLISH into the same message with the lean Properties, and
a batch of PUBACKs is the same bytes as one ack each."""

from __future__ import annotations

import collections
import socket
import struct
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt import _packet
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bridge import pahofast

TOPIC = b"fleet/ships/s-1/readings"
PAYLOAD = b'{"units":"kWh","data":[]}'
QOS1 = 0x30 | 0x02


def _publish(props: bytes) -> bytes:
    return struct.pack("!H", len(TOPIC)) + TOPIC + struct.pack("!H", 7) + props + PAYLOAD


@pytest.fixture
def lean() -> Iterator[None]:
    stock = _packet.Properties
    assert pahofast.install()
    yield
    _packet.Properties = stock  # type: ignore[misc]


def _decode(packet: bytes) -> _packet.PublishPacket:
    return _packet.decode_publish(QOS1, packet, MQTTProtocolVersion.MQTTv5)


def test_a_publish_without_properties_decodes_as_with_paho_alone() -> None:
    stock = _decode(_publish(b"\x00"))
    pahofast.install()
    try:
        fast = _decode(_publish(b"\x00"))
    finally:
        _packet.Properties = Properties  # type: ignore[misc]
    assert isinstance(fast.properties, pahofast.LeanProperties)
    assert (fast.topic, fast.mid, fast.payload, str(fast.properties)) == (
        stock.topic, stock.mid, stock.payload, str(stock.properties))
    assert fast.properties.isEmpty()  # type: ignore[no-untyped-call]


def test_properties_are_still_read(lean: None) -> None:
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.MessageExpiryInterval = 30
    props.UserProperty = ("a", "b")
    props.UserProperty = ("c", "d")
    fast = _decode(_publish(props.pack()))  # type: ignore[no-untyped-call]
    assert fast.payload == PAYLOAD
    assert fast.properties is not None
    assert fast.properties.json() == {  # type: ignore[no-untyped-call]
        "MessageExpiryInterval": 30, "UserProperty": [("a", "b"), ("c", "d")]}


def test_a_reused_object_is_cleared_before_reading(lean: None) -> None:
    props = pahofast.LeanProperties(PacketTypes.PUBLISH)
    props.MessageExpiryInterval = 30
    props.unpack(b"\x00")  # type: ignore[no-untyped-call]
    assert props.isEmpty()  # type: ignore[no-untyped-call]
    # The tables are shared, never written: a second object starts empty.
    assert pahofast.LeanProperties(PacketTypes.PUBLISH).isEmpty()  # type: ignore[no-untyped-call]


def _client() -> mqtt.Client:
    return mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5,
                       manual_ack=True)


def test_ack_all_queues_the_same_bytes_as_one_ack_each() -> None:
    one_by_one, batched = _client(), _client()  # not connected: paho keeps what it would send
    messages = [(1, 1), (300, 1), (65535, 1), (7, 0)]
    for mid, qos in messages:
        one_by_one.ack(mid, qos)
    pahofast.ack_all(batched, messages)
    queued = [p["packet"] for p in batched._out_packet]
    assert len(queued) == 1
    assert queued[0] == b"".join(p["packet"] for p in one_by_one._out_packet)
    assert queued[0] == b"\x40\x02\x00\x01\x40\x02\x01\x2c\x40\x02\xff\xff"


def test_ack_all_uses_ack_on_a_client_without_paho_internals() -> None:
    class Fake:
        def __init__(self) -> None:
            self.acks: list[tuple[int, int]] = []

        def ack(self, mid: int, qos: int) -> None:
            self.acks.append((mid, qos))

    fake = Fake()
    pahofast.ack_all(fake, [(1, 1), (2, 1)])  # type: ignore[arg-type]
    assert fake.acks == [(1, 1), (2, 1)]


def _sending(client: mqtt.Client) -> list[int]:
    """Record the ids paho sends instead of sending (as if connected); returns the record."""
    sent: list[int] = []

    def record(mid: int, *_a: object, **_k: object) -> int:
        sent.append(mid)
        return 0

    client._send_publish = record  # type: ignore[assignment]
    return sent


def _puback(client: mqtt.Client, mid: int) -> None:
    """What paho does on a PUBACK for ``mid`` (``_do_on_publish``), without a socket."""
    with client._out_message_mutex:
        client._out_messages.pop(mid)
        client._inflight_messages -= 1
        client._update_inflight()


class _Unwalkable(collections.OrderedDict):  # type: ignore[type-arg]
    def values(self):  # type: ignore[no-untyped-def]
        raise AssertionError("walked every outgoing message")


def test_lean_inflight_sends_what_waited_behind_the_limit_in_order_without_a_walk() -> None:
    client = _client()
    client.max_inflight_messages_set(3)
    assert pahofast.lean_inflight(client)
    sent = _sending(client)
    client._out_messages = _Unwalkable()
    mids = [client.publish("fleet/ships/s-1/energy", b"{}", qos=1).mid for _ in range(6)]
    assert sent == mids[:3]  # the limit: three in flight, three queued
    _puback(client, mids[0])
    _puback(client, mids[1])
    assert sent == mids[:5]
    assert client._inflight_messages == 3
    states = [m.state for m in collections.OrderedDict.values(client._out_messages)]
    assert states == [mqtt.mqtt_ms_wait_for_puback] * 3 + [mqtt.mqtt_ms_queued]
    _puback(client, mids[2])
    _puback(client, mids[3])
    assert sent == mids


def test_lean_inflight_leaves_what_it_did_not_note_to_pahos_walk() -> None:
    client = _client()
    client.max_inflight_messages_set(2)
    assert pahofast.lean_inflight(client)
    sent = _sending(client)
    mids = [client.publish("fleet/ships/s-1/energy", b"{}", qos=1).mid for _ in range(3)]
    # As a connection reset does: paho puts a message back in the queue by itself.
    client._out_messages[mids[1]].state = mqtt.mqtt_ms_queued
    client._inflight_messages -= 1
    _puback(client, mids[0])
    assert sent == [mids[0], mids[1], mids[2], mids[1]]
    assert all(m.state == mqtt.mqtt_ms_wait_for_puback for m in client._out_messages.values())


def test_buffered_socket_serves_small_reads_from_one_large_one() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        sock = pahofast.BufferedSocket(ours)
        theirs.sendall(b"\x30\x05hello\x40\x02\x00\x01")
        assert sock.recv(1) == b"\x30"
        assert sock.pending() == 10  # the rest of that read, held for paho
        assert sock.recv(1) == b"\x05"
        assert sock.recv(5) == b"hello"
        assert sock.recv(100) == b"\x40\x02\x00\x01"  # no more than it holds
        assert sock.pending() == 0
        ours.setblocking(False)
        with pytest.raises(BlockingIOError):  # empty: the socket's own answer, as paho expects
            sock.recv(1)
        theirs.shutdown(socket.SHUT_WR)
        ours.setblocking(True)
        assert sock.recv(1) == b""  # the peer closed
        assert sock.fileno() == ours.fileno()


def test_buffered_reads_handle_every_packet_of_a_read_before_select() -> None:
    """Three PUBLISHes arrive in one read: paho alone handles one per loop_read."""
    got: dict[str, list[bytes]] = {"stock": [], "buffered": []}
    for kind, messages in got.items():
        client = _client()
        client.on_message = lambda _c, _u, m, out=messages: out.append(m.payload)
        if kind == "buffered":
            assert pahofast.buffered_reads(client)
            client._create_socket = lambda: None  # type: ignore[method-assign]
        ours, theirs = socket.socketpair()
        with ours, theirs:
            client._sock = pahofast.BufferedSocket(ours) if kind == "buffered" else ours
            client._state = mqtt._ConnectionState.MQTT_CS_CONNECTED
            ours.setblocking(False)
            theirs.sendall(b"".join(_publish_packet(f"m{k}".encode()) for k in range(3)))
            client.loop_read()
            client._sock = None
    assert got["stock"] == [b"m0"]
    assert got["buffered"] == [b"m0", b"m1", b"m2"]


def _publish_packet(payload: bytes) -> bytes:
    """A QoS 0 PUBLISH (MQTT 5, no properties) on TOPIC."""
    body = struct.pack("!H", len(TOPIC)) + TOPIC + b"\x00" + payload
    return bytes([0x30, len(body)]) + body


def test_buffered_reads_return_to_the_writes_with_own_publishes_awaiting_pubacks() -> None:
    """paho's loop_read handles as many packets per call as messages await acknowledgement:
    with the bridge's own QoS 1 publishes waiting for PUBACKs (queued behind the broker's
    backlog) that was every packet the buffer held, and the PUBACKs queued for the broker were
    not written until the backlog was read. At most ``max_reads`` packets per loop_read."""
    client = _client()
    got: list[bytes] = []
    client.on_message = lambda _c, _u, m: got.append(m.payload)
    assert pahofast.buffered_reads(client, max_reads=4)
    client._create_socket = lambda: None  # type: ignore[method-assign]
    ours, theirs = socket.socketpair()
    with ours, theirs:
        client._sock = pahofast.BufferedSocket(ours)
        client._state = mqtt._ConnectionState.MQTT_CS_CONNECTED
        ours.setblocking(False)
        for _ in range(50):  # the bridge's energy notices, waiting for the broker's PUBACKs
            client._out_messages[client._mid_generate()] = mqtt.MQTTMessage()
        theirs.sendall(b"".join(_publish_packet(f"m{k}".encode()) for k in range(10)))
        client.loop_read()
        assert got == [b"m0", b"m1", b"m2", b"m3"]  # then select(), and the writes
        client.loop_read()
        client.loop_read()
        assert len(got) == 10
        client.loop_read()  # nothing left: the socket's empty read ends it
        assert len(got) == 10
        client._sock = None
