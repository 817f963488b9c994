"""The query service's application factory.

Development: ``python -m query_service`` (or ``fleet-query``) serves on ``[http] host`` and
``port``. Production, one process per core under gunicorn's aiohttp worker::

    gunicorn 'query_service.main:gunicorn_app' --worker-class aiohttp.GunicornWebWorker \\
        --workers 4 --bind 127.0.0.1:8080

Each worker reads the configuration (``FLEET_CONFIG``, ``FLEET_<SECTION>_<KEY>``) and holds its
own keep-alive session to InfluxDB. For ``/metrics`` summed over the workers, set
``PROMETHEUS_MULTIPROC_DIR`` to an empty directory before starting gunicorn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from fleet.config import Config, load_config
from fleet.errors import FleetError
from fleet.tokens import TokenVerifier, tokens_path
from query_service.auth import auth_middleware
from query_service.cache import WindowCache, attach
from query_service.calendar import watch_generation
from query_service.db import InfluxClient
from query_service.metrics import Metrics
from query_service.middlewares import (
    error_middleware,
    metrics_middleware,
    query_parameters_middleware,
)
from query_service.openapi import query_parameters
from query_service.presence import PresenceTracker
from query_service.routes import setup_routes
from query_service.typedefs import CONFIG, INFLUX, METRICS, PRESENCE, TOKENS

log = logging.getLogger("query_service")


async def _influx(app: web.Application) -> AsyncIterator[None]:
    client = InfluxClient(app[CONFIG].influxdb, observe=app[METRICS].observe_influx)
    app[INFLUX] = client
    yield
    await client.close()


async def _cache(app: web.Application) -> AsyncIterator[None]:
    """Recent ship series, invalidated by the bridge's energy topic (query_service/cache.py)."""
    cache = WindowCache(app[CONFIG].http.cache_entries)
    watch = None
    if app[CONFIG].http.cache_entries and cache.start(app[CONFIG], asyncio.get_running_loop()):
        attach(app[INFLUX], cache)
        # Kept calendar answers: dropped by rollup notices on the cache's link, and all of them
        # whenever the coarse series' generation moves (query_service/calendar.py).
        watch = asyncio.create_task(watch_generation(app[INFLUX], app[CONFIG], cache.calendar,
                                                    app[CONFIG].http.calendar_watch))
    yield
    if watch is not None:
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch
    cache.stop()


async def _presence(app: web.Application) -> AsyncIterator[None]:
    app[PRESENCE].start(app[CONFIG])
    yield
    app[PRESENCE].stop()


def _announce_auth(config: Config, verifier: TokenVerifier) -> None:
    if config.http.auth == "none":
        log.warning("http.auth = none: the read endpoints answer anyone without a token "
                    "(FLEET_HTTP_AUTH=none is meant for local work only)")
        return
    try:
        count = verifier.count()
    except FleetError as exc:
        log.error("tokens: %s", exc)
        return
    if not count:
        log.warning("no API token exists in %s: every read request is refused with 401; "
                    "create one with `fleetctl token create --name NAME`", verifier.path)


def create_app(config: Config) -> web.Application:
    """The aiohttp application; its InfluxDB session and presence subscription open at startup
    and close at cleanup."""
    # The metrics middleware is outermost, so it counts the JSON errors the others make; the
    # auth middleware is innermost, so its 401 is counted too.
    # Unknown query parameters are refused after authentication, so a 401 reveals nothing.
    app = web.Application(middlewares=[metrics_middleware, error_middleware, auth_middleware,
                                       query_parameters_middleware(query_parameters())],
                          client_max_size=config.ingest.max_payload_bytes)
    app[CONFIG] = config
    app[METRICS] = Metrics()
    app[TOKENS] = TokenVerifier(tokens_path(config.local.path))
    app[PRESENCE] = PresenceTracker()
    _announce_auth(config, app[TOKENS])
    app.cleanup_ctx.append(_influx)
    app.cleanup_ctx.append(_cache)
    app.cleanup_ctx.append(_presence)
    setup_routes(app)
    return app


async def gunicorn_app() -> web.Application:
    """Entry point for ``aiohttp.GunicornWebWorker``: the configuration from the environment."""
    return create_app(load_config())
