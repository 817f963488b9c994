"""``python -m bench.hotpath``: the bridge's own CPU time per message, without broker or database.

Feeds prepared messages (the payloads ``make bench`` publishes, :func:`bench.load.payload`)
through the bridge's message handler with a fake paho client, as tests/unit/test_bridge_mqtt.py
does, then hands them to :meth:`Bridge.stored` in batches of ``bridge.batch_size`` points after
joining their line protocol as the batcher does: parsing, validation, normalization, line
protocol, acknowledgements, the ack and energy topics. paho's own decoding and socket work are
not in it: :func:`measure_paho` times those alone (paho's decoding of a received PUBLISH and its
callback dispatch, to a callback doing nothing: a bare paho subscriber's share), with paho's
stock ``Properties`` and with :mod:`bridge.pahofast`. Timed with ``time.process_time`` (CPU time
of this process), so a busy machine moves the figure much less than a wall-clock rate; the best
of ``--repeat`` rounds is reported.
"""

from __future__ import annotations

import argparse
import json
import re
import struct
import time
from pathlib import Path
from typing import Any, cast

import paho.mqtt.client as mqtt
from paho.mqtt import _packet
from paho.mqtt.client import MQTTMessage
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from bench.load import payload
from bridge import pahofast
from bridge.batcher import Pending
from bridge.metrics import BridgeMetrics
from bridge.mqtt import Bridge
from fleet.config import Config

SHIPS = 100


class _Client:
    """Takes what the bridge sends, as cheaply as a list append."""

    def __init__(self) -> None:
        self.sent: list[Any] = []

    def ack(self, mid: int, qos: int) -> None:
        self.sent.append(mid)

    def publish(self, topic: str, payload: Any, qos: int = 0, retain: bool = False) -> None:
        self.sent.append(payload)


class _Batcher:
    def __init__(self) -> None:
        self.added: list[Pending] = []

    def add(self, item: Pending) -> None:
        self.added.append(item)


def _messages(n: int, readings: int, batch_id: bool) -> list[MQTTMessage]:
    out = []
    for i in range(n):
        ship = f"bench-{i % SHIPS:03d}"
        body = payload(ship, i // SHIPS, readings, 1_900_000_800)
        if batch_id:
            doc = json.loads(body)
            doc["batch_id"] = f"b-{i}"
            body = json.dumps(doc, separators=(",", ":")).encode()
        msg = MQTTMessage(mid=i % 65535 + 1, topic=f"fleet/ships/{ship}/readings".encode())
        msg.payload = body
        msg.qos = 1
        out.append(msg)
    return out


def measure(readings: int, n: int, *, batch_id: bool = False) -> float:
    """CPU microseconds per message through the handler and the sink."""
    client, batcher = _Client(), _Batcher()
    cfg = Config()
    bridge = Bridge(cfg, lambda _b: batcher, BridgeMetrics(),
                    client_factory=lambda _c: cast(mqtt.Client, client))
    messages = _messages(n, readings, batch_id)
    on_message = bridge._on_message
    batch_points = cfg.bridge.batch_size
    t0 = time.process_time()
    for msg in messages:
        on_message(cast(mqtt.Client, client), None, msg)
    items = batcher.added
    start = points = 0
    for k, item in enumerate(items):
        points += item.npoints
        if points >= batch_points or k == len(items) - 1:
            batch = items[start:k + 1]
            "\n".join(i.body for i in batch).encode()  # what the batcher sends to InfluxDB
            bridge.stored(batch)
            start, points = k + 1, 0
    elapsed = time.process_time() - t0
    if len(items) != n:
        raise RuntimeError(f"{n - len(items)} of {n} messages did not reach the batcher")
    return elapsed / n * 1e6


SECTION = "## Bridge hot path"


def carry_over(results: Path, text: str) -> str:
    """``text`` (a new results file) with the "Bridge hot path" section of the file it replaces:
    that section is written by hand from this module's runs, which ``python -m bench`` does not
    make."""
    try:
        old = results.read_text(encoding="utf-8")
    except FileNotFoundError:
        return text
    found = re.search(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", old, re.S | re.M)
    if found is None or SECTION in text:
        return text
    return text.rstrip("\n") + "\n\n" + found.group(0).rstrip("\n") + "\n"


def measure_paho(readings: int, n: int, *, lean: bool) -> float:
    """CPU microseconds per message in paho's receive path, from the bytes of a PUBLISH packet
    (as ``_packet_read`` leaves them, socket reads excluded) to a callback doing nothing."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5,
                         manual_ack=True)
    client.on_message = lambda _c, _u, _m: None
    packets = []
    for msg in _messages(n, readings, False):
        topic = msg.topic.encode()
        # topic, packet id, property length 0 (ships send none), payload
        # (a bytearray, as paho's reader builds it)
        packets.append(bytearray(struct.pack("!H", len(topic)) + topic
                                 + struct.pack("!H", msg.mid) + b"\x00" + msg.payload))
    stock = vars(_packet)["Properties"]
    if lean:
        pahofast.install()
    try:
        t0 = time.process_time()
        for packet in packets:
            # paho's state once a whole packet is read: QoS 1 PUBLISH and its bytes (private).
            client._in_packet["command"] = 0x32
            client._in_packet["packet"] = packet
            client._handle_publish()
        elapsed = time.process_time() - t0
    finally:
        vars(_packet)["Properties"] = stock
    return elapsed / n * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5, help="rounds; the best is reported")
    args = parser.parse_args()
    print("| readings/message | batch_id | CPU µs/message | CPU µs/reading |")
    print("| --- | --- | --- | --- |")
    for readings in (1, 12):
        for batch_id in (False, True):
            best = min(measure(readings, args.messages, batch_id=batch_id)
                       for _ in range(args.repeat))
            print(f"| {readings} | {'yes' if batch_id else 'no'} | {best:.1f} | "
                  f"{best / readings:.1f} |", flush=True)
    print()
    print("| readings/message | paho receive path, stock Properties: CPU µs/message "
          "| with bridge.pahofast |")
    print("| --- | --- | --- |")
    for readings in (1, 12):
        stock, lean = (min(measure_paho(readings, args.messages, lean=lean)
                           for _ in range(args.repeat)) for lean in (False, True))
        print(f"| {readings} | {stock:.1f} | {lean:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
