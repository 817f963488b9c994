"""testcontainers fallback: Mosquitto and InfluxDB in Docker where the binaries are missing.

The development and CI machines of this project have no Docker engine and install the binaries
(`make test`), so this path runs only on a machine with Docker and without the binaries. It uses
the same broker policy (``mosquitto/conf.d``) and account files as the local processes; tests that
stop, kill or freeze server processes skip on it (``Stack.containerized``).
"""

from __future__ import annotations

import contextlib
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from launcher.servers import MOSQUITTO_POLICY_DIR


def docker_available() -> bool:
    try:
        import docker

        client = docker.from_env()
        client.ping()
        client.close()
        return True
    except Exception:
        return False


class ContainerService:
    """The subset of ``launcher.servers.Service`` the tests use, backed by one container."""

    def __init__(self, name: str, container: Any, port: int) -> None:
        self.name = name
        self.container = container
        self.inner_port = port
        self.pid: int | None = None
        self._started = False

    def start(self, timeout: float = 60.0) -> ContainerService:
        if not self._started:
            self.container.start()
            self._started = True
        else:
            self.container.get_wrapped_container().start()
        deadline = time.monotonic() + timeout
        while not self.ready():
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{self.name} container not ready after {timeout:.0f}s: "
                                   f"{self._log_tail()}")
            time.sleep(0.2)
        return self

    def _log_tail(self) -> str:
        with contextlib.suppress(Exception):
            logs = self.container.get_logs()
            return b"".join(part or b"" for part in logs)[-500:].decode(errors="replace")
        return "(no logs)"

    @property
    def host(self) -> str:
        return str(self.container.get_container_host_ip())

    @property
    def port(self) -> int:
        return int(self.container.get_exposed_port(self.inner_port))

    def ready(self) -> bool:
        if self.name == "influxd":
            try:
                with urllib.request.urlopen(f"http://{self.host}:{self.port}/ping", timeout=1):
                    return True
            except (urllib.error.URLError, OSError):
                return False
        logs = self.container.get_logs()
        return b"running" in b"".join(part or b"" for part in logs)

    def running(self) -> bool:
        wrapped = self.container.get_wrapped_container()
        wrapped.reload()
        return bool(wrapped.status == "running")

    def signal(self, sig: int) -> None:
        self.container.get_wrapped_container().kill(signal=signal.Signals(sig).name)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)

    def stop(self, timeout: float = 15.0) -> int | None:
        with contextlib.suppress(Exception):
            self.container.stop()
        return 0


def start_containers(broker_dir: Path) -> tuple[ContainerService, ContainerService]:
    """Start InfluxDB 1.11 and Mosquitto 2 with the project's broker policy and accounts."""
    from testcontainers.core.container import DockerContainer

    (broker_dir / "data").mkdir(parents=True, exist_ok=True)
    conf = broker_dir / "docker-instance.conf"
    conf.write_text(
        "listener 1883\n"
        "persistence_location /fleet/data/\n"
        "password_file /fleet/passwd\n"
        "acl_file /fleet/acl\n"
        # The account files are the host user's, mode 0600.
        "user root\n"
        "include_dir /mosquitto/config/conf.d\n",
        encoding="utf-8",
    )
    influx = ContainerService("influxd", DockerContainer("influxdb:1.11")
                              .with_env("INFLUXDB_REPORTING_DISABLED", "true")
                              .with_env("INFLUXDB_HTTP_LOG_ENABLED", "false")
                              .with_exposed_ports(8086), 8086)
    broker = ContainerService("mosquitto", DockerContainer("eclipse-mosquitto:2")
                              .with_volume_mapping(str(broker_dir), "/fleet", "rw")
                              .with_volume_mapping(str(MOSQUITTO_POLICY_DIR),
                                                   "/mosquitto/config/conf.d", "ro")
                              .with_command("mosquitto -c /fleet/docker-instance.conf")
                              .with_exposed_ports(1883), 1883)
    influx.start()
    broker.start()
    return influx, broker
