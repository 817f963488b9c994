"""The container fallback's readiness wait: a server that never comes up is an error, not a
silent return that lets the tests run against nothing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.containers import ContainerService


class NeverReady:
    """A container that starts and never logs that it is running."""

    def __init__(self) -> None:
        self.started = 0

    def start(self) -> None:
        self.started += 1

    def get_logs(self) -> tuple[bytes, bytes]:
        return (b"starting up\n", b"")

    def get_wrapped_container(self) -> Any:
        return self


class ReadyAtOnce(NeverReady):
    def get_logs(self) -> tuple[bytes, bytes]:
        return (b"mosquitto version 2 running\n", b"")


def test_readiness_timeout_raises_with_the_logs() -> None:
    svc = ContainerService("mosquitto", NeverReady(), 1883)
    with pytest.raises(TimeoutError, match=r"mosquitto container not ready.*starting up"):
        svc.start(timeout=0.3)


def test_ready_container_starts() -> None:
    container = ReadyAtOnce()
    assert ContainerService("mosquitto", container, 1883).start(timeout=5).name == "mosquitto"
    assert container.started == 1
