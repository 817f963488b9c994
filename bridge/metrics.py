"""The bridge's Prometheus metrics (one registry per bridge, served on ``[bridge] metrics_port``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class BridgeMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.messages = Counter(
            "fleet_bridge_messages", "MQTT messages handled, by outcome "
            "(stored, refused: whole payload refused, empty: every reading refused)",
            ["outcome"], registry=r)
        self.readings = Counter("fleet_bridge_readings", "Readings handled, by outcome",
                                ["outcome"], registry=r)
        self.rejected = Counter("fleet_bridge_rejected", "Refusals (payloads and readings), by reason",
                                ["reason"], registry=r)
        self.points = Counter("fleet_bridge_points_written", "Points written to InfluxDB",
                              registry=r)
        self.batch_points = Histogram(
            "fleet_bridge_batch_points", "Points per InfluxDB write", registry=r,
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000))
        self.write_seconds = Histogram(
            "fleet_bridge_write_seconds", "Latency of successful InfluxDB writes", registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.write_errors = Counter("fleet_bridge_write_errors", "Failed InfluxDB writes, by kind",
                                    ["kind"], registry=r)
        self.inflight = Gauge("fleet_bridge_inflight_messages",
                              "Messages received and not yet acknowledged", registry=r)
        # Children resolved once: .labels() on every message is measurable on the hot path.
        self.readings_accepted = self.readings.labels("accepted")
        self.messages_stored = self.messages.labels("stored")
        self.connected = Gauge("fleet_bridge_connected", "1 while connected to the broker",
                               registry=r)
