"""URL table of the query service."""

from __future__ import annotations

from aiohttp import web

from query_service import views


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/data", views.data, name="data")
    app.router.add_get("/v1/ships", views.ships, name="ships")
    app.router.add_get("/v1/ships/{id}/energy", views.ship_energy, name="ship_energy")
    app.router.add_get("/healthz", views.healthz, name="healthz")
    app.router.add_get("/metrics", views.metrics, name="metrics")
