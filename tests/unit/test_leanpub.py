"""bench.leanpub: the packets it writes are the ones paho writes for the same messages, and its
reader takes whole packets only, however the bytes arrive."""

from __future__ import annotations

import socket

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from bench import leanpub
from bench.load import payload


def _paho() -> mqtt.Client:
    return mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-s-1",
                       protocol=MQTTProtocolVersion.MQTTv5)


def _sent_by_paho(mid: int, topic: bytes, body: bytes) -> bytes:
    """What paho writes to its socket for a QoS 1 PUBLISH (a socket pair stands for the broker)."""
    client = _paho()
    ours, theirs = socket.socketpair()
    with ours, theirs:
        client._sock = ours
        client._send_publish(mid, topic, body, 1, False, False)
        client._sock = None
        ours.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := theirs.recv(1 << 20):
            out += chunk
        return out


def test_a_publish_is_the_bytes_paho_sends() -> None:
    body = payload("s-1", 3, 12, 1_600_000_200)
    head, tail = leanpub.publish_parts("fleet/ships/s-1/readings", body)
    assert _sent_by_paho(4711, b"fleet/ships/s-1/readings", body) == (
        head + (4711).to_bytes(2, "big") + tail)


def test_a_large_payload_gets_a_longer_length() -> None:
    body = b"x" * 200_000  # remaining length in three bytes
    head, tail = leanpub.publish_parts("t", body)
    assert _sent_by_paho(1, b"t", body) == head + b"\x00\x01" + tail


def test_connect_is_mqtt5_with_credentials_and_a_clean_start() -> None:
    client = _paho()
    client.username_pw_set("s-1", "secret")
    client._keepalive = 60
    client._send_connect(60)
    assert client._out_packet[-1]["packet"] == leanpub.connect_packet("bench-s-1", "s-1",
                                                                      "secret")


def test_packets_are_read_whole_whatever_the_split() -> None:
    stream = b"\x40\x02\x00\x01" + b"\x40\x03\x00\x02\x87" + b"\xd0\x00"
    for cut in range(len(stream) + 1):
        buf = bytearray(stream[:cut])
        got = leanpub.read_packets(buf)
        buf += stream[cut:]
        got += leanpub.read_packets(buf)
        assert got == [(0x40, b"\x00\x01"), (0x40, b"\x00\x02\x87"), (0xD0, b"")]
        assert not buf
