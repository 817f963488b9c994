"""``python -m bridge``: run one bridge process until SIGTERM or SIGINT."""

from __future__ import annotations

import logging
import sys
import threading

from prometheus_client import start_http_server

from bridge.batcher import Batcher, Store
from bridge.coarsenotice import CoarseNotice
from bridge.metrics import BridgeMetrics
from bridge.mqtt import Bridge
from bridge.rollup import Rollup
from fleet.config import Config, load_config
from fleet.errors import FleetError, StoreError
from fleet.service import setup_logging, stop_on_signals
from fleet.store import InfluxStore

log = logging.getLogger("bridge")


def _prepare_store(cfg: Config, stop: threading.Event) -> InfluxStore | None:
    """Connect to InfluxDB and create the database when configured; wait while it is down."""
    store = InfluxStore(cfg.influxdb)
    delay = 0.5
    while not stop.is_set():
        try:
            if cfg.influxdb.create_database:
                store.ensure_database()
            elif not store.ping():
                raise StoreError(f"InfluxDB at {cfg.influxdb.url} does not answer /ping")
        except StoreError as exc:
            log.warning("waiting for InfluxDB: %s", exc)
            stop.wait(delay)
            delay = min(delay * 2, cfg.bridge.retry_max_delay)
            continue
        return store
    return None


def _prepare_rollup(cfg: Config, store: InfluxStore, stop: threading.Event,
                    metrics: BridgeMetrics, notice: CoarseNotice | None) -> Rollup | None:
    """The coarse series' policies, unfinished journal entries, worker and background build."""
    rollup = Rollup(cfg, store, metrics=metrics,
                    on_written=notice.written if notice is not None else None)
    delay = 0.5
    while not stop.is_set():
        try:
            if cfg.influxdb.create_database:
                rollup.prepare()
            rollup.start()
        except StoreError as exc:
            log.warning("waiting for InfluxDB (coarse series): %s", exc)
            stop.wait(delay)
            delay = min(delay * 2, cfg.bridge.retry_max_delay)
            continue
        return rollup
    return None


def run(cfg: Config, *, store: Store | None = None, bridge_type: type[Bridge] = Bridge,
        coarse: bool = True) -> int:
    """``store`` and ``bridge_type`` replace the InfluxDB client and the MQTT side (the benchmark's
    ceilings: the bridge without its database, or without its normalization); ``coarse=False``
    runs without coarse series (the benchmark's comparison; they then go stale), as does a
    replaced store."""
    stop = stop_on_signals(log, "flushing and stopping")

    metrics = BridgeMetrics()
    if cfg.bridge.metrics_port:
        start_http_server(cfg.bridge.metrics_port, addr=cfg.http.host, registry=metrics.registry)
        log.info("metrics on http://%s:%d/metrics", cfg.http.host, cfg.bridge.metrics_port)

    if store is None:
        store = _prepare_store(cfg, stop)
    if store is None:
        return 0
    writes_to = store
    rollup = None
    notice = CoarseNotice(None)  # bound to the bridge's client below
    if coarse and isinstance(store, InfluxStore):
        rollup = _prepare_rollup(cfg, store, stop, metrics, notice)
        if rollup is None:
            return 0

    def make_batcher(bridge: Bridge) -> Batcher:
        return Batcher(writes_to, bridge, metrics, batch_size=cfg.bridge.batch_size,
                       flush_interval=cfg.bridge.flush_interval,
                       retry_max_delay=cfg.bridge.retry_max_delay, coarse=rollup)

    bridge = bridge_type(cfg, make_batcher, metrics)
    notice.client = bridge.client
    writer = threading.Thread(target=bridge.batcher.run, name="influx-writer", daemon=True)
    writer.start()
    bridge.start()
    log.info("bridge %s started: mqtt %s:%d -> influxdb %s db=%s", cfg.bridge.client_id,
             cfg.mqtt.host, cfg.mqtt.client_port, cfg.influxdb.url, cfg.influxdb.database)
    while not stop.wait(1.0):
        if not writer.is_alive():
            log.error("the writer thread died; exiting so a supervisor restarts the bridge")
            bridge.stop()
            return 1
    # Write what is queued (acknowledging it), then disconnect; whatever is still unacknowledged
    # is delivered again to the next bridge. No unsubscribe: the persistent session must keep
    # its subscription so the broker queues what ships publish while the bridge is away.
    bridge.batcher.stop()
    writer.join(timeout=10)
    if rollup is not None:
        rollup.stop()
    bridge.stop()
    if isinstance(store, InfluxStore):
        store.close()
    log.info("bridge stopped")
    return 0


def main() -> int:
    setup_logging()
    try:
        cfg = load_config()
    except FleetError as exc:
        print(f"fleet-bridge: {exc}", file=sys.stderr)
        return 2
    return run(cfg)


if __name__ == "__main__":
    sys.exit(main())
