"""The fault suite's rig: one private stack for every case, ships publishing through
``bench.load.Publisher``, and the checks every case ends with.

- Stored 15-minute sums (and covered seconds) equal those computed by the reference normalizer
  (``fleet.normalize``) from every message the broker acknowledged: nothing lost, nothing
  doubled. A message never acknowledged may or may not be stored, but only exactly.
- Every refusal was reported on ``fleet/ships/<id>/rejected`` (an operator watches them all).

Each case starts its own bridge (unique client id, its own metrics port) and ends by stopping it
and discarding its persistent session, so no case's subscription keeps queueing another's traffic.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import signal
import threading
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bench.load import LoadResult, Publisher, iso
from fleet.errors import PayloadError
from fleet.normalize import process_payload, windows
from launcher.servers import Service, free_port
from tests.conftest import MqttSession, Stack, eventually, start_stack

BASE = 1_535_068_800  # 2018-08-24T00:00:00Z
# What the fault bridges are told: a small in-flight bound (so an outage saturates it within
# seconds) and a short retry backoff (so a case does not wait 30 s for the next attempt).
BRIDGE_ENV = {"FLEET_BRIDGE_MAX_INFLIGHT": "1000", "FLEET_BRIDGE_RETRY_MAX_DELAY": "1",
              "FLEET_INFLUXDB_TIMEOUT": "5"}


def good_message(ship: str, i: int, base: int = BASE) -> bytes:
    """Message i: three 5-minute kW readings filling the 15-minute window ``base + i * 900``."""
    start = base + i * 900
    data = [{"datetime": iso(start + k * 300), "value": (i * 7 + k * 3) % 50 + 0.25}
            for k in range(3)]
    return json.dumps({"units": "kW", "batch_id": f"{ship}-{i}", "data": data}).encode()


def stream(ships: Sequence[str], per_ship: int) -> list[list[bytes]]:
    return [[good_message(s, i) for i in range(per_ship)] for s in ships]


@dataclass
class Rig:
    stack: Stack
    watcher: MqttSession
    bridges: list[tuple[Service, str]] = field(default_factory=list)

    # -- ships --------------------------------------------------------------------------------
    def ships(self, n: int, prefix: str) -> list[tuple[str, str]]:
        """n new ship accounts, created with a single broker reload."""
        tag = uuid.uuid4().hex[:6]
        out = [(f"{prefix}-{tag}-{k}", "") for k in range(n)]
        out = [(s, self.stack.accounts.add_ship(s)) for s, _ in out]
        self.stack.reload_accounts(*out)
        return out

    def publisher(self, accounts: Sequence[tuple[str, str]], window: int = 50) -> Publisher:
        pub = Publisher(self.stack.cfg.mqtt.host, self.stack.cfg.mqtt.port, accounts,
                        window=window, prefix="fault")
        pub.connect()
        return pub

    # -- bridges ------------------------------------------------------------------------------
    def bridge(self, **overrides: str) -> Service:
        client_id = f"fault-{uuid.uuid4().hex[:6]}"
        env = {**BRIDGE_ENV, "FLEET_BRIDGE_METRICS_PORT": str(free_port()), **overrides}
        svc = self.stack.start_bridge(client_id=client_id, **env)
        self.bridges.append((svc, client_id))
        return svc

    def retire_bridges(self) -> None:
        """Stop this case's bridges and discard their sessions (no queue left to grow)."""
        for svc, client_id in self.bridges:
            svc.stop(timeout=15)
            with contextlib.suppress(Exception):
                session = self.stack.client("fleet-bridge", self.stack.bridge_password,
                                            client_id=client_id)
                session.close()
        self.bridges.clear()

    @staticmethod
    def metric(svc: Service, name: str, default: float | None = None, **labels: str) -> float:
        """One sample from the bridge's /metrics; a missing sample fails the test unless a
        ``default`` is given (a labelled counter appears only once counted)."""
        assert svc.env is not None
        port = svc.env["FLEET_BRIDGE_METRICS_PORT"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        want = ",".join(f'{k}="{v}"' for k, v in labels.items())
        pattern = re.escape(name) + (r"\{" + re.escape(want) + r"\}" if want else "") + r" (\S+)"
        m = re.search(r"^" + pattern + r"$", text, re.MULTILINE)
        if m:
            return float(m.group(1))
        assert default is not None, f"no sample {name}{labels or ''} in the bridge's /metrics"
        return default

    # -- checks -------------------------------------------------------------------------------
    def stored(self, ships: Sequence[str]) -> dict[tuple[str, int], tuple[float, float]]:
        """(ship, window start in us) -> (kWh, covered seconds) as InfluxDB sums them, up to 2030
        (the type-conflict case poisons a shard in 2031)."""
        cfg = self.stack.cfg.influxdb
        names = "|".join(re.escape(s) for s in ships)
        q = (f'SELECT sum("kwh"), sum("seconds") FROM "{cfg.database}"."{cfg.retention_policy}".'
             f'"energy" WHERE "ship" =~ /^({names})$/ AND time >= 0 AND time < 1893456000s '
             f'GROUP BY time(15m), "ship" fill(none)')
        out: dict[tuple[str, int], tuple[float, float]] = {}
        for series in self.stack.influx_query(q)[0].get("series", []):
            ship = series["tags"]["ship"]
            for t, kwh, seconds in series["values"]:
                # A point's fields become visible one by one while its write is in flight, so a
                # read racing a write can see a window's kwh without its seconds, or the reverse.
                out[ship, int(t)] = (math.nan if kwh is None else kwh,
                                     math.nan if seconds is None else seconds)
        return out

    def check_stored(self, ships: Sequence[str], messages: Sequence[Sequence[bytes]],
                     result: LoadResult | None = None, timeout: float = 60.0,
                     accepted: Callable[[int, int], bool] | None = None) -> None:
        """Eventually, the stored windows equal those of every acknowledged message, exactly."""
        must: list[Any] = []
        may: list[Any] = []
        for k, ship in enumerate(ships):
            for i, payload in enumerate(messages[k]):
                try:
                    parts = process_payload(ship, payload).parts
                except PayloadError:
                    continue
                ok = accepted(k, i) if accepted else (result is None
                                                      or not math.isnan(result.acked_at[k][i]))
                (must if ok else may).extend(parts)
        expected = {(w_ship, w.start_us): w for w_ship, w in _windows_by_ship(must)}
        optional = {(w_ship, w.start_us): w for w_ship, w in _windows_by_ship(may)}

        def diff() -> list[str]:
            got = self.stored(ships)
            problems = []
            for key, w in expected.items():
                have = got.get(key)
                if have is None:
                    problems.append(f"missing {key}")
                elif not (math.isclose(have[0], w.kwh, rel_tol=1e-9, abs_tol=1e-12)
                          and math.isclose(have[1], w.coverage * 900, rel_tol=1e-9)):
                    problems.append(f"{key}: stored {have}, expected {(w.kwh, w.coverage * 900)}")
            for key, have in got.items():
                if key in expected:
                    continue
                w = optional.get(key)
                if w is None or not math.isclose(have[0], w.kwh, rel_tol=1e-9, abs_tol=1e-12):
                    problems.append(f"unexpected {key}: {have}")
            return problems

        last: list[str] = []

        def ok() -> bool:
            nonlocal last
            last = diff()
            return not last

        try:
            eventually(ok, timeout=timeout, interval=0.5)
        except AssertionError:
            pytest.fail(f"{len(last)} windows differ from what was accepted, e.g. {last[:5]}")

    def reports(self, ship: str) -> list[dict[str, Any]]:
        return [json.loads(m.payload) for m in list(self.watcher.messages)
                if m.topic == f"fleet/ships/{ship}/rejected"]

    def assert_no_reports(self, ships: Sequence[str]) -> None:
        bad = {s: self.reports(s) for s in ships if self.reports(s)}
        assert not bad, f"refusals reported for good traffic: {bad}"


def _windows_by_ship(parts: list[Any]) -> Iterator[tuple[str, Any]]:
    by: dict[str, list[Any]] = {}
    for p in parts:
        by.setdefault(p.ship, []).append(p)
    for ship, ps in by.items():
        for w in windows(ps):
            yield ship, w


def rss_kib(pid: int) -> int:
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith("VmRSS:"):
            return int(row.split()[1])
    return 0


def run_in_thread(pub: Publisher, messages: Sequence[Sequence[bytes]], *, rate: float,
                  timeout: float) -> tuple[threading.Thread, list[LoadResult]]:
    box: list[LoadResult] = []
    thread = threading.Thread(target=lambda: box.append(pub.run(messages, rate=rate,
                                                                timeout=timeout)),
                              name="load", daemon=True)
    thread.start()
    return thread, box


@pytest.fixture(scope="package")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    stack = start_stack(tmp_path_factory.mktemp("faults"))
    try:
        password = stack.accounts.add_operator("fault-watch")
        assert stack.accounts.reload_broker()
        watcher = eventually(lambda: _try_connect(stack, password), timeout=10)
        watcher.subscribe("fleet/ships/+/rejected")
        yield Rig(stack, watcher)
        watcher.close()
    finally:
        stack.stop()


def _try_connect(stack: Stack, password: str) -> MqttSession | None:
    session = stack.client("fault-watch", password)
    if session.connected:
        return session
    session.close()
    return None


@pytest.fixture
def faults(rig: Rig) -> Iterator[Rig]:
    """The rig for one case; its bridges are retired afterwards, whatever happened."""
    try:
        yield rig
    finally:
        rig.retire_bridges()
        for svc in (rig.stack.influx, rig.stack.broker):
            if svc.proc is not None and svc.proc.poll() is None:
                os.kill(svc.proc.pid, signal.SIGCONT)  # should a case have failed mid-freeze
            elif svc.proc is not None:
                svc.start(timeout=60)  # a case failed while a server was down
