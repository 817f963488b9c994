"""Helpers for the HTTP API tests against the shared stack (tests/conftest.py ``stack``)."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from fleet import coarse
from fleet.schema import Part, line
from fleet.store import InfluxStore
from tests.conftest import Stack

QUARTER_US = 900 * 1_000_000


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    text: str

    @property
    def json(self) -> Any:
        assert self.headers.get("Content-Type", "").startswith("application/json"), self.headers
        return json.loads(self.text)


def call(stack: Stack, method: str, path: str, params: dict[str, str] | None = None, *,
         token: str | None = "", headers: dict[str, str] | None = None,
         body: bytes | None = None, port: int | None = None) -> Reply:
    """One HTTP request; ``token=""`` sends the stack's token, ``None`` sends none."""
    query = "?" + urllib.parse.urlencode(params) if params else ""
    url = f"http://127.0.0.1:{port or stack.cfg.http.port}{path}{query}"
    sent = dict(headers or {})
    if token is not None and "Authorization" not in sent:
        sent["Authorization"] = f"Bearer {token or stack.token}"
    req = urllib.request.Request(url, data=body, method=method, headers=sent)
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            return Reply(resp.status, dict(resp.headers), resp.read().decode())
    except urllib.error.HTTPError as exc:
        with exc:
            return Reply(exc.code, dict(exc.headers), exc.read().decode())


def get(stack: Stack, path: str, params: dict[str, str] | None = None, **kw: Any) -> Reply:
    return call(stack, "GET", path, params, **kw)


def basic(username: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def write_parts(stack: Stack, parts: list[Part]) -> None:
    """Store parts straight into InfluxDB, as the bridge would (the bridge created the db)."""
    cfg = stack.cfg.influxdb
    body = "\n".join(line(p) for p in parts).encode()
    url = f"{cfg.url}/write?db={cfg.database}&rp={cfg.retention_policy}&precision=ns"
    with urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST"),
                                timeout=10) as resp:
        assert resp.status == 204
    # Written around the bridge: bring the coarse series up to date, as `fleetctl rollup
    # rebuild` would (the bridge does so for what it stores itself).
    store = InfluxStore(cfg)
    try:
        coarse.ensure_policy(store)
        coarse.rebuild(store, coarse.fleet_zone(stack.cfg), sorted({p.ship for p in parts}),
                       min(p.start_us for p in parts), max(p.start_us for p in parts) + 1)
    finally:
        store.close()
