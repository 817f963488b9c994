"""Figures over repeated runs, percentiles, the run's log line, and the loud failure."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class ShortfallError(Exception):
    """A measurement did not get what it waited for (points stored, messages acknowledged,
    responses correct). The run stops with a non-zero exit: a figure from it would be wrong."""


@dataclass
class Figure:
    """One measurement over repeated runs."""

    values: list[float] = field(default_factory=list)

    def add(self, v: float) -> None:
        self.values.append(v)

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    def scaled(self, k: float) -> Figure:
        return Figure([v * k for v in self.values])

    def fmt(self, unit: str = "", digits: int = 0, scale: float = 1.0) -> str:
        if not self.values:
            return "n/a"
        vals = [v * scale for v in self.values]
        med = statistics.median(vals)
        if len(vals) == 1:
            return f"{med:,.{digits}f}{unit}"
        return f"{med:,.{digits}f}{unit} ({min(vals):,.{digits}f}..{max(vals):,.{digits}f})"


def ratio(a: Figure, b: Figure) -> Figure:
    """Run-by-run a / b (the runs were interleaved, so run k of each shared the machine's state)."""
    return Figure([x / y for x, y in zip(a.values, b.values, strict=False) if y])


def pct(values: Sequence[float], q: float) -> float:
    s = sorted(values)
    if not s:
        return float("nan")
    return s[min(len(s) - 1, max(0, round(q / 100 * len(s)) - 1))]
