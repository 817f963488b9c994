"""InfluxDB through its v1 HTTP API (``/write``, ``/query``), synchronous, for the bridge.

Answers are sorted by :func:`fleet.influxanswers.sort_answer`. Writes: 4xx (bad line protocol,
field type conflict) is the data's fault and raises ``StoreRejectedError``; 413 raises
``StoreTooLargeError`` so the caller splits the batch; 429, 5xx, 404 (database missing), 401/403
and connection errors are the database's (or operator's) fault and raise
``StoreUnavailableError`` (retry later, honouring Retry-After).
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any
from urllib.parse import urlsplit

import orjson
import urllib3

from fleet.config import InfluxConfig
from fleet.errors import (
    StoreError,
    StoreRejectedError,
    StoreTooLargeError,
    StoreUnavailableError,
)
from fleet.influxanswers import Kind, sort_answer
from fleet.schema import quote_ident

log = logging.getLogger(__name__)


def _hours(duration: str) -> float:
    """Hours in an InfluxDB duration: ours (INF, 52w, 30d, 24h) or its own (0s, 720h0m0s)."""
    text = duration.strip().lower()
    if text in {"inf", "0s", "0"}:
        return 0.0
    total = 0.0
    for amount, unit in re.findall(r"(\d+(?:\.\d+)?)([wdhms])", text):
        total += float(amount) * {"w": 168, "d": 24, "h": 1, "m": 1 / 60, "s": 1 / 3600}[unit]
    return total


class InfluxStore:
    """A keep-alive connection pool to one InfluxDB, with database set-up, writes and queries."""

    def __init__(self, cfg: InfluxConfig) -> None:
        self.cfg = cfg
        parts = urlsplit(cfg.url)
        self._base = cfg.url.rstrip("/")
        headers = {}
        if cfg.username:
            headers.update(urllib3.make_headers(basic_auth=f"{cfg.username}:{cfg.password}"))
        self._pool = urllib3.PoolManager(
            num_pools=1, maxsize=4, headers=headers,
            timeout=urllib3.Timeout(connect=min(5.0, cfg.timeout), read=cfg.timeout),
            retries=False,
        )
        self._host = parts.hostname

    def close(self) -> None:
        self._pool.clear()

    def _request(self, method: str, path: str, *, fields: dict[str, str] | None = None,
                 body: bytes | None = None) -> urllib3.BaseHTTPResponse:
        url = self._base + path
        try:
            if body is not None:
                return self._pool.request(method, url, fields=None, body=body,
                                          headers={**self._pool.headers,
                                                   "Content-Type": "text/plain; charset=utf-8"})
            return self._pool.request(method, url, fields=fields)
        except urllib3.exceptions.HTTPError as exc:
            raise StoreUnavailableError(f"InfluxDB at {self._base} unreachable: {exc}") from exc

    def ping(self) -> bool:
        try:
            return self._request("GET", "/ping").status == 204
        except StoreUnavailableError:
            return False

    def query(self, q: str, *, write: bool = False) -> list[dict[str, Any]]:
        """Run InfluxQL; returns the ``results`` list. Errors in a statement raise StoreError."""
        fields = {"q": q, "db": self.cfg.database, "epoch": "u"}
        resp = self._request("POST" if write else "GET", "/query", fields=fields)
        answer = sort_answer(resp.status, resp.data, resp.headers.get("Retry-After"), ok=(200,))
        if answer.kind is Kind.UNAVAILABLE:
            raise StoreUnavailableError(f"InfluxDB /query answered {resp.status}: {answer.error}",
                                        retry_after=answer.retry_after)
        if answer.kind is not Kind.OK:
            raise StoreError(f"InfluxDB /query answered {resp.status}: {answer.error}")
        results: list[dict[str, Any]] = _loads(resp.data).get("results", [])
        for r in results:
            if "error" in r:
                raise StoreError(f"InfluxQL error: {r['error']}")
        return results

    def ensure_database(self) -> None:
        """Create the database and its retention policy when missing (idempotent)."""
        db, rp = quote_ident(self.cfg.database), quote_ident(self.cfg.retention_policy)
        duration = "INF" if self.cfg.retention.upper() == "INF" else self.cfg.retention
        self.query(f"CREATE DATABASE {db}", write=True)
        res = self.query(f"SHOW RETENTION POLICIES ON {db}")
        durations = {row[0]: row[1] for s in res[0].get("series", [])
                     for row in s.get("values", [])}
        if self.cfg.retention_policy not in durations:
            self.query(f"CREATE RETENTION POLICY {rp} ON {db} DURATION {duration} REPLICATION 1 "
                       "DEFAULT", write=True)
            log.info("created retention policy %s on %s (duration %s)",
                     self.cfg.retention_policy, self.cfg.database, duration)
        elif _hours(durations[self.cfg.retention_policy]) != _hours(duration):
            # [influxdb] retention changed since the policy was made: follow the configuration.
            self.query(f"ALTER RETENTION POLICY {rp} ON {db} DURATION {duration}", write=True)
            log.warning("retention policy %s on %s: duration changed from %s to %s",
                        self.cfg.retention_policy, self.cfg.database,
                        durations[self.cfg.retention_policy], duration)

    def write(self, body: bytes, retention_policy: str | None = None) -> None:
        """POST line protocol (nanosecond timestamps) to ``/write``, into the parts' retention
        policy unless another is named."""
        rp = retention_policy or self.cfg.retention_policy
        path = (f"/write?db={self.cfg.database}&rp={rp}&precision=ns")
        resp = self._request("POST", path, body=body)
        status = resp.status
        answer = sort_answer(status, resp.data, resp.headers.get("Retry-After"), ok=(204,))
        if answer.kind is Kind.OK:
            return
        if answer.kind is Kind.TOO_LARGE:
            raise StoreTooLargeError(f"InfluxDB refused the batch as too large: {answer.error}")
        if answer.kind in {Kind.UNAVAILABLE, Kind.CREDENTIALS} or status == 404:
            # 404 is a missing database, 401/403 a credentials problem: the operator fixes those,
            # the data is fine, so keep it (unacknowledged) and retry.
            raise StoreUnavailableError(f"InfluxDB /write answered {status}: {answer.error}",
                                        retry_after=answer.retry_after)
        raise StoreRejectedError(f"InfluxDB refused the data ({status}): {answer.error}")


def _loads(data: bytes) -> Any:
    """InfluxDB's JSON answer, by orjson (the bridge reads its coarse series' parts back after
    every batch: json's decoder was 3% of its time), by json whatever orjson refuses (an integer
    past 64 bits, which InfluxDB's int64 and timestamps never are)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)
