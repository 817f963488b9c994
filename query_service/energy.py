"""What an energy request asks for and how stored windows become the response (no I/O here).

Windows are aligned to the epoch (UTC) in steps of ``every``; InfluxDB's ``GROUP BY time`` aligns
them the same way. Only data in [start, end) counts, so when ``start`` or ``end`` falls inside a
window, that window holds only the part of its data inside the range (its coverage says so).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from fleet.errors import FleetError
from fleet.schema import EVERY_SECONDS, SHIP_ID
from fleet.timeutil import US, floor_to, parse_datetime
from query_service.db import WindowRow

LABELS = ("start", "end")
FILLS = ("none", "null", "zero")
# InfluxDB stores nanoseconds in a signed 64-bit integer: the representable range, in microseconds.
MIN_US = -9_223_372_036_854_775
MAX_US = 9_223_372_036_854_775


class ParameterError(FleetError):
    """A request parameter is missing or invalid: HTTP 400. The message names the parameter."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter


class ShipNotFoundError(FleetError):
    """Nothing was ever stored for this ship: HTTP 404."""

    def __init__(self, ship: str) -> None:
        super().__init__(f"unknown ship: {ship!r} has never reported")
        self.ship = ship


@dataclass(frozen=True, slots=True)
class EnergyQuery:
    """A validated energy request: a ship, a [start, end) range in microseconds, the windows."""

    ship: str
    start_us: int
    end_us: int
    every: str = "15m"
    label: str = "start"
    fill: str = "none"

    @property
    def step_us(self) -> int:
        return EVERY_SECONDS[self.every] * US

    @property
    def first_window_us(self) -> int:
        return floor_to(self.start_us, self.step_us)

    @property
    def window_count(self) -> int:
        """How many windows of ``every`` the range touches."""
        return -(-(self.end_us - self.first_window_us) // self.step_us)


@dataclass(frozen=True, slots=True)
class Window:
    """One window of the response: its start, energy (None when empty) and coverage."""

    start_us: int
    kwh: float | None
    coverage: float


def _shorten(value: str) -> str:
    return repr(value if len(value) <= 64 else value[:61] + "...")


def required(params: Mapping[str, str], name: str) -> str:
    value = params.get(name)
    if value is None or not value.strip():
        raise ParameterError(name, f"missing parameter: {name}")
    return value


def choice(params: Mapping[str, str], name: str, choices: Iterable[str], default: str) -> str:
    """An optional parameter from a fixed set, or ParameterError naming it.

    Absent means the default; present but empty (``label=``) is an error like any other value
    outside the set, as the OpenAPI document says.
    """
    value = params.get(name)
    if value is None:
        return default
    allowed = tuple(choices)
    if value not in allowed:
        raise ParameterError(
            name, f"{name} must be one of {', '.join(allowed)}; got {_shorten(value)}")
    return value


def _timestamp(params: Mapping[str, str], name: str) -> int:
    text = required(params, name)
    try:
        us = parse_datetime(text)
    except ValueError:
        raise ParameterError(
            name,
            f"{name} must be a UTC timestamp such as 2018-08-24T00:00:00Z "
            f"(or 2018-08-24T00-00-00Z); got {_shorten(text)}",
        ) from None
    if not MIN_US <= us <= MAX_US:
        raise ParameterError(
            name, f"{name} is outside the range the database can store (1677 to 2262)")
    return us


def parse_ship(value: str, parameter: str) -> str:
    """The ship id, or ParameterError naming ``parameter``."""
    if not SHIP_ID.fullmatch(value):
        raise ParameterError(
            parameter,
            f"{parameter} must be 1 to 64 characters of A-Z, a-z, 0-9, '_' and '-'; "
            f"got {_shorten(value)}",
        )
    return value


def parse_query(ship: str, ship_parameter: str, params: Mapping[str, str],
                max_windows: int, *, options: bool = True) -> EnergyQuery:
    """Validate a request's parameters. ``options=False`` (the original ``/data`` API) takes the
    defaults for ``every``, ``label`` and ``fill`` and ignores those parameters."""
    ship = parse_ship(ship, ship_parameter)
    return parse_range(params, max_windows, ship=ship, options=options)


def parse_range(params: Mapping[str, str], max_windows: int, *, ship: str = "",
                options: bool = True, extra_windows: int = 0) -> EnergyQuery:
    """``start``, ``end``, ``every``, ``label`` and ``fill`` of a request (``ship=""``: the fleet).

    The range may touch at most ``max_windows`` windows of ``every``, counting ``extra_windows``
    more that the query reads (an anomaly score's trailing history).
    """
    start_us = _timestamp(params, "start")
    end_us = _timestamp(params, "end")
    every, label, fill = "15m", "start", "none"
    if options:
        every = choice(params, "every", EVERY_SECONDS, every)
        label = choice(params, "label", LABELS, label)
        fill = choice(params, "fill", FILLS, fill)
    if start_us >= end_us:
        raise ParameterError("start", "start must be before end")
    query = EnergyQuery(ship, start_us, end_us, every, label, fill)
    if query.window_count + extra_windows > max_windows:
        coarser = " or ".join(e for e, s in EVERY_SECONDS.items() if s > EVERY_SECONDS[every])
        if not options:
            hint = f"ask for a shorter range, or use /v1/ships/{{id}}/energy with every={coarser}"
        elif coarser:
            hint = f"use a coarser every ({coarser}) or a shorter range"
        else:
            hint = "use a shorter range"
        extra = f" (plus {extra_windows} of history)" if extra_windows else ""
        raise ParameterError(
            "every" if options else "end",
            f"the range from start to end holds {query.window_count} windows of "
            f"{f'every={every}' if options else '15 minutes'}{extra}, more than the {max_windows} "
            f"allowed (http.max_windows): {hint}",
        )
    return query


def integer(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """An optional integer parameter in [low, high], or ParameterError naming it."""
    text = params.get(name)
    if text is None:  # absent; an empty value is refused below like any other bad one
        return default
    if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
        raise ParameterError(name, f"{name} must be an integer from {low} to {high}; "
                                   f"got {_shorten(text)}")
    return int(text)


def number(params: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    """An optional decimal parameter in [low, high], or ParameterError naming it."""
    text = params.get(name)
    if text is None:  # absent; an empty value is refused below like any other bad one
        return default
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not low <= value <= high:
        raise ParameterError(name, f"{name} must be a number from {low:g} to {high:g}; "
                                   f"got {_shorten(text)}")
    return value


def assemble(query: EnergyQuery, rows: Iterable[WindowRow]) -> list[Window]:
    """The response's windows from the stored windows holding data (in time order).

    ``fill=none`` keeps only those; ``null`` and ``zero`` list every window of the range, empty
    ones with no energy or 0 kWh, and coverage 0.
    """
    window_seconds = float(EVERY_SECONDS[query.every])
    if query.fill == "none":
        return [Window(r.start_us, r.kwh, r.seconds / window_seconds) for r in rows]
    by_start = {r.start_us: r for r in rows}
    empty = None if query.fill == "null" else 0.0
    out: list[Window] = []
    for t in range(query.first_window_us, query.end_us, query.step_us):
        found = by_start.get(t)
        if found is None:
            out.append(Window(t, empty, 0.0))
        else:
            out.append(Window(t, found.kwh, found.seconds / window_seconds))
    return out


def public_ship_id(ship: str) -> int | str:
    """The original API's ``spaceship_id``: a number when the id is one (no leading zero)."""
    if ship.isascii() and ship.isdigit() and str(int(ship)) == ship:
        return int(ship)
    return ship
