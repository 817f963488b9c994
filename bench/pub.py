"""``python -m bench.pub SPEC_JSON``: one publisher process for the benchmark.

SPEC: host, port, accounts [[ship, password]], per_ship, readings (per message), base (epoch s),
rate (messages/s or null: unpaced, by :mod:`bench.leanpub`), window,
step (seconds a reading covers, or null). Builds its payloads up front, waits for a line on stdin (so
several publishers start together), publishes, and prints a JSON summary with wall-clock times.
"""

from __future__ import annotations

import json
import math
import sys
import time

from bench.leanpub import LeanPublisher
from bench.load import Publisher, payload


def main() -> int:
    spec = json.loads(sys.argv[1])
    accounts = [(s, p) for s, p in spec["accounts"]]
    messages = [[payload(s, i, spec["readings"], spec["base"], spec.get("step"))
                  for i in range(spec["per_ship"])]
                for s, _ in accounts]
    # Unpaced runs use the lean publisher (bench.leanpub: a few µs a message instead of paho's
    # ~140, on the cores the measured processes share); paced ones paho's, which paces.
    kind = LeanPublisher if spec.get("rate") is None else Publisher
    pub = kind(spec["host"], spec["port"], accounts, window=spec.get("window", 200),
               prefix=spec.get("prefix", "bench"))
    pub.connect()
    print("ready", flush=True)
    sys.stdin.readline()
    wall0, perf0 = time.time(), time.perf_counter()
    result = pub.run(messages, rate=spec.get("rate"), timeout=spec.get("timeout", 300))
    pub.close()
    acks = [t for row in result.acked_at for t in row if not math.isnan(t)]
    print(json.dumps({
        "sent": sum(1 for row in result.sent_at for t in row if not math.isnan(t)),
        "total": result.total, "acked": len(acks), "refused": result.refused,
        "start": wall0 + (result.started - perf0),
        "last_ack": wall0 + ((max(acks) if acks else result.finished) - perf0),
    }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
