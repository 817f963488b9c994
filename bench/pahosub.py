"""``python -m bench.pahosub SPEC_JSON``: a bare stock-paho subscriber, the reference of the
bridge's ingest targets ("at least 0.7x / 1.0x the bare paho subscriber").

paho-mqtt as installed (nothing of ``bridge.pahofast``), MQTT 5, the bridge's session settings: a
persistent session (``clean_start=False`` with a session expiry), QoS 1, manual
acknowledgements and the bridge's Receive Maximum. It does nothing with a message but
acknowledge it. The difference between it and the bridge is the bridge's own work; the
difference between it and ``mosquitto_sub`` is Python and paho.

SPEC: host, port, username, password, client_id, topic, session_expiry, receive_maximum, total
(messages to count on ``topic`` before stopping). Prints ``ready`` once subscribed, then one JSON
line when ``total`` messages have come: wall-clock time of the last one, messages seen and the
CPU seconds the process spent from ``ready`` to then.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions


def main() -> int:
    spec = json.loads(sys.argv[1])
    total = int(spec["total"])
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=spec["client_id"],
                         protocol=MQTTProtocolVersion.MQTTv5, manual_ack=True)
    client.username_pw_set(spec["username"], spec["password"] or None)
    client.max_queued_messages_set(0)
    subscribed = threading.Event()
    done = threading.Event()
    state: dict[str, Any] = {"seen": 0, "last": 0.0, "cpu0": 0.0}

    def on_connect(c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if not reason.is_failure:
            c.subscribe([(spec["topic"], SubscribeOptions(qos=1))])

    def on_subscribe(_c: mqtt.Client, _u: Any, _m: int, reasons: Any, _p: Any) -> None:
        if not reasons[0].is_failure:
            subscribed.set()

    def on_message(c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        c.ack(msg.mid, msg.qos)
        state["seen"] += 1
        if state["seen"] >= total:
            state["last"] = time.time()
            done.set()

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = int(spec["session_expiry"])
    props.ReceiveMaximum = int(spec["receive_maximum"])
    client.connect(spec["host"], int(spec["port"]), clean_start=False, properties=props)
    client.loop_start()
    try:
        if not subscribed.wait(20):
            print(json.dumps({"error": "not subscribed within 20 s"}), flush=True)
            return 1
        cpu0 = time.process_time()
        print("ready", flush=True)
        ok = done.wait(float(spec.get("timeout", 120)))
        cpu = time.process_time() - cpu0
        print(json.dumps({"ok": ok, "seen": state["seen"], "last": state["last"], "cpu": cpu}),
              flush=True)
        return 0 if ok else 1
    finally:
        client.disconnect()
        client.loop_stop()


if __name__ == "__main__":
    sys.exit(main())
