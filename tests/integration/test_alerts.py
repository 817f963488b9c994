"""The alert service against real servers: Mosquitto, InfluxDB, the bridge, the query service and
Debian's Alertmanager, whose webhook receiver is served here (alerts/testdata/alertmanager.yml).

Rules use short durations (silent after 3 s) so the file stays quick. The alert is checked where
its users see it: the retained topic (as an operator), ``GET /v1/alerts`` and the notifications
Alertmanager sends to the webhook.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from fleet.config import load_config
from fleet.schema import Part, lines
from fleet.timeutil import US, WINDOW_US, floor_to, format_datetime, parse_datetime
from fleet.tokens import TokenStore, tokens_path
from launcher.alerts import TEST_CONFIG, alertmanager_binary, alertmanager_service, alerts_service
from launcher.servers import Service, free_port
from tests.conftest import MqttSession, Stack, eventually, start_stack, unique_ship
from tests.integration.test_dashboard import chromium

pytestmark = pytest.mark.integration

SILENT_FOR = 3.0
USAGE_SHIP = unique_ship("usage")
COVERAGE_SHIP = unique_ship("cov")
RULES = [
    {"name": "silent", "kind": "silent", "for": "3s"},
    {"name": "high-usage", "kind": "usage", "every": "1h", "above": 500.0,
     "ships": [USAGE_SHIP], "severity": "critical"},
    {"name": "gaps", "kind": "coverage", "over": "1h", "below": 0.9, "ships": [COVERAGE_SHIP]},
]
NOT_AUTHORIZED = 135


@dataclass
class Webhook:
    """Alertmanager's receiver: every alert of every notification, in arrival order."""

    server: ThreadingHTTPServer
    alerts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def seen(self, ship: str, rule: str, status: str) -> list[dict[str, Any]]:
        return [a for a in list(self.alerts) if a["status"] == status
                and a["labels"].get("ship") == ship and a["labels"].get("rule") == rule]


def _webhook() -> Webhook:
    hook = Webhook(ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            hook.alerts.extend(body["alerts"])
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    hook.server.RequestHandlerClass = Handler
    threading.Thread(target=hook.server.serve_forever, daemon=True).start()
    return hook


@dataclass
class AlertStack:
    stack: Stack
    env: dict[str, str]
    alerts: Service
    alertmanager: Service
    am_url: str
    hook: Webhook
    token: str
    operator: MqttSession
    operator_account: tuple[str, str]

    def start_alerts(self) -> None:
        self.alerts = alerts_service(load_config(env=self.env), self.env)
        self.alerts.start(timeout=30)

    def publish_reading(self, ship: str, password: str) -> int:
        """One kW reading stamped a second ago; returns when it was published (µs)."""
        now = time.time_ns() // 1000
        session = self.stack.client(ship, password)
        try:
            reason = session.publish(f"fleet/ships/{ship}/readings", {
                "units": "kW", "interval": "PT1M",
                "data": [{"datetime": format_datetime(floor_to(now - US, US)), "value": 2}]})
            assert not reason.is_failure, reason
        finally:
            session.close()
        return now

    def watch(self) -> None:
        """(Re)subscribe as the operator to fleet/alerts/#."""
        old = self.operator
        self.operator = self.stack.client(*self.operator_account)
        self.operator.subscribe("fleet/alerts/#")
        old.close()

    def state(self, ship: str, rule: str) -> dict[str, Any] | None:
        """The last retained state the operator saw on fleet/alerts/<ship>/<rule>."""
        topic = f"fleet/alerts/{ship}/{rule}"
        found = [m for m in list(self.operator.messages) if m.topic == topic]
        return json.loads(found[-1].payload) if found and found[-1].payload else None

    def api(self, **params: str) -> list[dict[str, Any]]:
        query = "?" + urllib.parse.urlencode(params) if params else ""
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.stack.cfg.http.port}/v1/alerts{query}",
            headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            alerts: list[dict[str, Any]] = json.loads(resp.read())["alerts"]
            return alerts

    def active(self, ship: str, rule: str) -> dict[str, Any] | None:
        return next((a for a in self.api(ship=ship) if a["rule"] == rule), None)

    def metric(self, name: str) -> float:
        url = f"http://127.0.0.1:{self.env['FLEET_ALERTS_METRICS_PORT']}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            for row in resp.read().decode().splitlines():
                if row.startswith(name + " "):
                    return float(row.split()[-1])
        return 0.0


@pytest.fixture(scope="module")
def al(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AlertStack]:
    binary = alertmanager_binary()
    if binary is None:
        pytest.fail("prometheus-alertmanager is not installed: run `make test`, which installs it")
    root = tmp_path_factory.mktemp("alerts")
    stack = start_stack(root)
    hook = _webhook()
    am_port = free_port()
    am_conf = root / "alertmanager.yml"
    am_conf.write_text(TEST_CONFIG.read_text().replace("WEBHOOK_URL", hook.url))
    alertmanager = alertmanager_service(root, am_port, am_conf, binary).start(timeout=30)
    stack.services.append(alertmanager)
    am_url = f"http://127.0.0.1:{am_port}"
    services = [(name, stack.accounts.ensure_service(name, role))
                for name, role in (("fleet-alerts", "alerts"), ("fleet-query", "query"))]
    operator = ("watcher", stack.accounts.add_operator("watcher"))
    stack.reload_accounts(*services, operator)
    token = TokenStore(tokens_path(stack.cfg.local.path)).create("alert-tests")
    env = stack.env_with(
        FLEET_ALERTS_RULES=json.dumps(RULES), FLEET_ALERTS_EVALUATION_INTERVAL="1s",
        FLEET_ALERTS_RESEND_INTERVAL="3s", FLEET_ALERTS_ALERTMANAGER_URL=am_url,
        FLEET_ALERTS_METRICS_PORT=str(free_port()), FLEET_ALERTS_STARTUP_GRACE="2s",
        FLEET_ALERTS_API_TOKEN=token)
    stack.env.update({k: v for k, v in env.items() if k.startswith("FLEET_ALERTS_")})
    stack.start_bridge(client_id="alerts-bridge")
    stack.start_query()
    watcher = stack.client(*operator)
    watcher.subscribe("fleet/alerts/#")
    al = AlertStack(stack, env, alerts_service(load_config(env=env), env), alertmanager, am_url,
                    hook, token, watcher, operator)
    al.start_alerts()
    try:
        yield al
    finally:
        al.operator.close()
        al.alerts.stop(timeout=10)
        hook.server.shutdown()
        hook.server.server_close()
        stack.stop()


def _silent_fires(al: AlertStack, ship: str, published_us: int) -> dict[str, Any]:
    state = eventually(lambda: (s := al.state(ship, "silent")) and s["state"] == "firing" and s,
                       timeout=SILENT_FOR + 5, message=f"{ship} silent not firing")
    assert parse_datetime(state["since"]) >= published_us  # since: last reading + for
    assert "no data stored" in state["detail"]
    return dict(state)


def test_silent_fires_on_time_and_resolves_everywhere(al: AlertStack) -> None:
    ship, password = al.stack.ship()
    first = al.publish_reading(ship, password)
    state = _silent_fires(al, ship, first)
    assert set(state) == {"ship", "rule", "state", "since", "detail"}
    active = eventually(lambda: al.active(ship, "silent"), timeout=5)
    assert active["state"] == "firing" and active["kind"] == "silent"
    firing = eventually(lambda: al.hook.seen(ship, "silent", "firing"), timeout=10)
    assert firing[0]["labels"]["alertname"] == "silent"
    assert firing[0]["labels"]["severity"] == "warning"
    assert ship in firing[0]["annotations"]["summary"]
    assert "no data stored" in firing[0]["annotations"]["description"]

    again = al.publish_reading(ship, password)
    resolved = eventually(lambda: (s := al.state(ship, "silent")) and s["state"] == "resolved"
                          and s, timeout=5, message="silent not resolved on the topic")
    assert parse_datetime(resolved["since"]) >= again - US
    eventually(lambda: al.active(ship, "silent") is None, timeout=5)
    eventually(lambda: al.hook.seen(ship, "silent", "resolved"), timeout=5)
    history = [a["state"] for a in al.api(state="all", ship=ship) if a["rule"] == "silent"]
    assert history == ["firing", "resolved"]


def test_silent_while_the_broker_and_influxdb_restart(al: AlertStack) -> None:
    ship, password = al.stack.ship()
    first = al.publish_reading(ship, password)
    # The service knows of the reading (its energy message arrived) before both go down; else it
    # would learn of it from InfluxDB once that is back.
    eventually(lambda: al.metric(
        f'fleet_alerts_ship_last_reading_timestamp_seconds{{ship="{ship}"}}') > 0, timeout=5)
    broker, influx = al.stack.broker, al.stack.influx
    broker.stop(timeout=20)  # SIGTERM: a clean restart of each
    influx.stop(timeout=20)
    broker.start(timeout=20)
    al.watch()  # a new operator session: the retained state is there, the alert service's too
    _silent_fires(al, ship, first)  # InfluxDB is still down: the history write waits
    influx.start(timeout=60)
    eventually(lambda: al.hook.seen(ship, "silent", "firing"), timeout=10)
    eventually(lambda: al.active(ship, "silent"), timeout=15, message="history never written")
    al.publish_reading(ship, password)
    eventually(lambda: (s := al.state(ship, "silent")) and s["state"] == "resolved", timeout=5)
    eventually(lambda: al.hook.seen(ship, "silent", "resolved"), timeout=5)
    eventually(lambda: [a["state"] for a in al.api(state="all", ship=ship)]
               == ["firing", "resolved"], timeout=10)
    assert len(al.hook.seen(ship, "silent", "firing")) == 1


def test_sigkill_while_firing_neither_fires_twice_nor_loses_the_resolve(al: AlertStack) -> None:
    ship, password = al.stack.ship()
    al.publish_reading(ship, password)
    _silent_fires(al, ship, 0)
    eventually(lambda: al.hook.seen(ship, "silent", "firing"), timeout=10)
    al.alerts.kill()  # SIGKILL
    al.start_alerts()
    # The new process has told Alertmanager about what fires (the same alert, same startsAt).
    eventually(lambda: al.metric('fleet_alerts_deliveries_total{target="alertmanager"}') >= 1,
               timeout=10)
    al.publish_reading(ship, password)
    eventually(lambda: al.hook.seen(ship, "silent", "resolved"), timeout=10)
    assert len(al.hook.seen(ship, "silent", "firing")) == 1
    history = [a["state"] for a in al.api(state="all", ship=ship) if a["rule"] == "silent"]
    assert history == ["firing", "resolved"]


def test_a_ship_that_reported_while_the_service_was_down_is_known(al: AlertStack) -> None:
    """Its last reading is learnt from InfluxDB at start: it is reported silent all the same."""
    ship, password = al.stack.ship()
    al.alerts.stop(timeout=10)
    published = al.publish_reading(ship, password)
    eventually(lambda: al.stack.influx_query(
        f"SELECT count(kwh) FROM energy WHERE ship = '{ship}'")[0].get("series"), timeout=10)
    al.start_alerts()
    _silent_fires(al, ship, published - US)


def _write(al: AlertStack, parts: list[Part]) -> None:
    cfg = al.stack.cfg.influxdb
    url = f"{cfg.url}/write?db={cfg.database}&rp={cfg.retention_policy}&precision=ns"
    req = urllib.request.Request(url, data=lines(parts).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 204


def _cross_usage_and_coverage(al: AlertStack) -> None:
    """Data that makes high-usage fire for USAGE_SHIP and gaps for COVERAGE_SHIP's shore meter.
    Written again it changes nothing (the same points), or, an hour or a window later, crosses
    the same thresholds again."""
    now = time.time_ns() // 1000
    hour = floor_to(now, 3600 * US)
    # 4 x 150 kWh in the current hour: 600 > 500.
    _write(al, [Part(USAGE_SHIP, hour + i * 60 * US, 150.0, 60.0) for i in range(4)])
    # The last hour's four complete windows, one of them half covered: 87.5% < 90%.
    end = floor_to(now, WINDOW_US)
    _write(al, [Part(COVERAGE_SHIP, end - (i + 1) * WINDOW_US, 1.0, 450.0 if i == 2 else 900.0,
                     meter="shore") for i in range(4)])


def test_usage_and_coverage_fire_on_data_that_crosses_them(al: AlertStack) -> None:
    _cross_usage_and_coverage(al)
    usage = eventually(lambda: (s := al.state(USAGE_SHIP, "high-usage")) and s["state"] == "firing"
                       and s, timeout=10, message="usage not firing")
    assert re.search(r"\b600 kWh in the 1h window", usage["detail"]), usage
    coverage = eventually(lambda: (s := al.state(COVERAGE_SHIP, "gaps")) and s["state"] == "firing"
                          and s, timeout=10, message="coverage not firing")
    assert "meter shore covered 87.5% of the last 1h" in coverage["detail"], coverage
    assert eventually(lambda: al.active(COVERAGE_SHIP, "gaps"), timeout=5)["meter"] == "shore"
    hooked = eventually(lambda: al.hook.seen(USAGE_SHIP, "high-usage", "firing"), timeout=10)
    assert hooked[0]["labels"]["severity"] == "critical"
    assert eventually(lambda: al.hook.seen(COVERAGE_SHIP, "gaps", "firing"),
                      timeout=10)[0]["labels"]["meter"] == "shore"
    assert al.metric('fleet_alerts_firing{rule="high-usage"}') == 1
    # fleetctl alerts lists them too (the operator's command line).
    out = subprocess.run([sys.executable, "-m", "fleetctl", "alerts", "--json"], env=al.env,
                         capture_output=True, text=True, check=True, timeout=30).stdout
    listed = {(a["ship"], a["rule"], a["state"]) for a in json.loads(out)}
    assert {(USAGE_SHIP, "high-usage", "firing"), (COVERAGE_SHIP, "gaps", "firing")} <= listed
    table = subprocess.run([sys.executable, "-m", "fleetctl", "alerts", "--ship", USAGE_SHIP],
                           env=al.env, capture_output=True, text=True, check=True,
                           timeout=30).stdout
    assert "high-usage" in table and "firing" in table and "600 kWh" in table


def test_dashboard_shows_active_alerts(al: AlertStack, tmp_path: Path) -> None:
    _cross_usage_and_coverage(al)  # its own alerts, whatever ran before it
    eventually(lambda: al.active(USAGE_SHIP, "high-usage"), timeout=10)
    eventually(lambda: al.active(COVERAGE_SHIP, "gaps"), timeout=10)
    base = f"http://127.0.0.1:{al.stack.cfg.http.port}/#token={al.token}"
    fleet_dom = chromium(base, tmp_path, "--dump-dom").stdout
    assert re.search(rf'<tr class="alert-firing severity-critical">.*?{USAGE_SHIP}.*?high-usage',
                     fleet_dom), fleet_dom[-3000:]
    ship_dom = chromium(f"{base}&ship={COVERAGE_SHIP}", tmp_path, "--dump-dom").stdout
    rows = re.findall(r'<tr class="alert-[a-z]+ severity-[a-z]+">.*?</tr>', ship_dom)
    assert rows and all(COVERAGE_SHIP in r for r in rows), rows
    assert any("gaps (shore)" in r for r in rows), rows


def test_ships_and_operators_cannot_write_alerts(al: AlertStack) -> None:
    ship, password = al.stack.ship()
    operator = f"op-{ship[-8:]}"
    operator_password = al.stack.accounts.add_operator(operator)
    al.stack.reload_accounts((operator, operator_password))
    victim = USAGE_SHIP
    before = al.state(victim, "high-usage")
    forged = {"ship": victim, "rule": "high-usage", "state": "resolved",
              "since": "2020-01-01T00:00:00Z", "detail": "forged"}
    for user, secret, topic in ((ship, password, f"fleet/alerts/{ship}/silent"),
                                (ship, password, f"fleet/alerts/{victim}/high-usage"),
                                (operator, operator_password, f"fleet/alerts/{victim}/high-usage")):
        session = eventually(lambda u=user, p=secret: (c := al.stack.client(u, p)).connected and c,
                             timeout=5, message=f"{user} cannot connect")
        try:
            reason = session.publish(topic, forged)
        finally:
            session.close()
        assert reason.value == NOT_AUTHORIZED, (user, topic, reason)
    assert al.state(victim, "high-usage") == before


def test_alertmanager_down_for_20s_loses_no_event(al: AlertStack) -> None:
    a, a_password = al.stack.ship()
    b, b_password = al.stack.ship()
    al.publish_reading(a, a_password)
    _silent_fires(al, a, 0)
    eventually(lambda: al.hook.seen(a, "silent", "firing"), timeout=10)

    failures = al.metric('fleet_alerts_delivery_failures_total{target="alertmanager"}')
    al.alertmanager.stop(timeout=10)
    down_at = time.monotonic()
    al.publish_reading(b, b_password)
    al.publish_reading(a, a_password)  # a resolves while Alertmanager is down
    eventually(lambda: (s := al.state(a, "silent")) and s["state"] == "resolved", timeout=5)
    _silent_fires(al, b, 0)  # b fires while Alertmanager is down
    eventually(lambda: al.metric('fleet_alerts_delivery_failures_total{target="alertmanager"}')
               > failures, timeout=10, message="no failed delivery while Alertmanager is down")
    time.sleep(max(0.0, 20 - (time.monotonic() - down_at)))  # the outage lasts 20 s
    assert al.metric("fleet_alerts_alertmanager_backlog") == 1  # a's resolve, kept
    al.alertmanager.start(timeout=30)

    eventually(lambda: al.hook.seen(b, "silent", "firing"), timeout=20,
               message="the firing sent during the outage never arrived")
    # a's resolve was accepted too. (Alertmanager 0.25 forgets at a restart which notifications
    # it sent since its last snapshot, so it does not notify a resolve of one it forgot.)
    eventually(lambda: al.metric("fleet_alerts_alertmanager_backlog") == 0, timeout=5,
               message="the resolve kept during the outage was never delivered")
    al.publish_reading(b, b_password)
    eventually(lambda: al.hook.seen(b, "silent", "resolved"), timeout=10)
