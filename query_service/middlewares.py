"""Request metrics, and the translation of domain errors into JSON HTTP errors."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from fleet.calendar import CalendarError
from fleet.errors import StoreError, StoreUnavailableError
from query_service.energy import ParameterError, ShipNotFoundError
from query_service.typedefs import METRICS

log = logging.getLogger(__name__)

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Not an HTTP status: the client went away before the answer (nginx's convention).
_CLIENT_CLOSED = 499


def json_error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=json.dumps({"error": message}),
                        content_type="application/json", headers=headers)


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count every request by route (its pattern, so ids do not explode the label set)."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except asyncio.CancelledError:
        status = _CLIENT_CLOSED
        raise
    finally:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        method = request.method if request.method in _METHODS else "other"
        request.app[METRICS].observe_request(route, method, status,
                                             time.perf_counter() - started)


def _path(request: web.Request) -> str:
    path = request.path
    return path if len(path) <= 100 else path[:97] + "..."


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every error as JSON ``{"error": "..."}``."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        if exc.status == 404:
            message = f"not found: {_path(request)}"
        elif exc.status == 405:
            message = f"method {request.method} is not allowed on {_path(request)}"
        else:
            message = (exc.reason or "error").lower()
        return json_error(exc.status, message, headers)
    except (ParameterError, CalendarError) as exc:
        return json_error(400, str(exc))
    except ShipNotFoundError as exc:
        return json_error(404, str(exc))
    except StoreUnavailableError as exc:
        log.warning("%s", exc)
        retry = {"Retry-After": str(round(exc.retry_after))} if exc.retry_after else None
        return json_error(503, "the database is unavailable; try again later", retry)
    except StoreError as exc:
        log.error("InfluxDB query failed: %s", exc)
        return json_error(502, "the database could not answer the query")


def query_parameters_middleware(allowed: Mapping[tuple[str, str], frozenset[str]]) -> Middleware:
    """Refuse query parameters an endpoint does not take (400 naming them).

    ``allowed`` maps (route pattern, method) to parameter names, taken from the OpenAPI
    document, so the two cannot drift apart. A typo such as ``evry=1h`` would otherwise be
    ignored silently and answer with 15-minute windows.
    """

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        names = allowed.get((resource.canonical, request.method)) if resource else None
        if names is not None:
            unknown = sorted(set(request.query) - names)
            if unknown:
                takes = ", ".join(sorted(names)) or "no parameters"
                raise ParameterError(unknown[0], f"unknown parameter {unknown[0]!r}: "
                                                 f"{_path(request)} takes {takes}")
        return await handler(request)

    return check
