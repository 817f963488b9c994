"""Helpers for the ship agent's integration tests: agent processes, expected and stored windows."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from fleet.normalize import normalize, windows
from fleet.timeutil import US, format_datetime
from launcher.servers import Service, free_port
from ship.source import LoadProfile
from ship.spool import SpoolError, open_readonly
from tests.conftest import Stack

FLEETCTL = [sys.executable, "-m", "fleetctl"]


def agent(stack: Stack, ship: str, password: str, spool: Path, *args: str, name: str = "agent",
          **env: str) -> Service:
    """A ``fleetctl ship run`` process (not started) with the stack's settings and ``env``."""
    environ = stack.env_with(FLEET_SHIP_ACK_TIMEOUT="2", **env)
    # --password=P: a generated password may begin with "-", which argparse would take for an
    # option in "--password P".
    return Service(name, [*FLEETCTL, "ship", "run", ship, f"--password={password}",
                          "--spool", str(spool), *args],
                   stack.root / "logs" / f"{name}-{ship}.log", lambda: True, env=environ)


def spool_state(path: Path) -> dict[str, int]:
    """depth, dropped, confirmed of a spool (0s when it does not exist yet)."""
    try:
        with open_readonly(path) as spool:
            st = spool.stats()
    except SpoolError:  # not there yet, or the agent is creating its tables right now
        return {"depth": 0, "dropped": 0, "confirmed": 0}
    return {"depth": st.depth, "dropped": st.dropped,
            "confirmed": int(st.meta.get("confirmed", 0))}


def readings_file(path: Path, start_us: int, n: int, interval_s: int = 300) -> list[
        tuple[int, float]]:
    """JSON lines of n kW readings; returns them as (start_us, value)."""
    out = []
    lines = []
    for i in range(n):
        t = start_us + i * interval_s * US
        value = round(10 + (i * 37 % 23) + i / 7, 3)
        out.append((t, value))
        lines.append(json.dumps({"datetime": format_datetime(t), "value": value}))
    path.write_text("\n".join(lines) + "\n")
    return out


def simulated(ship: str, start_us: int, end_us: int, interval_s: int = 300) -> list[
        tuple[int, float]]:
    """What the simulator measures for ``ship`` over [start, end)."""
    profile = LoadProfile(ship)
    return [(t, profile.kw(t)) for t in range(start_us, end_us, interval_s * US)]


def expected_windows(ship: str, readings: list[tuple[int, float]],
                     interval_s: int = 300) -> dict[int, float]:
    parts = normalize(ship, readings, power=True, interval_s=interval_s)
    return {w.start_us: w.kwh for w in windows(parts)}


def stored_windows(stack: Stack, ship: str) -> dict[int, float]:
    rp = stack.cfg.influxdb.retention_policy
    res = stack.influx_query(
        f"SELECT sum(kwh) FROM {rp}.energy WHERE ship = '{ship}' AND time >= 0 "
        f"AND time < '2100-01-01T00:00:00Z' GROUP BY time(15m) fill(none)")
    series = res[0].get("series") or []
    return {int(t): float(v) for t, v in series[0]["values"]} if series else {}


def stored_count(stack: Stack, ship: str) -> int:
    rp = stack.cfg.influxdb.retention_policy
    res = stack.influx_query(f"SELECT count(kwh) FROM {rp}.energy WHERE ship = '{ship}'")
    series = res[0].get("series") or []
    return int(series[0]["values"][0][1]) if series else 0


def assert_same_windows(stored: dict[int, float], expected: dict[int, float]) -> None:
    assert sorted(stored) == sorted(expected), (
        f"windows differ: missing {sorted(set(expected) - set(stored))[:5]}, "
        f"extra {sorted(set(stored) - set(expected))[:5]}")
    for t, kwh in expected.items():
        assert abs(stored[t] - kwh) <= 1e-9 * max(1.0, abs(kwh)), (t, stored[t], kwh)


def closed_port() -> int:
    """A loopback port with no listener: an agent pointed there is offline."""
    return free_port()
