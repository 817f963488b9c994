"""Publish one message as a given broker account: a minimal asyncio MQTT 5 client.

``POST /data`` publishes a ship's payload *as that ship*: CONNECT with the ship's own username and
password (the broker checks them), PUBLISH at QoS 1 on the ship's readings topic, wait for the
PUBACK (the broker's ACL answers there: reason 135 means not authorized), DISCONNECT. MQTT 5 is
what makes an ACL denial visible (MQTT 3.1.1 acknowledges a denied publish like any other).

A connection per request: nothing privileged is held, a removed ship or a changed password is
refused at the next request, and the client id is left to the broker (an empty id with clean
start) so a ship agent connected under its own id is never kicked off.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl

from fleet.errors import FleetError

TIMEOUT = 5.0
_CONNECT, _CONNACK, _PUBLISH, _PUBACK, _DISCONNECT = 0x10, 0x20, 0x30, 0x40, 0xE0
_QOS1 = 0x02
NOT_AUTHORIZED = 135
BAD_CREDENTIALS = 134


class PublishError(FleetError):
    """The message was not published; ``kind`` says why."""

    def __init__(self, kind: str, message: str, reason_code: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind  # "credentials" | "denied" | "unavailable" | "refused"
        self.reason_code = reason_code


def varint(n: int) -> bytes:
    """MQTT's variable byte integer (remaining length)."""
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def mqtt_string(data: bytes) -> bytes:
    return len(data).to_bytes(2, "big") + data


def packet(kind: int, body: bytes) -> bytes:
    return bytes([kind]) + varint(len(body)) + body


def connect_packet(username: str, password: str, keepalive: int = 30) -> bytes:
    """MQTT 5 CONNECT: clean start, username and password, an empty client id, no properties."""
    flags = 0x80 | 0x40 | 0x02
    variable = mqtt_string(b"MQTT") + bytes([5, flags]) + keepalive.to_bytes(2, "big") + b"\x00"
    payload = mqtt_string(b"") + mqtt_string(username.encode()) + mqtt_string(password.encode())
    return packet(_CONNECT, variable + payload)


def publish_packet(topic: str, payload: bytes, packet_id: int = 1) -> bytes:
    body = mqtt_string(topic.encode()) + packet_id.to_bytes(2, "big") + b"\x00" + payload
    return packet(_PUBLISH | _QOS1, body)


async def open_connection(host: str, port: int, tls_ca: str = "",
                          ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP connection to the broker, with TLS verified against ``tls_ca`` when it is set."""
    context = ssl.create_default_context(cafile=tls_ca) if tls_ca else None
    return await asyncio.open_connection(host, port, ssl=context,
                                         server_hostname=host if context else None)


async def close_connection(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


async def _read_packet(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = (await reader.readexactly(1))[0]
    length, shift = 0, 0
    for _ in range(4):
        byte = (await reader.readexactly(1))[0]
        length += (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    return head & 0xF0, await reader.readexactly(length)


async def publish_as(host: str, port: int, username: str, password: str, topic: str,
                     payload: bytes, *, tls_ca: str = "", timeout: float = TIMEOUT,
                     check_only: bool = False) -> None:
    """Publish ``payload`` on ``topic`` at QoS 1 as ``username``; return after the PUBACK.

    Raises PublishError: ``credentials`` (CONNACK refused the username or password),
    ``denied`` (PUBACK reason 135: the ACL refused the topic), ``refused`` (any other failure
    reason), ``unavailable`` (no broker, no answer in time). ``check_only``: connect (the broker
    checks the credentials) and disconnect without publishing.
    """
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await open_connection(host, port, tls_ca)
            try:
                writer.write(connect_packet(username, password))
                await writer.drain()
                kind, body = await _read_packet(reader)
                if kind != _CONNACK or len(body) < 2:
                    raise PublishError("unavailable", f"the broker answered 0x{kind:02x}, "
                                                      "not CONNACK")
                if body[1] in {BAD_CREDENTIALS, NOT_AUTHORIZED}:
                    raise PublishError("credentials", "the broker refused the credentials",
                                       body[1])
                if body[1] >= 0x80:
                    raise PublishError("unavailable", f"the broker refused the connection "
                                                      f"(reason {body[1]})", body[1])
                if check_only:
                    writer.write(packet(_DISCONNECT, b""))
                    await writer.drain()
                    return
                writer.write(publish_packet(topic, payload))
                await writer.drain()
                while True:
                    kind, body = await _read_packet(reader)
                    if kind == _PUBACK:
                        break
                    if kind == _DISCONNECT:
                        code = body[0] if body else 0
                        raise PublishError("refused", f"the broker disconnected (reason {code})",
                                           code)
                code = body[2] if len(body) >= 3 else 0
                if code == NOT_AUTHORIZED:
                    raise PublishError("denied", "the broker's ACL refused the topic", code)
                if code >= 0x80:
                    raise PublishError("refused", f"the broker refused the message "
                                                  f"(reason {code})", code)
                writer.write(packet(_DISCONNECT, b""))
                with contextlib.suppress(OSError):
                    await writer.drain()
            finally:
                await close_connection(writer)
    except TimeoutError:
        raise PublishError("unavailable", f"no answer from the broker within {timeout:g} s"
                           ) from None
    except asyncio.IncompleteReadError:
        raise PublishError("unavailable", "the broker closed the connection") from None
    except OSError as exc:
        raise PublishError("unavailable", exc.strerror or str(exc) or type(exc).__name__
                           ) from None
