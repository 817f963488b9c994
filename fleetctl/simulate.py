"""``fleetctl simulate``: N simulated ship agents (:mod:`ship.simulate`) in the foreground."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from fleet.config import load_config
from fleet.errors import ConfigError
from fleet.service import setup_logging, stop_on_signals
from fleetctl.ship import duration_arg
from ship.simulate import FleetSimulator, provision, ship_ids
from ship.source import duration

if TYPE_CHECKING:
    from fleetctl.main import CommandTree


def _simulate(args: argparse.Namespace) -> int:
    setup_logging()
    cfg = load_config()
    sc = cfg.simulate
    n = sc.ships if args.ships is None else args.ships
    if n < 1:
        raise ConfigError("--ships must be at least 1")
    interval_s = args.interval or duration(sc.interval)
    speed = sc.speed if args.speed is None else args.speed
    if speed < 1:
        raise ConfigError("--speed must be at least 1")
    backfill = args.backfill
    if backfill is None:
        # Accelerated with a duration: that much history, ending about now.
        backfill = args.duration if (speed > 1 and args.duration) else 0.0
    creds = provision(cfg, ship_ids(args.prefix or sc.prefix, n))
    sim = FleetSimulator(cfg, creds, interval_s=interval_s, speed=speed, duration_s=args.duration,
                         backfill_s=backfill,
                         outage_rate=sc.outage_rate if args.outage_rate is None
                         else args.outage_rate,
                         spool_dir=Path(args.spool_dir) if args.spool_dir else None,
                         seed=args.seed)
    if args.quiet:
        logging.getLogger().setLevel(logging.WARNING)
    return sim.run(stop_on_signals(), out=sys.stdout)


def register(tree: CommandTree) -> None:
    """``simulate``."""
    sim = tree.command("simulate", _simulate,
                       "run N simulated ship agents with random link outages")
    sim.add_argument("--ships", type=int, help="how many ships (default: [simulate] ships)")
    sim.add_argument("--prefix", help="ship ids are <prefix>-1 .. <prefix>-N")
    sim.add_argument("--interval", type=duration_arg, help="between readings (5m, PT5M, 300)")
    sim.add_argument("--speed", type=float, help="simulated time runs this many times faster")
    sim.add_argument("--duration", type=duration_arg,
                     help="simulated time to produce; then exit once all is confirmed "
                          "(default: run until Ctrl-C). With --speed > 1, the history ending "
                          "now")
    sim.add_argument("--backfill", type=duration_arg, help="history before now, at the start")
    sim.add_argument("--outage-rate", type=float,
                     help="link outages per ship per simulated hour (15 min long on average)")
    sim.add_argument("--spool-dir", help="spools (default: <data_dir>/simulate/spools)")
    sim.add_argument("--seed", type=int, help="random seed for the outages")
    sim.add_argument("--quiet", action="store_true", help="progress only, no agent logs")
