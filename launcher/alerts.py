"""Local processes for ``make run`` and the tests: the alert service and an Alertmanager.

Alertmanager is Debian's ``prometheus-alertmanager`` (``/usr/bin/prometheus-alertmanager``),
started as a single node on loopback (``--cluster.listen-address=`` turns clustering off) with
its data under ``<data_dir>/alertmanager``. ``make run`` uses the checked-in
``alerts/alertmanager.yml`` (no receiver: look at its page); the tests use
``alerts/testdata/alertmanager.yml``, whose receiver is a webhook the test serves.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping
from pathlib import Path

from alerts.service import ensure_api_token
from fleet.accounts import Accounts
from fleet.config import Config, load_config
from launcher.servers import Service, free_port, http_ready, port_in_use, python_service, tcp_ready

log = logging.getLogger("launcher")

ALERTMANAGER_BIN = "/usr/bin/prometheus-alertmanager"
ALERTS_DIR = Path(__file__).resolve().parent.parent / "alerts"
RUN_CONFIG = ALERTS_DIR / "alertmanager.yml"
TEST_CONFIG = ALERTS_DIR / "testdata" / "alertmanager.yml"


def alertmanager_binary() -> str | None:
    """The Alertmanager binary, when installed."""
    if Path(ALERTMANAGER_BIN).is_file():
        return ALERTMANAGER_BIN
    return shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


def alertmanager_service(data_dir: Path, port: int, config: Path = RUN_CONFIG,
                         binary: str | None = None) -> Service:
    """Alertmanager on 127.0.0.1:``port``, ready once ``/-/ready`` answers."""
    binary = binary or alertmanager_binary() or ALERTMANAGER_BIN
    storage = Path(data_dir) / "alertmanager"
    storage.mkdir(parents=True, exist_ok=True)
    return Service("alertmanager", [
        binary, f"--config.file={config}", f"--storage.path={storage}",
        f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
        "--log.level=warn"],
        Path(data_dir) / "logs" / "alertmanager.log",
        http_ready(f"http://127.0.0.1:{port}/-/ready"))


def alerts_service(cfg: Config, env: Mapping[str, str]) -> Service:
    """``python -m alerts``; ready once its metrics port answers (else at once)."""
    port = cfg.alerts.metrics_port
    ready = tcp_ready(cfg.http.host, port) if port else (lambda: True)
    return python_service("alerts", "alerts", cfg, env, ready)


def provision_alerts(cfg: Config, accounts: Accounts) -> None:
    """The alert service's broker account (role alerts) and its read token (anomaly rules)."""
    accounts.ensure_service(cfg.alerts.mqtt_username, "alerts", cfg.alerts.mqtt_password or None)
    if cfg.http.auth == "token":
        ensure_api_token(cfg.local.path)


def alert_services(cfg: Config, env: dict[str, str]) -> list[Service]:
    """Alertmanager (when installed and none is configured; its URL goes into ``env``) and the
    alert service, for ``make run``."""
    out: list[Service] = []
    if not cfg.alerts.alertmanager_url and cfg.local.alertmanager_port and alertmanager_binary():
        port = cfg.local.alertmanager_port
        if port_in_use(port):
            port = free_port()
            log.warning("Alertmanager port %d is busy; using %d", cfg.local.alertmanager_port, port)
        out.append(alertmanager_service(cfg.local.path, port))
        env["FLEET_ALERTS_ALERTMANAGER_URL"] = f"http://127.0.0.1:{port}"
    if cfg.alerts.metrics_port and port_in_use(cfg.alerts.metrics_port):
        env["FLEET_ALERTS_METRICS_PORT"] = str(free_port())
    return [*out, alerts_service(load_config(env=env), env)]


def alerts_banner(env: Mapping[str, str]) -> str:
    cfg = load_config(env=env)
    url = cfg.alerts.alertmanager_url
    return (f"Alerts: {len(cfg.alerts.rules)} rules ([[alerts.rules]]); states retained on "
            f"fleet/alerts/<ship>/<rule>; metrics http://{cfg.http.host}:"
            f"{cfg.alerts.metrics_port}/metrics\n  Alertmanager    "
            f"{url + '  (its page; its API: /api/v2/alerts)' if url else 'not configured'}")
