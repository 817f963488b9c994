"""Meters on the ship's side: spool rows per meter, batches of one meter, payloads, the simulator's
meters and the ``--meter`` arguments."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from fleet.normalize import process_payload
from ship.agent import batch_payload
from ship.source import SIM_METERS, MeterSpec, meter_specs, simulated_meters
from ship.spool import Reading, Spool

US = 1_000_000
T0 = 1_704_067_200 * US  # 2024-01-01T00:00:00Z


def test_the_same_start_on_two_meters_is_two_readings(tmp_path: Path) -> None:
    with Spool(tmp_path / "s.spool", "ship-1") as spool:
        added = spool.add([Reading(T0, 1.0, "kW", 300.0),
                           Reading(T0, 1000.0, "kWh", 300.0, "shore", "total"),
                           Reading(T0, 2.0, "kW", 300.0)])  # a duplicate of main's
        assert added == 2 and spool.stats().duplicates == 1


def test_a_batch_holds_one_meter_and_its_payload_names_it(tmp_path: Path) -> None:
    with Spool(tmp_path / "s.spool", "ship-1") as spool:
        spool.add([Reading(T0 + i * 300 * US, float(i), "kW", 300.0) for i in range(3)])
        spool.add([Reading(T0 + i * 300 * US, 100.0 + i, "kWh", 300.0, "shore", "total")
                   for i in range(3)])
        first, second = spool.new_batch(10), spool.new_batch(10)
        assert first is not None and second is not None
        assert {r.meter for r in first.readings} == {"main"}
        assert {(r.meter, r.kind) for r in second.readings} == {("shore", "total")}
        doc = json.loads(batch_payload(first))
        assert "meter" not in doc and "kind" not in doc  # what a ship always sent
        doc = json.loads(batch_payload(second))
        assert doc["meter"] == "shore" and doc["kind"] == "total"
        n = process_payload("ship-1", batch_payload(second))
        assert n.meter == "shore" and n.registers == [(T0 + i * 300 * US, 100.0 + i)
                                                      for i in range(3)]
        again = spool.batch(second.id)
        assert again is not None and again.readings == second.readings


def test_a_spool_from_before_meters_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.spool"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE reading (seq INTEGER PRIMARY KEY AUTOINCREMENT,
            start_us INTEGER NOT NULL UNIQUE, value REAL NOT NULL, units TEXT NOT NULL,
            interval_s REAL NOT NULL, batch TEXT);
        CREATE INDEX reading_batch ON reading(batch);
        CREATE TABLE batch (id TEXT PRIMARY KEY, count INTEGER NOT NULL,
            first_sent REAL NOT NULL, last_sent REAL NOT NULL, attempts INTEGER NOT NULL);
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('spool_id', 'abcd'), ('ship', 'old'), ('schema', '1');
        INSERT INTO batch VALUES ('abcd-1-1', 1, 0, 0, 1);
        INSERT INTO reading(start_us, value, units, interval_s, batch)
            VALUES (1704067200000000, 5.0, 'kW', 300.0, 'abcd-1-1'),
                   (1704067500000000, 6.0, 'kW', 300.0, NULL);
    """)
    db.close()
    with Spool(path, "old") as spool:
        assert spool.depth == 2 and spool.get_meta("schema") == "2"
        sent = spool.batch("abcd-1-1")
        assert sent is not None and sent.readings == [Reading(T0, 5.0, "kW", 300.0)]
        assert spool.add([Reading(T0, 7.0, "kWh", 300.0, "shore", "total")]) == 1
        batch = spool.new_batch(10)
        assert batch is not None and [r.value for r in batch.readings] == [6.0]


def test_meter_arguments() -> None:
    assert meter_specs(None) == [MeterSpec("main")]
    assert meter_specs(["main", "shore:total"]) == [MeterSpec("main"),
                                                    MeterSpec("shore", "total")]
    assert meter_specs(["reg"], "total") == [MeterSpec("reg", "total")]
    for bad in (["a b"], ["x:sum"], ["m", "m"]):
        with pytest.raises(ValueError, match="--meter"):
            meter_specs(bad)


def test_simulated_meters_differ_and_the_register_resumes(tmp_path: Path) -> None:
    meta: dict[str, str] = {}
    sim = simulated_meters("ship-1", SIM_METERS, 300.0, meta.get, start_us=T0, wall=0.0)
    got = sim.poll(T0 / US + 3600)
    by = {m: [r for r in got if r.meter == m] for m in ("main", "hotel", "shore")}
    assert all(len(v) == 12 for v in by.values())
    assert [r.value for r in by["main"]] != [r.value for r in by["hotel"]]
    shore = [r.value for r in by["shore"]]
    assert by["shore"][0].kind == "total" and by["shore"][0].units == "kWh"
    assert shore == sorted(shore) and shore[-1] > shore[0]
    # A restart resumes from the spool's cursor: the register continues, nothing is measured twice.
    meta.update(sim.cursor())
    again = simulated_meters("ship-1", SIM_METERS, 300.0, meta.get, start_us=T0, wall=0.0)
    more = [r for r in again.poll(T0 / US + 7200) if r.meter == "shore"]
    assert more[0].start_us == by["shore"][-1].start_us + 300 * US
    assert more[0].value >= shore[-1] and len(more) == 12
