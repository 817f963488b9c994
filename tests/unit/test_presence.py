"""The retained presence status: one parser (every accepted form) and one writer."""

from __future__ import annotations

import json

import pytest

from fleet.presence import UNKNOWN, Presence, parse_status, status_payload, will_payload


@pytest.mark.parametrize(("payload", "expected"), [
    (b"online", Presence("online", None)),
    (b" OFFLINE\n", Presence("offline", None)),
    (b'"online"', Presence("online", None)),
    (b'{"status": "offline"}', Presence("offline", None)),
    (b'{"status":"online","time":"2031-03-01T06:00:00+00:00"}',
     Presence("online", "2031-03-01T06:00:00Z")),
    (b'{"state": "ONLINE", "ts": 0}', Presence("online", "1970-01-01T00:00:00Z")),
    (b'{"status": "online", "timestamp": "2031-03-01T07:00:00Z", "time": "x"}',
     Presence("online", "2031-03-01T07:00:00Z")),
    (b'{"status": "online", "timestamp": "not a time", "time": 1900000000}',
     Presence("online", "2030-03-17T17:46:40Z")),
    (b'{"status": "online", "ts": true}', Presence("online", None)),
    (b'{"status": "offline", "state": "online"}', Presence("offline", None)),
    (b'{"status": "sleeping"}', None),
    (b'{"state": 1}', None),
    (b"[1]", None),
    (b"\xff\xfe", None),
    (b"", None),
])
def test_status_payloads(payload: bytes, expected: Presence | None) -> None:
    assert parse_status(payload) == expected


def test_writer_output_is_read_back_by_the_parser() -> None:
    online = status_payload("online", now=1_900_000_000.7)
    assert json.loads(online) == {"status": "online", "time": "2030-03-17T17:46:40Z"}
    assert parse_status(online.encode()) == Presence("online", "2030-03-17T17:46:40Z")
    stopped = status_payload("offline", now=0, reason="agent stopped")
    assert json.loads(stopped)["reason"] == "agent stopped"
    assert parse_status(stopped.encode()) == Presence("offline", "1970-01-01T00:00:00Z")
    assert parse_status(will_payload().encode()) == Presence("offline", None)
    assert UNKNOWN.state == "unknown"
