"""The alert service's durable state: one JSON file, rewritten atomically at every change.

What it holds, so that a restart (SIGKILL included) neither fires twice nor misses a transition:

- ``alerts``: per ``<ship>/<rule>`` the current state (pending, firing, resolved), since when,
  the detail, and whether Alertmanager was told it fired;
- ``last_seen``: per ship, when its data was last stored (epoch µs), and ``presence``: who is
  offline since when;
- ``history``: transitions not yet written to InfluxDB (``alert_events``), in order;
- ``am_resolved``: resolutions not yet accepted by Alertmanager.

A transition and the deliveries it owes are written in the same file replacement, so after a
crash either both exist or neither does.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fleet.alertevents import AlertEvent
from fleet.errors import FleetError

log = logging.getLogger(__name__)

VERSION = 1


@dataclass(slots=True)
class Tracked:
    """The current state of one ship's rule. ``fired_us``: when its current firing began (the
    Alertmanager ``startsAt``), kept through the resolution."""

    event: AlertEvent
    fired_us: int = 0
    notified: bool = False  # Alertmanager accepted it as firing at least once


@dataclass(slots=True)
class Resolution:
    """A resolution Alertmanager has not accepted yet."""

    event: AlertEvent
    fired_us: int


@dataclass(slots=True)
class State:
    alerts: dict[str, Tracked] = field(default_factory=dict)
    last_seen: dict[str, int] = field(default_factory=dict)
    presence: dict[str, tuple[str, int]] = field(default_factory=dict)
    history: list[tuple[AlertEvent, int]] = field(default_factory=list)  # (event, stamp µs)
    history_last: dict[str, int] = field(default_factory=dict)
    am_resolved: list[Resolution] = field(default_factory=list)


def _event(doc: dict[str, Any]) -> AlertEvent:
    return AlertEvent(**doc)


def to_json(state: State) -> dict[str, Any]:
    return {
        "version": VERSION,
        "alerts": {k: {"event": asdict(t.event), "fired_us": t.fired_us, "notified": t.notified}
                   for k, t in sorted(state.alerts.items())},
        "last_seen": dict(sorted(state.last_seen.items())),
        "presence": {k: list(v) for k, v in sorted(state.presence.items())},
        "history": [{"event": asdict(e), "stamp_us": s} for e, s in state.history],
        "history_last": dict(sorted(state.history_last.items())),
        "am_resolved": [{"event": asdict(r.event), "fired_us": r.fired_us}
                        for r in state.am_resolved],
    }


def from_json(doc: dict[str, Any]) -> State:
    if doc.get("version") != VERSION:
        raise ValueError(f"unknown state version {doc.get('version')!r}")
    return State(
        alerts={k: Tracked(_event(v["event"]), int(v["fired_us"]), bool(v["notified"]))
                for k, v in doc["alerts"].items()},
        last_seen={k: int(v) for k, v in doc["last_seen"].items()},
        presence={k: (str(v[0]), int(v[1])) for k, v in doc["presence"].items()},
        history=[(_event(h["event"]), int(h["stamp_us"])) for h in doc["history"]],
        history_last={k: int(v) for k, v in doc["history_last"].items()},
        am_resolved=[Resolution(_event(r["event"]), int(r["fired_us"]))
                     for r in doc["am_resolved"]],
    )


class StateFile:
    """Load and save :class:`State` at ``path`` (atomic replace, fsynced)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def load(self) -> State:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return State()
        except OSError as exc:
            raise FleetError(f"cannot read the alert state {self.path}: {exc}") from exc
        try:
            return from_json(json.loads(text))
        except (ValueError, KeyError, TypeError) as exc:
            # Refuse to start over silently: that would fire every alert again.
            raise FleetError(f"the alert state {self.path} is unreadable ({exc}); move it "
                             "away to start with no alerts") from exc

    def save(self, state: State) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps(to_json(state), separators=(",", ":"))
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.",
                                   suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            Path(tmp).replace(self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
