"""Process entry points: stop on SIGTERM / SIGINT; the data directory layout."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet import paths
from fleet.service import stop_on_signals


@pytest.fixture
def restore_handlers() -> Iterator[None]:
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


@pytest.mark.usefixtures("restore_handlers")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_sets_the_stop_event(sig: signal.Signals, caplog: pytest.LogCaptureFixture,
                                      ) -> None:
    stop = stop_on_signals(logging.getLogger("test"), "flushing")
    assert not stop.is_set()
    with caplog.at_level(logging.INFO):
        os.kill(os.getpid(), sig)
    assert stop.wait(5)
    assert f"received {sig.name}; flushing" in caplog.text


def test_the_data_directory_layout() -> None:
    d = Path("/data")
    assert paths.broker_dir(d) == d / "mosquitto"
    assert paths.secret_file(d, "fleet-bridge") == d / "mosquitto" / "secrets" / "fleet-bridge"
    assert paths.tokens_file(d) == d / "tokens.json"
    assert paths.dev_token_file(d) == d / "dev.token"
    assert paths.spool_file(paths.ship_spools_dir(d), "s-1") == d / "ships" / "s-1.spool"
    assert paths.simulate_spools_dir(d) == d / "simulate" / "spools"
    assert paths.ready_file(d, "fleet-bridge") == d / "run" / "fleet-bridge.ready"
    assert paths.log_file(d, "bridge") == d / "logs" / "bridge.log"


def test_read_secret(tmp_path: Path) -> None:
    assert paths.read_secret(tmp_path, "query") == ""
    paths.secrets_dir(tmp_path).mkdir(parents=True)
    paths.secret_file(tmp_path, "query").write_text("s3cret\n")
    assert paths.read_secret(tmp_path, "query") == "s3cret"
