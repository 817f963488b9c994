"""One exception tree for the whole system; library errors are translated at the boundary."""

from __future__ import annotations


class FleetError(Exception):
    """Base class of every error this project raises on purpose."""


class ConfigError(FleetError):
    """A configuration key is missing, mistyped or out of range (the message names the key)."""


class PayloadError(FleetError):
    """A whole payload is refused; ``reason`` is a short machine-readable code."""

    def __init__(self, reason: str, detail: str, batch_id: str | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.batch_id = batch_id  # echoed on the ack topic when the payload carried a valid one


class StoreError(FleetError):
    """InfluxDB could not be used."""


class StoreUnavailableError(StoreError):
    """The database's fault (connection refused, timeout, 5xx, 429): retry later."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StoreRejectedError(StoreError):
    """The data's fault (4xx, type conflict): retrying the same data will not help."""


class StoreTooLargeError(StoreError):
    """HTTP 413: the batch must be split."""


class AccountError(FleetError):
    """A broker account operation was refused (bad id, unknown or duplicate account)."""
