"""The benchmark's pure parts: the stop rule's point count is what the bridge's own normalization
makes of its messages (on the 15-minute grid and off it), and its watch of the energy topic adds up
to its total exactly when the last point is announced; the README section and the targets are
written from the results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import report
from bench.load import (
    ALIGNED_BASE,
    expected_points,
    expected_seconds,
    message_span_s,
    payload,
    run_base,
)
from bench.stack import Announced
from bridge.mqtt import _energy
from fleet.normalize import process_payload


def stored_points(ships: int, per_ship: int, readings: int, base: int,
                  step: int | None = None) -> int:
    keys = set()
    for s in range(ships):
        ship = f"s{s}"
        for i in range(per_ship):
            for p in process_payload(ship, payload(ship, i, readings, base, step)).parts:
                keys.add((ship, p.start_us))
    return len(keys)


@pytest.mark.parametrize(("readings", "offset", "step", "per_reading"), [
    (1, 0, None, 1.0),        # a 15-minute reading on the grid: one part
    (12, 0, None, 1.0),       # 5-minute readings on the grid: one part each
    (1, 700, None, 2.0),      # 700 s off: every 15-minute reading straddles a boundary
    (12, 700, None, 4 / 3),   # 700 s off: one 5-minute reading in three straddles one
    (1, 0, 300, 1.0),         # single 5-minute readings (the backlog's 1 reading/msg)
])
def test_expected_points_match_the_bridges_normalization(readings: int, offset: int,
                                                         step: int | None,
                                                         per_reading: float) -> None:
    base = run_base(3, offset)
    want = stored_points(3, 9, readings, base, step)
    assert expected_points(3, 9, readings, base, step) == want
    assert want == round(3 * 9 * readings * per_reading)


@pytest.mark.parametrize(("readings", "offset", "per_notice"), [
    (1, 0, 1), (12, 0, 1), (12, 0, 7), (12, 700, 5), (1, 700, 3),
])
def test_the_watch_reaches_its_total_with_the_last_notice(readings: int, offset: int,
                                                          per_notice: int) -> None:
    """Notices as the bridge makes them (one per ship and batch, windows with their coverage):
    the watch's total is reached by the notice announcing the last point, not before, however
    many points share a window (three per window with 5-minute readings)."""
    base = run_base(4, offset)
    ships, per_ship = 3, 9
    watch = Announced(base, base + per_ship * message_span_s(readings) + 3600,  # bench.ingest.span
                      expected_seconds(ships, per_ship, readings))
    notices = []
    for s in range(ships):
        ship = f"s{s}"
        parts = [process_payload(ship, payload(ship, i, readings, base)).parts
                 for i in range(per_ship)]
        for k in range(0, per_ship, per_notice):  # a batch holds per_notice messages
            batch = [p for ps in parts[k:k + per_notice] for p in ps]
            notices.append(json.loads(_energy(ship, batch)))
    windows = {(n["ship"], w["time"]) for n in notices for w in n["windows"]}
    if readings == 12:  # why the watch adds seconds: counting windows would never reach points
        assert len(windows) < expected_points(ships, per_ship, readings, base)
    for t, doc in enumerate(notices):
        assert watch.reached_at() is None, f"reached before notice {t} of {len(notices)}"
        watch.add(doc, float(t))
    assert watch.reached_at() == float(len(notices) - 1)
    watch.add(notices[0], 1e9)  # a redelivered batch announced again: still the same moment
    watch.add({"ship": "s0", "windows": [{"time": "1999-01-01T00:00:00Z", "coverage": 1.0}]}, 2e9)
    assert watch.reached_at() == float(len(notices) - 1)


def test_run_bases_sit_on_the_grid() -> None:
    assert ALIGNED_BASE % 900 == 0
    assert run_base(5) % 900 == 0 and run_base(5, 700) % 900 == 700


def test_the_readme_section_is_replaced_between_its_markers(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nbefore\n{report.README_START}\nold figures\n{report.README_END}\n"
                      "after\n", encoding="utf-8")
    fragment = report.readme_fragment({"runs": 3, "quick": False, "commit": "abc123",
                                       "duration": 812.0})
    assert report.write_readme(readme, fragment)
    text = readme.read_text(encoding="utf-8")
    assert "old figures" not in text and "commit `abc123`" in text
    assert text.startswith("# x\n\nbefore\n") and text.endswith(f"{report.README_END}\nafter\n")
    (tmp_path / "none.md").write_text("no markers\n", encoding="utf-8")
    assert not report.write_readme(tmp_path / "none.md", fragment)


def test_a_missed_target_says_by_how_much() -> None:
    from bench.latency import LatencyResult
    from bench.stats import Figure

    lat = LatencyResult(1000.0, Figure([0.2]), Figure([1.5]), 0, Figure([0.0]), Figure([1000.0]))
    rows = report.targets_table({"latency": lat})
    assert rows[-1] == "| latency p99 (PUBACK to queryable), ms | 1,500.00 | <= 1,000.00 | missed by 50% |"


def test_ingest_table_and_targets_name_both_references() -> None:
    from bench.ingest import INGEST_CASES, ROWS, IngestResult
    from bench.stats import Figure

    cases = [c for c in INGEST_CASES if c.name in ("1 reading/msg", "12 readings/msg")]
    rates = {"pipeline": 50.0, "broker": 200.0, "paho": 100.0, "null": 80.0, "raw": 90.0,
             "influx": 300.0}
    res = IngestResult({c.name: {r: Figure([rates[r]]) for r in ROWS} for c in cases},
                       {c.name: {r: Figure([rates[r]]) for r in ROWS} for c in cases},
                       {c.name: Figure([900.0]) for c in cases},
                       {c.name: Figure([0.3]) for c in cases}, cases,
                       {c.name: Figure([0.5]) for c in cases})
    res.points["12 readings/msg"]["influx"] = Figure([350.0])
    rows = report.ingest_table(res)
    assert "bare paho subscriber" in rows[0]
    one = next(r for r in rows if r.startswith("| 1 reading/msg |"))
    twelve = next(r for r in rows if r.startswith("| 12 readings/msg |"))
    assert one.count("300") == 1  # points/s equal to readings/s: printed once
    assert "300 (350 points/s)" in twelve
    got = {name: value for name, value, _, _ in report.targets({"ingest": res})}
    assert got["ingest, 12 reading(s)/msg, one bridge: pipeline / bare paho subscriber"] == 0.5
    assert got["ingest, 1 reading(s)/msg, one bridge: pipeline / native subscriber "
               "(broker ceiling)"] == 0.25
