"""The one MQTT client factory: MQTT 5, credentials, TLS through the file checks, CONNECT."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from paho.mqtt.enums import MQTTProtocolVersion

from fleet.config import Config
from fleet.errors import ConfigError
from fleet.mqttclient import connect_properties, new_client, plain_client


def _with_mqtt(**changes: str) -> Config:
    cfg = Config()
    return dataclasses.replace(cfg, mqtt=dataclasses.replace(cfg.mqtt, **changes))


def test_client_id_protocol_and_credentials() -> None:
    client = new_client(Config(), "ship-1", username="ship-1", password="pw", manual_ack=True)
    assert client._client_id == b"ship-1"
    assert client._protocol == MQTTProtocolVersion.MQTTv5
    assert client._manual_ack is True
    assert (client._username, client._password) == (b"ship-1", b"pw")
    anonymous = plain_client("x")
    assert anonymous._username is None


def test_tls_goes_through_the_file_checks(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"mqtt\.tls_ca"):
        new_client(_with_mqtt(tls_ca=str(tmp_path / "missing.crt")), "c")
    assert new_client(Config(), "c")._ssl is False  # no tls_ca: plain MQTT


def test_connect_properties() -> None:
    assert connect_properties() is None
    props = connect_properties(session_expiry=3600, receive_maximum=50)
    assert props is not None
    assert (props.SessionExpiryInterval, props.ReceiveMaximum) == (3600, 50)
    only = connect_properties(session_expiry=10)
    assert only is not None
    assert not hasattr(only, "ReceiveMaximum")
