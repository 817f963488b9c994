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

from collections.abc import AsyncIterator

from aiohttp import web

from fleet.config import Config, load_config
from query_service.db import InfluxClient
from query_service.metrics import Metrics
from query_service.middlewares import error_middleware, metrics_middleware
from query_service.routes import setup_routes
from query_service.typedefs import CONFIG, INFLUX, METRICS


async def _influx(app: web.Application) -> AsyncIterator[None]:
    client = InfluxClient(app[CONFIG].influxdb, observe=app[METRICS].observe_influx)
    app[INFLUX] = client
    yield
    await client.close()


def create_app(config: Config) -> web.Application:
    """The aiohttp application; its InfluxDB session opens at startup and closes at cleanup."""
    # The metrics middleware is outermost, so it counts the JSON errors the other one makes.
    app = web.Application(middlewares=[metrics_middleware, error_middleware])
    app[CONFIG] = config
    app[METRICS] = Metrics()
    app.cleanup_ctx.append(_influx)
    setup_routes(app)
    return app


async def gunicorn_app() -> web.Application:
    """Entry point for ``aiohttp.GunicornWebWorker``: the configuration from the environment."""
    return create_app(load_config())
