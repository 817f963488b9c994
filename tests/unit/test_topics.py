"""Topic strings and their parsing (fleet/topics.py)."""

from __future__ import annotations

import pytest

from fleet import topics
from fleet.topics import ShipTopic, parse_alert_topic, parse_ship_topic


def test_ship_topics() -> None:
    assert topics.readings("s-1") == "fleet/ships/s-1/readings"
    assert topics.status("s-1") == "fleet/ships/s-1/status"
    assert topics.ack("s-1") == "fleet/ships/s-1/ack"
    assert topics.rejected("s-1") == "fleet/ships/s-1/rejected"
    assert topics.energy("s-1") == "fleet/ships/s-1/energy"
    assert topics.ship_tree("s-1") == "fleet/ships/s-1/#"
    assert topics.READINGS_FILTER == "fleet/ships/+/readings"
    assert topics.STATUS_FILTER == "fleet/ships/+/status"
    assert topics.EVERYTHING == "fleet/#"
    assert topics.alert("s-1", "no-data") == "fleet/alerts/s-1/no-data"
    assert topics.ALERTS_FILTER == "fleet/alerts/#"


def test_readings_subscription_plain_or_shared() -> None:
    assert topics.readings_subscription("") == "fleet/ships/+/readings"
    assert topics.readings_subscription("bridges") == "$share/bridges/fleet/ships/+/readings"


@pytest.mark.parametrize(("topic", "expected"), [
    ("fleet/ships/s-1/readings", ShipTopic("s-1", "readings")),
    ("fleet/ships/A_b-9/status", ShipTopic("A_b-9", "status")),
    ("fleet/ships/s-1/anything", ShipTopic("s-1", "anything")),
    ("fleet/ships/s 1/readings", None),
    ("fleet/ships/" + "x" * 65 + "/readings", None),
    ("fleet/ships//readings", None),
    ("fleet/ships/s-1/", None),
    ("fleet/ships/s-1", None),
    ("fleet/ships/s-1/readings/extra", None),
    ("fleet/alerts/s-1/readings", None),
    ("other/ships/s-1/readings", None),
])
def test_parse_ship_topic(topic: str, expected: ShipTopic | None) -> None:
    assert parse_ship_topic(topic) == expected


@pytest.mark.parametrize("kind", topics.KINDS)
def test_every_built_topic_parses_back(kind: str) -> None:
    assert parse_ship_topic(topics.ship_topic("ship-7", kind)) == ShipTopic("ship-7", kind)


def test_parse_alert_topic() -> None:
    assert parse_alert_topic(topics.alert("s-1", "no-data")) == ("s-1", "no-data")
    assert parse_alert_topic("fleet/alerts/s-1") is None
    assert parse_alert_topic("fleet/ships/s-1/no-data") is None
    assert parse_alert_topic("fleet/alerts/bad id/r") is None
