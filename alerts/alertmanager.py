"""Delivery to Prometheus Alertmanager's ``POST /api/v2/alerts``, as Prometheus itself does it.

Every firing alert is posted with ``startsAt`` (when it began firing, kept across restarts) and an
``endsAt`` a few re-send intervals ahead, and posted again every ``[alerts] resend_interval`` while
it fires, so Alertmanager keeps it active and resolves it on its own only if this service is gone
for longer than that. A resolution is posted with ``endsAt`` = the moment it resolved, and kept in
the state file until Alertmanager answers 2xx: while Alertmanager is down every post is retried
with a doubling delay (up to ``MAX_BACKOFF``), and nothing is dropped. Alertmanager identifies an
alert by its labels, so re-posting one (after a restart, say) is not a second notification.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from alerts.engine import Engine
from alerts.metrics import AlertMetrics
from alerts.state import Resolution, Tracked
from alerts.worker import Worker
from fleet.alertevents import AlertEvent
from fleet.timeutil import US, format_datetime

log = logging.getLogger(__name__)

MAX_BACKOFF = 10.0

_KIND_SUMMARY = {
    "silent": "Ship {ship} has stopped reporting",
    "offline": "Ship {ship} is offline",
    "usage": "Ship {ship} is using more energy than allowed",
    "coverage": "Ship {ship} has gaps in its data{meter}",
    "anomaly": "Ship {ship} uses unusually much energy",
}


def labels(event: AlertEvent) -> dict[str, str]:
    out = {"alertname": event.rule, "ship": event.ship, "rule": event.rule,
           "severity": event.severity, "kind": event.kind, "service": "fleet-telemetry"}
    if event.meter:
        out["meter"] = event.meter
    return out


def annotations_for(event: AlertEvent, dashboard: str) -> dict[str, str]:
    meter = f" (meter {event.meter})" if event.meter else ""
    summary = _KIND_SUMMARY.get(event.kind, "Ship {ship}: alert {rule}{meter}").format(
        ship=event.ship, rule=event.rule, meter=meter)
    out = {"summary": summary,
           "description": f"{summary}: {event.detail.removeprefix('resolved: ')}. Rule "
                          f"{event.rule!r} ({event.kind}); retained state on MQTT topic "
                          f"{event.topic}."}
    if dashboard:
        out["dashboard"] = f"{dashboard}/#ship={event.ship}"
    return out


def alert_body(event: AlertEvent, starts_us: int, ends_us: int, dashboard: str) -> dict[str, Any]:
    body: dict[str, Any] = {"labels": labels(event), "annotations": annotations_for(event, dashboard),
                            "startsAt": format_datetime(starts_us),
                            "endsAt": format_datetime(ends_us)}
    if dashboard:
        body["generatorURL"] = f"{dashboard}/#ship={event.ship}"
    return body


class AlertmanagerSender(Worker):
    """A thread posting the firing alerts and the owed resolutions (see the module docstring)."""

    def __init__(self, url: str, engine: Engine, metrics: AlertMetrics, *, resend: float,
                 dashboard: str = "", now_us: Callable[[], int] | None = None) -> None:
        super().__init__("alertmanager")
        self.url = url.rstrip("/") + "/api/v2/alerts"
        self.engine = engine
        self.metrics = metrics
        self.resend = resend
        self.dashboard = dashboard
        self._now = now_us or (lambda: time.time_ns() // 1000)

    def notify(self, event: AlertEvent, _tracked: Tracked) -> None:
        """An engine listener: post at once on firing and resolution."""
        if event.state in {"firing", "resolved"}:
            self.wake()

    def _run(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.send_once()
            except Exception as exc:  # the thread must outlive any one failure
                self.metrics.delivery_failures.labels("alertmanager").inc()
                log.warning("Alertmanager at %s: %s; retrying in %.1fs", self.url, exc, backoff,
                            exc_info=not isinstance(exc, OSError))
                self._wake.wait(backoff)  # a new transition retries at once too
                backoff = min(MAX_BACKOFF, backoff * 2)
                continue
            backoff = 0.5
            self._wake.wait(self.resend)

    def send_once(self) -> int:
        """Post everything owed now; returns how many alerts were posted. Raises OSError."""
        now = self._now()
        firing = self.engine.firing()
        resolved = self.engine.pending_resolutions()
        if not firing and not resolved:
            return 0
        ends = now + int(max(4 * self.resend, 60) * US)
        body = [alert_body(t.event, t.fired_us, ends, self.dashboard) for t in firing]
        body += [alert_body(r.event, r.fired_us, r.event.since_us, self.dashboard)
                 for r in _latest(resolved, firing)]
        self._post(body)
        self.engine.delivered_to_alertmanager([t.event for t in firing], resolved)
        self.metrics.deliveries.labels("alertmanager").inc()
        return len(body)

    def _post(self, body: list[dict[str, Any]]) -> None:
        data = json.dumps(body).encode()
        req = urllib.request.Request(self.url, data=data, method="POST",  # noqa: S310
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - configured URL
                resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:300].decode("utf-8", "replace")
            raise OSError(f"HTTP {exc.code}: {detail}") from exc
        except urllib.error.URLError as exc:
            raise OSError(str(exc.reason)) from exc


def _latest(resolved: list[Resolution], firing: list[Tracked]) -> list[Resolution]:
    """One resolution per alert (the latest), and none for an alert that fires again now: its
    labels are the same, so the firing post already supersedes the old resolution."""
    again = {(t.event.ship, t.event.rule) for t in firing}
    latest: dict[tuple[str, str], Resolution] = {}
    for r in resolved:
        key = (r.event.ship, r.event.rule)
        if key not in again:
            latest[key] = r
    return list(latest.values())
