"""The ship's spool: batches, acks, cap policy, full disk, survival across reopen."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from fleet.normalize import process_payload
from ship.agent import batch_payload
from ship.spool import Reading, Spool, SpoolDiskFullError, SpoolError, open_readonly

US = 1_000_000
T0 = 1_704_067_200 * US  # 2024-01-01T00:00:00Z


def readings(n: int, start: int = 0, units: str = "kW", interval: float = 300.0) -> list[Reading]:
    return [Reading(T0 + (start + i) * 300 * US, float(i), units, interval) for i in range(n)]


def test_batches_oldest_first_then_confirm_deletes(tmp_path: Path) -> None:
    with Spool(tmp_path / "s.spool", "ship-1") as spool:
        assert spool.add(readings(10)) == 10
        b1 = spool.new_batch(4)
        b2 = spool.new_batch(4)
        assert b1 is not None and b2 is not None
        assert [r.value for r in b1.readings] == [0, 1, 2, 3]
        assert [r.value for r in b2.readings] == [4, 5, 6, 7]
        assert b1.id.startswith(spool.spool_id) and b1.id != b2.id
        assert spool.unsent() == 2 and spool.depth == 10
        assert spool.confirm(b1.id) == 4
        assert spool.confirm(b1.id) == 0  # a second ack (of a resent copy) changes nothing
        assert spool.depth == 6
        assert [i for i, _, _ in spool.outstanding()] == [b2.id]
        again = spool.batch(b2.id)
        assert again is not None and again.readings == b2.readings


def test_live_batch_takes_the_newest(tmp_path: Path) -> None:
    with Spool(tmp_path / "s.spool", "ship-1") as spool:
        spool.add(readings(10))
        first_new = spool.max_seq() + 1
        spool.add(readings(2, start=10))
        live = spool.new_batch(100, newest=True, min_seq=first_new - 1)
        assert live is not None and [r.value for r in live.readings] == [0, 1]
        assert live.readings[0].start_us == T0 + 10 * 300 * US
        backlog = spool.new_batch(100)
        assert backlog is not None and len(backlog.readings) == 10


def test_a_batch_keeps_one_units_and_interval(tmp_path: Path) -> None:
    with Spool(tmp_path / "s.spool", "ship-1") as spool:
        spool.add(readings(3) + readings(2, start=3, units="kWh"))
        a, b = spool.new_batch(100), spool.new_batch(100)
        assert a is not None and b is not None
        assert {r.units for r in a.readings} == {"kW"} and {r.units for r in b.readings} == {"kWh"}


def test_payload_is_what_the_bridge_accepts(tmp_path: Path) -> None:
    with Spool(tmp_path / "s.spool", "ship-1") as spool:
        spool.add(readings(3))
        batch = spool.new_batch(10)
        assert batch is not None
    payload = batch_payload(batch)
    n = process_payload("ship-1", payload.encode())
    assert n.batch_id == batch.id and n.accepted == 3 and not n.rejected
    assert json.loads(payload)["interval"] == 300


def test_cap_drops_the_oldest_and_counts(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with Spool(tmp_path / "s.spool", "ship-1", max_readings=5) as spool:
        spool.add(readings(3))
        batch = spool.new_batch(2)  # in flight: dropped all the same, and forgotten
        assert batch is not None
        spool.add(readings(6, start=3))
        assert spool.depth == 5
        st = spool.stats()
        assert st.dropped == 4 and st.oldest_us == T0 + 4 * 300 * US
        assert spool.outstanding() == []
    assert "spool full (cap 5 readings): dropped the 4 oldest" in caplog.text


def test_duplicates_are_ignored_and_counted(tmp_path: Path) -> None:
    with Spool(tmp_path / "s.spool", "ship-1") as spool:
        spool.add(readings(3))
        assert spool.add(readings(2)) == 0
        assert spool.depth == 3 and spool.stats().duplicates == 2


def test_survives_reopen_and_refuses_another_ship(tmp_path: Path) -> None:
    path = tmp_path / "s.spool"
    with Spool(path, "ship-1") as spool:
        spool.add(readings(4), **{"cursor:x": "4"})
        batch = spool.new_batch(2)
        spool_id = spool.spool_id
    with Spool(path, "ship-1") as spool:
        assert spool.spool_id == spool_id and spool.depth == 4
        assert spool.get_meta("cursor:x") == "4"
        assert batch is not None and [i for i, _, _ in spool.outstanding()] == [batch.id]
    with pytest.raises(SpoolError, match="belongs to ship 'ship-1'"):
        Spool(path, "ship-2")
    with open_readonly(path) as ro:
        assert ro.stats().depth == 4 and ro.ship == "ship-1"


def test_a_full_disk_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "s.spool"
    with Spool(path, "ship-1") as spool:
        spool.add(readings(1))
        # SQLite's page limit gives the same SQLITE_FULL a full disk does.
        pages = spool._db.execute("PRAGMA page_count").fetchone()[0]
        spool._db.execute(f"PRAGMA max_page_count = {pages}")
        with pytest.raises(SpoolDiskFullError, match="disk full"):
            spool.add(readings(5000, start=1))
        assert spool.depth == 1  # the transaction was rolled back whole


def test_readonly_of_a_missing_spool(tmp_path: Path) -> None:
    with pytest.raises(SpoolError, match="no spool"):
        open_readonly(tmp_path / "none.spool")


def test_wal_mode(tmp_path: Path) -> None:
    with Spool(tmp_path / "s.spool", "ship-1"):
        pass
    db = sqlite3.connect(tmp_path / "s.spool")
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        db.close()


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1.0])
def test_reading_refuses_bad_values(value: float) -> None:
    with pytest.raises(ValueError, match="value"):
        Reading(T0, value, "kW", 300)
