"""The one place a paho MQTT client is made: MQTT 5, client id, credentials, TLS, CONNECT.

Every program (bridge, ship agent, query service presence, fleetctl) gets its client from
:func:`new_client` and connects it with :func:`connect_async` (or :func:`connect`), so TLS always
goes through the file checks of :func:`fleet.tls.configure_client` and the connection goes to
``[mqtt] client_port`` (the TLS listener when ``[mqtt] tls_ca`` is set).
"""

from __future__ import annotations

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from fleet.config import Config
from fleet.errors import FleetError
from fleet.tls import configure_client

# paho's default: a clean session on the first connect only, resumed on reconnects.
CLEAN_START_FIRST_ONLY = mqtt.MQTT_CLEAN_START_FIRST_ONLY


def plain_client(client_id: str, *, username: str | None = None, password: str | None = None,
                 manual_ack: bool = False) -> mqtt.Client:
    """An MQTT 5 client (paho's callback API 2) with credentials, without configuration: for
    load generators that pick their own broker address (the benchmark). Programs use
    :func:`new_client`.

    ``username=None`` connects without credentials; an empty ``password`` sends none.
    """
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=MQTTProtocolVersion.MQTTv5, manual_ack=manual_ack)
    if username:
        client.username_pw_set(username, password or None)
    return client


def new_client(cfg: Config, client_id: str, *, username: str | None = None,
               password: str | None = None, manual_ack: bool = False,
               reconnect_max_delay: int = 30) -> mqtt.Client:
    """:func:`plain_client` with TLS from ``cfg`` and paho's reconnect backoff (1 s up to
    ``reconnect_max_delay``). Raises ConfigError when a configured TLS file is missing."""
    client = plain_client(client_id, username=username, password=password, manual_ack=manual_ack)
    configure_client(client, cfg)  # TLS (and a client certificate) when configured
    client.reconnect_delay_set(1, reconnect_max_delay)
    return client


def connect_properties(*, session_expiry: int | None = None,
                       receive_maximum: int | None = None) -> Properties | None:
    """CONNECT properties: the session expiry (seconds) and Receive Maximum (the broker sends at
    most that many unacknowledged messages); None when neither is given."""
    if session_expiry is None and receive_maximum is None:
        return None
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    if session_expiry is not None:
        props.SessionExpiryInterval = session_expiry
    if receive_maximum is not None:
        props.ReceiveMaximum = receive_maximum
    return props


def connect_async(client: mqtt.Client, cfg: Config, *,
                  clean_start: mqtt.CleanStartOption = CLEAN_START_FIRST_ONLY,
                  session_expiry: int | None = None, receive_maximum: int | None = None) -> None:
    """Connect in the background and start paho's network thread (it reconnects with backoff).

    A persistent session: ``clean_start=False`` with a ``session_expiry``.
    """
    client.connect_async(cfg.mqtt.host, cfg.mqtt.client_port, keepalive=cfg.mqtt.keepalive,
                         clean_start=clean_start,
                         properties=connect_properties(session_expiry=session_expiry,
                                                       receive_maximum=receive_maximum))
    client.loop_start()


def connect(client: mqtt.Client, cfg: Config, *, keepalive: int = 30) -> None:
    """Connect now (a short-lived client such as ``fleetctl fleet status``) and start the loop.

    Raises FleetError when the broker cannot be reached.
    """
    try:
        client.connect(cfg.mqtt.host, cfg.mqtt.client_port, keepalive=keepalive)
    except OSError as exc:
        raise FleetError(f"cannot reach the broker at {cfg.mqtt.host}:{cfg.mqtt.client_port}: "
                         f"{exc}") from exc
    client.loop_start()
