"""The benchmark's stop rule: the point count it waits for is what the bridge's own normalization
makes of its messages, aligned to the 15-minute grid and not."""

from __future__ import annotations

import pytest

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
