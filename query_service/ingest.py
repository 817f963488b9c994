"""``POST /data``: readings over HTTP for ships and shore systems that cannot speak MQTT.

One pipeline, one set of rules: the ship authenticates with its own MQTT username and password
(HTTP Basic); the service connects to the broker *as the ship* (the broker checks the password),
validates the body with the bridge's own :func:`fleet.normalize.process_payload`, and publishes the
body unchanged on ``fleet/ships/<username>/readings`` at QoS 1. The answer, 202, comes after the
broker's PUBACK; the bridge then stores it like any MQTT payload (and reports on ``ack`` /
``rejected``). The topic is the identity: a ``spaceship_id`` naming another ship is refused by the
shared validation (``ship_mismatch``), and the broker's ACL has the last word (PUBACK 135 -> 403).
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from fleet import topics
from fleet.errors import PayloadError
from fleet.normalize import process_payload
from fleet.schema import SHIP_ID
from query_service.auth import BASIC_CHALLENGE, basic_credentials
from query_service.middlewares import json_error
from query_service.mqtt5 import PublishError, publish_as
from query_service.render import json_response
from query_service.typedefs import CONFIG

log = logging.getLogger(__name__)

_CREDENTIALS = "authentication required: HTTP Basic with the ship's MQTT username and password"


def _unauthorized() -> web.Response:
    return json_error(401, _CREDENTIALS, {"WWW-Authenticate": BASIC_CHALLENGE})


def _refused(reasons: list[dict[str, Any]], message: str) -> web.Response:
    return json_response({"error": message, "reasons": reasons}, status=400)


async def post_data(request: web.Request) -> web.Response:
    """Validate, then publish as the ship; 202 after the broker's PUBACK."""
    config = request.app[CONFIG]
    credentials = basic_credentials(request)
    if credentials is None or not SHIP_ID.fullmatch(credentials[0]):
        return _unauthorized()
    ship, password = credentials
    body = await request.read()  # bounded by client_max_size (ingest.max_payload_bytes): 413
    try:
        result = process_payload(ship, body,
                                 default_interval_s=config.ingest.default_interval_seconds,
                                 max_readings=config.ingest.max_readings_per_message,
                                 max_bytes=config.ingest.max_payload_bytes)
    except PayloadError as exc:
        # Checked before the broker is asked, so nothing is published; the credentials are
        # checked first all the same, so a stranger learns nothing from the validation.
        invalid: PayloadError | None = exc
        result = None
    else:
        invalid = None
    mqtt = config.mqtt
    topic = topics.readings(ship)
    if invalid is not None or (result is not None and not result.accepted):
        # Authenticate without publishing: the same CONNECT, an empty publish is not sent.
        try:
            await publish_as(mqtt.host, mqtt.client_port, ship, password, "", b"", tls_ca=mqtt.tls_ca,
                             check_only=True)
        except PublishError as exc:
            return _publish_failure(exc, ship)
        if invalid is not None:
            entry: dict[str, Any] = {"reason": invalid.reason, "detail": invalid.detail}
            return _refused([entry], f"payload refused: {invalid.reason}: {invalid.detail}")
        assert result is not None
        reasons = [{"index": r.index, "reason": r.reason, "detail": r.detail}
                   for r in result.rejected]
        return _refused(reasons, f"payload refused: all {len(reasons)} readings are invalid")
    assert result is not None
    try:
        await publish_as(mqtt.host, mqtt.client_port, ship, password, topic, body, tls_ca=mqtt.tls_ca)
    except PublishError as exc:
        return _publish_failure(exc, ship)
    answer: dict[str, Any] = {
        "ship": ship, "topic": topic, "status": "published", "accepted": result.accepted,
        "rejected": [{"index": r.index, "reason": r.reason, "detail": r.detail}
                     for r in result.rejected],
    }
    if result.batch_id is not None:
        answer["batch_id"] = result.batch_id
    return json_response(answer, status=202)


def _publish_failure(exc: PublishError, ship: str) -> web.Response:
    if exc.kind == "credentials":
        return _unauthorized()
    if exc.kind == "denied":
        log.warning("POST /data: the broker's ACL refused %s's publish", ship)
        return json_error(403, f"the broker refused the publish for {ship!r} (not authorized)")
    log.warning("POST /data for %s: %s", ship, exc)
    if exc.kind == "refused":
        return json_error(502, f"the broker refused the message: {exc}")
    return json_error(503, "the broker is unavailable; try again later",
                      {"Retry-After": "5"})
