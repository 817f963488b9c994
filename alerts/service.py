"""The alert service's process: wires the engine to its inputs and deliveries, runs the timers.

Threads: the main one ticks ``silent`` and ``offline`` twice a second; ``evaluator`` runs the
query rules every ``[alerts] evaluation_interval``; ``learner`` reads each ship's last stored
reading from InfluxDB at start and after every broker reconnect; paho's thread follows the
topics; ``alertmanager`` and ``alert-history`` deliver. Timers start once the last readings are
known (or ``startup_grace`` has passed with InfluxDB down), so a restart does not report as
silent a ship that kept reporting while the service was away.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from prometheus_client import start_http_server

from alerts.alertmanager import AlertmanagerSender
from alerts.engine import TIMER_KINDS, Engine
from alerts.history import HistoryWriter
from alerts.metrics import AlertMetrics
from alerts.mqtt import AlertsMqtt
from alerts.sources import Sources, anomaly_condition, coverage_conditions, usage_conditions
from alerts.state import StateFile, Tracked
from fleet.alertevents import AlertEvent
from fleet.config import AlertRule, Config, load_config
from fleet.errors import FleetError, StoreError
from fleet.service import setup_logging, stop_on_signals
from fleet.store import InfluxStore
from fleet.tokens import TokenStore, tokens_path

log = logging.getLogger("alerts")

TICK = 0.5
API_TOKEN_NAME = "alerts-service"  # noqa: S105 - a token's name, not a secret


def _now_us() -> int:
    return time.time_ns() // 1000


def state_path(cfg: Config) -> Path:
    return Path(cfg.alerts.state_path) if cfg.alerts.state_path else (
        cfg.local.path / "alerts" / "state.json")


def api_token_path(data_dir: Path) -> Path:
    return Path(data_dir) / "alerts" / "api.token"


def ensure_api_token(data_dir: Path) -> str:
    """The read token the service calls the query service with (anomaly rules): kept in
    ``alerts/api.token`` (0600), stored hashed as the token ``alerts-service``; recreated when
    the file is missing or no longer matches. The launcher provisions it."""
    store = TokenStore(tokens_path(data_dir))
    path = api_token_path(data_dir)
    with contextlib.suppress(OSError):
        token = path.read_text(encoding="utf-8").strip()
        if token and store.verify(token) == API_TOKEN_NAME:
            return token
    token = store.create(API_TOKEN_NAME, replace=True)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.write_text(token + "\n", encoding="utf-8")
    path.chmod(0o600)
    return token


def _api_token(cfg: Config) -> str:
    if cfg.alerts.api_token:
        return cfg.alerts.api_token
    try:
        return api_token_path(cfg.local.path).read_text(encoding="utf-8").strip()
    except OSError:
        return ""


class AlertService:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.stop_event = threading.Event()
        self.metrics = AlertMetrics()
        self.engine = Engine(cfg.alerts.rules, StateFile(state_path(cfg)), _now_us)
        self.sources = Sources(cfg, _api_token(cfg))
        self.mqtt = AlertsMqtt(cfg, self.engine, self.metrics, self._relearn)
        self.history = HistoryWriter(InfluxStore(cfg.influxdb), self.engine, self.metrics)
        self.alertmanager: AlertmanagerSender | None = None
        if cfg.alerts.alertmanager_url:
            self.alertmanager = AlertmanagerSender(
                cfg.alerts.alertmanager_url, self.engine, self.metrics,
                resend=cfg.alerts.resend_seconds,
                dashboard=f"http://{cfg.http.host}:{cfg.http.port}")
        self._learn = threading.Event()
        self._learn.set()
        self.engine.listen(self._count)
        self.engine.listen(self.mqtt.publish)
        self.engine.listen(self.history.notify)
        if self.alertmanager is not None:
            self.engine.listen(self.alertmanager.notify)
        self.engine.retire()
        self.metrics.watch(self._firing_by_rule, self.engine.last_seen,
                           lambda: len(self.engine.pending_resolutions()))

    def _count(self, event: AlertEvent, _tracked: Tracked) -> None:
        self.metrics.transitions.labels(event.rule, event.state).inc()

    def _firing_by_rule(self) -> dict[str, int]:
        counts = Counter(t.event.rule for t in self.engine.firing())
        return {r.name: counts.get(r.name, 0) for r in self.cfg.alerts.rules}

    def _relearn(self) -> None:
        self._learn.set()

    # --- threads --------------------------------------------------------------------------------

    def _learner(self) -> None:
        started = time.monotonic()
        delay = 0.5
        created = not self.cfg.influxdb.create_database
        while not self.stop_event.is_set():
            if not self._learn.wait(0.5):
                continue
            try:
                if not created:
                    self.sources.store.ensure_database()
                    created = True
                last = self.sources.last_readings(_now_us())
            except StoreError as exc:
                log.warning("cannot learn the last readings from InfluxDB yet: %s", exc)
                if (not self.engine.timers_enabled
                        and time.monotonic() - started > self.cfg.alerts.startup_grace_seconds):
                    log.warning("starting the timers without InfluxDB's last readings")
                    self.engine.timers_enabled = True
                self.stop_event.wait(delay)
                delay = min(10.0, delay * 2)
                continue
            self._learn.clear()
            delay = 0.5
            for ship, at in last.items():
                self.engine.seen(ship, at)
            if not self.engine.timers_enabled:
                log.info("last readings of %d ships learnt from InfluxDB; timers on", len(last))
                self.engine.timers_enabled = True

    def _evaluate(self, rule: AlertRule) -> None:
        now = _now_us()
        ships = [s for s in self.engine.ships() if rule.applies_to(s)]
        if rule.kind == "usage":
            self.engine.apply(rule, usage_conditions(rule, self.sources.usage(rule, now),
                                                     ships, now))
        elif rule.kind == "coverage":
            self.engine.apply(rule, coverage_conditions(rule, self.sources.coverage(rule, now),
                                                        ships, now))
        elif rule.kind == "anomaly":
            self.engine.apply(rule, {s: anomaly_condition(rule, self.sources.anomalies(rule, s, now),
                                                          now) for s in ships})

    def _evaluator(self) -> None:
        query_rules = [r for r in self.cfg.alerts.rules if r.kind not in TIMER_KINDS]
        if not query_rules:
            return
        while not self.stop_event.is_set():
            started = time.monotonic()
            if self.engine.timers_enabled:  # the known ships are known
                for rule in query_rules:
                    try:
                        self._evaluate(rule)
                    except (StoreError, OSError) as exc:
                        self.metrics.evaluation_errors.labels(rule.name).inc()
                        log.warning("rule %s not evaluated: %s", rule.name, exc)
                    except Exception:  # keep evaluating the other rules, and this one next time
                        self.metrics.evaluation_errors.labels(rule.name).inc()
                        log.exception("rule %s failed", rule.name)
                    else:
                        self.metrics.evaluations.labels(rule.name).inc()
                wait = self.cfg.alerts.evaluation_seconds - (time.monotonic() - started)
            else:
                wait = TICK
            self.stop_event.wait(max(0.1, wait))

    def run(self) -> int:
        if self.cfg.alerts.metrics_port:
            start_http_server(self.cfg.alerts.metrics_port, addr=self.cfg.http.host,
                              registry=self.metrics.registry)
            log.info("metrics on http://%s:%d/metrics", self.cfg.http.host,
                     self.cfg.alerts.metrics_port)
        log.info("alert service: %d rules (%s); Alertmanager %s; state in %s",
                 len(self.cfg.alerts.rules),
                 ", ".join(f"{r.name}={r.kind}" for r in self.cfg.alerts.rules) or "none",
                 self.cfg.alerts.alertmanager_url or "off", state_path(self.cfg))
        threads = [threading.Thread(target=self._learner, name="learner", daemon=True),
                   threading.Thread(target=self._evaluator, name="evaluator", daemon=True)]
        for t in threads:
            t.start()
        self.history.start()
        if self.alertmanager is not None:
            self.alertmanager.start()
        self.mqtt.start()
        timer_rules = [r for r in self.cfg.alerts.rules if r.kind in TIMER_KINDS]
        while not self.stop_event.wait(TICK):
            self.engine.tick()
            if self.engine.timers_enabled:
                for rule in timer_rules:
                    self.metrics.evaluations.labels(rule.name).inc()
        self.mqtt.stop()
        self.engine.flush()
        if self.alertmanager is not None:
            self.alertmanager.stop()
        self.history.stop()
        self.sources.close()
        log.info("alert service stopped")
        return 0


def run(cfg: Config) -> int:
    service = AlertService(cfg)
    stop_on_signals(log, "stopping", service.stop_event)
    return service.run()


def main() -> int:
    setup_logging()
    try:
        cfg = load_config()
        return run(cfg)
    except FleetError as exc:
        print(f"fleet-alerts: {exc}", file=sys.stderr)
        return 2
