"""Prometheus metrics of one application, in a registry of its own (not the global one).

Under gunicorn with several workers, each worker counts on its own; set
``PROMETHEUS_MULTIPROC_DIR`` (an empty directory, before gunicorn starts) and ``/metrics`` sums
all workers through prometheus_client's multiprocess mode.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    """The query service's counters and histograms."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "fleet_query_http_requests", "HTTP requests served, by route, method and status.",
            ("route", "method", "status"), registry=self.registry)
        self.request_seconds = Histogram(
            "fleet_query_http_request_duration_seconds", "Time to answer an HTTP request.",
            ("route",), buckets=_BUCKETS, registry=self.registry)
        self.influx_seconds = Histogram(
            "fleet_query_influxdb_query_duration_seconds",
            "Round trip of one InfluxDB /query, by kind of query.",
            ("query",), buckets=_BUCKETS, registry=self.registry)
        # labels() takes a lock and builds a key on every call; the children never change, so
        # each is looked up once (the label sets are small: routes, methods, statuses, kinds).
        self._counted: dict[tuple[str, str, int], Any] = {}
        self._timed: dict[str, Any] = {}
        self._influx_timed: dict[str, Any] = {}

    def observe_influx(self, kind: str, seconds: float) -> None:
        child = self._influx_timed.get(kind)
        if child is None:
            child = self._influx_timed[kind] = self.influx_seconds.labels(kind)
        child.observe(seconds)

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        counter = self._counted.get((route, method, status))
        if counter is None:
            counter = self._counted[route, method, status] = self.requests.labels(
                route, method, str(status))
        counter.inc()
        timer = self._timed.get(route)
        if timer is None:
            timer = self._timed[route] = self.request_seconds.labels(route)
        timer.observe(seconds)

    def exposition(self) -> bytes:
        """The text format of this registry, or of every worker's in multiprocess mode."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return bytes(generate_latest(registry))
        return bytes(generate_latest(self.registry))
