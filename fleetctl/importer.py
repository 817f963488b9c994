"""``fleetctl import FILE --ship S``: a meter's log (CSV or a spreadsheet) published as the ship.

Reading the file (pandas' readers; ``.xlsx`` through openpyxl):

- CSV separated by ``,`` or ``;`` (whichever the first line holds more of; tab too), with decimal
  commas (``1,5``, ``1.234,5``) or points, with a header row or none. Blank lines are skipped.
- The time column is the first whose header reads like a time (time, timestamp, datetime, date,
  ...), the value column the first whose header reads like a value (value, kwh, kw, energy,
  reading, register, ...); without such names, the first two columns.
- Times: ISO 8601 (``2024-03-01T00:15:00Z``, ``2024-03-01 00:15``), the original service's
  ``2024-03-01T00-15-00Z``, ``01.03.2024 00:15`` and ``01/03/2024 00:15`` (day first), or a
  spreadsheet's own dates. A time without an offset is local time in ``--tz`` (default UTC): in
  the hour a daylight-saving change repeats, its first occurrence is the earlier instant and a
  second occurrence the later one; a local time that does not exist (skipped by the change) is
  refused.
- Units: ``--units``, else from the value column's name (``kWh``, ``kW``, ``Wh``...), else kWh.
- Anything unreadable stops the import before anything is sent, with a message naming the line
  (the spreadsheet row) and the column.

Publishing reuses the ship agent: the readings go into a spool of their own and an
:class:`~ship.agent.Agent` sends them as the ship (its own credentials, client id
``<ship>-import``, no presence messages), one batch at a time, each confirmed on the ``ack`` topic
before the next, resent until it is. The spool is the state file: it lives at
``<data_dir>/imports/<sha256 of the file>-<ship>-<meter>.spool`` and holds what is not yet
confirmed and how far the file was read, so an import interrupted (Ctrl-C, a dropped link) resumes
where it stopped when the same command is run again, and a finished one is recognised: a second run
of the same file sends nothing (and were it sent, storage would count it once).

The password: ``--password``, ``--password-file``, ``FLEET_SHIP_PASSWORD``, or the file fleetctl
keeps for the simulator's ships (``<data_dir>/simulate/credentials.json``), in that order.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import math
import re
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd

from fleet import paths, topics
from fleet.config import Config, load_config
from fleet.errors import ConfigError, FleetError
from fleet.schema import METER_ID, SHIP_ID
from fleet.timeutil import US, parse_datetime
from fleetctl.ship import given_password
from ship.agent import Agent
from ship.spool import Reading, Spool

if TYPE_CHECKING:
    from fleetctl.main import CommandTree

log = logging.getLogger(__name__)

UNITS = ("kWh", "kW", "Wh", "W", "MWh", "MW")
ENERGY_UNITS = ("kWh", "Wh", "MWh")
# Column names, most telling first: the column matching the earliest pattern wins.
_TIME_NAMES = tuple(re.compile(p, re.IGNORECASE) for p in (
    r"timestamp|datetime|date.?time", r"time|zeit|tid", r"date|datum|dato", r"stamp|when|period"
    r"|start|from"))
_VALUE_NAMES = tuple(re.compile(p, re.IGNORECASE) for p in (
    r"value|wert|verdi", r"kwh|mwh|wh|energy|energie", r"reading|register|total|stand|counter",
    r"kw|power|load|consum|usage|verbrauch"))
_LOCAL_FORMATS = ("%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M", "%d.%m.%Y", "%d/%m/%Y %H:%M:%S",
                  "%d/%m/%Y %H:%M", "%d/%m/%Y")
_EXCEL = (".xlsx", ".xlsm")
SPOOL_WINDOW = 20_000  # readings handed to the spool ahead of what is confirmed


class ImportFileError(FleetError):
    """The file cannot be read as a meter log; the message names the line and column."""


@dataclass(frozen=True, slots=True)
class Table:
    """A meter log as read: readings (UTC microseconds, value) in file order, and what was found."""

    readings: list[tuple[int, float]]
    time_column: str
    value_column: str
    units: str | None  # from the value column's name, when it says
    separator: str  # "," ";" "\t", or "xlsx"


# -- reading the file ------------------------------------------------------------------------------


def read_table(path: Path, tz: ZoneInfo) -> Table:
    """The readings of a CSV or spreadsheet file (see the module docstring)."""
    suffix = path.suffix.lower()
    try:
        if suffix in _EXCEL:
            frame = pd.read_excel(path, header=None, dtype=object, engine="openpyxl")
            sep = "xlsx"
        elif suffix == ".xls":
            raise ImportFileError(f"{path}: the old .xls format is not read; save it as .xlsx "
                                  "or CSV")
        else:
            with path.open(encoding="utf-8-sig", newline="") as fh:
                first = next((line for line in fh if line.strip()), "")
            sep = max((";", ",", "\t"), key=first.count) if first.strip() else ","
            frame = pd.read_csv(path, sep=sep, header=None, dtype=str, keep_default_na=False,
                                skip_blank_lines=False, encoding="utf-8-sig", engine="python")
    except ImportFileError:
        raise
    except (OSError, UnicodeDecodeError) as exc:
        raise ImportFileError(f"{path}: cannot read it: {exc}") from None
    except (ValueError, pd.errors.ParserError) as exc:
        raise ImportFileError(f"{path}: not a readable CSV or spreadsheet: {exc}") from None
    excel = sep == "xlsx"

    def where(row: int, col: int) -> str:
        # Lines and spreadsheet rows count from 1, as an editor shows them.
        column = _letters(col) if excel else str(col + 1)
        return f"{path.name}: {'row' if excel else 'line'} {row + 1}, column {column}"

    cells: list[list[Any]] = frame.to_numpy(dtype=object).tolist()
    rows = [r for r, row in enumerate(cells) if any(_text(v) for v in row)]
    if not rows:
        raise ImportFileError(f"{path}: holds no readings")
    if frame.shape[1] < 2:
        raise ImportFileError(f"{path.name}: one column only; expected a time column and a value "
                              "column" + ("" if excel else f" (separated by {sep!r})"))
    header = [_text(v) for v in cells[rows[0]]]
    has_header = not _looks_like_data(cells[rows[0]])
    t_col, v_col = 0, 1
    if has_header:
        t_col = _best(header, _TIME_NAMES, -1)
        t_col = 0 if t_col < 0 else t_col
        v_col = _best(header, _VALUE_NAMES, t_col)
        if v_col < 0:
            v_col = 1 if t_col == 0 else 0
        rows = rows[1:]
    names = header if has_header else [f"column {i + 1}" for i in range(frame.shape[1])]
    units = _units_in(names[v_col]) if has_header else None
    parsed = _parse_column([cells[r][t_col] for r in rows])
    readings: list[tuple[int, float]] = []
    seen: set[datetime] = set()
    first_at: dict[int, int] = {}  # instant -> the row that gave it
    for r, pre in zip(rows, parsed, strict=True):
        t_raw, v_raw = cells[r][t_col], cells[r][v_col]
        if not _text(t_raw):
            raise ImportFileError(f"{where(r, t_col)}: no time")
        try:
            t = _instant(t_raw if pre is None else pre, tz, seen)
        except ValueError as exc:
            raise ImportFileError(f"{where(r, t_col)} ({names[t_col]}): {exc}") from None
        try:
            v = _number(v_raw)
        except ValueError as exc:
            raise ImportFileError(f"{where(r, v_col)} ({names[v_col]}): {exc}") from None
        if t in first_at:
            raise ImportFileError(f"{where(r, t_col)} ({names[t_col]}): the same time as "
                                  f"{'row' if excel else 'line'} {first_at[t] + 1}")
        first_at[t] = r
        readings.append((t, v))
    if not readings:
        raise ImportFileError(f"{path}: a header and no readings")
    return Table(readings, names[t_col], names[v_col], units, sep)


def _best(header: list[str], patterns: tuple[re.Pattern[str], ...], skip: int) -> int:
    """The column matching the earliest of ``patterns`` (not ``skip``), or -1."""
    for pattern in patterns:
        for i, name in enumerate(header):
            if i != skip and pattern.search(name):
                return i
    return -1


def _parse_column(values: list[Any]) -> list[datetime | None]:
    """Local times of a day-first text format, parsed by pandas in one go (strptime per row is
    slow: a year of 15-minute readings took seconds); None where another form, or an error,
    is left to the row-by-row parser."""
    first = next((_text(v) for v in values if isinstance(v, str) and _text(v)), "")
    fmt = None
    for candidate in _LOCAL_FORMATS:
        with contextlib.suppress(ValueError):
            datetime.strptime(first, candidate)
            fmt = candidate
            break
    if fmt is None:
        return [None] * len(values)
    texts = pd.Series([_text(v) for v in values], dtype=object)
    stamps = pd.to_datetime(texts, format=fmt, errors="coerce")
    return [None if pd.isna(ts) else ts.to_pydatetime() for ts in stamps]


def _letters(col: int) -> str:
    out = ""
    col += 1
    while col:
        col, rem = divmod(col - 1, 26)
        out = chr(65 + rem) + out
    return out


def _text(v: object) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return str(v).strip()


def _looks_like_data(row: list[Any]) -> bool:
    """Whether a first row holds data (a readable time and number) rather than names."""
    cells = list(row)
    try:
        if not isinstance(cells[0], datetime):  # pandas' Timestamp is one too
            _parse_text(_text(cells[0]))
        _number(cells[1])
    except (ValueError, IndexError):
        return False
    return True


def _number(v: object) -> float:
    if isinstance(v, bool):
        raise ValueError(f"{v!r} is not a number")
    if isinstance(v, int | float):
        f = float(v)
    else:
        text = _text(v).replace("\u00a0", "").replace(" ", "").replace("'", "")
        if not text:
            raise ValueError("no value")
        if "," in text and "." in text:  # thousands separators: 1.234,5 or 1,234.5
            text = (text.replace(".", "").replace(",", ".") if text.rfind(",") > text.rfind(".")
                    else text.replace(",", ""))
        elif "," in text:
            text = text.replace(",", ".")
        if not re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", text):
            raise ValueError(f"{_text(v)!r} is not a number")
        f = float(text)
    if not math.isfinite(f):
        raise ValueError(f"{v!r} is not finite")
    if f < 0:
        raise ValueError(f"{_text(v)} is negative")
    return f


def _instant(v: object, tz: ZoneInfo, seen: set[datetime]) -> int:
    """UTC microseconds of a cell: an aware time as it says, a naive one as local time in tz."""
    if isinstance(v, pd.Timestamp):
        v = v.to_pydatetime()
    if isinstance(v, datetime):
        dt = v
    else:
        text = _text(v)
        dt = _parse_text(text)
    if dt.tzinfo is not None:
        return (dt - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    return _local(dt, tz, seen)


def _parse_text(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        pass
    with contextlib.suppress(ValueError):
        us = parse_datetime(text)  # the original service's 2018-08-24T00-00-00Z, with an offset
        if re.search(r"(Z|[+-]\d{2}:?\d{2})$", text):
            return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)
        return datetime(1970, 1, 1) + timedelta(microseconds=us)
    for fmt in _LOCAL_FORMATS:
        with contextlib.suppress(ValueError):
            return datetime.strptime(text, fmt)
    raise ValueError(f"{text!r} is not a time (ISO 8601, or day.month.year hour:minute)")


def _local(dt: datetime, tz: ZoneInfo, seen: set[datetime]) -> int:
    first = dt.replace(tzinfo=tz, fold=0)
    second = dt.replace(tzinfo=tz, fold=1)
    if first.utcoffset() != second.utcoffset():
        if first.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != dt:
            raise ValueError(f"{dt.isoformat(sep=' ')} does not exist in {tz.key} (the clocks "
                             "skipped it)")
        # The repeated hour: the first occurrence is the earlier instant, a second the later.
        chosen = second if dt in seen else first
        seen.add(dt)
    else:
        chosen = first
    return (chosen - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def _units_in(name: str) -> str | None:
    low = name.lower()
    for unit in ("mwh", "kwh", "wh", "mw", "kw"):
        if re.search(rf"(^|[^a-z]){unit}($|[^a-z])", low):
            return {"mwh": "MWh", "kwh": "kWh", "wh": "Wh", "mw": "MW", "kw": "kW"}[unit]
    return None


def interval_of(readings: Sequence[tuple[int, float]]) -> float:
    """The most common spacing of the sorted readings (ties to the smaller), in seconds."""
    starts = sorted({t for t, _ in readings})
    if len(starts) < 2:
        return 900.0
    gaps = Counter(b - a for a, b in pairwise(starts))
    return min(gaps.items(), key=lambda kv: (-kv[1], kv[0]))[0] / US


# -- the state and the source ------------------------------------------------------------------------


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def state_path(cfg: Config, digest: str, ship: str, meter: str) -> Path:
    return paths.import_state(cfg.local.path, digest, ship, meter)


class FileReadings:
    """The file's readings as an agent source, handed out only a window ahead of what the bridge
    confirmed (the spool stays small), with the position in the file as its cursor."""

    def __init__(self, readings: list[Reading], done: int, spooled: Callable[[], int]) -> None:
        self.readings = readings
        self.done = done
        self.spooled = spooled
        self.exhausted = done >= len(readings)

    def poll(self, now: float) -> list[Reading]:
        room = SPOOL_WINDOW - self.spooled()
        if room <= 0 or self.exhausted:
            return []
        out = self.readings[self.done:self.done + room]
        self.done += len(out)
        self.exhausted = self.done >= len(self.readings)
        return out

    def cursor(self) -> dict[str, str]:
        return {"import_done": str(self.done), **({"import_read": "all"} if self.exhausted
                                                   else {})}

    def close(self) -> None:
        pass


# -- the command ------------------------------------------------------------------------------------


def _password(args: argparse.Namespace, cfg: Config) -> str:
    given = given_password(args)
    if given:
        return given
    with contextlib.suppress(OSError, ValueError, TypeError):
        known = json.loads(paths.simulate_credentials(cfg.local.path).read_text())
        if isinstance(known.get(args.ship), str):
            return str(known[args.ship])
    raise ConfigError(f"the password of ship {args.ship!r} is needed: --password, "
                      "--password-file or FLEET_SHIP_PASSWORD")


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"--tz {name!r}: not an IANA time zone (e.g. Europe/Oslo, UTC)") from None


def _run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = load_config()
    if not SHIP_ID.fullmatch(args.ship):
        raise ConfigError(f"--ship {args.ship!r}: 1-64 characters of [A-Za-z0-9_-]")
    if not METER_ID.fullmatch(args.meter):
        raise ConfigError(f"--meter {args.meter!r}: 1-32 characters of [A-Za-z0-9_-]")
    tz = _zone(args.tz)
    path = Path(args.file)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    password = _password(args, cfg)
    try:
        return _import(args, cfg, path, tz, password)
    except KeyboardInterrupt:  # before the sending starts (it handles Ctrl-C itself)
        print("interrupted before sending; run the same command again", file=sys.stderr)
        return 130


def _import(args: argparse.Namespace, cfg: Config, path: Path, tz: ZoneInfo,
            password: str) -> int:
    table = read_table(path, tz)
    units = args.units or table.units or "kWh"
    if args.kind == "total" and units not in ENERGY_UNITS:
        raise ConfigError(f"--kind total: a register is energy (kWh, Wh, MWh), not {units}")
    interval = args.interval or interval_of(table.readings)
    readings = [Reading(t, v, units, interval, args.meter, args.kind) for t, v in table.readings]
    err = sys.stderr
    print(f"{path.name}: {len(readings)} readings, time from column {table.time_column!r}"
          f"{' (local times in ' + tz.key + ')' if tz.key != 'UTC' else ' (UTC unless marked)'},"
          f" values from {table.value_column!r} in {units}, kind {args.kind}, meter "
          f"{args.meter}, interval {interval:g} s", file=err)

    digest = file_digest(path)
    spool_file = state_path(cfg, digest, args.ship, args.meter)
    # One batch at a time, each confirmed before the next ([ship] batch_size readings), no drain
    # limit.
    cfg = replace(cfg, ship=replace(cfg.ship, max_inflight=1, drain_rate=1e9))
    with Spool(spool_file, args.ship, max_readings=SPOOL_WINDOW + cfg.ship.batch_size) as spool:
        target = f"{args.meter}/{args.kind}/{units}/{interval!r}"
        known = spool.get_meta("import_target")
        if known is not None and known != target:
            raise ConfigError(f"{path.name} was imported to ship {args.ship} meter {args.meter} "
                              f"as {known}, not {target}; remove {spool_file} to import it "
                              "again differently")
        spool.set_meta(import_target=target, import_file=str(path.resolve()))
        done = int(spool.get_meta("import_done") or 0)
        confirmed_before = int(spool.get_meta("confirmed") or 0)
        if spool.get_meta("import_read") == "all" and spool.depth == 0:
            print(f"already imported: all {len(readings)} readings were confirmed stored "
                  f"({spool_file}); nothing to send", file=err)
            return 0
        if done:
            print(f"resuming: {confirmed_before} of {len(readings)} readings already confirmed",
                  file=err)
        source = FileReadings(readings, done, lambda: spool.depth)
        agent = Agent(cfg, args.ship, password, spool, source, live=False,
                      client_id=f"{args.ship}-import", presence=False)
        stop = threading.Event()

        def on_signal(_signum: int, _frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        try:
            _send(agent, spool, stop, len(readings), confirmed_before, args.no_progress)
        except CredentialsRefusedError as exc:
            confirmed = int(spool.get_meta("confirmed") or 0)
            print(f"the broker refused ship {args.ship}: {exc}. Check --ship and the password; "
                  f"{confirmed} of {len(readings)} readings are confirmed, and the same command "
                  "with the right ones resumes from there", file=err)
            return 1
        rejected = int(spool.get_meta("rejected") or 0)
        confirmed = int(spool.get_meta("confirmed") or 0)
        if not agent.done:
            print(f"interrupted: {confirmed} of {len(readings)} readings confirmed; run the same "
                  "command again to resume", file=err)
            return 130
        print(f"imported {len(readings)} readings to ship {args.ship} meter {args.meter}: "
              f"{confirmed - rejected} stored, {rejected} refused (see "
              f"{topics.rejected(args.ship)})", file=err)
        return 1 if rejected else 0


# CONNACK reasons no retry mends: client id not valid, bad user name or password, not
# authorized, banned (MQTT 5 codes; paho maps MQTT 3.1.1's onto them).
CREDENTIALS_REFUSED = frozenset({0x85, 0x86, 0x87, 0x8A})


class CredentialsRefusedError(Exception):
    """The broker refused the ship's credentials: retrying would not help."""


def _send(agent: Agent, spool: Spool, stop: threading.Event, total: int, before: int,
          quiet: bool) -> None:
    from tqdm import tqdm  # noqa: PLC0415 - only this command draws a progress bar

    bar = tqdm(total=total, initial=before, unit="readings", disable=quiet, file=sys.stderr,
               dynamic_ncols=True, smoothing=0.1)
    agent.start()
    try:
        shown = before
        last = 0.0
        while not stop.is_set():
            agent.step()
            if agent.refusal is not None and agent.refusal.value in CREDENTIALS_REFUSED:
                raise CredentialsRefusedError(str(agent.refusal))
            confirmed = int(spool.get_meta("confirmed") or 0)
            now = time.monotonic()
            if confirmed != shown or now - last > 1:
                # Published at least once: confirmed, or in a batch awaiting its ack.
                bar.set_postfix(sent=confirmed + spool.depth - spool.unsent(),
                                confirmed=confirmed, refresh=False)
                bar.update(confirmed - shown)  # the bar counts confirmed readings
                shown = confirmed
                last = now
            if agent.done:
                break
            agent.wake.wait(0.2)
            agent.wake.clear()
    finally:
        bar.close()
        agent.close()


def register(tree: CommandTree) -> None:
    """``fleetctl import``."""
    cmd = tree.command("import", _run, "publish a meter's log (CSV or .xlsx) as the ship, "
                       "resumable, each batch confirmed stored before the next")
    cmd.add_argument("file", help="a CSV (, or ; separated, decimal commas allowed, header or "
                                  "none) or .xlsx file: a time column and a value column")
    cmd.add_argument("--ship", required=True, help="the ship the log belongs to")
    cmd.add_argument("--meter", default="main", help="the meter (default main)")
    cmd.add_argument("--units", choices=UNITS,
                     help="units of the values (default: from the column's name, else kWh)")
    cmd.add_argument("--kind", choices=("interval", "total"), default="interval",
                     help="interval: each value is its interval's energy or power; total: the "
                          "meter's running total (register) in an energy unit")
    cmd.add_argument("--tz", default="UTC",
                     help="time zone of times written without an offset (default UTC)")
    cmd.add_argument("--interval", type=float,
                     help="seconds each reading covers (default: the file's most common spacing)")
    cmd.add_argument("--password", help="the ship's broker password (--password=P if P begins "
                                        "with -); else --password-file, FLEET_SHIP_PASSWORD or "
                                        "<data_dir>/simulate/credentials.json")
    cmd.add_argument("--password-file", help="read the password from this file")
    cmd.add_argument("--no-progress", action="store_true", help="no progress bar")
