"""``python -m bench.coarsecmp [--runs N] [--per-ship M]``: only the ingest row "12 readings/msg"
with the coarse series on, then off, alternately, on one private stack (a few minutes; the full
``python -m bench --only ingest`` runs every ingest case). Prints each run and the on/off ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from bench.ingest import INGEST_CASES, pipeline
from bench.stack import start
from bench.stats import log


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.coarsecmp", description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="pairs (on, off) to run")
    parser.add_argument("--per-ship", type=int, default=200, help="messages per ship and row")
    parser.add_argument("--variant", action="append", default=[],
                        help="(experiments) NAME:K=V,K=V another 'on' bridge environment")
    args = parser.parse_args()
    on = next(c for c in INGEST_CASES if c.name == "12 readings/msg")
    off = next(c for c in INGEST_CASES if c.name == "12 readings/msg, coarse series off")
    variants: list[tuple[str, dict[str, str]]] = [("on", {})]
    for v in args.variant:
        name, _, kvs = v.partition(":")
        variants.append((name, dict(kv.split("=", 1) for kv in kvs.split(",") if kv)))
    b = start(Path(tempfile.mkdtemp(prefix="fleet-coarsecmp-")))
    rates: dict[str, list[float]] = {name: [] for name, _ in [*variants, ("off", {})]}
    try:
        for run in range(args.runs):
            for name, env in variants:
                b.start_bridge("pipeline", **env)
                rate, _pts, _batch = pipeline(b, on, args.per_ship, b.new_base(on.offset_s))
                rates[name].append(rate)
                log(f"run {run + 1}/{args.runs} {name}: {rate:,.0f} readings/s")
            rate, _pts, _batch = pipeline(b, off, args.per_ship, b.new_base(off.offset_s))
            rates["off"].append(rate)
            log(f"run {run + 1}/{args.runs} off: {rate:,.0f} readings/s")
    finally:
        b.stop()
    med_off = statistics.median(rates["off"])
    for name, values in rates.items():
        med = statistics.median(values)
        print(f"{name:>14}: {', '.join(f'{r:,.0f}' for r in values)} (median {med:,.0f}, "
              f"{med / med_off:.2f} of off)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
