"""A background thread woken by engine transitions and stopped cleanly: the shape of every
deliverer of the alert service (Alertmanager, the InfluxDB history)."""

from __future__ import annotations

import threading


class Worker:
    """Runs :meth:`_run` on a daemon thread; :meth:`wake` ends its current wait at once and
    :meth:`stop` ends the loop (``_run`` loops while ``self._stop`` is unset, waiting on
    ``self._wake``)."""

    def __init__(self, name: str) -> None:
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        raise NotImplementedError
