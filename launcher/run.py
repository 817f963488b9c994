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

from fleet import paths, topics
from fleet.accounts import Accounts
from fleet.config import Config, load_config
from fleet.errors import FleetError
from fleet.service import setup_logging, stop_on_signals
from fleet.tls import server_files
from fleet.tokens import DEV_TOKEN_NAME, ensure_dev_token
from launcher.alerts import alert_services, alerts_banner, provision_alerts
from launcher.bridges import start_bridges
from launcher.servers import (
    Service,
    broker_dir,
    free_port,
    influxd_service,
    mosquitto_service,
    port_in_use,
    python_service,
    served_query_service,
)
from ship.simulate import provision as provision_simulated
from ship.simulate import ship_ids as simulated_ids

log = logging.getLogger("launcher")


@dataclass
class Supervised:
    service: Service
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = field(default_factory=time.monotonic)
    awaiting_ready: bool = False


def _demo_ship(cfg: Config, accounts: Accounts) -> tuple[str, str]:
    """The demo ship's id and password (created on first run, kept under data_dir)."""
    ship = cfg.local.demo_ship
    secret = paths.demo_ship_password(cfg.local.path)
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
    ports = [("mqtt.port", "FLEET_MQTT_PORT", cfg.mqtt.port),
             ("influxdb.url", "FLEET_INFLUXDB_URL", cfg.influxdb.port),
             ("http.port", "FLEET_HTTP_PORT", cfg.http.port)]
    if cfg.mqtt.tls_port and server_files(cfg):  # the broker listens with TLS too
        ports.append(("mqtt.tls_port", "FLEET_MQTT_TLS_PORT", cfg.mqtt.tls_port))
    for name, variable, port in ports:
        if port_in_use(port):
            raise FleetError(f"port {port} ({name}) is already in use: stop what uses it or "
                             f"override it, e.g. {variable}=...")


def banner(cfg: Config, ship: str, password: str, metrics_port: int, token: str = "") -> str:
    http = f"http://{cfg.http.host}:{cfg.http.port}"
    auth = f"-H 'Authorization: Bearer {token}' " if token else ""
    tls = server_files(cfg) if cfg.mqtt.tls_port else None
    tls_line = (f"\n  MQTT over TLS   mqtts://localhost:{cfg.mqtt.tls_port} (CA {tls[0]})"
                if tls else "")
    return f"""
Fleet telemetry is running (data in {cfg.local.path}; logs in {paths.logs_dir(cfg.local.path)}).
  MQTT broker     mqtt://{cfg.mqtt.host}:{cfg.mqtt.port}{tls_line}
  InfluxDB        {cfg.influxdb.url}  (database {cfg.influxdb.database})
  Query service   {http}/data  {http}/v1/ships/{{id}}/energy  {http}/healthz
  Bridge metrics  http://{cfg.http.host}:{metrics_port}/metrics
Demo ship: id {ship}, password {password}
  mosquitto_pub -V mqttv5 -h {cfg.mqtt.host} -p {cfg.mqtt.port} -u {ship} -P '{password}' -q 1 \\
    -t {topics.readings(ship)} \\
    -m '{{"units": "kWh", "data": [{{"datetime": "2018-08-24T00:00:00Z", "value": 12}}, \
{{"datetime": "2018-08-24T01:00:00Z", "value": 26}}, {{"datetime": "2018-08-24T02:00:00Z", "value": 18}}]}}'
  curl {auth}'{http}/data?spaceship_id={ship}&start=2018-08-24T00:00:00Z&end=2018-08-25T00:00:00Z'
Add ships with: .venv/bin/fleetctl ship add <id>     Press Ctrl-C to stop everything.
"""


def dev_token_text(http_url: str, token: str, *, auth: str = "token",
                   kept_in: str = "dev.token") -> str:
    """What ``make run`` prints about the read API's authentication (``kept_in``: the file
    holding the token)."""
    if auth == "none":
        return (f"HTTP auth is off (http.auth = none): {http_url}/v1/... answers anyone.\n"
                f"Dashboard: {http_url}/\n")
    return (f"Development API token (stored hashed as {DEV_TOKEN_NAME!r}; kept in {kept_in}):\n"
            f"  {token}\n"
            f"  curl -H 'Authorization: Bearer {token}' {http_url}/v1/ships\n"
            f"Dashboard: {http_url}/#token={token}\n"
            "More tokens: .venv/bin/fleetctl token create --name NAME\n")


def describe_exit(status: int | None) -> str:
    """``status 1`` or ``status -9 (killed by SIGKILL)``, as Popen.returncode encodes them."""
    if status is None:
        return "an unknown status"
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = f"signal {-status}"
        return f"status {status} (killed by {name})"
    return f"status {status}"


def supervise(services: list[Service], stop: threading.Event, *, tick: float = 0.5,
              first_delay: float = 0.5, max_delay: float = 30.0,
              stable_after: float = 60.0) -> None:
    """Restart dead services with exponential backoff until ``stop`` is set.

    A restart launches the process and returns to watching at once; readiness is polled on later
    ticks. (Waiting up to a minute for one service to be ready, as a blocking start would, leaves
    the others unwatched and Ctrl-C unanswered meanwhile.) The backoff doubles from
    ``first_delay`` up to ``max_delay`` and starts over once a service has stayed up for
    ``stable_after`` seconds.
    """
    watched = [Supervised(s) for s in services]
    while not stop.wait(tick):
        now = time.monotonic()
        for w in watched:
            svc = w.service
            if svc.running():
                if w.awaiting_ready and svc.ready():
                    w.awaiting_ready = False
                    log.info("%s is ready (pid %s)", svc.name, svc.pid)
                if w.restarts and now - w.started_at > stable_after:
                    w.restarts = 0  # it stayed up: forget old failures
                continue
            if w.next_start == 0.0:
                status = svc.proc.returncode if svc.proc else None
                delay = min(max_delay, first_delay * 2 ** w.restarts)
                log.error("%s (pid %s) exited with %s; restarting in %.1fs (log: %s)\n%s",
                          svc.name, svc.pid, describe_exit(status), delay, svc.log_path,
                          svc.tail(5))
                w.next_start = now + delay
            elif now >= w.next_start:
                w.restarts += 1
                w.next_start = 0.0
                w.started_at = now
                try:
                    svc.stop(timeout=1)  # reaps the old process, closes its log
                    svc.launch()
                except (OSError, FleetError) as exc:
                    log.error("%s failed to restart: %s", svc.name, exc)
                    continue
                w.awaiting_ready = True
                log.info("%s restarted (pid %s, restart %d)", svc.name, svc.pid, w.restarts)


def simulator_service(cfg: Config, env: dict[str, str]) -> Service:
    """The fleet simulator (``[simulate]``); its ships' accounts are provisioned beforehand."""
    return python_service("simulate", "ship.simulate", cfg, env, lambda: True)


def simulate_banner(cfg: Config, ships: list[str]) -> str:
    if not ships:
        return "Simulated fleet: off ([simulate] ships = 0)."
    http = f"http://{cfg.http.host}:{cfg.http.port}"
    return (f"Simulated fleet: {', '.join(ships)} (a reading every {cfg.simulate.interval}; "
            f"log in {paths.log_file(cfg.local.path, 'simulate')})\n"
            f"  {http}/v1/ships/{ships[0]}/energy?start=...&end=...\n"
            f"  .venv/bin/fleetctl fleet status     "
            f".venv/bin/fleetctl ship status --spool "
            f"{paths.spool_file(paths.simulate_spools_dir(cfg.local.path), ships[0])}\n"
            "  Watch: .venv/bin/fleetctl operator add me, then mosquitto_sub -h "
            f"{cfg.mqtt.host} -p {cfg.mqtt.port} -u me -P PASSWORD -t '{topics.EVERYTHING}' -v")


def main() -> int:
    setup_logging()
    try:
        cfg = load_config()
        _check_ports(cfg)
    except FleetError as exc:
        print(f"make run: {exc}", file=sys.stderr)
        return 2

    stop = stop_on_signals(log, "stopping everything")

    cfg.local.path.mkdir(parents=True, exist_ok=True)
    accounts = Accounts(broker_dir(cfg))
    bridge_password = accounts.ensure_service(cfg.mqtt.username or "fleet-bridge", "bridge")
    # The query service follows ship presence with the read-only "query" account (it reads the
    # password from secrets/ itself); its read endpoints need a token: a development one.
    if cfg.http.mqtt_username:
        accounts.ensure_service(cfg.http.mqtt_username, "query", cfg.http.mqtt_password or None)
    dev_token = ensure_dev_token(cfg.local.path) if cfg.http.auth == "token" else ""
    provision_alerts(cfg, accounts)
    ship, ship_password = _demo_ship(cfg, accounts)
    sim_ships = simulated_ids(cfg.simulate.prefix, cfg.simulate.ships)
    if sim_ships:
        provision_simulated(cfg, sim_ships, accounts)
    metrics_port = cfg.bridge.metrics_port
    if metrics_port and port_in_use(metrics_port):
        metrics_port = free_port()
        log.warning("bridge metrics port %d is busy; using %d", cfg.bridge.metrics_port,
                    metrics_port)
    env = _env(cfg, bridge_password, metrics_port)
    extra = alert_services(cfg, env)

    started: list[Service] = []

    def start(svc: Service, timeout: float = 60.0) -> None:
        svc.die_with_parent = True  # even a SIGKILLed launcher leaves no server behind
        log.info("starting %s", svc.name)
        started.append(svc.start(timeout=timeout))

    try:
        for svc in (influxd_service(cfg), mosquitto_service(cfg)):
            if stop.is_set():
                return 0
            start(svc)
        started.extend(start_bridges(cfg, env, stop))  # [bridge] workers, handoff on a change
        for svc in (served_query_service(cfg, env), *extra):  # [http] workers gunicorn processes
            if stop.is_set():
                return 0
            start(svc)
        if sim_ships and not stop.is_set():
            log.info("starting the fleet simulator (%d ships)", len(sim_ships))
            start(simulator_service(cfg, env), timeout=10)
        print(banner(cfg, ship, ship_password, metrics_port, dev_token), flush=True)
        print(dev_token_text(f"http://{cfg.http.host}:{cfg.http.port}", dev_token,
                             auth=cfg.http.auth,
                             kept_in=str(paths.dev_token_file(cfg.local.path))), flush=True)
        print(simulate_banner(cfg, sim_ships), flush=True)
        print(alerts_banner(env), flush=True)
        paths.run_dir(cfg.local.path).mkdir(exist_ok=True)
        supervise(started, stop)
    except FleetError as exc:
        log.error("%s", exc)
        return 1
    finally:
        for svc in reversed(started):
            status = svc.stop(timeout=15)
            log.info("%s stopped (%s)", svc.name, describe_exit(status))
    return 0


if __name__ == "__main__":
    sys.exit(main())
