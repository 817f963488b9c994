"""``python -m bench.pub SPEC_JSON``: one publisher process for the ingest benchmark.

SPEC: host, port, accounts [[ship, password]], per_ship, readings (per message), base (epoch s),
rate (messages/s or null), window. Builds its payloads up front, waits for a line on stdin (so
several publishers start together), publishes, and prints a JSON summary with wall-clock times.
"""

from __future__ import annotations

import json
import math
import sys
import time

from bench.load import Publisher


def payload(ship: str, i: int, readings: int, base: int) -> bytes:
    """Message i: ``readings`` 5-minute kW readings (one 15-minute kWh reading when 1)."""
    if readings == 1:
        ts = base + i * 900
        return json.dumps({"units": "kWh", "data": [
            {"datetime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts)),
             "value": i % 13 + 0.5}]}, separators=(",", ":")).encode()
    start = base + i * readings * 300
    data = [{"datetime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + k * 300)),
             "value": (i + k) % 17 + 0.25} for k in range(readings)]
    return json.dumps({"units": "kW", "data": data}, separators=(",", ":")).encode()


def main() -> int:
    spec = json.loads(sys.argv[1])
    accounts = [(s, p) for s, p in spec["accounts"]]
    messages = [[payload(s, i, spec["readings"], spec["base"]) for i in range(spec["per_ship"])]
                for s, _ in accounts]
    pub = Publisher(spec["host"], spec["port"], accounts, window=spec.get("window", 200),
                    prefix="bench")
    pub.connect()
    print("ready", flush=True)
    sys.stdin.readline()
    wall0, perf0 = time.time(), time.perf_counter()
    result = pub.run(messages, rate=spec.get("rate"), timeout=spec.get("timeout", 120))
    pub.close()
    acks = [t for row in result.acked_at for t in row if not math.isnan(t)]
    print(json.dumps({
        "sent": result.total, "acked": len(acks), "refused": result.refused,
        "start": wall0 + (result.started - perf0),
        "last_ack": wall0 + ((max(acks) if acks else result.finished) - perf0),
    }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
