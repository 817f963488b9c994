"""What every long-running process does at its start: log set-up and stop on SIGTERM / SIGINT.

Used by the bridge, the query service, the launcher, the fleet simulator and the long-running
fleetctl commands (``ship run``, ``simulate``)::

    setup_logging()
    stop = stop_on_signals(log, "flushing and stopping")
    while not stop.wait(1.0): ...
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from types import FrameType

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(level: int = logging.INFO) -> None:
    """One format for every process, on standard error (the launcher keeps it in logs/)."""
    logging.basicConfig(level=level, stream=sys.stderr, format=LOG_FORMAT)


def stop_on_signals(log: logging.Logger | None = None, doing: str = "stopping",
                    stop: threading.Event | None = None) -> threading.Event:
    """An event set by SIGTERM or SIGINT (logged as ``received SIGTERM; <doing>`` when ``log``
    is given). Call it from the main thread."""
    event = threading.Event() if stop is None else stop

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if log is not None:
            log.info("received %s; %s", signal.Signals(signum).name, doing)
        event.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return event
