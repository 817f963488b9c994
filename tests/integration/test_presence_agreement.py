"""``GET /v1/ships`` and ``fleetctl fleet status`` read presence with one parser: each accepted
form of the retained status, published by a ship, reads back the same through both."""

from __future__ import annotations

import json
import subprocess
import uuid
from typing import Any

import pytest

from tests.conftest import Stack, eventually, unique_ship
from tests.integration.agent_helpers import FLEETCTL
from tests.integration.api_helpers import get

pytestmark = pytest.mark.integration

# (payload, presence, since) for every form fleet.presence.parse_status accepts.
FORMS: list[tuple[bytes, str, str | None]] = [
    (b"online", "online", None),
    (b'"OFFLINE"', "offline", None),
    (b'{"status": "online", "time": "2031-03-01T06:00:00+00:00"}', "online",
     "2031-03-01T06:00:00Z"),
    (b'{"state": "offline", "timestamp": "2031-03-01T07:00:00Z"}', "offline",
     "2031-03-01T07:00:00Z"),
    (b'{"status": "ONLINE", "ts": 1900000000}', "online", "2030-03-17T17:46:40Z"),
    (b'{"state": "online", "time": 1900000000.5}', "online", "2030-03-17T17:46:40.500000Z"),
    (b'{"status": "offline", "reason": "agent stopped"}', "offline", None),
]


def test_every_status_form_reads_the_same_through_the_api_and_fleetctl(stack: Stack) -> None:
    ships: dict[str, tuple[str, str | None]] = {}
    for payload, presence, since in FORMS:
        ship, password = stack.ship(unique_ship("pf"))
        session = stack.client(ship, password)
        try:
            session.client.publish(f"fleet/ships/{ship}/status", payload, qos=1,
                                   retain=True).wait_for_publish(5)
        finally:
            session.close()
        ships[ship] = (presence, since)

    def api_rows() -> dict[str, dict[str, Any]] | None:
        reply = get(stack, "/v1/ships")
        assert reply.status == 200, reply.text
        rows = {r["ship"]: r for r in reply.json["ships"]}
        return rows if all(s in rows for s in ships) else None

    rows = eventually(api_rows, 10, message="the statuses never showed in /v1/ships")
    operator = f"op-{uuid.uuid4().hex[:8]}"
    secret = stack.accounts.add_operator(operator)
    stack.reload_accounts((operator, secret))
    out = subprocess.run([*FLEETCTL, "fleet", "status", "--json", "--username", operator,
                          f"--password={secret}"], env=stack.env_with(), capture_output=True,
                         text=True, timeout=30, check=True)
    doc = json.loads(out.stdout)
    assert doc["problems"] == [], doc["problems"]
    views = {v["ship"]: v for v in doc["ships"]}
    for ship, expected in ships.items():
        api = (rows[ship]["presence"], rows[ship]["presence_since"])
        cli = (views[ship]["presence"], views[ship]["since"])
        assert api == cli == expected, (ship, api, cli)
