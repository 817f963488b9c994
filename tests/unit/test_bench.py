"""The benchmark's pure parts: the stop rule's point count is what the bridge's own normalization
makes of its messages (on the 15-minute grid and off it); the README section and the targets are
written from the results."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import report
from bench.load import ALIGNED_BASE, expected_points, payload, run_base
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
