"""Ship presence: the retained ``fleet/ships/<id>/status`` message, written and read here only.

The agent writes ``{"status": "online", "time": "...Z"}`` at each connect and leaves
``{"status": "offline"}`` as its last will (:func:`status_payload`, :func:`will_payload`).
Readers (``GET /v1/ships``, ``fleetctl fleet status``) accept more (:func:`parse_status`):
``online`` / ``offline`` as plain text or a JSON string, or a JSON object whose ``status`` (or
``state``) is one of those, with an optional timestamp in ``timestamp``, ``time`` or ``ts`` (ISO
8601 or epoch seconds). An empty retained message clears the ship's presence.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from fleet.timeutil import US, format_datetime, parse_datetime

ONLINE = "online"
OFFLINE = "offline"
STATES = (ONLINE, OFFLINE)
_TIME_KEYS = ("timestamp", "time", "ts")


@dataclass(frozen=True, slots=True)
class Presence:
    state: str  # online | offline | unknown
    since: str | None  # the status message's timestamp (normalized ISO 8601 UTC), when it had one


UNKNOWN = Presence("unknown", None)


def parse_status(payload: bytes) -> Presence | None:
    """The presence a status payload announces; None for an unreadable one (or an empty one)."""
    text = payload.decode("utf-8", errors="replace").strip()
    if text.lower() in STATES:
        return Presence(text.lower(), None)
    try:
        doc: Any = json.loads(text)
    except ValueError:
        return None
    if isinstance(doc, str) and doc.lower() in STATES:
        return Presence(doc.lower(), None)
    if not isinstance(doc, dict):
        return None
    state = doc.get("status", doc.get("state"))
    if not isinstance(state, str) or state.lower() not in STATES:
        return None
    since = None
    for key in _TIME_KEYS:
        value = doc.get(key)
        try:
            if isinstance(value, str):
                since = format_datetime(parse_datetime(value))
            elif isinstance(value, int | float) and not isinstance(value, bool):
                since = format_datetime(int(value * US))
        except (ValueError, OverflowError):
            continue
        if since:
            break
    return Presence(state.lower(), since)


def status_payload(state: str, *, now: float | None = None, **extra: Any) -> str:
    """The retained presence message: ``{"status": "online", "time": "...Z", ...extra}``."""
    seconds = int(time.time() if now is None else now)
    return json.dumps({"status": state, "time": format_datetime(seconds * US), **extra},
                      separators=(",", ":"))


def will_payload() -> str:
    """The last will the broker publishes (retained) when a ship's link drops."""
    return json.dumps({"status": OFFLINE})
