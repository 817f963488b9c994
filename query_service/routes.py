"""URL table of the query service."""

from __future__ import annotations

from aiohttp import web

from query_service import alerts, ingest, meters, reports, views


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/data", views.data, name="data")
    app.router.add_post("/data", ingest.post_data, name="data_ingest")
    app.router.add_get("/v1/ships", views.ships, name="ships")
    app.router.add_get("/v1/ships/{id}/energy", views.ship_energy, name="ship_energy")
    app.router.add_get("/v1/ships/{id}/gaps", views.ship_gaps, name="ship_gaps")
    app.router.add_get("/v1/ships/{id}/anomalies", views.ship_anomalies, name="ship_anomalies")
    app.router.add_get("/v1/ships/{id}/meters", meters.ship_meters, name="ship_meters")
    app.router.add_get("/v1/fleet/energy", views.fleet_energy, name="fleet_energy")
    app.router.add_get("/v1/fleet/top", views.fleet_top, name="fleet_top")
    app.router.add_get("/v1/reports/energy", reports.energy, name="report_energy")
    app.router.add_get("/v1/alerts", alerts.list_alerts, name="alerts")
    app.router.add_get("/healthz", views.healthz, name="healthz")
    app.router.add_get("/metrics", views.metrics, name="metrics")
    app.router.add_get("/openapi.json", views.openapi, name="openapi")
    app.router.add_get("/", views.index, name="dashboard")
    app.router.add_static("/static/", views.STATIC, name="static", append_version=False)
