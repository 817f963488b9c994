"""``python -m query_service``: serve the HTTP query API on ``[http] host:port``."""

from __future__ import annotations

import logging

from aiohttp import web
from yarl import URL

from fleet.config import load_config
from fleet.errors import ConfigError
from fleet.service import setup_logging
from query_service.main import create_app

log = logging.getLogger("query_service")


def main() -> None:
    # Signals: aiohttp's run_app stops on SIGINT and SIGTERM itself.
    setup_logging()
    try:
        config = load_config()
    except ConfigError as exc:
        log.error("configuration: %s", exc)
        raise SystemExit(2) from None
    influx = config.influxdb
    log.info("query service on http://%s:%d; InfluxDB %s, database %s, retention policy %s",
             config.http.host, config.http.port, URL(influx.url).with_user(None),
             influx.database, influx.retention_policy)
    # No per-request access log: at dashboard rates it costs more than the query (metrics count requests).
    web.run_app(create_app(config), host=config.http.host, port=config.http.port, print=None,
                access_log=None)


if __name__ == "__main__":
    main()
