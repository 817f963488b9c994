"""Local processes for ``make run`` and the tests: the alert service and an Alertmanager.

Alertmanager is Debian's ``prometheus-alertmanager`` (``/usr/bin/prometheus-alertmanager``),
started as a single node on loopback (``--cluster.listen-address=`` turns clustering off) with
its data under ``<data_dir>/alertmanager``. ``make run`` uses the checked-in
``alerts/alertmanager.yml`` (no receiver: look at its page); the tests use
``alerts/testdata/alertmanager.yml``, whose receiver is a webhook the test serves.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

from fleet.config import Config
from launcher.servers import Service, http_ready, python_service, tcp_ready

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
