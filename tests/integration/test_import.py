"""fleetctl import against the real servers: a semicolon CSV with decimal commas and local times,
and a spreadsheet of a register meter, each interrupted with Ctrl-C, resumed, and stored once."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from fleet.config import load_config
from fleet.normalize import window_sums
from fleet.timeutil import US, parse_datetime
from fleet.totals import parts_of
from fleetctl.importer import file_digest, state_path
from ship.spool import SpoolError, open_readonly
from tests.conftest import Stack, eventually
from tests.integration.agent_helpers import FLEETCTL

pytestmark = pytest.mark.integration

T0 = parse_datetime("2024-01-01T00:00:00Z")


def stored(stack: Stack, ship: str, meter: str) -> tuple[dict[int, float], dict[int, int]]:
    tag = "" if meter == "main" else meter
    q = (f"SELECT sum(kwh), count(kwh) FROM energy WHERE \"ship\" = '{ship}' AND \"meter\" = "
         f"'{tag}' AND time >= '2023-12-01T00:00:00Z' AND time < '2024-03-01T00:00:00Z' "
         "GROUP BY time(15m) fill(none)")
    sums: dict[int, float] = {}
    counts: dict[int, int] = {}
    for r in stack.influx_query(q):
        for series in r.get("series", []):
            for t, v, c in series["values"]:
                sums[int(t)], counts[int(t)] = float(v), int(c)
    return sums, counts


def confirmed(path: Path) -> int:
    try:
        with open_readonly(path) as spool:
            return int(spool.get_meta("confirmed") or 0)
    except SpoolError:
        return 0


def run_import(stack: Stack, args: list[str], *, interrupt_at: int | None = None,
               state: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = stack.env_with(FLEET_SHIP_BATCH_SIZE="40", FLEET_SHIP_ACK_TIMEOUT="2")
    proc = subprocess.Popen([*FLEETCTL, "import", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if interrupt_at is not None:
        assert state is not None
        eventually(lambda: confirmed(state) >= interrupt_at or proc.poll() is not None,
                   timeout=30, message="the import confirmed nothing")
        proc.send_signal(signal.SIGINT)  # Ctrl-C
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def interrupted_then_resumed(stack: Stack, path: Path, ship: str, password: str, meter: str,
                             extra: list[str], total: int) -> None:
    cfg = load_config(env=stack.env_with())
    state = state_path(cfg, file_digest(path), ship, meter)
    args = [str(path), "--ship", ship, "--meter", meter, f"--password={password}", *extra]
    first = run_import(stack, args, interrupt_at=total // 4, state=state)
    assert first.returncode == 130, first.stderr[-2000:]
    assert "interrupted" in first.stderr and "run the same command again" in first.stderr
    done_first = confirmed(state)
    assert 0 < done_first < total
    second = run_import(stack, args)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "resuming" in second.stderr and f"imported {total} readings" in second.stderr
    assert "readings/s" in second.stderr or "it/s" in second.stderr  # the progress bar's rate
    third = run_import(stack, args)
    assert third.returncode == 0 and "already imported" in third.stderr, third.stderr


def test_semicolon_csv_with_decimal_commas_and_local_times(stack: Stack, tmp_path: Path) -> None:
    ship, password = stack.ship()
    n = 320
    values = [round(1 + (i * 37 % 23) / 8, 3) for i in range(n)]
    # Local times in Oslo (UTC+1 in January): 01:00 local is 00:00Z.
    lines = ["Tidspunkt;Forbruk kWh"]
    for i, v in enumerate(values):
        t = pd.Timestamp(T0 + i * 900 * US, unit="us", tz="UTC").tz_convert("Europe/Oslo")
        lines.append(f"{t.strftime('%d.%m.%Y %H:%M')};{str(v).replace('.', ',')}")
    path = tmp_path / "hotel.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    interrupted_then_resumed(stack, path, ship, password, "hotel", ["--tz", "Europe/Oslo"], n)
    sums, counts = stored(stack, ship, "hotel")
    want = {T0 + i * 900 * US: v for i, v in enumerate(values)}
    assert sums == pytest.approx(want) and set(counts.values()) == {1}


def test_spreadsheet_of_a_register_meter(stack: Stack, tmp_path: Path) -> None:
    ship, password = stack.ship()
    n = 300
    registers = []
    value = 5000.0
    for i in range(n):
        value = value + (i % 7) * 0.5 if i != 150 else 3.0  # a meter replaced at reading 150
        registers.append((T0 + i * 3600 * US, round(value, 3)))
    frame = pd.DataFrame({"Timestamp": [pd.Timestamp(t, unit="us") for t, _ in registers],
                          "Meter reading (kWh)": [v for _, v in registers]})
    path = tmp_path / "shore.xlsx"
    frame.to_excel(path, index=False)
    interrupted_then_resumed(stack, path, ship, password, "shore", ["--kind", "total"], n)
    sums, counts = stored(stack, ship, "shore")
    want = {w: kwh for w, kwh, _ in window_sums(parts_of(ship, [registers]))}
    assert sums.keys() == want.keys()
    assert sums == pytest.approx(want) and set(counts.values()) == {1}




def test_a_refused_password_ends_the_import_at_once(stack: Stack, tmp_path: Path) -> None:
    ship, password = stack.ship()
    path = tmp_path / "log.csv"
    path.write_text("time;value\n2025-05-01 00:00;1,0\n2025-05-01 00:15;2,0\n", encoding="utf-8")
    started = time.monotonic()
    done = run_import(stack, [str(path), "--ship", ship, f"--password={password}x",
                              "--no-progress"])
    assert done.returncode == 1, done.stderr[-2000:]
    assert f"the broker refused ship {ship}" in done.stderr and "0 of 2 readings" in done.stderr
    assert time.monotonic() - started < 30  # not retried until someone presses Ctrl-C
    again = run_import(stack, [str(path), "--ship", ship, f"--password={password}",
                               "--no-progress"])
    assert again.returncode == 0 and "imported 2 readings" in again.stderr, again.stderr[-2000:]
