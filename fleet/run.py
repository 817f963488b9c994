"""``make run``: start Mosquitto, InfluxDB, the bridge and the query service in the foreground.

Data lives under ``[local] data_dir``. A service that dies is restarted with backoff (its exit
status logged); Ctrl-C or SIGTERM stops everything and leaves no process behind.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from fleet.accounts import Accounts
from fleet.config import Config, load_config
from fleet.errors import FleetError
from fleet.local import (
    Service,
    bridge_service,
    broker_dir,
    free_port,
    influxd_service,
    mosquitto_service,
    port_in_use,
    query_service,
)

log = logging.getLogger("fleet.run")


@dataclass
class Supervised:
    service: Service
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = field(default_factory=time.monotonic)


def _demo_ship(cfg: Config, accounts: Accounts) -> tuple[str, str]:
    """The demo ship's id and password (created on first run, kept under data_dir)."""
    ship = cfg.local.demo_ship
    secret = cfg.local.path / "demo-ship.password"
    if ship in accounts.list_ships() and secret.is_file():
        return ship, secret.read_text(encoding="utf-8").strip()
    if ship in accounts.list_ships():
        accounts.remove_ship(ship)
    password = accounts.add_ship(ship)
    secret.write_text(password + "\n", encoding="utf-8")
    secret.chmod(0o600)
    return ship, password


def _env(cfg: Config, bridge_password: str, metrics_port: int) -> dict[str, str]:
    env = dict(os.environ)
    env["FLEET_MQTT_PASSWORD"] = bridge_password
    env["FLEET_BRIDGE_METRICS_PORT"] = str(metrics_port)
    env["FLEET_LOCAL_DATA_DIR"] = str(cfg.local.path)
    return env


def _check_ports(cfg: Config) -> None:
    for name, port in (("mqtt.port", cfg.mqtt.port), ("influxdb.url", cfg.influxdb.port),
                       ("http.port", cfg.http.port)):
        if port_in_use(port):
            raise FleetError(f"port {port} ({name}) is already in use: stop what uses it or "
                             f"override it, e.g. FLEET_{name.split('.')[0].upper()}_"
                             f"{'URL' if name == 'influxdb.url' else 'PORT'}=...")


def banner(cfg: Config, ship: str, password: str, metrics_port: int) -> str:
    http = f"http://{cfg.http.host}:{cfg.http.port}"
    return f"""
Fleet telemetry is running (data in {cfg.local.path}; logs in {cfg.local.path / 'logs'}).
  MQTT broker     mqtt://{cfg.mqtt.host}:{cfg.mqtt.port}
  InfluxDB        {cfg.influxdb.url}  (database {cfg.influxdb.database})
  Query service   {http}/data  {http}/v1/ships/{{id}}/energy  {http}/healthz
  Bridge metrics  http://{cfg.http.host}:{metrics_port}/metrics
Demo ship: id {ship}, password {password}
  mosquitto_pub -h {cfg.mqtt.host} -p {cfg.mqtt.port} -u {ship} -P '{password}' -q 1 \\
    -t fleet/ships/{ship}/readings \\
    -m '{{"units": "kWh", "data": [{{"datetime": "2018-08-24T00:00:00Z", "value": 12}}, \
{{"datetime": "2018-08-24T01:00:00Z", "value": 26}}, {{"datetime": "2018-08-24T02:00:00Z", "value": 18}}]}}'
  curl '{http}/data?spaceship_id={ship}&start=2018-08-24T00:00:00Z&end=2018-08-25T00:00:00Z'
Add ships with: .venv/bin/fleetctl ship add <id>     Press Ctrl-C to stop everything.
"""


def supervise(services: list[Service], stop: threading.Event) -> None:
    """Restart dead services with exponential backoff until ``stop`` is set."""
    watched = [Supervised(s) for s in services]
    while not stop.wait(0.5):
        now = time.monotonic()
        for w in watched:
            svc = w.service
            if svc.running():
                if now - w.started_at > 60:
                    w.restarts = 0  # it stayed up: forget old failures
                continue
            if w.next_start == 0.0:
                status = svc.proc.returncode if svc.proc else None
                delay = min(30.0, 0.5 * 2 ** w.restarts)
                log.error("%s exited with status %s; restarting in %.1fs (log: %s)\n%s",
                          svc.name, status, delay, svc.log_path, svc.tail(5))
                w.next_start = now + delay
            elif now >= w.next_start:
                w.restarts += 1
                w.next_start = 0.0
                w.started_at = now
                try:
                    svc.stop(timeout=1)
                    svc.start(timeout=60)
                    log.info("%s restarted (pid %s)", svc.name, svc.pid)
                except FleetError as exc:
                    log.error("%s failed to restart: %s", svc.name, exc)


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config()
        _check_ports(cfg)
    except FleetError as exc:
        print(f"make run: {exc}", file=sys.stderr)
        return 2

    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s; stopping everything", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    cfg.local.path.mkdir(parents=True, exist_ok=True)
    accounts = Accounts(broker_dir(cfg))
    bridge_password = accounts.ensure_service(cfg.mqtt.username or "fleet-bridge", "bridge")
    ship, ship_password = _demo_ship(cfg, accounts)
    metrics_port = cfg.bridge.metrics_port
    if metrics_port and port_in_use(metrics_port):
        metrics_port = free_port()
        log.warning("bridge metrics port %d is busy; using %d", cfg.bridge.metrics_port,
                    metrics_port)
    env = _env(cfg, bridge_password, metrics_port)

    started: list[Service] = []
    try:
        for make in (influxd_service, mosquitto_service):
            svc = make(cfg)
            log.info("starting %s", svc.name)
            started.append(svc.start(timeout=60))
        for make_py in (bridge_service, query_service):
            svc = make_py(cfg, env)
            log.info("starting %s", svc.name)
            started.append(svc.start(timeout=60))
        print(banner(cfg, ship, ship_password, metrics_port), flush=True)
        Path(cfg.local.path / "run").mkdir(exist_ok=True)
        supervise(started, stop)
    except FleetError as exc:
        log.error("%s", exc)
        return 1
    finally:
        for svc in reversed(started):
            status = svc.stop(timeout=15)
            log.info("%s stopped (status %s)", svc.name, status)
    return 0


if __name__ == "__main__":
    sys.exit(main())
