"""The [ship], [simulate] and TLS keys: validated, errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.config import load_config
from fleet.errors import ConfigError
from launcher.servers import render_mosquitto_conf


@pytest.mark.parametrize(("env", "message"), [
    ({"FLEET_SHIP_BATCH_SIZE": "0"}, "ship.batch_size"),
    ({"FLEET_SHIP_ACK_TIMEOUT": "-1"}, "ship.ack_timeout"),
    ({"FLEET_SHIP_DRAIN_RATE": "0"}, "ship.drain_rate"),
    ({"FLEET_SHIP_SPOOL_MAX_READINGS": "0"}, "ship.spool_max_readings"),
    ({"FLEET_SHIP_MAX_INFLIGHT": "0"}, "ship.max_inflight"),
    ({"FLEET_SIMULATE_SHIPS": "-1"}, "simulate.ships"),
    ({"FLEET_SIMULATE_INTERVAL": "soon"}, "simulate.interval"),
    ({"FLEET_SIMULATE_SPEED": "0.5"}, "simulate.speed"),
    ({"FLEET_SIMULATE_PREFIX": "a b"}, "simulate.prefix"),
    ({"FLEET_MQTT_TLS_PORT": "70000"}, "mqtt.tls_port"),
    ({"FLEET_MQTT_TLS_PORT": "1883"}, "mqtt.tls_port must differ"),
    ({"FLEET_MQTT_TLS_CERT": "c.pem"}, "mqtt.tls_cert and mqtt.tls_key"),
    ({"FLEET_MQTT_TLS_CERT": "c.pem", "FLEET_MQTT_TLS_KEY": "k.pem"}, "needs mqtt.tls_ca"),
])
def test_errors_name_the_key(tmp_path: Path, env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        load_config(env={"FLEET_CONFIG": str(_empty(tmp_path)), **env})


def _empty(tmp_path: Path) -> Path:
    f = tmp_path / "c.toml"
    f.write_text("")
    return f


def test_clients_use_the_tls_port_only_with_a_ca(tmp_path: Path) -> None:
    base = {"FLEET_CONFIG": str(_empty(tmp_path))}
    assert load_config(env=base).mqtt.client_port == 1883
    assert load_config(env={**base, "FLEET_MQTT_TLS_CA": "ca.crt"}).mqtt.client_port == 8883
    assert load_config(env={**base, "FLEET_MQTT_TLS_CA": "ca.crt",
                            "FLEET_MQTT_TLS_PORT": "0"}).mqtt.client_port == 1883


def test_tls_listener_rendered_only_with_certificates(tmp_path: Path) -> None:
    env = {"FLEET_CONFIG": str(_empty(tmp_path)), "FLEET_LOCAL_DATA_DIR": str(tmp_path)}
    cfg = load_config(env=env)
    assert "8883" not in render_mosquitto_conf(cfg).read_text()
    tls = tmp_path / "tls"
    tls.mkdir()
    for name in ("ca.crt", "server.crt", "server.key"):
        (tls / name).write_text("x")
    text = render_mosquitto_conf(cfg).read_text()
    assert "listener 8883 127.0.0.1\n" in text and f"certfile {tls / 'server.crt'}" in text
    assert text.rstrip().splitlines()[-1].startswith("include_dir")
