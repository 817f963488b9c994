"""Writes the transitions to InfluxDB's ``alert_events`` (read by ``GET /v1/alerts``), in order,
from the state file's queue: retried with backoff while InfluxDB is down, dropped only once
written (a rewrite of the same points after a crash is harmless: same series, same stamps)."""

from __future__ import annotations

import logging

from alerts.engine import Engine
from alerts.metrics import AlertMetrics
from alerts.state import Tracked
from alerts.worker import Worker
from fleet.alertevents import AlertEvent
from fleet.errors import StoreError, StoreRejectedError
from fleet.store import InfluxStore

log = logging.getLogger(__name__)


class HistoryWriter(Worker):
    def __init__(self, store: InfluxStore, engine: Engine, metrics: AlertMetrics) -> None:
        super().__init__("alert-history")
        self.store = store
        self.engine = engine
        self.metrics = metrics

    def notify(self, _event: AlertEvent, _tracked: Tracked) -> None:
        self.wake()

    def _run(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            self._wake.clear()
            batch = self.engine.pending_history()
            if batch:
                try:
                    self.store.write("\n".join(e.line(stamp) for e, stamp in batch).encode())
                except StoreRejectedError as exc:  # the data's fault: never retried forever
                    log.error("InfluxDB refused %d alert events, dropped: %s", len(batch), exc)
                    self.metrics.delivery_failures.labels("history").inc()
                except Exception as exc:  # StoreError, or anything: retried, the thread lives on
                    self.metrics.delivery_failures.labels("history").inc()
                    log.warning("alert history not written (%s); retrying in %.1fs", exc, backoff,
                                exc_info=not isinstance(exc, StoreError))
                    self._stop.wait(backoff)
                    backoff = min(10.0, backoff * 2)
                    continue
                else:
                    self.metrics.deliveries.labels("history").inc()
                self.engine.history_written(len(batch))
                backoff = 0.5
                continue
            self._wake.wait(5.0)
