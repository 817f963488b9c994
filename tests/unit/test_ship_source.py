"""Sources of readings: the meter simulator, JSON lines and CSV, durations."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleet.timeutil import parse_datetime
from ship.source import LineSource, LoadProfile, SimulatedMeter, duration

US = 1_000_000
T0 = parse_datetime("2024-01-01T00:00:00Z")


@pytest.mark.parametrize(("text", "seconds"), [
    ("5m", 300), ("24h", 86400), ("2d", 172800), ("30s", 30), ("PT5M", 300), ("300", 300),
    ("1.5h", 5400),
])
def test_duration(text: str, seconds: float) -> None:
    assert duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0m", "5 minutes", "-5m", "PT0S"])
def test_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        duration(text)


@given(st.integers(min_value=0, max_value=2**40))
def test_profile_is_deterministic_and_plausible(t: int) -> None:
    a, b = LoadProfile("ship-a"), LoadProfile("ship-a")
    assert a.kw(t * US) == b.kw(t * US)
    assert 0 <= a.kw(t * US) < 3 * 400 * 1.4 * 1.5


def test_profiles_differ_between_ships_and_follow_a_day() -> None:
    a, b = LoadProfile("ship-a"), LoadProfile("ship-b")
    assert a.base != b.base
    day = [a.kw(T0 + h * 3600 * US) for h in range(24)]
    assert max(day) > 1.1 * min(day)


def test_meter_backfills_then_stops_at_the_duration() -> None:
    wall = (T0 + 10 * 3600 * US) / US
    meter = SimulatedMeter("s", 300, speed=600, start_us=T0, duration_s=3600, wall=wall)
    assert meter.poll(wall) == []
    got = meter.poll(wall + 3)  # 3 s at 600x: 30 minutes
    assert [r.start_us for r in got] == [T0 + i * 300 * US for i in range(6)]
    got += meter.poll(wall + 100)
    assert len(got) == 12 and meter.exhausted
    assert meter.cursor()["sim_next_us"] == str(T0 + 3600 * US)


def test_meter_at_speed_one_measures_history_at_once_and_never_runs_ahead() -> None:
    now = time.time()
    meter = SimulatedMeter("s", 60, backfill_s=600)
    got = meter.poll(now)
    assert len(got) == 10
    assert got[-1].start_us + 60 * US <= now * US
    assert meter.poll(now) == []


def test_meter_resumes_from_its_cursor() -> None:
    wall = (T0 + 10 * 3600 * US) / US
    first = SimulatedMeter("s", 300, speed=600, start_us=T0, wall=wall)
    first.poll(wall + 3)
    cursor = first.cursor()
    again = SimulatedMeter("s", 300, speed=600, start_us=T0, wall=wall + 5,
                           resume_us=int(cursor["sim_next_us"]),
                           origin_us=int(cursor["sim_origin_us"]))
    got = again.poll(wall + 6)
    assert got[0].start_us == T0 + 6 * 300 * US


def _drain(src: LineSource) -> list[tuple[int, float]]:
    out = []
    deadline = time.monotonic() + 5
    while not src.exhausted and time.monotonic() < deadline:
        out += [(r.start_us, r.value) for r in src.poll(0)]
        time.sleep(0.01)
    src.close()
    return out


def test_json_lines_skip_bad_ones_and_keep_a_cursor(tmp_path: Path) -> None:
    f = tmp_path / "r.jsonl"
    f.write_text('{"datetime": "2024-01-01T00:00:00Z", "value": 1}\n'
                 'garbage\n'
                 '{"datetime": "2024-01-01T00-05-00Z", "value": "2.5"}\n'
                 '{"datetime": "2024-01-01T00:10:00Z", "value": -1}\n\n')
    src = LineSource(str(f), units="kW", interval_s=300)
    assert _drain(src) == [(T0, 1.0), (T0 + 300 * US, 2.5)]
    assert src.invalid == 2
    assert src.cursor() == {f"cursor:file:{f.resolve()}": "5"}
    again = LineSource(str(f), units="kW", interval_s=300, skip_lines=3)
    assert _drain(again) == []


def test_csv_with_header(tmp_path: Path) -> None:
    f = tmp_path / "r.csv"
    f.write_text("datetime,value\n2024-01-01T00:00:00Z,3\n2024-01-01T00:05:00Z,4.5\n")
    assert _drain(LineSource(str(f), units="kWh", interval_s=300)) == [
        (T0, 3.0), (T0 + 300 * US, 4.5)]


def test_stdin_has_no_cursor() -> None:
    src = LineSource("-", units="kW", interval_s=300,
                     stdin=io.StringIO('{"datetime": "2024-01-01T00:00:00Z", "value": 1}\n'))
    assert _drain(src) == [(T0, 1.0)]
    assert src.cursor() == {}
