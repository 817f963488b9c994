"""InfluxDB set-up by the bridge's store: database and retention policy created, and a changed
[influxdb] retention applied to the existing policy."""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from fleet.store import InfluxStore, _hours
from tests.conftest import Stack

pytestmark = pytest.mark.integration


def durations(store: InfluxStore) -> dict[str, str]:
    res = store.query(f'SHOW RETENTION POLICIES ON "{store.cfg.database}"')
    return {row[0]: row[1] for s in res[0]["series"] for row in s["values"]}


def test_database_created_and_retention_follows_the_config(servers: Stack) -> None:
    db = f"t_{uuid.uuid4().hex[:8]}"
    cfg = dataclasses.replace(servers.cfg.influxdb, database=db, retention="30d")
    store = InfluxStore(cfg)
    try:
        store.ensure_database()
        assert durations(store)[cfg.retention_policy] == "720h0m0s"
        store.ensure_database()  # idempotent
        longer = InfluxStore(dataclasses.replace(cfg, retention="52w"))
        longer.ensure_database()
        assert durations(store)[cfg.retention_policy] == "8736h0m0s"
        forever = InfluxStore(dataclasses.replace(cfg, retention="INF"))
        forever.ensure_database()
        assert durations(store)[cfg.retention_policy] == "0s"
        longer.close()
        forever.close()
    finally:
        store.query(f'DROP DATABASE "{db}"', write=True)
        store.close()


@pytest.mark.parametrize(("text", "hours"), [
    ("INF", 0), ("0s", 0), ("720h0m0s", 720), ("30d", 720), ("52w", 8736), ("24h", 24),
    ("1h30m0s", 1.5),
])
def test_hours(text: str, hours: float) -> None:
    assert _hours(text) == hours
