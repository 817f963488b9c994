"""The bridge with its coarse series switched off, for the ingest row "coarse series off".

``python -m bench.nocoarse`` runs :func:`bridge.__main__.run` unchanged except that the coarse
series' hooks do nothing: the same process, MQTT session, batching, normalization and writes of
the 15-minute parts, no journal marks and no hourly or daily updates. For the benchmark only: a
database written this way has coarse series that do not match its parts (``fleetctl rollup
rebuild`` mends them). With trust's ``bench/stack.py``, start it as the bridge kind
``"nocoarse": ["-m", "bench.nocoarse"]`` beside ``"pipeline": ["-m", "bridge"]``.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable

import bridge.__main__ as bridge_main
from fleet.config import Config
from fleet.schema import Part
from fleet.store import InfluxStore


class NoCoarse:
    """Satisfies :class:`bridge.batcher.Coarse` and the bridge's ``rollup.stop()``."""

    def before(self, parts: Iterable[Part]) -> object:
        for _ in parts:  # the batcher hands a generator: consume it as Rollup would
            pass
        return None

    def after(self, entry: object) -> None:
        return None

    def stop(self) -> None:
        return None


def _no_rollup(cfg: Config, store: InfluxStore, stop: threading.Event) -> NoCoarse:
    return NoCoarse()


def main() -> int:
    bridge_main._prepare_rollup = _no_rollup  # type: ignore[assignment]  # bench-only swap
    return bridge_main.main()


if __name__ == "__main__":
    sys.exit(main())
