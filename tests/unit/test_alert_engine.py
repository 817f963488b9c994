"""The alert service's pure parts: rule configuration, the state machine, topic and history forms."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from alerts.alertmanager import alert_body
from alerts.engine import Condition, Engine, silent_condition
from alerts.sources import anomaly_condition, coverage_conditions, usage_conditions
from alerts.state import StateFile
from fleet.accounts import acl_rules
from fleet.alertevents import AlertEvent, events_from_series
from fleet.config import AlertRule, load_config, parse_rules, parse_span
from fleet.errors import ConfigError
from fleet.timeutil import US, parse_datetime
from fleet.topics import parse_alert_topic

ROOT = Path(__file__).resolve().parents[2]
T0 = parse_datetime("2026-01-01T00:00:00Z")


@pytest.mark.parametrize(("value", "seconds"), [
    ("30m", 1800), ("1h30m", 5400), ("6h", 21600), ("2d", 172800), ("45s", 45), ("1w", 604800),
    ("PT15M", 900), (3, 3), ("0.5s", 0.5)])
def test_parse_span(value: object, seconds: float) -> None:
    assert parse_span(value) == seconds


@pytest.mark.parametrize(("rule", "message"), [
    ({"kind": "silent", "for": "1m"}, "alerts.rules[0].name"),
    ({"name": "a/b", "kind": "silent", "for": "1m"}, "alerts.rules[0].name"),
    ({"name": "x", "kind": "loud"}, "alerts.rules[0] (x).kind must be one of silent, offline"),
    ({"name": "x", "kind": "silent"}, "alerts.rules[0] (x).for is required"),
    ({"name": "x", "kind": "silent", "for": "soon"}, "alerts.rules[0] (x).for"),
    ({"name": "x", "kind": "usage"}, "(x).above is required"),
    ({"name": "x", "kind": "usage", "above": "lots"}, "(x).above must be a number"),
    ({"name": "x", "kind": "usage", "above": 1, "every": "2h"}, "(x).every must be one of"),
    ({"name": "x", "kind": "usage", "above": 1, "below": 2}, "unknown key(s) for kind usage: below"),
    ({"name": "x", "kind": "coverage", "over": "6h", "below": 1.5}, "(x).below must be a share"),
    ({"name": "x", "kind": "coverage", "over": "10m", "below": 0.5}, "(x).over must be a whole"),
    ({"name": "x", "kind": "silent", "for": "1m", "ships": ["ok", "no way"]}, "(x).ships"),
    ({"name": "x", "kind": "silent", "for": "1m", "severity": "dire"}, "(x).severity"),
])
def test_rule_errors_name_the_key(rule: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_rules([rule])
    assert message in str(info.value)


def test_rule_names_are_unique() -> None:
    with pytest.raises(ConfigError, match="unique: a"):
        parse_rules([{"name": "a", "kind": "silent", "for": "1m"},
                     {"name": "a", "kind": "offline", "for": "1m"}])


def test_the_example_rules_load(tmp_path: Path) -> None:
    """The commented [[alerts.rules]] of config.example.toml are CONTRACT section 8's and load."""
    text = (ROOT / "config.example.toml").read_text()
    block = text[text.index("## [[alerts.rules]]"):]
    f = tmp_path / "c.toml"
    f.write_text("[alerts]\n" + "\n".join(line.removeprefix("##").removeprefix(" ")
                                          for line in block.splitlines()))
    rules = load_config(f, env={}).alerts.rules
    assert [(r.name, r.kind) for r in rules] == [
        ("silent", "silent"), ("high-usage", "usage"), ("gaps", "coverage")]
    assert rules[0].for_seconds == 1800 and rules[1].above == 500 and rules[2].below == 0.9
    env_rules = load_config(env={"FLEET_ALERTS_RULES": json.dumps(
        [{"name": "s", "kind": "silent", "for": "3s"}])}).alerts.rules
    assert env_rules == (AlertRule("s", "silent", for_seconds=3.0, every="15m"),)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


def _engine(tmp_path: Path, rules: tuple[AlertRule, ...], clock: Clock) -> tuple[Engine, list[str]]:
    engine = Engine(rules, StateFile(tmp_path / "state.json"), clock)
    engine.timers_enabled = True
    seen: list[str] = []
    engine.listen(lambda e, _t: seen.append(f"{e.ship}/{e.rule}:{e.state}"))
    return engine, seen


SILENT = AlertRule("silent", "silent", for_seconds=30)


def test_silent_fires_at_last_reading_plus_for_and_resolves_on_data(tmp_path: Path) -> None:
    clock = Clock()
    engine, seen = _engine(tmp_path, (SILENT,), clock)
    engine.seen("a", T0)
    clock.now = T0 + 29 * US
    engine.tick()
    assert seen == []  # no pending phase for silent
    clock.now = T0 + 31 * US
    engine.tick()
    assert seen == ["a/silent:firing"]
    fired = engine.state.alerts["a/silent"]
    assert fired.event.since_us == T0 + 30 * US and fired.fired_us == T0 + 30 * US
    engine.tick()
    assert seen == ["a/silent:firing"]  # once
    engine.seen("a", T0 + 40 * US)
    clock.now = T0 + 40 * US + 500_000
    engine.tick()
    assert seen == ["a/silent:firing", "a/silent:resolved"]
    assert engine.state.alerts["a/silent"].event.since_us == T0 + 40 * US
    assert [r.fired_us for r in engine.state.am_resolved] == [T0 + 30 * US]
    stamps = [s for _e, s in engine.state.history]
    assert stamps == sorted(set(stamps)) and len(stamps) == 2


def test_a_restart_neither_fires_again_nor_misses_the_resolve(tmp_path: Path) -> None:
    clock = Clock()
    engine, seen = _engine(tmp_path, (SILENT,), clock)
    engine.seen("a", T0)
    clock.now = T0 + 60 * US
    engine.tick()
    assert seen == ["a/silent:firing"]
    again, seen_again = _engine(tmp_path, (SILENT,), clock)  # same state file: a "restart"
    again.tick()
    assert seen_again == []
    again.seen("a", T0 + 70 * US)
    clock.now = T0 + 71 * US
    again.tick()
    assert seen_again == ["a/silent:resolved"]
    assert len(again.state.history) == 2  # the firing not yet written, and the resolve


def test_alerts_of_a_removed_rule_are_resolved_at_start(tmp_path: Path) -> None:
    clock = Clock()
    engine, _ = _engine(tmp_path, (SILENT,), clock)
    engine.seen("a", T0)
    clock.now = T0 + 60 * US
    engine.tick()
    assert engine.state.alerts["a/silent"].event.state == "firing"
    later, seen = _engine(tmp_path, (), clock)  # restarted without the rule
    later.retire()
    assert seen == ["a/silent:resolved"]
    assert "the rule was removed" in later.state.alerts["a/silent"].event.detail
    assert len(later.state.am_resolved) == 1  # Alertmanager is told it ended


def test_offline_is_pending_then_firing_then_resolved(tmp_path: Path) -> None:
    rule = AlertRule("away", "offline", for_seconds=10)
    clock = Clock()
    engine, seen = _engine(tmp_path, (rule,), clock)
    engine.presence("a", "offline", T0)
    engine.tick()
    assert seen == ["a/away:pending"]
    clock.now = T0 + 10 * US
    engine.tick()
    assert seen == ["a/away:pending", "a/away:firing"]
    assert engine.state.alerts["a/away"].event.since_us == T0 + 10 * US
    engine.presence("a", "online", T0 + 12 * US)
    clock.now = T0 + 12 * US
    engine.tick()
    assert seen[-1] == "a/away:resolved"


def test_query_rules_fire_at_once_or_after_for(tmp_path: Path) -> None:
    usage = AlertRule("high", "usage", above=10, every="1h")
    held = AlertRule("held", "usage", above=10, every="1h", for_seconds=60)
    clock = Clock()
    engine, seen = _engine(tmp_path, (usage, held), clock)
    engine.apply(usage, {"a": Condition(True, T0, "x")})
    engine.apply(held, {"a": Condition(True, T0, "x")})
    assert seen == ["a/high:firing", "a/held:pending"]
    clock.now = T0 + 61 * US
    engine.apply(held, {"a": Condition(True, clock.now, "x")})
    assert seen[-1] == "a/held:firing"
    engine.apply(usage, {"a": Condition(False, clock.now, "ok"), "b": Condition(False, 0, "ok")})
    assert seen[-1] == "a/high:resolved" and "b/high" not in engine.state.alerts


def test_rules_limited_to_ships() -> None:
    rule = AlertRule("s", "silent", for_seconds=1, ships=("a",))
    assert rule.applies_to("a") and not rule.applies_to("b")
    assert silent_condition(rule, T0, T0 + 2 * US).active


def test_usage_and_coverage_conditions() -> None:
    usage = AlertRule("u", "usage", above=500, every="1h")
    got = usage_conditions(usage, {"a": [(T0, 600.0)], "b": [(T0, 400.0)]}, ["c"], T0)
    assert got["a"].active and "600 kWh in the 1h window from 2026-01-01T00:00:00Z" in got["a"].detail
    assert not got["b"].active and not got["c"].active
    cov = AlertRule("g", "coverage", over_seconds=3600, below=0.9)
    got = coverage_conditions(cov, {"a": {"main": 3600.0, "shore": 1800.0},
                                    "b": {"main": 3600.0}}, ["a", "b", "c"], T0)
    assert got["a"].active and got["a"].meter == "shore"
    assert "meter shore covered 50.0% of the last 1h" in got["a"].detail
    assert not got["b"].active
    assert got["c"].active and "covered 0.0%" in got["c"].detail  # known, no data at all


def test_anomaly_condition() -> None:
    rule = AlertRule("odd", "anomaly", above=3.5, every="15m", over_seconds=3600)
    doc = {"anomalies": [
        {"time": "2026-01-01T00:00:00Z", "kwh": 9.0, "median": 2.0, "scale": 1.0, "score": 7.0},
        {"time": "2026-01-01T00:15:00Z", "kwh": 0.1, "median": 2.0, "scale": 1.0, "score": -4.0}]}
    cond = anomaly_condition(rule, doc, T0)
    assert cond.active and "score 7" in cond.detail and "2026-01-01T00:00:00Z" in cond.detail
    assert not anomaly_condition(rule, {"anomalies": doc["anomalies"][1:]}, T0).active


def test_topic_payload_has_exactly_the_contract_keys() -> None:
    event = AlertEvent("a", "silent", "firing", T0, 'no "data"', "silent", "warning", "")
    assert event.topic == "fleet/alerts/a/silent"
    assert json.loads(event.payload()) == {"ship": "a", "rule": "silent", "state": "firing",
                                           "since": "2026-01-01T00:00:00Z",
                                           "detail": 'no "data"'}
    assert parse_alert_topic("fleet/alerts/a/silent") == ("a", "silent")
    assert parse_alert_topic("fleet/ships/a/status") is None
    line = event.line(T0 + 1)
    assert line.startswith("alert_events,rule=silent,ship=a state=\"firing\",detail=\"no \\\"data\\\"\"")
    assert line.endswith(f" {(T0 + 1) * 1000}")
    with pytest.raises(ValueError, match="state"):
        AlertEvent("a", "silent", "burning", T0)


def test_events_from_series() -> None:
    series = [({"ship": "a", "rule": "r"}, ["time", "detail", "kind", "meter", "severity", "state"],
               [[T0, "d", "usage", "", "critical", "firing"]]),
              ({"ship": "b", "rule": "r"}, ["time", "state"], [[T0 - 1, "pending"], [T0, "bogus"]])]
    events = events_from_series(series)
    assert [(e.ship, e.state) for e in events] == [("b", "pending"), ("a", "firing")]
    assert events[1].as_json()["meter"] is None and events[1].severity == "critical"


def test_alertmanager_body() -> None:
    event = AlertEvent("a", "gaps", "firing", T0, "meter shore covered 50%", "coverage",
                       "warning", "shore")
    body = alert_body(event, T0, T0 + 240 * US, "http://127.0.0.1:8080")
    assert body["labels"] == {"alertname": "gaps", "ship": "a", "rule": "gaps",
                              "severity": "warning", "kind": "coverage",
                              "service": "fleet-telemetry", "meter": "shore"}
    assert body["annotations"]["summary"] == "Ship a has gaps in its data (meter shore)"
    assert "meter shore covered 50%" in body["annotations"]["description"]
    assert body["startsAt"] == "2026-01-01T00:00:00Z"
    assert body["endsAt"] == "2026-01-01T00:04:00Z"


def test_alerts_account_publishes_only_alerts() -> None:
    rules = acl_rules("fleet-alerts", "alerts")
    writes = [r for r in rules if re.match(r"topic (write|readwrite) ", r)]
    assert writes == ["topic readwrite fleet/alerts/#"]
    assert not any("fleet/alerts" in r for r in acl_rules("s1", "ship"))
    assert acl_rules("op", "operator") == ["topic read fleet/#"]
