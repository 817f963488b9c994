"""The alert service's Prometheus metrics (served on ``[alerts] metrics_port``).

``fleet_alerts_ship_last_reading_timestamp_seconds{ship}`` is there so Prometheus users can write
rules of their own (``time() - fleet_alerts_ship_last_reading_timestamp_seconds > 1800``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from fleet.timeutil import US


class _Live(Collector):
    """Gauges computed at scrape time from the engine's state."""

    def __init__(self, firing: Callable[[], dict[str, int]],
                 last_seen: Callable[[], dict[str, int]], backlog: Callable[[], int]) -> None:
        self._firing = firing
        self._last_seen = last_seen
        self._backlog = backlog

    def collect(self) -> Iterator[GaugeMetricFamily]:
        firing = GaugeMetricFamily("fleet_alerts_firing", "Alerts firing now, by rule",
                                   labels=["rule"])
        for rule, count in sorted(self._firing().items()):
            firing.add_metric([rule], count)
        yield firing
        seen = GaugeMetricFamily("fleet_alerts_ship_last_reading_timestamp_seconds",
                                 "When each ship's data was last stored (Unix time)",
                                 labels=["ship"])
        for ship, us in sorted(self._last_seen().items()):
            seen.add_metric([ship], us / US)
        yield seen
        yield GaugeMetricFamily("fleet_alerts_alertmanager_backlog",
                                "Resolutions Alertmanager has not accepted yet", self._backlog())


class AlertMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.evaluations = Counter("fleet_alerts_evaluations", "Rule evaluations, by rule",
                                   ["rule"], registry=r)
        self.evaluation_errors = Counter(
            "fleet_alerts_evaluation_errors", "Rule evaluations that could not read their data",
            ["rule"], registry=r)
        self.transitions = Counter("fleet_alerts_transitions", "State changes, by rule and state",
                                   ["rule", "state"], registry=r)
        self.deliveries = Counter("fleet_alerts_deliveries", "Successful deliveries, by target",
                                  ["target"], registry=r)
        self.delivery_failures = Counter(
            "fleet_alerts_delivery_failures",
            "Failed delivery attempts (retried), by target: alertmanager, history, mqtt",
            ["target"], registry=r)
        self.connected = Gauge("fleet_alerts_mqtt_connected", "1 while connected to the broker",
                               registry=r)

    def watch(self, firing: Callable[[], dict[str, int]],
              last_seen: Callable[[], dict[str, int]], backlog: Callable[[], int]) -> None:
        self.registry.register(_Live(firing, last_seen, backlog))
