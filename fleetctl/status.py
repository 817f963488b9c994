"""``fleetctl fleet status``: every ship with its presence, newest data and newest stored window.

Presence comes from the retained ``fleet/ships/<id>/status`` messages (read with a service or
operator account for a moment, parsed by :func:`fleet.presence.parse_status` as ``GET /v1/ships``
does), data from InfluxDB (the newest stored part per ship, and the sum of its 15-minute window).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt

from fleet import paths, topics
from fleet.accounts import Accounts
from fleet.config import Config, load_config
from fleet.errors import FleetError, StoreError
from fleet.mqttclient import connect, new_client
from fleet.presence import parse_status
from fleet.schema import TAG_SHIP, last_parts_query, window_query
from fleet.store import InfluxStore
from fleet.timeutil import US, WINDOW_US, format_datetime

if TYPE_CHECKING:
    from fleetctl.main import CommandTree


@dataclass(frozen=True, slots=True)
class ShipView:
    ship: str
    presence: str  # online | offline | unknown
    since: str | None
    data_until: str | None  # end of the newest stored reading part
    window: str | None  # start of the newest stored 15-minute window
    window_kwh: float | None
    window_coverage: float | None


def credentials(cfg: Config, username: str | None, password: str | None) -> tuple[str, str]:
    """An account that may read statuses: the one given, else the query service's, else the
    bridge's (passwords from the config or from ``<data_dir>/mosquitto/secrets``)."""
    if username and password:
        return username, password
    secrets_dir = paths.secrets_dir(cfg.local.path)
    candidates = [(username or cfg.http.mqtt_username, password or cfg.http.mqtt_password),
                  (cfg.mqtt.username, cfg.mqtt.password)]
    for name, given in candidates:
        if not name:
            continue
        if given:
            return name, given
        secret = paths.read_secret(cfg.local.path, name)
        if secret:
            return name, secret
    raise FleetError("no broker account to read presence with: give --username and --password "
                     f"(an operator account), or run where {secrets_dir} holds the service "
                     "accounts' secrets")


def read_presence(cfg: Config, username: str, password: str,
                  timeout: float = 5.0) -> dict[str, tuple[str, str | None]]:
    """ship -> (presence, since) from the retained status messages."""
    found: dict[str, tuple[str, str | None]] = {}
    subscribed = threading.Event()
    connected: list[Any] = []
    last = [time.monotonic()]

    def on_connect(client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        connected.append(reason)
        if not reason.is_failure:
            client.subscribe(topics.STATUS_FILTER, qos=1)

    def on_subscribe(*_args: Any) -> None:
        last[0] = time.monotonic()
        subscribed.set()

    def on_message(_c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        last[0] = time.monotonic()
        topic = topics.parse_ship_topic(msg.topic)
        if topic is None or not msg.payload:
            return
        presence = parse_status(bytes(msg.payload))
        if presence is not None:  # an unreadable status is ignored, as by GET /v1/ships
            found[topic.ship] = (presence.state, presence.since)

    client = new_client(cfg, f"fleetctl-{uuid.uuid4().hex[:8]}", username=username,
                        password=password)
    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    connect(client, cfg)
    try:
        deadline = time.monotonic() + timeout
        while not subscribed.is_set() and time.monotonic() < deadline:
            if connected and connected[0].is_failure:
                raise FleetError(f"the broker refused {username!r}: {connected[0]}")
            time.sleep(0.02)
        if not subscribed.is_set():
            raise FleetError("no answer from the broker to the status subscription")
        # Retained messages follow the SUBACK at once; stop after a short quiet spell.
        while time.monotonic() - last[0] < 0.3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        client.disconnect()
        client.loop_stop()
    return found


def stored_data(cfg: Config) -> dict[str, tuple[int, float, int, float, float]]:
    """ship -> (newest part start, its seconds, its window start, window kWh, window coverage)."""
    store = InfluxStore(cfg.influxdb)
    db, rp = cfg.influxdb.database, cfg.influxdb.retention_policy
    try:
        res = store.query(last_parts_query(db, rp))
        out: dict[str, tuple[int, float, int, float, float]] = {}
        for series in res[0].get("series", []):
            ship = series["tags"][TAG_SHIP]
            start_us, seconds = series["values"][0]
            window = int(start_us) - int(start_us) % WINDOW_US
            w = store.query(window_query(db, rp, ship, window, window + WINDOW_US, "15m"))
            _, kwh, covered = w[0]["series"][0]["values"][0]
            out[ship] = (int(start_us), float(seconds), window, float(kwh), float(covered) / 900)
        return out
    finally:
        store.close()


def fleet_status(cfg: Config, username: str | None = None,
                 password: str | None = None) -> tuple[list[ShipView], list[str]]:
    """Every known ship (accounts, statuses, stored data) and the problems met on the way."""
    problems: list[str] = []
    presence: dict[str, tuple[str, str | None]] = {}
    try:
        user, secret = credentials(cfg, username, password)
        presence = read_presence(cfg, user, secret)
    except FleetError as exc:
        problems.append(f"presence unavailable: {exc}")
    data: dict[str, tuple[int, float, int, float, float]] = {}
    try:
        data = stored_data(cfg)
    except StoreError as exc:
        problems.append(f"stored data unavailable: {exc}")
    ships = set(presence) | set(data)
    accounts = Accounts(paths.broker_dir(cfg.local.path))
    if accounts.accounts_path.is_file():
        try:
            ships |= set(accounts.list_ships())
        except FleetError as exc:
            problems.append(str(exc))
    return [_view(ship, presence.get(ship, ("unknown", None)), data.get(ship))
            for ship in sorted(ships)], problems


def _view(ship: str, presence: tuple[str, str | None],
          d: tuple[int, float, int, float, float] | None) -> ShipView:
    if d is None:
        return ShipView(ship, presence[0], presence[1], None, None, None, None)
    return ShipView(ship, presence[0], presence[1], format_datetime(d[0] + round(d[1] * US)),
                    format_datetime(d[2]), d[3], d[4])


def render(views: list[ShipView]) -> str:
    rows = [("SHIP", "PRESENCE", "SINCE", "DATA UNTIL", "LAST WINDOW", "KWH", "COVERAGE")]
    rows.extend((v.ship, v.presence, v.since or "-", v.data_until or "-", v.window or "-",
                 "-" if v.window_kwh is None else f"{v.window_kwh:.3f}",
                 "-" if v.window_coverage is None else f"{v.window_coverage:.2f}")
                for v in views)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows)


def _fleet_status(args: argparse.Namespace) -> int:
    cfg = load_config()
    views, problems = fleet_status(cfg, args.username, args.password)
    if args.json:
        print(json.dumps({"ships": [asdict(v) for v in views], "problems": problems}, indent=2))
    else:
        print(render(views))
        for p in problems:
            print(f"note: {p}", file=sys.stderr)
    return 0


def register(tree: CommandTree) -> None:
    """``fleet status``."""
    tree.group("fleet", "the whole fleet at a glance")
    fs = tree.command("fleet status", _fleet_status,
                      "every ship: presence, newest stored data and window")
    fs.add_argument("--username", help=f"a broker account reading {topics.EVERYTHING} (default: the query "
                                       "service's or the bridge's, from the data directory)")
    fs.add_argument("--password")
    fs.add_argument("--json", action="store_true")
