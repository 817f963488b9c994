"""Presence, fleet status, the fleet simulator, and TLS, with real agent processes."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import subprocess
import uuid
from pathlib import Path

import pytest

from fleet.accounts import Accounts
from fleet.config import load_config
from fleet.tls import client_cert, init
from launcher.servers import broker_dir, free_port, mosquitto_service
from query_service.health import probe_broker
from ship.spool import open_readonly
from tests.conftest import MqttSession, Stack, eventually, unique_ship
from tests.integration.agent_helpers import (
    FLEETCTL,
    agent,
    assert_same_windows,
    expected_windows,
    simulated,
    stored_count,
    stored_windows,
)

pytestmark = pytest.mark.integration


def _operator(stack: Stack) -> tuple[str, str]:
    name = f"op-{uuid.uuid4().hex[:8]}"
    password = stack.accounts.add_operator(name)
    stack.reload_accounts((name, password))
    return name, password


def _status(session: MqttSession, topic: str, state: str) -> dict[str, object]:
    msg = session.wait_for(lambda m: m.topic == topic and json.loads(m.payload)["status"] == state)
    doc: dict[str, object] = json.loads(msg.payload)
    return doc


def _fleet_status(stack: Stack, user: str, password: str) -> dict[str, dict[str, object]]:
    out = subprocess.run([*FLEETCTL, "fleet", "status", "--json", "--username", user,
                          f"--password={password}"], env=stack.env_with(), capture_output=True,
                         text=True, timeout=30, check=True)
    doc = json.loads(out.stdout)
    assert doc["problems"] == [], doc["problems"]
    return {v["ship"]: v for v in doc["ships"]}


def test_presence_flips_to_offline_when_the_agent_dies(stack: Stack, tmp_path: Path) -> None:
    ship, password = stack.ship(unique_ship("pres"))
    user, secret = _operator(stack)
    topic = f"fleet/ships/{ship}/status"
    watcher = stack.client(user, secret)
    watcher.subscribe(topic)
    # Live at real speed, with an hour of history measured at start (12 readings to store).
    proc = agent(stack, ship, password, tmp_path / "ship.spool", "--source", "simulate",
                 "--interval", "PT5M", "--backfill", "PT1H").start()
    try:
        online = _status(watcher, topic, "online")
        assert isinstance(online["time"], str) and online["time"].endswith("Z")
        eventually(lambda: stored_count(stack, ship) >= 12, message="the backfill not stored")
        view = _fleet_status(stack, user, secret)[ship]
        assert view["presence"] == "online"
        assert view["data_until"] is not None and view["window_kwh"] is not None
        proc.kill()  # SIGKILL: the connection dies with it; the broker publishes the will
        _status(watcher, topic, "offline")
    finally:
        proc.kill()
        watcher.close()
    # Retained: a newcomer sees offline at once.
    late = stack.client(user, secret)
    try:
        late.subscribe(topic)
        msg = late.wait_for(lambda m: m.topic == topic)
        assert msg.retain and json.loads(msg.payload)["status"] == "offline"
    finally:
        late.close()
    assert _fleet_status(stack, user, secret)[ship]["presence"] == "offline"


def test_ship_status_reports_the_spool(stack: Stack, tmp_path: Path) -> None:
    ship, password = stack.ship(unique_ship("stat"))
    spool = tmp_path / "ship.spool"
    proc = agent(stack, ship, password, spool, "--source", "simulate", "--interval", "PT5M",
                 "--backfill", "PT2H").start()
    try:
        eventually(lambda: stored_count(stack, ship) >= 24, message="the backfill not stored")

        def status() -> dict[str, object]:
            out = subprocess.run([*FLEETCTL, "ship", "status", "--spool", str(spool), "--json"],
                                 env=stack.env_with(), capture_output=True, text=True,
                                 timeout=20, check=True)
            doc: dict[str, object] = json.loads(out.stdout)
            return doc

        info = eventually(lambda: (s := status())["last_confirmed"] and s, message="no ack")
        assert info["ship"] == ship and info["agent_running"] is True
        assert info["connection"] == "connected"
        assert info["depth"] == 0 and info["dropped"] == 0
        text = subprocess.run([*FLEETCTL, "ship", "status", "--spool", str(spool)],
                              env=stack.env_with(), capture_output=True, text=True, timeout=20,
                              check=True).stdout
        assert "spool depth      0 readings" in text and "connected since" in text
    finally:
        proc.stop()
    assert "agent not running" in subprocess.run(
        [*FLEETCTL, "ship", "status", "--spool", str(spool)], env=stack.env_with(),
        capture_output=True, text=True, timeout=20, check=True).stdout


def test_fleet_simulator_with_outages_loses_nothing(stack: Stack) -> None:
    prefix = f"simt{uuid.uuid4().hex[:6]}"
    # Two ships, two simulated hours at 3000x (2.4 s) ending now, about 6 outages per ship.
    done = subprocess.run(
        [*FLEETCTL, "simulate", "--ships", "2", "--prefix", prefix, "--interval", "5m",
         "--speed", "3000", "--duration", "2h", "--outage-rate", "3", "--seed", "7",
         "--meters", "1"],
        env=stack.env_with(FLEET_SHIP_ACK_TIMEOUT="1", FLEET_SHIP_RECONNECT_MAX_DELAY="1"),
        capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ships online" in done.stdout and "link outage" in done.stderr
    for ship in (f"{prefix}-1", f"{prefix}-2"):
        with open_readonly(stack.root / "simulate" / "spools" / f"{ship}.spool") as spool:
            origin = int(spool.get_meta("sim_origin_us") or 0)
            assert spool.depth == 0
        expected = expected_windows(ship, simulated(ship, origin, origin + 2 * 3600 * 10**6))
        assert stored_count(stack, ship) == 24
        assert_same_windows(stored_windows(stack, ship), expected)


# --- TLS ---------------------------------------------------------------------------------------


def test_agent_over_tls_and_a_client_without_the_ca_is_refused(tmp_path: Path) -> None:
    env = {"FLEET_CONFIG": str(tmp_path / "none.toml"), "FLEET_LOCAL_DATA_DIR": str(tmp_path),
           "FLEET_MQTT_PORT": str(free_port()), "FLEET_MQTT_TLS_PORT": str(free_port())}
    (tmp_path / "none.toml").write_text("")
    cfg = load_config(env=env)
    tls = tmp_path / "tls"
    init(tls, hosts=["localhost", "127.0.0.1"])
    cert, key = client_cert(tls, "tls-ship")
    accounts = Accounts(broker_dir(cfg))
    ship = unique_ship("tls")
    password = accounts.add_ship(ship)
    operator = accounts.add_operator("tls-op")
    broker = mosquitto_service(cfg).start(timeout=20)
    agents = []
    try:
        assert f"listener {cfg.mqtt.tls_port} 127.0.0.1" in (
            broker_dir(cfg) / "mosquitto.conf").read_text()
        tls_env = {"FLEET_MQTT_TLS_CA": str(tls / "ca.crt")}
        # The agent with the CA only, then with a client certificate too.
        stack = Stack(root=tmp_path, env={**env, **tls_env}, cfg=cfg, accounts=accounts,
                      broker=broker, influx=broker, bridge_password="")
        for extra in ({}, {"FLEET_MQTT_TLS_CERT": str(cert), "FLEET_MQTT_TLS_KEY": str(key)}):
            proc = agent(stack, ship, password, tmp_path / "ship.spool", "--source", "simulate",
                         name=f"tls{len(agents)}", **extra).start()
            agents.append(proc)
            watcher = _tls_client(cfg.mqtt.tls_port, "tls-op", operator, tls / "ca.crt")
            try:
                topic = f"fleet/ships/{ship}/status"
                watcher.subscribe(topic)
                watcher.wait_for(lambda m, t=topic: m.topic == t and json.loads(
                    m.payload)["status"] == "online")
            finally:
                watcher.close()
            assert "(TLS)" in proc.log_path.read_text()
            proc.stop()
        # Without the CA: the server certificate cannot be verified, so no connection.
        # (A bare TLS handshake, as paho's own would fail: paho leaks the socket then.)
        context = ssl.create_default_context()  # the system's CAs only
        with socket.create_connection(("127.0.0.1", cfg.mqtt.tls_port), timeout=5) as raw, \
                pytest.raises(ssl.SSLCertVerificationError):
            context.wrap_socket(raw, server_hostname="localhost").close()
        # The query service's broker probe (/healthz) goes to the TLS listener when TLS is on.
        tls_cfg = load_config(env={**env, **tls_env})
        assert tls_cfg.mqtt.client_port == cfg.mqtt.tls_port
        asyncio.run(probe_broker(tls_cfg.mqtt.host, tls_cfg.mqtt.client_port,
                                 tls_ca=tls_cfg.mqtt.tls_ca))
        # And plain MQTT to the TLS port gets no CONNACK.
        plain = MqttSession("127.0.0.1", cfg.mqtt.tls_port, "tls-op", operator, connect=False,
                            timeout=2)
        with pytest.raises(AssertionError, match="no CONNACK"):
            plain.connect()
        plain.close()
    finally:
        for proc in agents:
            proc.stop()
        broker.stop()


def _tls_client(port: int, user: str, password: str, ca: Path) -> MqttSession:
    session = MqttSession("localhost", port, user, password, connect=False)
    session.client.tls_set(ca_certs=str(ca))
    session.connect()
    assert session.connected
    return session
