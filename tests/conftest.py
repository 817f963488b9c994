"""Shared fixtures: a real Mosquitto and a real influxd on free loopback ports, configured by the
project's own launcher code (``launcher.servers``), plus the bridge and query service as processes.

Where the binaries are missing and a Docker engine answers, testcontainers provides the servers
instead (see ``_docker_servers``); on these machines the binaries are installed by ``make test``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from fleet.accounts import Accounts
from fleet.config import Config, load_config
from fleet.tokens import TokenStore, tokens_path
from launcher.servers import (
    Service,
    bridge_service,
    broker_dir,
    free_port,
    influxd_service,
    isolated_overrides,
    mosquitto_service,
    query_service,
)
from query_service.mqtt5 import connect_packet
from tests.containers import docker_available, start_containers


def eventually(check: Callable[[], Any], timeout: float = 20.0, interval: float = 0.1,
               message: str = "condition not met") -> Any:
    """Poll until ``check()`` returns something truthy (Telegraf's require.Eventually)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{message} (last value: {last!r})")


def broker_accepts(host: str, port: int, username: str, password: str,
                   timeout: float = 2.0) -> bool:
    """Whether the broker accepts this account's MQTT 5 CONNECT now (CONNACK reason 0)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(connect_packet(username, password))
            stream = sock.makefile("rb")
            head = stream.read(1)
            length = shift = 0
            while True:  # the remaining length: a variable byte integer
                byte = stream.read(1)
                if not byte:
                    return False
                length |= (byte[0] & 0x7F) << shift
                shift += 7
                if byte[0] < 0x80:
                    break
            body = stream.read(length)
            accepted = head == b"\x20" and len(body) >= 2 and body[1] == 0
            if accepted:
                sock.sendall(b"\xe0\x00")  # DISCONNECT, normal: no will, nothing logged as lost
            return accepted
    except OSError:
        return False


def unique_ship(prefix: str = "s") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass
class Stack:
    """One running set of servers with its configuration and handles."""

    root: Path
    env: dict[str, str]
    cfg: Config
    accounts: Accounts
    broker: Service
    influx: Service
    bridge_password: str
    containerized: bool = False  # servers in Docker: tests that signal their processes skip
    services: list[Service] = field(default_factory=list)
    _ships: dict[str, str] = field(default_factory=dict)
    token: str = ""  # a read API token (fleet.tokens) that http_get sends, once one is made

    # -- accounts -----------------------------------------------------------------------------
    def ship(self, ship_id: str | None = None) -> tuple[str, str]:
        """Provision a ship (once) and return (id, password)."""
        ship_id = ship_id or unique_ship()
        if ship_id not in self._ships:
            self._ships[ship_id] = self.accounts.add_ship(ship_id)
            self.reload_accounts((ship_id, self._ships[ship_id]))
        return ship_id, self._ships[ship_id]

    def reload_accounts(self, *accounts: tuple[str, str]) -> None:
        """SIGHUP the broker (process or container) to reread its account files, then wait until
        each (username, password) logs in: Mosquitto applies a reload a moment after the signal,
        and a client refused in between backs off for seconds."""
        self.broker.signal(signal.SIGHUP)
        for username, password in accounts:
            eventually(partial(broker_accepts, self.cfg.mqtt.host, self.cfg.mqtt.port, username,
                               password), timeout=10, interval=0.02,
                       message=f"the broker never accepted {username} after the reload")

    # -- processes ----------------------------------------------------------------------------
    def env_with(self, **overrides: str) -> dict[str, str]:
        env = {**os.environ, **self.env}
        env.update({k: str(v) for k, v in overrides.items()})
        return env

    def start_bridge(self, client_id: str | None = None, **overrides: str) -> Service:
        env = self.env_with(FLEET_BRIDGE_CLIENT_ID=client_id or f"bridge-{uuid.uuid4().hex[:6]}",
                            **overrides)
        cfg = load_config(env=env)
        svc = bridge_service(cfg, env)
        svc.start(timeout=30)
        self.services.append(svc)
        return svc

    def start_query(self, **overrides: str) -> Service:
        env = self.env_with(**overrides)
        cfg = load_config(env=env)
        svc = query_service(cfg, env)
        svc.start(timeout=30)
        self.services.append(svc)
        return svc

    def stop(self) -> None:
        for svc in reversed(self.services):
            svc.stop(timeout=10)
        self.broker.stop()
        self.influx.stop()

    # -- clients ------------------------------------------------------------------------------
    def client(self, username: str | None, password: str | None, *, client_id: str = "",
               v5: bool = True, connect: bool = True, timeout: float = 10.0) -> MqttSession:
        return MqttSession(self.cfg.mqtt.host, self.cfg.mqtt.port, username, password,
                           client_id=client_id, v5=v5, connect=connect, timeout=timeout)

    def http_get(self, path: str, params: dict[str, str] | None = None,
                 port: int | None = None) -> tuple[int, Any]:
        query = "?" + urllib.parse.urlencode(params) if params else ""
        url = f"http://127.0.0.1:{port or self.cfg.http.port}{path}{query}"
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                        timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def influx_query(self, q: str) -> list[dict[str, Any]]:
        data = urllib.parse.urlencode({"q": q, "db": self.cfg.influxdb.database, "epoch": "u"})
        with urllib.request.urlopen(f"{self.cfg.influxdb.url}/query?{data}", timeout=10) as resp:
            return list(json.loads(resp.read())["results"])


class MqttSession:
    """A small synchronous wrapper over a paho client for tests: publish, collect, wait."""

    def __init__(self, host: str, port: int, username: str | None, password: str | None, *,
                 client_id: str = "", v5: bool = True, connect: bool = True,
                 timeout: float = 10.0) -> None:
        proto = MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2,
                                  client_id=client_id or f"t-{uuid.uuid4().hex[:8]}",
                                  protocol=proto)
        if username is not None:
            self.client.username_pw_set(username, password)
        self.messages: list[mqtt.MQTTMessage] = []
        self.connack: Any = None
        self._subscriptions: list[tuple[str, int]] = []
        self.pubacks: dict[int, Any] = {}
        self.client.on_message = lambda _c, _u, m: self.messages.append(m)
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        self.host, self.port, self.timeout = host, port, timeout
        if connect:
            self.connect()

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.connack = reason
        # paho reconnects by itself after a broker restart, with a clean session: subscribe
        # again, or a watcher goes deaf for the rest of the run.
        if self._subscriptions and not reason.is_failure:
            self.client.subscribe(list(self._subscriptions))

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: Any, _p: Any) -> None:
        self.pubacks[mid] = reason

    def connect(self) -> Any:
        """Connect and return the CONNACK reason code (a failure does not raise)."""
        self.client.connect(self.host, self.port, keepalive=30)
        self.client.loop_start()
        eventually(lambda: self.connack is not None, self.timeout, message="no CONNACK")
        return self.connack

    @property
    def connected(self) -> bool:
        return bool(self.connack is not None and not self.connack.is_failure
                    and self.client.is_connected())

    def subscribe(self, topic: str, qos: int = 1) -> None:
        granted: list[Any] = []
        self.client.on_subscribe = lambda _c, _u, _m, rc, _p: granted.extend(rc)
        self._subscriptions.append((topic, qos))
        self.client.subscribe(topic, qos)
        eventually(lambda: granted, self.timeout, message=f"no SUBACK for {topic}")

    def publish(self, topic: str, payload: str | bytes | dict[str, Any], qos: int = 1) -> Any:
        """Publish and wait for the PUBACK; returns its reason code (MQTT 5)."""
        if isinstance(payload, dict):
            payload = json.dumps(payload)
        info = self.client.publish(topic, payload, qos=qos)
        if qos:
            eventually(lambda: info.mid in self.pubacks, self.timeout, message="no PUBACK")
            return self.pubacks[info.mid]
        return None

    def wait_for(self, predicate: Callable[[mqtt.MQTTMessage], bool],
                 timeout: float = 20.0) -> mqtt.MQTTMessage:
        def found() -> mqtt.MQTTMessage | None:
            return next((m for m in list(self.messages) if predicate(m)), None)
        result: mqtt.MQTTMessage = eventually(found, timeout, message="message not received")
        return result

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.disconnect()
        self.client.loop_stop()


def _have_binaries() -> bool:
    return all(shutil.which(b) or Path("/usr/sbin", b).exists() or Path("/usr/bin", b).exists()
               for b in ("mosquitto", "influxd"))


def start_stack(root: Path) -> Stack:
    """Start influxd and Mosquitto on free ports under ``root`` with the project's configs.

    Where the binaries are missing and a Docker engine answers, they run as containers instead.
    """
    if not _have_binaries():
        if docker_available():
            return _container_stack(root)
        pytest.fail("mosquitto or influxd is not installed and no Docker engine answers: "
                    "run `make test`, which installs them")
    env = {**isolated_overrides(root), "FLEET_BRIDGE_FLUSH_INTERVAL": "0.05"}
    cfg = load_config(env=env)
    accounts = Accounts(broker_dir(cfg))
    password = accounts.ensure_service("fleet-bridge", "bridge")
    env["FLEET_MQTT_PASSWORD"] = password
    cfg = load_config(env=env)
    influx = influxd_service(cfg).start(timeout=60)
    try:
        broker = mosquitto_service(cfg).start(timeout=20)
    except Exception:
        influx.stop()
        raise
    return Stack(root=root, env=env, cfg=cfg, accounts=accounts, broker=broker, influx=influx,
                 bridge_password=password)


def _container_stack(root: Path) -> Stack:
    env = {
        "FLEET_CONFIG": str(root / "none.toml"),
        "FLEET_LOCAL_DATA_DIR": str(root),
        "FLEET_HTTP_PORT": str(free_port()),
        "FLEET_BRIDGE_METRICS_PORT": str(free_port()),
        "FLEET_BRIDGE_FLUSH_INTERVAL": "0.05",
    }
    (root / "none.toml").write_text("# tests configure everything through FLEET_* variables\n")
    accounts = Accounts(broker_dir(load_config(env=env)))
    password = accounts.ensure_service("fleet-bridge", "bridge")
    influx, broker = start_containers(broker_dir(load_config(env=env)))
    env.update({
        "FLEET_MQTT_PASSWORD": password,
        "FLEET_MQTT_HOST": broker.host,
        "FLEET_MQTT_PORT": str(broker.port),
        "FLEET_INFLUXDB_URL": f"http://{influx.host}:{influx.port}",
    })
    return Stack(root=root, env=env, cfg=load_config(env=env), accounts=accounts,
                 broker=broker, influx=influx,  # type: ignore[arg-type]
                 bridge_password=password, containerized=True)


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Mosquitto + InfluxDB for the whole session."""
    stack = start_stack(tmp_path_factory.mktemp("stack"))
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def stack(servers: Stack) -> Stack:
    """Servers plus one bridge and one query service, shared by the session."""
    servers.start_bridge(client_id="fleet-bridge-main")
    # Read endpoints need a token ([http] auth = "token"); presence needs the query account.
    servers.token = TokenStore(tokens_path(servers.cfg.local.path)).create("tests")
    servers.reload_accounts(("fleet-query", servers.accounts.ensure_service("fleet-query", "query")))
    servers.start_query()
    return servers
