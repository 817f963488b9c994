"""Running totals (``"kind": "total"``, CONTRACT section 4 rule 6). Pure functions, no I/O.

A register meter reports its running total in kWh. The readings of one ship's meter, from every
payload ever received, are ordered by time; between consecutive readings ``a`` then ``b`` the
energy is :func:`pair_energy`, spread evenly over ``[time(a), time(b))`` and split at epoch-aligned
15-minute boundaries (rule 3). The first reading only sets the starting point.

The parts depend only on the set of readings (time -> value), never on the order they came in.
Their keys are the span's 15-minute boundaries and the reading times inside it: adding a reading
only adds keys, so recomputing a span and overwriting its keys replaces every earlier part of it
(:mod:`bridge.totals` relies on this).

Times are integer epoch microseconds, registers kWh floats.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from fleet.schema import DEFAULT_METER, Part
from fleet.timeutil import US, WINDOW_US

RESET_RATIO = 0.9


def pair_energy(a: float, b: float) -> float:
    """Energy between consecutive registers ``a`` then ``b``: growth, a reset, or a dip (0)."""
    if b >= a:
        return b - a
    if b < RESET_RATIO * a:
        return b  # the meter was reset or replaced: it counts again from zero
    return 0.0  # a small dip (jitter): nothing


def span_parts(ship: str, meter: str, t_a: int, t_b: int, kwh: float) -> Iterator[Part]:
    """``kwh`` spread evenly over ``[t_a, t_b)``, split at 15-minute boundaries (covered)."""
    if t_b <= t_a:
        raise ValueError("a span must end after it starts")
    span = t_b - t_a
    start = t_a
    boundary = t_a - t_a % WINDOW_US + WINDOW_US
    while start < t_b:
        stop = min(boundary, t_b)
        share = stop - start
        # share / span first when it is whole (the common case), so exact halves stay exact.
        yield Part(ship, start, kwh * share / span, share / US, meter)
        start = stop
        boundary += WINDOW_US


def pairs(readings: Iterable[tuple[int, float]]) -> Iterator[tuple[int, int, float]]:
    """(t_a, t_b, energy) for consecutive readings; ``readings`` sorted by time, times unique."""
    prev: tuple[int, float] | None = None
    for t, v in readings:
        if prev is not None:
            if t <= prev[0]:
                raise ValueError("readings must be sorted by time with unique times")
            yield prev[0], t, pair_energy(prev[1], v)
        prev = (t, v)


def parts(ship: str, readings: Iterable[tuple[int, float]],
          meter: str = DEFAULT_METER) -> Iterator[Part]:
    """The parts of sorted, unique-time readings (a generator: long spans stay in bounded memory)."""
    for t_a, t_b, kwh in pairs(readings):
        yield from span_parts(ship, meter, t_a, t_b, kwh)


def as_set(readings: Iterable[tuple[int, float]]) -> list[tuple[int, float]]:
    """Readings as the set rule 6 speaks of: one value per time (the last one given wins), sorted."""
    return sorted(dict(readings).items())


def parts_of(ship: str, messages: Iterable[Iterable[tuple[int, float]]],
             meter: str = DEFAULT_METER) -> list[Part]:
    """The parts of every reading of ``messages`` taken together (the reference the bridge's
    incremental computation must equal)."""
    everything: dict[int, float] = {}
    for message in messages:
        everything.update(message)
    return list(parts(ship, sorted(everything.items()), meter))


# -- storage of the readings themselves (line protocol; the bridge writes, everyone reads) ------

REGISTER = "register"
FIELD_VALUE = "value"


def register_lines(ship: str, meter: str, readings: Iterable[tuple[int, float]]) -> str:
    """Line protocol of register readings: measurement ``register``, tags ``meter`` (always, even
    for ``main``: no data predates it) and ``ship``, field ``value`` (kWh), time = the reading's.
    A resent reading is the same point (idempotent); another value at a stored time replaces it."""
    prefix = f"{REGISTER},meter={meter},ship={ship} {FIELD_VALUE}="
    return "\n".join(f"{prefix}{float(v)!r} {t * 1000}" for t, v in readings)
