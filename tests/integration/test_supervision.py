"""``make run``'s supervisor: a dead service is restarted (exit status logged); SIGTERM stops all.

Runs ``python -m launcher`` itself as a subprocess on free ports with a private data directory.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from launcher.alerts import alertmanager_binary
from launcher.servers import REPO_ROOT, isolated_overrides
from tests.conftest import eventually

# influxd, mosquitto, bridge, query service, (Alertmanager when installed,) alert service
SERVERS = 6 if alertmanager_binary() else 5

pytestmark = pytest.mark.integration


def children(pid: int) -> dict[int, str]:
    """Direct children of ``pid`` with their command lines (Linux /proc)."""
    out: dict[int, str] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return out
    for tid in tids:
        try:
            kids = Path(f"/proc/{pid}/task/{tid}/children").read_text().split()
        except OSError:
            continue
        for kid in map(int, kids):
            try:
                out[kid] = Path(f"/proc/{kid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                pass
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


class Launcher:
    """The launcher as a subprocess, its output collected by a thread."""

    def __init__(self, root: Path) -> None:
        (root / "data").mkdir()
        env = {
            **os.environ,
            **isolated_overrides(root / "data"),
            "FLEET_SIMULATE_SHIPS": "0",
            "PYTHONUNBUFFERED": "1",
        }
        self.proc = subprocess.Popen([sys.executable, "-m", "launcher"], cwd=REPO_ROOT, env=env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.append(raw.decode(errors="replace"))

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def child(self, module: str) -> int | None:
        return next((pid for pid, cmd in children(self.proc.pid).items()
                     if f"-m {module}" in cmd and alive(pid)), None)

    def close(self) -> None:
        """Last resort on failure: the launcher, then whatever it left (all started here)."""
        kids = list(children(self.proc.pid))
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid in kids:
            if alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self._reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[Launcher]:
    run = Launcher(tmp_path)
    try:
        yield run
    finally:
        run.close()


@pytest.mark.timeout(150)
def test_dead_bridge_is_restarted_and_sigterm_stops_everything(launcher: Launcher) -> None:
    eventually(lambda: "Fleet telemetry is running" in launcher.output
               or launcher.proc.poll() is not None, timeout=90, interval=0.2,
               message="launcher never printed its banner")
    assert launcher.proc.poll() is None, launcher.output
    started = children(launcher.proc.pid)
    assert len(started) == SERVERS, started
    bridge = launcher.child("bridge")
    assert bridge is not None, started

    os.kill(bridge, signal.SIGKILL)
    restarted = eventually(lambda: (pid := launcher.child("bridge")) not in (None, bridge) and pid,
                           timeout=30, message="the bridge was not restarted")
    assert re.search(rf"bridge \(pid {bridge}\) exited with status -9 \(killed by SIGKILL\); "
                     r"restarting in [0-9.]+s", launcher.output), launcher.output
    eventually(lambda: f"bridge is ready (pid {restarted})" in launcher.output, timeout=30,
               message="the restarted bridge never became ready")
    # The other services were left alone.
    assert set(children(launcher.proc.pid)) == (set(started) - {bridge}) | {restarted}

    everyone = set(started) | {restarted}
    launcher.proc.send_signal(signal.SIGTERM)
    assert launcher.proc.wait(60) == 0, launcher.output
    left = [pid for pid in everyone if alive(pid)]
    assert not left, f"processes left behind: {left}"
    assert "received SIGTERM; stopping everything" in launcher.output
    for name in ("alerts", "query", "bridge", "mosquitto", "influxd"):
        assert f"{name} stopped" in launcher.output, launcher.output


@pytest.mark.timeout(120)
def test_sigkilled_launcher_leaves_no_server_behind(launcher: Launcher) -> None:
    eventually(lambda: "Fleet telemetry is running" in launcher.output
               or launcher.proc.poll() is not None, timeout=90, interval=0.2,
               message="launcher never printed its banner")
    started = children(launcher.proc.pid)
    assert len(started) == SERVERS, started
    launcher.proc.kill()  # no chance to clean up: the children get SIGTERM from the kernel
    launcher.proc.wait()
    eventually(lambda: not any(alive(pid) for pid in started), timeout=30,
               message=f"processes left behind: {[p for p in started if alive(p)]}")
