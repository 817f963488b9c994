"""The fleet simulator: N ship agents in one process, each with its own account and spool.

Each ship is a real :class:`~ship.agent.Agent` with a :class:`~ship.source.SimulatedMeter`, so
the simulator exercises the same spool, batching, acks and resends as a ship does. Random link
outages (``outage_rate`` per ship per simulated hour, 15 simulated minutes long on average) drop
a ship's connection the way a failing radio does: the broker publishes its last will (offline),
the readings pile up in its spool and drain when the link returns.

``fleetctl simulate`` runs it in the foreground with a progress line; ``python -m ship.simulate``
is what ``make run`` supervises (settings from ``[simulate]``, accounts provisioned beforehand
by :func:`provision`).
"""

from __future__ import annotations

import json
import logging
import random
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from fleet import paths
from fleet.accounts import Accounts
from fleet.config import Config, load_config, parse_duration
from fleet.errors import FleetError
from fleet.service import setup_logging, stop_on_signals
from fleet.timeutil import US, format_datetime
from ship.agent import Agent
from ship.source import SimulatedMeter
from ship.spool import Spool

log = logging.getLogger(__name__)

OUTAGE_MEAN_S = 15 * 60


def ship_ids(prefix: str, n: int) -> list[str]:
    return [f"{prefix}-{i}" for i in range(1, n + 1)]


def provision(cfg: Config, ids: list[str], accounts: Accounts | None = None) -> dict[str, str]:
    """Make sure every simulated ship has an account; return id -> password.

    Passwords are kept in ``<data_dir>/simulate/credentials.json`` (0600) so the next run reuses
    them; an account whose password was lost gets a new one. The broker is reloaded when an
    account changed.
    """
    accounts = accounts or Accounts(paths.broker_dir(cfg.local.path))
    path = paths.simulate_credentials(cfg.local.path)
    try:
        known: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        known = {}
    existing = set(accounts.list_ships())
    changed = False
    creds: dict[str, str] = {}
    for ship in ids:
        if ship in existing and ship in known:
            creds[ship] = known[ship]
            continue
        if ship in existing:
            accounts.remove_ship(ship)
        creds[ship] = accounts.add_ship(ship)
        changed = True
    if changed or creds != known:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({**known, **creds}, indent=2) + "\n", encoding="utf-8")
        tmp.chmod(0o600)
        tmp.replace(path)
    if changed:
        accounts.reload_broker()
    return creds


@dataclass
class _Outage:
    next_at: int  # simulated microseconds
    until: int = 0


class FleetSimulator:
    """Many agents stepped by one thread (each agent's paho client has its own network thread)."""

    def __init__(self, cfg: Config, creds: dict[str, str], *, interval_s: float,
                 speed: float = 1.0, duration_s: float | None = None, backfill_s: float = 0.0,
                 outage_rate: float = 0.0, spool_dir: Path | None = None,
                 seed: int | None = None) -> None:
        self.cfg = cfg
        self.outage_rate = outage_rate
        self.rng = random.Random(seed)  # noqa: S311 - simulation
        spool_dir = spool_dir or paths.simulate_spools_dir(cfg.local.path)
        self.agents: list[Agent] = []
        self.meters: list[SimulatedMeter] = []
        self.outages: list[_Outage] = []
        self.started = time.monotonic()
        try:
            for ship, password in sorted(creds.items()):
                spool = Spool(paths.spool_file(spool_dir, ship), ship,
                              max_readings=cfg.ship.spool_max_readings)
                resume = spool.get_meta("sim_next_us")
                origin = spool.get_meta("sim_origin_us")
                meter = SimulatedMeter(
                    ship, interval_s, speed=speed, backfill_s=backfill_s, duration_s=duration_s,
                    resume_us=int(resume) if resume else None,
                    origin_us=int(origin) if origin else None)
                self.meters.append(meter)
                self.agents.append(Agent(cfg, ship, password, spool, meter))
                self.outages.append(_Outage(self._next_outage(meter.clock_us(time.time()))))
        except BaseException:
            self.close()
            raise

    def _next_outage(self, sim_us: int) -> int:
        if self.outage_rate <= 0:
            return 2**62
        return sim_us + int(self.rng.expovariate(self.outage_rate / 3600) * US)

    def step(self) -> None:
        now = time.time()
        for agent, meter, outage in zip(self.agents, self.meters, self.outages, strict=True):
            sim = meter.clock_us(now)
            if meter.exhausted:
                # The measuring is over: no more outages, and one still running ends now. (The
                # simulated clock stops at real now, so an outage drawn past it would otherwise
                # last in real time and keep the backlog from ever draining.)
                outage.next_at = 2**62
                if not agent.link_wanted:
                    log.info("%s: link back (measuring done)", agent.ship)
                    agent.link_up()
            elif agent.link_wanted and sim >= outage.next_at:
                outage.until = sim + int(self.rng.expovariate(1 / OUTAGE_MEAN_S) * US)
                log.info("%s: link outage until %s (simulated)", agent.ship,
                         format_datetime(outage.until))
                agent.link_down()
            elif not agent.link_wanted and sim >= outage.until:
                log.info("%s: link back", agent.ship)
                agent.link_up()
                outage.next_at = self._next_outage(sim)
            agent.step(now)

    @property
    def done(self) -> bool:
        return all(a.done for a in self.agents)

    def progress(self) -> str:
        online = sum(a.connected for a in self.agents)
        measured = sum(a.counters.measured for a in self.agents)
        confirmed = sum(a.counters.confirmed for a in self.agents)
        backlog = sum(a.spool.depth for a in self.agents)
        dropped = sum(int(a.spool.get_meta("dropped") or 0) for a in self.agents)
        sim = min((m.clock_us(time.time()) for m in self.meters), default=0)
        return (f"{time.monotonic() - self.started:6.0f}s  sim {format_datetime(sim)}  ships "
                f"online {online}/{len(self.agents)}  measured {measured}  confirmed "
                f"{confirmed}  backlog {backlog}  dropped {dropped}")

    def run(self, stop: threading.Event, *, out: TextIO | None = None,
            every: float = 2.0, tick: float = 0.1) -> int:
        """Run until ``stop`` or, with a duration, until every ship has confirmed everything."""
        for agent in self.agents:
            agent.start()
        last = 0.0
        tty = bool(out is not None and out.isatty())
        try:
            while not stop.wait(tick):
                self.step()
                finished = self.done
                if out is not None and (time.monotonic() - last >= every or finished):
                    last = time.monotonic()
                    out.write(("\r" if tty else "") + self.progress() + ("" if tty else "\n"))
                    out.flush()
                if finished:
                    break
        finally:
            if tty and out is not None:
                out.write("\n")
            self.close()
        return 0

    def close(self) -> None:
        for agent in self.agents:
            agent.close()
            agent.spool.close()
        self.agents = []


def main() -> int:
    """``python -m ship.simulate``: the simulator of ``make run``, configured by ``[simulate]``.

    The accounts are provisioned by the launcher (:func:`provision`); their passwords are read
    from ``<data_dir>/simulate/credentials.json``.
    """
    setup_logging()
    try:
        cfg = load_config()
        sc = cfg.simulate
        ids = ship_ids(sc.prefix, sc.ships)
        creds = provision(cfg, ids)
        sim = FleetSimulator(cfg, creds, interval_s=parse_duration(sc.interval), speed=sc.speed,
                             backfill_s=parse_duration(sc.backfill) if sc.backfill else 0.0,
                             outage_rate=sc.outage_rate)
    except FleetError as exc:
        print(f"simulate: {exc}", file=sys.stderr)
        return 2
    stop = stop_on_signals()
    log.info("simulating %d ships (%s) every %s", len(ids), ", ".join(ids), sc.interval)
    return sim.run(stop, out=sys.stdout, every=30.0)


if __name__ == "__main__":
    sys.exit(main())
