"""Bearer tokens on the read endpoints (``[http] auth = "token"``) and HTTP Basic for ingest.

Open without a token: ``/healthz``, ``/openapi.json``, the dashboard page ``/`` and ``/static/``
(the page asks for a token and sends it itself), and ``POST /data``, which authenticates with the
ship's own broker credentials instead (the broker checks them, see :mod:`query_service.ingest`).
Every refusal is the same 401 with the same message, whatever was wrong with the token.
"""

from __future__ import annotations

import base64
import binascii
import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from fleet.errors import FleetError
from query_service.middlewares import json_error
from query_service.typedefs import CONFIG, TOKENS

log = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/", "/healthz", "/openapi.json", "/favicon.ico"})
BEARER_CHALLENGE = 'Bearer realm="fleet"'
BASIC_CHALLENGE = 'Basic realm="fleet ships", charset="UTF-8"'
UNAUTHORIZED = "authentication required: send Authorization: Bearer <token>"


def is_open(request: web.Request) -> bool:
    path = request.path
    return (path in OPEN_PATHS or path.startswith("/static/")
            or (request.method == "POST" and path == "/data"))


def bearer_token(request: web.Request) -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def basic_credentials(request: web.Request) -> tuple[str, str] | None:
    """(username, password) from ``Authorization: Basic``, or None when absent or malformed."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, sep, password = decoded.partition(":")
    if not sep or not username:
        return None
    return username, password


def _unauthorized() -> web.Response:
    return json_error(401, UNAUTHORIZED, {"WWW-Authenticate": BEARER_CHALLENGE})


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse read requests without a valid, unrevoked bearer token."""
    if request.app[CONFIG].http.auth == "none" or is_open(request):
        return await handler(request)
    token = bearer_token(request)
    if token is None:
        return _unauthorized()
    try:
        name = request.app[TOKENS].verify(token)
    except FleetError as exc:
        log.error("cannot check tokens: %s", exc)
        return json_error(503, "authentication is unavailable; try again later")
    if name is None:
        return _unauthorized()
    return await handler(request)
