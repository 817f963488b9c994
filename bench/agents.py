"""``python -m bench.agents SPEC_JSON``: ship agents (``ship.agent.Agent``), one thread each, each
sending a file of readings from its own spool, for the backlog measured with the agent.

SPEC: dir, base (epoch s), readings (per ship, 5-minute kW), accounts [[ship, password]]. The
configuration comes from the environment (``FLEET_*``). Prints ``queued`` once every agent has
sent all its readings (the bridge is stopped then, so they wait in its session), then a JSON line
with the wall-clock time the last agent had every reading confirmed on its ack topic.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from pathlib import Path

from bench.load import iso
from fleet.config import load_config
from ship.agent import Agent
from ship.source import LineSource
from ship.spool import Spool


def main() -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    spec = json.loads(sys.argv[1])
    cfg = load_config()
    root = Path(spec["dir"])
    root.mkdir(parents=True, exist_ok=True)
    n = int(spec["readings"])
    stop = threading.Event()
    agents: list[Agent] = []
    done_at: dict[str, float] = {}
    lock = threading.Lock()

    def one(ship: str, password: str) -> None:
        src = root / f"{ship}.jsonl"
        src.write_text("".join(json.dumps({"datetime": iso(spec["base"] + k * 300),
                                           "value": k % 17 + 0.25}) + "\n" for k in range(n)))
        spool = Spool(root / f"{ship}.spool", ship)
        source = LineSource(str(src), units="kW", interval_s=300)
        agent = Agent(cfg, ship, password, spool, source, live=False)
        with lock:
            agents.append(agent)
        try:
            agent.run(stop)
        finally:
            with lock:
                done_at[ship] = time.time()
            source.close()
            spool.close()

    threads = [threading.Thread(target=one, args=(s, p), daemon=True) for s, p in spec["accounts"]]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with lock:
            sent = sum(a.counters.sent for a in agents)
        if len(agents) == len(threads) and sent >= n * len(threads):
            break
        time.sleep(0.05)
    else:
        print(json.dumps({"error": f"only {sent} of {n * len(threads)} readings sent"}), flush=True)
        stop.set()
        return 1
    print("queued", flush=True)
    for t in threads:
        t.join(spec.get("timeout", 300))
    confirmed = sum(a.counters.confirmed for a in agents)
    print(json.dumps({"done": max(done_at.values()), "confirmed": confirmed,
                      "finished": len(done_at), "resent": sum(a.counters.resent for a in agents)}),
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
