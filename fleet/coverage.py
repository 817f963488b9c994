"""Coverage of a sum over a ship's meters (CONTRACT sections 4 and 5): the one rule.

A window's coverage is covered seconds / the window's length. A meter covers at most the whole
window, so a ship's energy, the sum over its meters, would reach a coverage of 2 with two complete
meters if their seconds were simply added. Instead the coverage of a sum over a ship's meters is
the **mean of its meters' coverage**, counting the meters that hold data anywhere in the requested
range: a meter empty in one window counts 0 there. One meter: unchanged. Two meters, both
complete: 1; one complete and one empty in a window: 0.5 there.

:func:`ship_seconds` states it on covered seconds, so every reader keeps dividing by the window's
length: a ship's covered seconds are its meters' summed seconds / its number of meters (as if it
were one meter). A fleet's coverage, the mean over the ships with data in the window of each
ship's coverage, is then the sum of the ships' covered seconds / (length x ships).
"""

from __future__ import annotations


def ship_seconds(seconds: float, meters: int) -> float:
    """A ship's covered seconds from its meters' summed ``seconds`` and its number of ``meters``
    holding data in the requested range (at least 1 wherever there is data)."""
    return seconds / meters if meters > 1 else seconds
