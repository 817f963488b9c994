"""Alert states and their history: the retained topic's JSON and the ``alert_events`` measurement.

One module for what the alert service writes and what the query service and ``fleetctl alerts``
read (CONTRACT section 8):

- ``fleet/alerts/<ship>/<rule>`` (retained) carries ``{"ship", "rule", "state", "since",
  "detail"}``; ``state`` is ``pending``, ``firing`` or ``resolved``.
- Every transition is also a point of the InfluxDB measurement ``alert_events`` (tags ``ship``,
  ``rule``; string fields ``state``, ``detail``, ``kind``, ``severity``, ``meter``), stamped with
  the transition's ``since``. The latest point of a (ship, rule) series is its current state, so
  the active alerts are the series whose last point is pending or firing, and a time range of
  points is the history.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from fleet import topics
from fleet.schema import RULE_NAME_RE, SHIP_ID, quote_ident, quote_string
from fleet.timeutil import format_datetime, parse_datetime

MEASUREMENT: Final = "alert_events"
STATES: Final = ("pending", "firing", "resolved")
ACTIVE: Final = ("pending", "firing")


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One transition of one ship's rule. ``since_us``: when the new state began (UTC, µs)."""

    ship: str
    rule: str
    state: str
    since_us: int
    detail: str = ""
    kind: str = ""
    severity: str = "warning"
    meter: str = ""

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise ValueError(f"bad alert state {self.state!r}")
        if not SHIP_ID.fullmatch(self.ship) or not RULE_NAME_RE.fullmatch(self.rule):
            raise ValueError(f"bad alert key {self.ship!r}/{self.rule!r}")

    @property
    def topic(self) -> str:
        return topics.alert(self.ship, self.rule)

    def payload(self) -> str:
        """The retained topic's JSON, exactly the keys of CONTRACT section 8."""
        return json.dumps({"ship": self.ship, "rule": self.rule, "state": self.state,
                           "since": format_datetime(self.since_us), "detail": self.detail},
                          separators=(",", ":"))

    def as_json(self) -> dict[str, Any]:
        """The HTTP API's and ``fleetctl alerts``' form: the topic's keys plus kind, severity and
        meter (null when the rule is not about one meter)."""
        return {"ship": self.ship, "rule": self.rule, "state": self.state,
                "since": format_datetime(self.since_us), "detail": self.detail,
                "kind": self.kind, "severity": self.severity, "meter": self.meter or None}

    def line(self, time_us: int | None = None) -> str:
        """Line protocol (nanoseconds) for ``alert_events``; ``time_us`` overrides the stamp."""
        fields = ",".join(f"{k}={_field(v)}" for k, v in (
            ("state", self.state), ("detail", self.detail), ("kind", self.kind),
            ("severity", self.severity), ("meter", self.meter)))
        stamp = self.since_us if time_us is None else time_us
        return f"{MEASUREMENT},rule={self.rule},ship={self.ship} {fields} {stamp * 1000}"


def _field(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def event_from_payload(ship: str, rule: str, payload: bytes) -> AlertEvent | None:
    """The state a retained alert message holds; None for an empty (cleared) or unreadable one."""
    try:
        doc = json.loads(payload)
        return AlertEvent(ship, rule, str(doc["state"]), parse_datetime(doc["since"]),
                          str(doc.get("detail", "")))
    except (ValueError, KeyError, TypeError):
        return None


def _source(database: str, retention_policy: str) -> str:
    return f"{quote_ident(database)}.{quote_ident(retention_policy)}.{quote_ident(MEASUREMENT)}"


def active_query(database: str, retention_policy: str, ship: str | None = None) -> str:
    """InfluxQL for each (ship, rule)'s latest event; keep those whose state is active."""
    where = f" WHERE {quote_ident('ship')} = {quote_string(ship)}" if ship else ""
    return (f"SELECT * FROM {_source(database, retention_policy)}{where} "
            "GROUP BY \"ship\", \"rule\" ORDER BY time DESC LIMIT 1")


def history_query(database: str, retention_policy: str, start_us: int, end_us: int,
                  ship: str | None = None, limit: int = 10000) -> str:
    """InfluxQL for every event in [start, end), oldest first."""
    where = f"time >= {start_us}u AND time < {end_us}u"
    if ship:
        where = f"{quote_ident('ship')} = {quote_string(ship)} AND {where}"
    return (f"SELECT * FROM {_source(database, retention_policy)} WHERE {where} "
            f"GROUP BY \"ship\", \"rule\" LIMIT {int(limit)}")


def events_from_series(series: Iterable[tuple[Mapping[str, str], list[str], list[list[Any]]]]
                       ) -> list[AlertEvent]:
    """Events from InfluxDB series given as (tags, columns, values); times in epoch µs.

    Sorted by time, then ship and rule; points that do not read as events are skipped.
    """
    out: list[AlertEvent] = []
    for tags, columns, values in series:
        for row in values:
            cell = dict(zip(columns, row, strict=False))
            try:
                out.append(AlertEvent(
                    ship=str(tags.get("ship") or cell.get("ship")),
                    rule=str(tags.get("rule") or cell.get("rule")),
                    state=str(cell.get("state")), since_us=int(cell["time"]),
                    detail=str(cell.get("detail") or ""), kind=str(cell.get("kind") or ""),
                    severity=str(cell.get("severity") or "warning"),
                    meter=str(cell.get("meter") or "")))
            except (ValueError, KeyError, TypeError):
                continue
    out.sort(key=lambda e: (e.since_us, e.ship, e.rule))
    return out


def results_series(results: list[dict[str, Any]]
                   ) -> list[tuple[Mapping[str, str], list[str], list[list[Any]]]]:
    """The (tags, columns, values) of an InfluxDB ``results`` list (sync client answers)."""
    return [(s.get("tags") or {}, s.get("columns") or [], s.get("values") or [])
            for r in results for s in r.get("series", [])]
