"""Liveness probe of the MQTT broker without credentials: does it answer an MQTT CONNECT?

Any CONNACK counts, "not authorized" included: the broker is up and speaking MQTT, and the query
service holds no broker account to prove more with.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets

from fleet.errors import FleetError
from query_service.mqtt5 import close_connection, mqtt_string, open_connection, packet

BROKER_TIMEOUT = 2.0
_CONNACK = 0x20
_DISCONNECT = b"\xe0\x00"


class BrokerUnavailableError(FleetError):
    """The broker did not answer a CONNECT with a CONNACK."""


def connect_packet(client_id: str, keepalive: int = 10) -> bytes:
    """A minimal MQTT 3.1.1 CONNECT: clean session, no will, no username or password."""
    variable = mqtt_string(b"MQTT") + bytes([4, 0x02]) + keepalive.to_bytes(2, "big")
    return packet(0x10, variable + mqtt_string(client_id.encode()))


async def probe_broker(host: str, port: int, *, tls_ca: str = "",
                       timeout: float = BROKER_TIMEOUT) -> int:
    """Send CONNECT and return the CONNACK's return code; BrokerUnavailableError when none comes."""
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await open_connection(host, port, tls_ca)
            try:
                # 23 characters at most: the longest client id every MQTT 3.1.1 broker accepts.
                writer.write(connect_packet("fleet-health-" + secrets.token_hex(4)))
                await writer.drain()
                head = await reader.readexactly(4)
                if head[0] != _CONNACK:
                    raise BrokerUnavailableError(f"answered 0x{head[0]:02x}, not CONNACK")
                if head[3] == 0:
                    writer.write(_DISCONNECT)
                    with contextlib.suppress(OSError):
                        await writer.drain()
                return head[3]
            finally:
                await close_connection(writer)
    except TimeoutError:
        raise BrokerUnavailableError(f"no CONNACK within {timeout:g} s") from None
    except asyncio.IncompleteReadError:
        raise BrokerUnavailableError("closed the connection without a CONNACK") from None
    except OSError as exc:  # refused, unreachable, TLS failures (ssl.SSLError is an OSError)
        raise BrokerUnavailableError(exc.strerror or str(exc) or type(exc).__name__) from None
