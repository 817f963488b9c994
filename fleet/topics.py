"""Every MQTT topic of the system, built and parsed in one place (CONTRACT section 2).

Per ship, under ``fleet/ships/<ship>/``: ``readings`` (ship -> bridge), ``status`` (retained
presence, ship -> everyone), ``ack`` and ``rejected`` (bridge -> ship), ``energy`` (bridge ->
subscribers), ``rollup`` (bridge -> query service: the ship's coarse values were rewritten).
Alerts live under ``fleet/alerts/<ship>/<rule>``. Operators read ``fleet/#``.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleet.schema import SHIP_ID

ROOT = "fleet"
SHIPS = f"{ROOT}/ships"
ALERTS = f"{ROOT}/alerts"
EVERYTHING = f"{ROOT}/#"  # what an operator (and the query service's account) may read

READINGS = "readings"
STATUS = "status"
ACK = "ack"
REJECTED = "rejected"
ENERGY = "energy"
# bridge -> query service: the ship's coarse values were rewritten (query_service/cache.py).
ROLLUP = "rollup"
KINDS = (READINGS, STATUS, ACK, REJECTED, ENERGY, ROLLUP)


def ship_topic(ship: str, kind: str) -> str:
    """``fleet/ships/<ship>/<kind>``."""
    return f"{SHIPS}/{ship}/{kind}"


def readings(ship: str) -> str:
    return ship_topic(ship, READINGS)


def status(ship: str) -> str:
    return ship_topic(ship, STATUS)


def ack(ship: str) -> str:
    return ship_topic(ship, ACK)


def rejected(ship: str) -> str:
    return ship_topic(ship, REJECTED)


def energy(ship: str) -> str:
    return ship_topic(ship, ENERGY)


def rollup(ship: str) -> str:
    return ship_topic(ship, ROLLUP)


def ship_tree(ship: str) -> str:
    """``fleet/ships/<ship>/#``: everything of one ship (a ship reads its own tree)."""
    return f"{SHIPS}/{ship}/#"


def every_ship(kind: str) -> str:
    """The filter ``fleet/ships/+/<kind>``: that kind of topic of every ship."""
    return ship_topic("+", kind)


READINGS_FILTER = every_ship(READINGS)
STATUS_FILTER = every_ship(STATUS)
ALERTS_FILTER = f"{ALERTS}/#"
# The marker the launcher sends the bridges when [bridge] workers changes (bridge/partition.py).
BRIDGE_HANDOFF = f"{ROOT}/bridges/handoff"
# Never subscribed: the query cache's UNSUBSCRIBE of it is a pure round trip to the broker.
QUERY_CACHE_BARRIER = f"{ROOT}/query-cache/barrier"


def readings_subscription(shared_group: str = "") -> str:
    """The bridge's subscription: ``fleet/ships/+/readings``, or ``$share/<group>/...``."""
    return f"$share/{shared_group}/{READINGS_FILTER}" if shared_group else READINGS_FILTER


@dataclass(frozen=True, slots=True)
class ShipTopic:
    """A parsed ``fleet/ships/<ship>/<kind>`` topic."""

    ship: str
    kind: str


def parse_ship_topic(topic: str) -> ShipTopic | None:
    """Ship and kind of ``fleet/ships/<ship>/<kind>``; None for any other topic or a bad ship id.

    The kind is not checked against :data:`KINDS`: a subscriber knows which kind it asked for.
    """
    parts = topic.split("/")
    if (len(parts) != 4 or f"{parts[0]}/{parts[1]}" != SHIPS or not parts[3]
            or not SHIP_ID.fullmatch(parts[2])):
        return None
    return ShipTopic(parts[2], parts[3])


def alert(ship: str, rule: str) -> str:
    """``fleet/alerts/<ship>/<rule>``."""
    return f"{ALERTS}/{ship}/{rule}"


def parse_alert_topic(topic: str) -> tuple[str, str] | None:
    """(ship, rule) of ``fleet/alerts/<ship>/<rule>``; None for any other topic."""
    parts = topic.split("/")
    if (len(parts) != 4 or f"{parts[0]}/{parts[1]}" != ALERTS or not parts[3]
            or not SHIP_ID.fullmatch(parts[2])):
        return None
    return parts[2], parts[3]
