"""``python -m bench.nocoarse``: the bridge with its coarse series off, for the ingest row
"12 readings/msg, coarse series off" (:mod:`bench.history`).

The bridge's own process (:func:`bridge.__main__.run` with ``coarse=False``): the same MQTT
session, batching, normalization and writes of the 15-minute parts, no journal marks and no
hourly or daily updates. For the benchmark only: the coarse series of a database written this way
fall behind its parts (``fleetctl rollup rebuild`` mends them).
"""

from __future__ import annotations

import sys

from bridge.__main__ import run
from fleet.config import load_config
from fleet.errors import FleetError
from fleet.service import setup_logging


def main() -> int:
    setup_logging()
    try:
        cfg = load_config()
    except FleetError as exc:
        print(f"bench.nocoarse: {exc}", file=sys.stderr)
        return 2
    return run(cfg, coarse=False)


if __name__ == "__main__":
    sys.exit(main())
