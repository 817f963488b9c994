"""Bearer tokens on the read endpoints, against the stack's query service process.

Tokens are created and revoked with the real ``fleetctl`` (a subprocess, the stack's data_dir).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

from launcher.servers import free_port
from tests.conftest import Stack, unique_ship
from tests.integration.api_helpers import get

pytestmark = pytest.mark.integration

DAY = {"start": "2018-08-24T00:00:00Z", "end": "2018-08-25T00:00:00Z"}
READS = [
    ("/data", {"spaceship_id": "1", **DAY}),
    ("/v1/ships", None),
    ("/v1/ships/1/energy", DAY),
    ("/v1/ships/1/gaps", DAY),
    ("/v1/ships/1/anomalies", DAY),
    ("/v1/fleet/energy", DAY),
    ("/v1/fleet/top", DAY),
    ("/v1/reports/energy", DAY),
    ("/metrics", None),
]


def fleetctl(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fleetctl", *args], env=stack.env_with(),
                          capture_output=True, text=True, timeout=30, check=False)


def _is_401(reply_status: int, body: str) -> None:
    assert reply_status == 401, body
    assert json.loads(body) == {
        "error": "authentication required: send Authorization: Bearer <token>"}


@pytest.mark.parametrize(("path", "params"), READS, ids=[p for p, _ in READS])
def test_reads_need_a_token(stack: Stack, path: str, params: dict[str, str] | None) -> None:
    for headers in ({}, {"Authorization": "Bearer fleet_not-a-real-token"},
                    {"Authorization": "Bearer "}, {"Authorization": "Basic dXNlcjpwYXNz"},
                    {"Authorization": f"Token {stack.token}"}):
        reply = get(stack, path, params, token=None, headers=headers)
        _is_401(reply.status, reply.text)
        assert reply.headers["WWW-Authenticate"] == 'Bearer realm="fleet"'
    assert get(stack, path, params).status in {200, 404}


def test_open_paths_need_no_token(stack: Stack) -> None:
    for path in ("/healthz", "/openapi.json", "/", "/static/dashboard.js",
                 "/static/vendor/uplot/uPlot.iife.min.js"):
        reply = get(stack, path, token=None)
        assert reply.status == 200, (path, reply.text[:200])
    assert get(stack, "/", token=None).headers["Content-Type"].startswith("text/html")


def test_fleetctl_create_list_revoke(stack: Stack) -> None:
    name = unique_ship("tok")
    created = fleetctl(stack, "token", "create", "--name", name)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip().splitlines()[-1]
    assert token.startswith("fleet_") and " " not in token
    assert get(stack, "/v1/ships", token=token).status == 200

    listed = fleetctl(stack, "token", "list")
    assert listed.returncode == 0
    assert name in listed.stdout
    assert token not in listed.stdout
    store = stack.cfg.local.path / "tokens.json"
    assert token not in store.read_text()
    assert stat.S_IMODE(os.stat(store).st_mode) == 0o600

    again = fleetctl(stack, "token", "create", "--name", name)
    assert again.returncode == 2
    assert "already exists" in again.stderr

    revoked = fleetctl(stack, "token", "revoke", name)
    assert revoked.returncode == 0, revoked.stderr
    reply = get(stack, "/v1/ships", token=token)  # at once: the service rereads on change
    _is_401(reply.status, reply.text)
    assert get(stack, "/v1/ships").status == 200  # the other tokens still work
    assert fleetctl(stack, "token", "revoke", name).returncode == 2
    assert fleetctl(stack, "token", "create", "--name", "bad name!").returncode == 2


def test_auth_none_turns_the_check_off_with_a_warning(stack: Stack) -> None:
    port = free_port()
    svc = stack.start_query(FLEET_HTTP_AUTH="none", FLEET_HTTP_PORT=str(port))
    try:
        reply = get(stack, "/v1/ships", token=None, port=port)
        assert reply.status == 200, reply.text
        assert "http.auth = none" in svc.log_path.read_text()
    finally:
        svc.stop()
        stack.services.remove(svc)


def test_no_token_file_refuses_everything(stack: Stack, tmp_path: object) -> None:
    port = free_port()
    svc = stack.start_query(FLEET_LOCAL_DATA_DIR=str(tmp_path), FLEET_HTTP_PORT=str(port))
    try:
        reply = get(stack, "/v1/ships", port=port)
        _is_401(reply.status, reply.text)
        assert "no API token exists" in svc.log_path.read_text()
    finally:
        svc.stop()
        stack.services.remove(svc)
