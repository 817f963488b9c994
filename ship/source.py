"""Where a ship's readings come from: a meter simulator, a file, or standard input.

Every source has ``poll(now) -> list[Reading]`` (what is due since the last poll, never
blocking), ``exhausted`` (a finite source has nothing more), and ``cursor()`` (meta to store in
the spool in the same transaction as the readings, so a restarted agent resumes where the spool
left off instead of measuring or reading twice).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
import queue
import random
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from fleet.config import parse_duration
from fleet.schema import METER_ID
from fleet.timeutil import US, parse_datetime
from ship.spool import Reading

log = logging.getLogger(__name__)

_SHORT = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$", re.IGNORECASE)
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(text: str) -> float:
    """Seconds from ``5m``, ``24h``, ``2d``, ``30s``, an ISO 8601 duration or plain seconds."""
    m = _SHORT.match(text.strip())
    if m:
        seconds = float(m[1]) * _UNIT_S[m[2].lower()]
        if seconds <= 0:
            raise ValueError(f"duration must be positive: {text!r}")
        return seconds
    return parse_duration(text)


class Source(Protocol):
    exhausted: bool

    def poll(self, now: float) -> list[Reading]: ...

    def cursor(self) -> dict[str, str]: ...

    def close(self) -> None: ...


# --- simulator -----------------------------------------------------------------------------------


def _unit(seed: str) -> float:
    """A stable pseudo-random number in [0, 1) from a string (not Python's salted hash)."""
    return int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big") / 2**64


class LoadProfile:
    """A ship's realistic power draw in kW: base load, daily cycle, noise, occasional spikes.

    Deterministic: the value at a time depends only on the ship and the time, so a restarted
    simulator (or a test) computes the same reading again.
    """

    def __init__(self, ship: str) -> None:
        self.ship = ship
        self.base = 40 + 360 * _unit(f"{ship}:base")  # hotel load, 40-400 kW
        self.daily = 0.15 + 0.25 * _unit(f"{ship}:daily")  # share of base swinging over a day
        self.peak_hour = 12 + 8 * _unit(f"{ship}:peak")  # ship time of the daily peak
        self.noise = 0.02 + 0.04 * _unit(f"{ship}:noise")

    def kw(self, start_us: int) -> float:
        rng = random.Random(f"{self.ship}:{start_us}")  # noqa: S311 - simulation, not security
        hours = (start_us / US / 3600) % 24
        cycle = math.cos(2 * math.pi * (hours - self.peak_hour) / 24)
        value = self.base * (1 + self.daily * cycle) * (1 + rng.gauss(0, self.noise))
        if rng.random() < 0.01:  # a winch, a pump, a galley at dinner: 1.5-3x for one reading
            value *= 1.5 + 1.5 * rng.random()
        return round(max(value, 0.0), 3)


class SimulatedMeter:
    """Readings of a :class:`LoadProfile` every ``interval_s``, on a clock ``speed`` times fast.

    A reading for [t, t + interval) is taken once the simulated clock passes its end, and the
    clock never runs past the real now. The simulation starts at ``start_us`` (default: now,
    rounded down to the interval) minus ``backfill_s`` of history. At ``speed`` 1 history is
    measured at once (the meter's memory of a time before the agent ran); faster, the clock runs
    from the start at ``speed`` until it reaches now (backfilling history), then in real time.
    ``resume_us`` (the spool's cursor) continues a restarted simulation where it stopped; at
    speed 1 without a start, from now instead (the meter did not measure while the agent was
    down: a gap, as on a real ship). ``duration_s`` ends it after that much simulated time.
    """

    def __init__(self, ship: str, interval_s: float, *, units: str = "kW", speed: float = 1.0,
                 start_us: int | None = None, backfill_s: float = 0.0,
                 duration_s: float | None = None, resume_us: int | None = None,
                 origin_us: int | None = None, wall: float | None = None,
                 meter: str = "main", kind: str = "interval", scale: float = 1.0,
                 register_kwh: float | None = None) -> None:
        if speed < 1:
            raise ValueError("speed must be at least 1")
        # Meter main keeps the ship's own profile (and the cursor keys of a spool from before
        # meters); another meter draws a profile of its own.
        self.profile = LoadProfile(ship if meter == "main" else f"{ship}/{meter}")
        self.meter = meter
        self.kind = kind
        self.scale = scale
        # kind "total": the register (kWh) at next_us; it starts at a stable, ship-specific value
        # and grows by the profile's energy of each interval.
        self.register = (register_kwh if register_kwh is not None
                         else round(10_000 + 90_000 * _unit(f"{ship}/{meter}:register"), 3))
        self.units = "kWh" if kind == "total" else units
        self.interval_s = interval_s
        self.interval_us = round(interval_s * US)
        self.speed = speed
        wall_now = time.time() if wall is None else wall
        now_us = int(wall_now * US)
        floor_now = now_us - now_us % self.interval_us
        if origin_us is None:  # first run; a restart passes the origin it stored
            back = round(backfill_s * US)
            origin_us = (floor_now if start_us is None else start_us) - (
                back - back % self.interval_us)
        self.origin_us = origin_us
        self.end_us = None if duration_s is None else origin_us + round(duration_s * US)
        self.next_us = origin_us
        if resume_us is not None and resume_us > origin_us:
            self.next_us = resume_us
            if speed == 1 and start_us is None:
                self.next_us = max(resume_us, floor_now)
        self._anchor_sim = self.next_us
        self._anchor_wall = wall_now
        self.exhausted = False

    def clock_us(self, now: float) -> int:
        """The simulated now, in epoch microseconds."""
        real = int(now * US)
        if self.speed == 1:
            return real
        return min(real, self._anchor_sim + int((now - self._anchor_wall) * self.speed * US))

    def poll(self, now: float, limit: int = 100_000) -> list[Reading]:
        sim = self.clock_us(now)
        out: list[Reading] = []
        while self.next_us + self.interval_us <= sim and len(out) < limit:
            if self.end_us is not None and self.next_us >= self.end_us:
                self.exhausted = True
                break
            kw = self.profile.kw(self.next_us) * self.scale
            if self.kind == "total":
                out.append(Reading(self.next_us, round(self.register, 3), self.units,
                                   self.interval_s, self.meter, self.kind))
                self.register += kw * self.interval_s / 3600
            else:
                out.append(Reading(self.next_us, round(kw, 3), self.units, self.interval_s,
                                   self.meter))
            self.next_us += self.interval_us
        if self.end_us is not None and self.next_us >= self.end_us:
            self.exhausted = True
        return out

    def cursor(self) -> dict[str, str]:
        out = {meter_key("sim_next_us", self.meter): str(self.next_us),
               meter_key("sim_origin_us", self.meter): str(self.origin_us)}
        if self.kind == "total":
            out[meter_key("sim_register", self.meter)] = repr(self.register)
        return out

    def close(self) -> None:
        pass


def meter_key(name: str, meter: str) -> str:
    """A spool cursor key of one simulated meter (``main`` keeps the key it had before meters)."""
    return name if meter == "main" else f"{name}:{meter}"


@dataclass(frozen=True, slots=True)
class MeterSpec:
    """One simulated meter: its name, kind and share of the ship's typical load."""

    meter: str
    kind: str = "interval"
    scale: float = 1.0


# The simulator's meters, in this order: propulsion and ship's main load, the hotel load (a
# smaller profile of its own), and a shore-power register reporting its running total.
SIM_METERS = (MeterSpec("main"), MeterSpec("hotel", scale=0.35),
              MeterSpec("shore", "total", 0.5))


class MeterSet:
    """Several simulated meters of one ship as one source (their readings interleaved)."""

    def __init__(self, meters: Sequence[SimulatedMeter]) -> None:
        if not meters:
            raise ValueError("a meter set needs a meter")
        self.meters = list(meters)
        self.exhausted = False

    def clock_us(self, now: float) -> int:
        return self.meters[0].clock_us(now)

    def poll(self, now: float) -> list[Reading]:
        out = [r for m in self.meters for r in m.poll(now)]
        self.exhausted = all(m.exhausted for m in self.meters)
        return out

    def cursor(self) -> dict[str, str]:
        return {k: v for m in self.meters for k, v in m.cursor().items()}

    def close(self) -> None:
        for m in self.meters:
            m.close()


def meter_specs(names: Sequence[str] | None, kind: str = "interval") -> list[MeterSpec]:
    """``--meter`` arguments (``NAME`` or ``NAME:interval|total``; default ``main``) as specs;
    ``kind`` is the default kind. Each meter past the first draws a profile of its own.
    ValueError names a bad argument."""
    specs: list[MeterSpec] = []
    for text in names or ["main"]:
        name, _, k = text.partition(":")
        k = k or kind
        if not METER_ID.fullmatch(name):
            raise ValueError(f"--meter {text!r}: a meter is 1-32 characters of [A-Za-z0-9_-]")
        if k not in ("interval", "total"):
            raise ValueError(f"--meter {text!r}: the kind is interval or total")
        if any(sp.meter == name for sp in specs):
            raise ValueError(f"--meter {name!r} is given twice")
        specs.append(MeterSpec(name, k))
    return specs


def simulated_meters(ship: str, specs: Sequence[MeterSpec], interval_s: float,
                     meta: Callable[[str], str | None], **kw: Any) -> MeterSet:
    """A :class:`MeterSet` of ``specs``, resumed from a spool's cursor (``meta`` = get_meta)."""
    meters = []
    for spec in specs:
        resume = meta(meter_key("sim_next_us", spec.meter))
        origin = meta(meter_key("sim_origin_us", spec.meter))
        register = meta(meter_key("sim_register", spec.meter))
        meters.append(SimulatedMeter(
            ship, interval_s, meter=spec.meter, kind=spec.kind, scale=spec.scale,
            resume_us=int(resume) if resume else None, origin_us=int(origin) if origin else None,
            register_kwh=float(register) if register else None, **kw))
    return MeterSet(meters)


# --- files and standard input ---------------------------------------------------------------------


class LineError(ValueError):
    """A line of a file or of standard input that is not a reading."""


def parse_json_line(text: str, units: str, interval_s: float, meter: str = "main",
                    kind: str = "interval") -> Reading:
    """``{"datetime": "...", "value": ...}`` (interval-beginning, UTC) as a reading."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise LineError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise LineError("not a JSON object")
    return _reading(doc.get("datetime"), doc.get("value"), units, interval_s, meter, kind)


def _reading(when: object, value: object, units: str, interval_s: float, meter: str = "main",
             kind: str = "interval") -> Reading:
    try:
        start_us = parse_datetime(when)
    except ValueError:
        raise LineError(f"bad datetime {when!r}") from None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise LineError(f"bad value {value!r}")
    try:
        number = float(value)
        return Reading(start_us, number, units, interval_s, meter, kind)
    except (ValueError, OverflowError):
        raise LineError(f"bad value {value!r}: must be a finite number >= 0") from None


class LineSource:
    """JSON lines or CSV (``datetime,value`` with a header) from a file or standard input.

    A reader thread feeds a bounded queue, so reading never blocks the agent. For a file, the
    spool keeps how many lines were consumed: a restarted agent skips them. Standard input
    cannot be replayed, so it keeps no cursor. Bad lines are logged (with their number),
    counted and skipped.
    """

    def __init__(self, path: str, *, units: str, interval_s: float,
                 stdin: IO[str] | None = None, skip_lines: int = 0, meter: str = "main",
                 kind: str = "interval") -> None:
        self.path = path
        self.meter = meter
        self.kind = kind
        self.units = units
        self.interval_s = interval_s
        self.is_stdin = path == "-"
        self.key = "stdin" if self.is_stdin else f"file:{Path(path).resolve()}"
        self.lines_done = 0 if self.is_stdin else skip_lines
        self.invalid = 0
        self.exhausted = False
        self._queue: queue.Queue[tuple[int, str] | None] = queue.Queue(maxsize=50_000)
        self._csv = path.lower().endswith(".csv")
        if self.is_stdin:
            self._fh: IO[str] = stdin or sys.stdin
        else:
            try:
                self._fh = Path(path).open(encoding="utf-8", newline="")  # noqa: SIM115
            except OSError as exc:
                raise LineError(f"cannot read {path}: {exc}") from exc
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="ship-source", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for number, text in self._lines():
                if number <= self.lines_done:
                    continue
                while not self._stop.is_set():
                    try:
                        self._queue.put((number, text), timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
        except (OSError, ValueError) as exc:
            log.error("reading %s failed: %s", self.path, exc)
        finally:
            self._queue.put(None)

    def _lines(self) -> Iterator[tuple[int, str]]:
        first = True
        for number, raw in enumerate(self._fh, start=1):
            text = raw.strip()
            if first and text:
                first = False
                self._csv = self._csv or not text.startswith("{")
                if self._csv and "datetime" in text.lower():
                    yield number, ""  # the header: consumed, not a reading
                    continue
            yield number, text

    def poll(self, now: float, limit: int = 10_000) -> list[Reading]:
        out: list[Reading] = []
        while len(out) < limit:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self.exhausted = True
                break
            number, text = item
            self.lines_done = number
            if not text:
                continue
            try:
                out.append(self._parse(text))
            except LineError as exc:
                self.invalid += 1
                log.warning("%s line %d skipped: %s", "stdin" if self.is_stdin else self.path,
                            number, exc)
        return out

    def _parse(self, text: str) -> Reading:
        if not self._csv:
            return parse_json_line(text, self.units, self.interval_s, self.meter, self.kind)
        row = next(csv.reader(io.StringIO(text)))
        if len(row) != 2:
            raise LineError(f"expected 2 CSV columns (datetime,value), got {len(row)}")
        return _reading(row[0].strip(), row[1].strip(), self.units, self.interval_s, self.meter,
                        self.kind)

    def cursor(self) -> dict[str, str]:
        return {} if self.is_stdin else {f"cursor:{self.key}": str(self.lines_done)}

    def close(self) -> None:
        self._stop.set()
        if not self.is_stdin:
            self._thread.join(timeout=2)
            self._fh.close()
