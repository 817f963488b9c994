"""Rules in, transitions out: the state machine of every (ship, rule), thread-safe.

Inputs: when each ship's data was last stored (:meth:`Engine.seen`), presence
(:meth:`Engine.presence`), and per query rule the conditions its evaluation found
(:meth:`Engine.apply`). :meth:`Engine.tick` evaluates ``silent`` and ``offline`` against the clock,
so they fire on time whether or not any message flows.

States: a condition that starts holding makes the alert ``pending`` (announced on its topic, not
to Alertmanager); once it has held for the rule's ``for`` it is ``firing``; when it stops holding
the alert is ``resolved``. ``silent`` has no pending phase: its ``for`` is part of the condition
itself (no data stored for ``for``), so it fires at last reading + ``for``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from alerts.state import Resolution, State, StateFile, Tracked
from fleet.alertevents import ACTIVE, AlertEvent
from fleet.config import AlertRule
from fleet.timeutil import US, format_datetime

log = logging.getLogger(__name__)

TIMER_KINDS = ("silent", "offline")
# Last readings and presence alone are saved at most this often (transitions at once): at a
# restart InfluxDB's last readings and the retained statuses make up for what was not saved.
SAVE_EVERY_US = 2 * US


@dataclass(frozen=True, slots=True)
class Condition:
    """What one evaluation found for one ship: whether the rule's condition holds, since when
    (``began_us``: for silent, last reading + for; when not holding, when it stopped), why."""

    active: bool
    began_us: int
    detail: str = ""
    meter: str = ""


def span_text(seconds: float) -> str:
    s = round(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size and s % size == 0:
            return f"{s // size}{unit}"
    return f"{s}s"


def silent_condition(rule: AlertRule, last_us: int, now_us: int) -> Condition:
    due = last_us + int(rule.for_seconds * US)
    if now_us >= due:
        return Condition(True, due, f"no data stored for {span_text((now_us - last_us) / US)} "
                                    f"(last at {format_datetime(last_us)}; rule: silent for "
                                    f"{span_text(rule.for_seconds)})")
    return Condition(False, last_us, f"data stored at {format_datetime(last_us)}")


def offline_condition(rule: AlertRule, presence: tuple[str, int] | None, now_us: int) -> Condition:
    if presence is not None and presence[0] == "offline":
        return Condition(True, presence[1], f"offline since {format_datetime(presence[1])} "
                                            f"(rule: offline for {span_text(rule.for_seconds)})")
    return Condition(False, presence[1] if presence else now_us, "online")


Listener = Callable[[AlertEvent, Tracked], None]


class Engine:
    """The states of every (ship, rule), persisted through :class:`StateFile` at every change."""

    def __init__(self, rules: tuple[AlertRule, ...], store: StateFile,
                 now_us: Callable[[], int]) -> None:
        self.rules = rules
        self._store = store
        self._now = now_us
        self._lock = threading.RLock()
        self.state: State = store.load()
        self._listeners: list[Listener] = []
        self._dirty = False
        self._saved_us = 0
        self.timers_enabled = False  # set once the last readings are known (or the grace ran out)

    # --- inputs ---------------------------------------------------------------------------------

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def seen(self, ship: str, at_us: int) -> None:
        """Data of ``ship`` was stored at ``at_us`` (a bridge energy message, or InfluxDB)."""
        with self._lock:
            if at_us > self.state.last_seen.get(ship, 0):
                self.state.last_seen[ship] = at_us
                self._dirty = True

    def presence(self, ship: str, status: str | None, since_us: int) -> None:
        """``status``: online, offline, or None when the retained status was cleared."""
        with self._lock:
            current = self.state.presence.get(ship)
            if status == "offline":
                if current is None or current[0] != "offline":
                    self.state.presence[ship] = ("offline", since_us)
                    self._dirty = True
            elif status == "online" and (current is None or current[0] != "online"):
                self.state.presence[ship] = ("online", since_us)
                self._dirty = True
            elif status is None and current is not None:
                del self.state.presence[ship]
                self._dirty = True

    def ships(self) -> list[str]:
        with self._lock:
            return sorted(self.state.last_seen)

    def last_seen(self) -> dict[str, int]:
        with self._lock:
            return dict(self.state.last_seen)

    # --- evaluation -----------------------------------------------------------------------------

    def retire(self) -> None:
        """Resolve the active alerts no rule covers any more (a rule removed from the
        configuration, or a ship taken out of its ``ships``), so none fires forever."""
        now = self._now()
        rules = {r.name: r for r in self.rules}
        with self._lock:
            for tracked in list(self.state.alerts.values()):
                event = tracked.event
                rule = rules.get(event.rule)
                if event.state not in ACTIVE or (rule is not None and rule.applies_to(event.ship)):
                    continue
                why = "the rule was removed" if rule is None else "the rule no longer covers the ship"
                stand_in = rule or AlertRule(event.rule, event.kind, severity=event.severity)
                self._transition(stand_in, event.ship, "resolved", now, Condition(False, now, why))

    def tick(self) -> None:
        """Evaluate silent and offline against the clock; save last readings now and then."""
        now = self._now()
        with self._lock:
            if self.timers_enabled:
                for rule in self.rules:
                    if rule.kind == "silent":
                        for ship, last in list(self.state.last_seen.items()):
                            if rule.applies_to(ship):
                                self._step(rule, ship, silent_condition(rule, last, now), now)
                    elif rule.kind == "offline":
                        ships = set(self.state.presence) | {
                            t.event.ship for t in self.state.alerts.values()
                            if t.event.rule == rule.name}
                        for ship in sorted(ships):
                            if rule.applies_to(ship):
                                cond = offline_condition(rule, self.state.presence.get(ship), now)
                                self._step(rule, ship, cond, now)
            if self._dirty and now - self._saved_us >= SAVE_EVERY_US:
                self._save()

    def apply(self, rule: AlertRule, conditions: dict[str, Condition]) -> None:
        """One evaluation of a query rule: a condition per ship it covers."""
        now = self._now()
        with self._lock:
            for ship, cond in sorted(conditions.items()):
                if rule.applies_to(ship):
                    self._step(rule, ship, cond, now)
            if self._dirty:
                self._save()

    def _step(self, rule: AlertRule, ship: str, cond: Condition, now: int) -> None:
        key = f"{ship}/{rule.name}"
        tracked = self.state.alerts.get(key)
        state = tracked.event.state if tracked else None
        hold = 0 if rule.kind == "silent" else int(rule.for_seconds * US)
        if cond.active:
            if state in (None, "resolved"):
                if now - cond.began_us >= hold:
                    self._transition(rule, ship, "firing", cond.began_us + hold, cond)
                else:
                    self._transition(rule, ship, "pending", cond.began_us, cond)
            elif state == "pending" and tracked is not None and now - tracked.event.since_us >= hold:
                self._transition(rule, ship, "firing", tracked.event.since_us + hold, cond)
        elif state in ACTIVE:
            self._transition(rule, ship, "resolved", min(max(cond.began_us, 0), now) or now,
                             cond)

    def _transition(self, rule: AlertRule, ship: str, state: str, since_us: int,
                    cond: Condition) -> None:
        key = f"{ship}/{rule.name}"
        previous = self.state.alerts.get(key)
        since_us = max(since_us, previous.event.since_us if previous else 0)
        detail = cond.detail if state != "resolved" else f"resolved: {cond.detail}"
        event = AlertEvent(ship, rule.name, state, since_us, detail, rule.kind, rule.severity,
                           cond.meter if state != "resolved" or not previous
                           else previous.event.meter)
        tracked = Tracked(event)
        if state == "firing":
            tracked.fired_us = since_us
        elif previous is not None:
            tracked.fired_us, tracked.notified = previous.fired_us, previous.notified
        if state == "resolved" and previous is not None and previous.event.state == "firing":
            self.state.am_resolved.append(Resolution(event, previous.fired_us))
            tracked.notified = False
        stamp = max(since_us, self.state.history_last.get(key, 0) + 1)
        self.state.history_last[key] = stamp
        self.state.history.append((event, stamp))
        self.state.alerts[key] = tracked
        self._save()  # the transition and what it owes to deliver, in one write
        log.info("%s %s: %s since %s (%s)", ship, rule.name, state,
                 format_datetime(since_us), event.detail)
        for listener in self._listeners:
            try:
                listener(event, tracked)
            except Exception:
                log.exception("alert listener failed on %s/%s", ship, rule.name)

    # --- deliveries -----------------------------------------------------------------------------

    def snapshot(self) -> list[Tracked]:
        with self._lock:
            return [Tracked(t.event, t.fired_us, t.notified) for t in self.state.alerts.values()]

    def firing(self) -> list[Tracked]:
        return [t for t in self.snapshot() if t.event.state == "firing"]

    def pending_resolutions(self) -> list[Resolution]:
        with self._lock:
            return list(self.state.am_resolved)

    def delivered_to_alertmanager(self, fired: list[AlertEvent],
                                  resolved: list[Resolution]) -> None:
        """Alertmanager accepted these: mark the firing ones notified, drop the resolutions."""
        with self._lock:
            changed = False
            for event in fired:
                tracked = self.state.alerts.get(f"{event.ship}/{event.rule}")
                if tracked is not None and tracked.event == event and not tracked.notified:
                    tracked.notified = True
                    changed = True
            if resolved:
                done = {id(r) for r in resolved}
                self.state.am_resolved = [r for r in self.state.am_resolved if id(r) not in done]
                changed = True
            if changed:
                self._save()

    def pending_history(self, limit: int = 5000) -> list[tuple[AlertEvent, int]]:
        with self._lock:
            return list(self.state.history[:limit])

    def history_written(self, count: int) -> None:
        with self._lock:
            del self.state.history[:count]
            self._save()

    def flush(self) -> None:
        """Save what is not saved yet (at a clean stop)."""
        with self._lock:
            if self._dirty:
                self._save()

    def _save(self) -> None:
        self._store.save(self.state)
        self._dirty = False
        self._saved_us = self._now()
