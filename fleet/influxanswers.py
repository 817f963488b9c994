"""InfluxDB's HTTP answers sorted once, for the bridge's writer and the query service's reader.

As Telegraf's influxdb output does: 413 means split the batch; 429 and 5xx are the database's
fault (back off, honour ``Retry-After``, retry); 401/403 are credentials the operator fixes; an
error saying the database or retention policy does not exist means nothing is stored there
(yet); anything else in 4xx is the data's or the statement's fault. What each side does with a
sort is its own: the writer keeps a 404 (missing database) unacknowledged and retries, the reader
answers "nothing stored".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum

MISSING_PREFIXES = ("database not found", "retention policy not found")
_MAX_ERROR_CHARS = 300


class Kind(StrEnum):
    OK = "ok"
    TOO_LARGE = "too_large"  # 413: split the batch
    UNAVAILABLE = "unavailable"  # 429, 5xx: retry later
    CREDENTIALS = "credentials"  # 401, 403
    MISSING = "missing"  # the database or retention policy does not exist
    NOT_FOUND = "not_found"  # any other 404
    REFUSED = "refused"  # any other answer: the data's or the statement's fault


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    kind: Kind
    error: str  # InfluxDB's error message ("" for a success), at most 300 characters
    retry_after: float | None  # seconds, from a valid Retry-After header


def sort_answer(status: int, body: bytes, retry_after: str | None = None,
                ok: tuple[int, ...] = (200, 204)) -> Answer:
    """Sort one HTTP answer of InfluxDB; the body is only read for a failure."""
    if status in ok:
        return Answer(status, Kind.OK, "", None)
    error = error_text(body)
    wait = retry_after_seconds(retry_after)
    if status == 413:
        kind = Kind.TOO_LARGE
    elif status == 429 or status >= 500:
        kind = Kind.UNAVAILABLE
    elif status in {401, 403}:
        kind = Kind.CREDENTIALS
    elif missing(error):
        kind = Kind.MISSING
    elif status == 404:
        kind = Kind.NOT_FOUND
    else:
        kind = Kind.REFUSED
    return Answer(status, kind, error, wait)


def missing(error: object) -> bool:
    """Whether an error message (of an answer or of one statement) says the database or
    retention policy does not exist."""
    return isinstance(error, str) and error.startswith(MISSING_PREFIXES)


def error_text(body: bytes) -> str:
    """The message of an error body: JSON ``error`` (1.x) or ``message`` (2.x), else the text."""
    try:
        data = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace")[:_MAX_ERROR_CHARS]
    if isinstance(data, dict):
        for key in ("error", "message"):
            if key in data:
                return str(data[key])[:_MAX_ERROR_CHARS]
    return str(data)[:_MAX_ERROR_CHARS]


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` in seconds; None when absent, a date, or negative."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
