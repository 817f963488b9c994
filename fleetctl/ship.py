"""fleetctl commands of the ship agent (:mod:`ship.agent`): ``ship run`` and ``ship status``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleet import paths
from fleet.config import Config, load_config
from fleet.errors import ConfigError
from fleet.schema import SHIP_ID
from fleet.service import setup_logging, stop_on_signals
from fleet.timeutil import format_datetime, parse_datetime
from ship.agent import HEARTBEAT_S, Agent
from ship.source import LineError, LineSource, Source, duration, meter_specs, simulated_meters
from ship.spool import Spool, open_readonly

if TYPE_CHECKING:
    from fleetctl.main import CommandTree

log = logging.getLogger("ship")

UNITS = ("kW", "kWh", "W", "Wh", "MW", "MWh")


def default_spool(cfg: Config, ship: str) -> Path:
    base = (Path(cfg.ship.spool_dir).expanduser() if cfg.ship.spool_dir
            else paths.ship_spools_dir(cfg.local.path))
    return paths.spool_file(base, ship)


def duration_arg(text: str) -> float:
    try:
        return duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# --- ship run -------------------------------------------------------------------------------------


def given_password(args: argparse.Namespace) -> str:
    """The ship's password from --password, --password-file or FLEET_SHIP_PASSWORD; "" if none
    (also used by ``fleetctl import``)."""
    if args.password:
        return str(args.password)
    if args.password_file:
        try:
            return Path(args.password_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"--password-file: {exc}") from None
    return os.environ.get("FLEET_SHIP_PASSWORD", "")


def _password(args: argparse.Namespace) -> str:
    password = given_password(args)
    if password:
        return password
    raise ConfigError("the ship's password is needed: --password, --password-file or "
                      "FLEET_SHIP_PASSWORD")


def _source(args: argparse.Namespace, spool: Spool, interval_s: float) -> tuple[Source, bool]:
    """The readings source and whether it is live (its new readings go out at once)."""
    try:
        specs = meter_specs(args.meter, args.kind)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if args.source == "simulate":
        start = parse_datetime(args.start) if args.start else None
        return simulated_meters(args.ship_id, specs, interval_s, spool.get_meta,
                                units=args.units, speed=args.speed, start_us=start,
                                backfill_s=args.backfill or 0.0, duration_s=args.duration), True
    if len(specs) > 1:
        raise ConfigError("a file or standard input holds one meter's readings: give one --meter "
                          "(several meters need one agent each, or the simulator)")
    if specs[0].kind == "total" and args.units.lower() not in ("kwh", "wh", "mwh"):
        raise ConfigError(f"--kind total: a register is energy (kWh, Wh, MWh), not {args.units}")
    line = {"units": args.units, "interval_s": interval_s, "meter": specs[0].meter,
            "kind": specs[0].kind}
    if args.source == "-":
        return LineSource("-", **line), True
    key = f"cursor:file:{Path(args.source).resolve()}"
    done = spool.get_meta(key)
    try:
        return LineSource(args.source, skip_lines=int(done) if done else 0,
                          **line), False
    except LineError as exc:
        raise ConfigError(f"--source: {exc}") from None


def _run(args: argparse.Namespace) -> int:
    setup_logging()
    cfg = load_config()
    if not SHIP_ID.fullmatch(args.ship_id):
        raise ConfigError(f"bad ship id {args.ship_id!r}: 1-64 characters of [A-Za-z0-9_-]")
    password = _password(args)
    interval_s: float = args.interval
    if args.start:
        try:
            parse_datetime(args.start)
        except ValueError:
            raise ConfigError(f"--start: not an ISO 8601 time: {args.start!r}") from None
    spool_path = Path(args.spool) if args.spool else default_spool(cfg, args.ship_id)
    spool = Spool(spool_path, args.ship_id, max_readings=cfg.ship.spool_max_readings)
    try:
        source, live = _source(args, spool, interval_s)
        agent = Agent(cfg, args.ship_id, password, spool, source, live=live)
        log.info("ship %s: source %s, spool %s (%d readings held), broker %s:%d%s",
                 args.ship_id, args.source, spool_path, spool.depth, cfg.mqtt.host,
                 cfg.mqtt.client_port, " (TLS)" if cfg.mqtt.tls_ca else "")
        try:
            return agent.run(stop_on_signals())
        finally:
            source.close()
    finally:
        spool.close()


# --- ship status ----------------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def spool_status(path: Path) -> dict[str, Any]:
    """What ``ship status`` shows, as a dict (``--json``)."""
    with open_readonly(path) as spool:
        st = spool.stats()
    meta = st.meta
    pid = int(meta.get("pid", "0") or 0)
    running = False
    heartbeat = meta.get("heartbeat")
    if pid and _alive(pid) and heartbeat:
        age = time.time() - parse_datetime(heartbeat) / 1e6
        running = age < 3 * HEARTBEAT_S + 5
    state = meta.get("state", "never connected")
    return {
        "ship": st.ship, "spool": str(path), "spool_id": st.spool_id, "depth": st.depth,
        "unsent": st.unsent, "unconfirmed_batches": st.unconfirmed_batches,
        "oldest_unconfirmed": _iso(st.oldest_us), "newest": _iso(st.newest_us),
        "last_confirmed": meta.get("last_confirmed"),
        "last_confirmed_batch": meta.get("last_confirmed_batch"),
        "confirmed_total": int(meta.get("confirmed", 0)),
        "connection": state if running else f"agent not running (last known: {state})",
        "connection_since": meta.get("state_since"), "agent_pid": pid or None,
        "agent_running": running, "heartbeat": heartbeat,
        "dropped": st.dropped, "rejected": st.rejected, "duplicates": st.duplicates,
    }


def _iso(us: int | None) -> str | None:
    return None if us is None else format_datetime(us)


def _status(args: argparse.Namespace) -> int:
    if args.spool:
        path = Path(args.spool)
    elif args.ship_id:
        path = default_spool(load_config(), args.ship_id)
    else:
        raise ConfigError("give --spool PATH (or a ship id to use the default spool)")
    info = spool_status(path)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    since = f" since {info['connection_since']}" if info["connection_since"] else ""
    print(f"ship             {info['ship']}  (spool {info['spool']}, id {info['spool_id']})")
    print(f"spool depth      {info['depth']} readings unconfirmed ({info['unsent']} not sent yet,"
          f" {info['unconfirmed_batches']} batches awaiting their ack)")
    print(f"oldest reading   {info['oldest_unconfirmed'] or '-'}   newest {info['newest'] or '-'}")
    print(f"last confirmed   {info['last_confirmed'] or 'never'}"
          + (f"  batch {info['last_confirmed_batch']}" if info["last_confirmed_batch"] else ""))
    print(f"connection       {info['connection']}{since}")
    print(f"dropped          {info['dropped']} (spool full: oldest dropped)   refused by the "
          f"bridge {info['rejected']}   duplicates ignored {info['duplicates']}")
    return 0


def register(tree: CommandTree) -> None:
    """``ship run`` and ``ship status``."""
    run = tree.command("ship run", _run, "run the ship agent: spool readings, publish them, "
                       "keep them until the bridge confirms they are stored")
    run.add_argument("ship_id", help="the ship's id (its MQTT username)")
    run.add_argument("--password", help="the ship's broker password (write --password=P when P "
                                        "begins with -)")
    run.add_argument("--password-file", help="read the password from this file")
    run.add_argument("--source", default="simulate",
                     help="simulate (a meter simulator, the default), a file of JSON lines "
                          '{"datetime": ..., "value": ...} or CSV (datetime,value), or - for '
                          "standard input")
    run.add_argument("--units", default="kW", choices=UNITS, help="units of the values")
    run.add_argument("--interval", type=duration_arg, default=300.0,
                     help="interval of each reading (PT5M, 5m, 300): declared in every message")
    run.add_argument("--meter", action="append", metavar="NAME[:KIND]",
                     help="the meter (default main). Repeat it to simulate several meters from "
                          "one agent (e.g. --meter main --meter shore:total); a file or standard"
                          " input carries one meter")
    run.add_argument("--kind", choices=("interval", "total"), default="interval",
                     help="interval (each value is its interval's) or total (the meter's "
                          "register, a running total in kWh); NAME:KIND overrides it per meter")
    run.add_argument("--spool", help="spool file (default: <[ship] spool_dir>/<id>.spool)")
    run.add_argument("--speed", type=float, default=1.0,
                     help="simulate: the clock runs this many times faster (backfilling history)")
    run.add_argument("--start", help="simulate: first reading's time (ISO 8601, UTC)")
    run.add_argument("--backfill", type=duration_arg,
                     help="simulate: also measure this much history before the start")
    run.add_argument("--duration", type=duration_arg,
                     help="simulate: stop measuring after this much simulated time, then exit "
                          "once everything is confirmed")

    status = tree.command("ship status", _status,
                          "a ship agent's spool: depth, oldest unconfirmed, last ack, connection")
    status.add_argument("ship_id", nargs="?", help="read the default spool of this ship")
    status.add_argument("--spool", help="the spool file")
    status.add_argument("--json", action="store_true")
