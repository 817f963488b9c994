"""Gaps and anomalies of a ship's windows: pure functions, no I/O.

Gaps: every window of the range whose coverage is below 1 (missing: 0, partial: between 0 and
1), consecutive ones merged into one span. The span is cut to [start, end) of the request.

Anomalies, a robust rule that one bad window cannot bend (Iglewicz and Hoaglin's modified
z-score over a trailing window):

- only complete windows (coverage 1) are judged and used as history: a partial window is a gap,
  not a low reading;
- a window's history is the complete windows among the ``history`` windows just before it (the
  defaults: 96 for 15m = one day, 168 for 1h = one week, 28 for 1d = four weeks); at least
  ``MIN_HISTORY`` are needed, else the window is not judged;
- ``median`` and ``MAD`` (median absolute deviation from the median) of the history; the
  scale is 1.4826 x MAD (the standard deviation, for normal data); when MAD is 0 (over half the
  history identical), 1.2533 x the mean absolute deviation; when that is 0 too, 1% of the median
  (at least 1e-9 kWh);
- ``score = (kwh - median) / scale``; the window is an anomaly when ``|score| >= threshold``
  (default 3.5).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass

from query_service.db import WindowRow

MIN_HISTORY = 8
DEFAULT_HISTORY = {"15m": 96, "1h": 168, "1d": 28}
DEFAULT_THRESHOLD = 3.5
_COMPLETE = 1.0 - 1e-9


@dataclass(frozen=True, slots=True)
class Gap:
    """Consecutive windows with coverage below 1, as a span [start, end)."""

    start_us: int
    end_us: int
    windows: int
    missing: int
    partial: int
    covered_seconds: float

    @property
    def coverage(self) -> float:
        return self.covered_seconds / ((self.end_us - self.start_us) / 1e6)


def gaps(rows: Iterable[WindowRow], start_us: int, end_us: int, step_us: int) -> list[Gap]:
    """Spans of missing or partial windows in [start, end) (windows aligned to ``step_us``)."""
    by_start = {r.start_us: r for r in rows}
    out: list[Gap] = []
    current: list[int] = []  # [span start, windows, missing, partial]
    covered = 0.0
    first = start_us - start_us % step_us
    for t in range(first, end_us, step_us):
        lo, hi = max(t, start_us), min(t + step_us, end_us)
        row = by_start.get(t)
        seconds = row.seconds if row is not None else 0.0
        complete = seconds >= (hi - lo) / 1e6 * _COMPLETE
        if complete:
            if current:
                out.append(Gap(current[0], lo, current[1], current[2], current[3], covered))
                current, covered = [], 0.0
            continue
        if not current:
            current = [lo, 0, 0, 0]
        current[1] += 1
        current[2 if seconds <= 0 else 3] += 1
        covered += seconds
    if current:
        out.append(Gap(current[0], end_us, current[1], current[2], current[3], covered))
    return out


@dataclass(frozen=True, slots=True)
class Anomaly:
    start_us: int
    kwh: float
    median: float
    scale: float
    score: float


def robust_scale(history: list[float], median: float) -> float:
    deviations = [abs(x - median) for x in history]
    mad = statistics.median(deviations)
    if mad > 0:
        return 1.4826 * mad
    mean_ad = statistics.fmean(deviations)
    if mean_ad > 0:
        return 1.2533 * mean_ad
    return max(abs(median) * 0.01, 1e-9)


def anomalies(rows: Iterable[WindowRow], start_us: int, end_us: int, step_us: int,
              window_seconds: float, history: int, threshold: float) -> list[Anomaly]:
    """Windows in [start, end) whose energy is an outlier against their trailing history.

    ``rows`` must cover [start - history x step, end) for every window to have its history.
    """
    complete = sorted((r.start_us, r.kwh) for r in rows
                      if r.seconds >= window_seconds * _COMPLETE)
    out: list[Anomaly] = []
    lo = 0  # index of the first row inside the current window's history
    for i, (t, kwh) in enumerate(complete):
        while complete[lo][0] < t - history * step_us:
            lo += 1
        if not start_us <= t < end_us:
            continue
        past = [k for _, k in complete[lo:i]]
        if len(past) < MIN_HISTORY:
            continue
        median = statistics.median(past)
        scale = robust_scale(past, median)
        score = (kwh - median) / scale
        if abs(score) >= threshold:
            out.append(Anomaly(t, kwh, median, scale, score))
    return out
