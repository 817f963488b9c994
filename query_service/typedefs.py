"""Typed keys of the application's state."""

from __future__ import annotations

from aiohttp import web

from fleet.config import Config
from fleet.tokens import TokenVerifier
from query_service.db import InfluxClient
from query_service.metrics import Metrics
from query_service.presence import PresenceTracker

CONFIG: web.AppKey[Config] = web.AppKey("config", Config)
INFLUX: web.AppKey[InfluxClient] = web.AppKey("influx", InfluxClient)
METRICS: web.AppKey[Metrics] = web.AppKey("metrics", Metrics)
TOKENS: web.AppKey[TokenVerifier] = web.AppKey("tokens", TokenVerifier)
PRESENCE: web.AppKey[PresenceTracker] = web.AppKey("presence", PresenceTracker)
