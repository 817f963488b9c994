"""``python -m bench.sub HOST PORT USER PASSWORD COUNT``: the broker's ceiling, a bare paho
subscriber (QoS 1, paho's automatic PUBACKs) counting messages on ``fleet/ships/+/readings``.

Prints ``ready`` once subscribed, then a JSON line with the wall-clock times of the first and the
COUNT-th message (or of the last one seen after 120 s).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt

from fleet import topics
from fleet.mqttclient import plain_client


def main() -> int:
    host, port, user, password, count = sys.argv[1:6]
    want = int(count)
    state: dict[str, Any] = {"n": 0, "first": 0.0, "last": 0.0}
    done = threading.Event()
    subscribed = threading.Event()

    def on_message(_c: mqtt.Client, _u: Any, _m: mqtt.MQTTMessage) -> None:
        now = time.time()
        if state["n"] == 0:
            state["first"] = now
        state["n"] += 1
        state["last"] = now
        if state["n"] >= want:
            done.set()

    client = plain_client(f"ceiling-{time.time_ns()}", username=user, password=password)
    client.on_message = on_message
    client.on_subscribe = lambda *_a: subscribed.set()
    client.on_connect = lambda c, *_a: c.subscribe(topics.READINGS_FILTER, qos=1)
    client.connect(host, int(port))
    client.loop_start()
    if not subscribed.wait(20):
        return 1
    print("ready", flush=True)
    done.wait(120)
    client.disconnect()
    client.loop_stop()
    print(json.dumps({"count": state["n"], "first": state["first"], "last": state["last"]}),
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
