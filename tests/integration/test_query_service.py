"""The HTTP query service against a real influxd (and a real Mosquitto for /healthz).

The service runs in-process through aiohttp's test server; the data is written straight to
InfluxDB as 15-minute parts (``fleet.schema.line``), so these tests do not depend on the bridge.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from fleet.config import Config, HttpConfig, InfluxConfig, LocalConfig, MqttConfig
from fleet.schema import Part, line
from fleet.timeutil import parse_datetime
from query_service.main import create_app, gunicorn_app
from tests.conftest import Stack
from tests.integration.api_helpers import Reply

pytestmark = pytest.mark.integration

DATABASE = "fleet_query_tests"
RP = "fleet_raw"
DAY = "2018-08-24"
RANGE = {"start": f"{DAY}T00:00:00Z", "end": f"{DAY}T03:00:00Z"}
DASHED = {"start": f"{DAY}T00-00-00Z", "end": f"{DAY}T03-00-00Z"}
# CONTRACT worked example 1, as the bridge stores it: kWh hourly 12, 26, 18 from 00:00.
EXAMPLE_1 = [3.0] * 4 + [6.5] * 4 + [4.5] * 4


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} within {timeout} s")


def tcp_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop one process we started, by its pid only."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


# -- servers --------------------------------------------------------------------------------------
# The session's Mosquitto and influxd (tests/conftest.py, the project's own configuration). These
# tests keep to a database of their own, so other tests' ships never show up in theirs.

@pytest.fixture(scope="session")
def influx_url(servers: Stack) -> str:
    return servers.cfg.influxdb.url


@pytest.fixture(scope="session")
def broker_port(servers: Stack) -> int:
    """The project's Mosquitto: it refuses anonymous clients, and still answers CONNECT."""
    return servers.cfg.mqtt.port


def influx_post(url: str, path: str, data: bytes) -> None:
    req = urllib.request.Request(f"{url}{path}", data=data, method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status in {200, 204}, resp.read()


def at(text: str) -> int:
    return parse_datetime(text)


@pytest.fixture(scope="session")
def influx(influx_url: str) -> str:
    """The database with its retention policy and the ships these tests read."""
    influx_post(influx_url, "/query",
                urllib.parse.urlencode({"q": f"CREATE DATABASE {DATABASE} WITH NAME {RP}"}).encode())
    quarter = 900 * 1_000_000
    start = at(f"{DAY}T00:00:00Z")
    parts = [Part("1", start + i * quarter, kwh, 900.0) for i, kwh in enumerate(EXAMPLE_1)]
    # CONTRACT worked example 2 as stored: one part per 5-minute kW reading (22, 24, 23, 18, 22,
    # 23, 8 from 00:00), so a window sums several points and the last has coverage 1/3.
    five = 300 * 1_000_000
    parts += [Part("alpha-7", start + i * five, kw * 5 / 60, 300.0)
              for i, kw in enumerate([22, 24, 23, 18, 22, 23, 8])]
    parts.append(Part("007", start, 1.25, 900.0))
    body = "\n".join(line(p) for p in parts).encode()
    influx_post(influx_url, f"/write?db={DATABASE}&rp={RP}&precision=ns", body)
    return influx_url


# -- the service ----------------------------------------------------------------------------------

# Authentication has tests of its own (test_api_auth.py); here it is off, and data_dir points
# nowhere so no token file or broker secret of a developer's `make run` is picked up.
NO_DATA_DIR = "/nonexistent/fleet-query-tests"


def make_config(influx_url: str, mqtt_port: int | None = None, **http: Any) -> Config:
    http.setdefault("auth", "none")
    return Config(
        influxdb=InfluxConfig(url=influx_url, database=DATABASE, retention_policy=RP,
                              timeout=5.0),
        mqtt=MqttConfig(host="127.0.0.1", port=mqtt_port or free_port()),
        http=HttpConfig(**http),
        local=LocalConfig(data_dir=NO_DATA_DIR),
    )


def requests(config: Config, *calls: tuple[str, str, dict[str, str] | None]) -> list[Reply]:
    """Run (method, path, params) calls in order against one in-process app."""
    async def run() -> list[Reply]:
        async with TestClient(TestServer(create_app(config))) as client:
            out = []
            for method, path, params in calls:
                async with client.request(method, path, params=params) as resp:
                    out.append(Reply(resp.status, dict(resp.headers), await resp.text()))
            return out
    return asyncio.run(run())


def get(config: Config, path: str, params: dict[str, str] | None = None) -> Reply:
    return requests(config, ("GET", path, params))[0]


@pytest.fixture(scope="session")
def cfg(influx: str) -> Config:
    return make_config(influx)


def energy(cfg: Config, ship: str, **params: str) -> dict[str, Any]:
    reply = get(cfg, f"/v1/ships/{ship}/energy", {**RANGE, **params})
    assert reply.status == 200, reply.text
    body: dict[str, Any] = reply.json
    return body


# -- /data ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("times", [RANGE, DASHED], ids=["iso", "dashed"])
def test_data_worked_example_1(cfg: Config, times: dict[str, str]) -> None:
    reply = get(cfg, "/data", {"spaceship_id": "1", **times})
    assert reply.status == 200, reply.text
    expected = [{"datetime": f"{DAY}T{h:02d}:{m:02d}:00Z", "value": v}
                for (h, m), v in zip(((h, m) for h in range(3) for m in (0, 15, 30, 45)),
                                     EXAMPLE_1, strict=True)]
    assert reply.json == {"spaceship_id": 1, "units": "kWh", "data": expected}
    assert '"value": 3.0' in reply.text  # floats, as the original API


def test_data_end_is_exclusive_and_start_inclusive(cfg: Config) -> None:
    reply = get(cfg, "/data", {"spaceship_id": "1", "start": f"{DAY}T00:15:00Z",
                               "end": f"{DAY}T01:15:00Z"})
    assert [d["datetime"][11:16] for d in reply.json["data"]] == [
        "00:15", "00:30", "00:45", "01:00"]


def test_data_sums_parts_per_window(cfg: Config) -> None:
    reply = get(cfg, "/data", {"spaceship_id": "alpha-7", **RANGE})
    body = reply.json
    assert body["spaceship_id"] == "alpha-7"
    values = {d["datetime"][11:16]: d["value"] for d in body["data"]}
    assert values == pytest.approx({"00:00": 5.75, "00:15": 5.25, "00:30": 8 * 5 / 60})


def test_data_keeps_leading_zero_ids_as_strings(cfg: Config) -> None:
    body = get(cfg, "/data", {"spaceship_id": "007", **RANGE}).json
    assert body["spaceship_id"] == "007"
    assert body["data"] == [{"datetime": f"{DAY}T00:00:00Z", "value": 1.25}]


# -- /v1/ships/{id}/energy ------------------------------------------------------------------------

def test_energy_15m_defaults(cfg: Config) -> None:
    body = energy(cfg, "1")
    assert {k: v for k, v in body.items() if k != "windows"} == {
        "ship": "1", "unit": "kWh", "every": "15m", "label": "start",
        "start": f"{DAY}T00:00:00Z", "end": f"{DAY}T03:00:00Z"}
    assert [w["kwh"] for w in body["windows"]] == EXAMPLE_1
    assert {w["coverage"] for w in body["windows"]} == {1.0}
    assert body["windows"][0]["time"] == f"{DAY}T00:00:00Z"
    assert body["windows"][-1]["time"] == f"{DAY}T02:45:00Z"


def test_energy_dashed_timestamps(cfg: Config) -> None:
    assert energy(cfg, "1", **DASHED) == energy(cfg, "1")


def test_energy_hourly(cfg: Config) -> None:
    windows = energy(cfg, "1", every="1h")["windows"]
    assert windows == [
        {"time": f"{DAY}T00:00:00Z", "kwh": 12.0, "coverage": 1.0},
        {"time": f"{DAY}T01:00:00Z", "kwh": 26.0, "coverage": 1.0},
        {"time": f"{DAY}T02:00:00Z", "kwh": 18.0, "coverage": 1.0},
    ]


def test_energy_daily_coverage(cfg: Config) -> None:
    body = energy(cfg, "1", every="1d", start=f"{DAY}T00:00:00Z", end="2018-08-25T00:00:00Z")
    assert body["windows"] == [{"time": f"{DAY}T00:00:00Z", "kwh": 56.0, "coverage": 0.125}]


def test_energy_label_end(cfg: Config) -> None:
    body = energy(cfg, "1", every="1h", label="end")
    assert body["label"] == "end"
    assert [w["time"][11:16] for w in body["windows"]] == ["01:00", "02:00", "03:00"]
    quarter = energy(cfg, "1", label="end")["windows"]
    assert quarter[0]["time"] == f"{DAY}T00:15:00Z"
    assert quarter[-1]["time"] == f"{DAY}T03:00:00Z"


def test_energy_partial_coverage(cfg: Config) -> None:
    windows = energy(cfg, "alpha-7")["windows"]
    assert [w["coverage"] for w in windows] == pytest.approx([1.0, 1.0, 1 / 3])
    assert windows[2]["kwh"] == pytest.approx(0.6667, abs=1e-4)


@pytest.mark.parametrize(("fill", "empty"), [("null", None), ("zero", 0.0)])
def test_energy_fill_lists_every_window(cfg: Config, fill: str, empty: float | None) -> None:
    body = energy(cfg, "1", every="1h", fill=fill, end=f"{DAY}T05:00:00Z")
    assert [(w["time"][11:16], w["kwh"], w["coverage"]) for w in body["windows"]] == [
        ("00:00", 12.0, 1.0), ("01:00", 26.0, 1.0), ("02:00", 18.0, 1.0),
        ("03:00", empty, 0.0), ("04:00", empty, 0.0)]


def test_energy_fill_null_with_label_end_and_15m(cfg: Config) -> None:
    windows = energy(cfg, "alpha-7", fill="null", label="end",
                     end=f"{DAY}T01:00:00Z")["windows"]
    assert [w["time"][11:16] for w in windows] == ["00:15", "00:30", "00:45", "01:00"]
    assert windows[3] == {"time": f"{DAY}T01:00:00Z", "kwh": None, "coverage": 0.0}
    assert "null" in json.dumps(windows)


def test_energy_fill_none_lists_only_data(cfg: Config) -> None:
    body = energy(cfg, "1", every="1h", fill="none", end=f"{DAY}T05:00:00Z")
    assert len(body["windows"]) == 3


def test_energy_unaligned_range_counts_only_data_inside(cfg: Config) -> None:
    """Windows stay epoch-aligned; a window cut by start holds only the data after start."""
    windows = energy(cfg, "1", every="1h", start=f"{DAY}T00:30:00Z", end=f"{DAY}T01:30:00Z",
                     fill="null")["windows"]
    assert windows == [
        {"time": f"{DAY}T00:00:00Z", "kwh": 6.0, "coverage": 0.5},
        {"time": f"{DAY}T01:00:00Z", "kwh": 13.0, "coverage": 0.5},
    ]


def test_known_ship_out_of_range_is_empty(cfg: Config) -> None:
    later = {"start": "2019-01-01T00:00:00Z", "end": "2019-01-02T00:00:00Z"}
    assert energy(cfg, "1", **later)["windows"] == []
    reply = get(cfg, "/data", {"spaceship_id": "1", **later})
    assert reply.status == 200
    assert reply.json == {"spaceship_id": 1, "units": "kWh", "data": []}
    filled = energy(cfg, "1", every="1h", fill="null", start="2019-01-01T00:00:00Z",
                    end="2019-01-01T02:00:00Z")["windows"]
    assert [w["kwh"] for w in filled] == [None, None]


def test_unknown_ship_is_404(cfg: Config) -> None:
    reply = get(cfg, "/v1/ships/never-seen/energy", RANGE)
    assert reply.status == 404
    assert "never-seen" in reply.json["error"]
    reply = get(cfg, "/data", {"spaceship_id": "424242", **RANGE})
    assert reply.status == 404
    assert "424242" in reply.json["error"]


def test_ships_lists_stored_ships(cfg: Config) -> None:
    ships = get(cfg, "/v1/ships").json["ships"]
    assert [s["ship"] for s in ships] == ["007", "1", "alpha-7"]
    # No broker account for presence here: unknown. Ship 1's last part starts 02:45, 900 s.
    assert ships[1] == {"ship": "1", "presence": "unknown", "presence_since": None,
                        "last_reading": f"{DAY}T03:00:00Z", "last_window": f"{DAY}T02:45:00Z"}
    assert ships[2]["last_reading"] == f"{DAY}T00:35:00Z"
    assert ships[2]["last_window"] == f"{DAY}T00:30:00Z"


# -- errors ---------------------------------------------------------------------------------------

BAD_DATA = [
    ({"start": RANGE["start"], "end": RANGE["end"]}, "spaceship_id"),
    ({"spaceship_id": "", **RANGE}, "spaceship_id"),
    ({"spaceship_id": "bad id!", **RANGE}, "spaceship_id"),
    ({"spaceship_id": "x" * 65, **RANGE}, "spaceship_id"),
    ({"spaceship_id": "1", "end": RANGE["end"]}, "start"),
    ({"spaceship_id": "1", "start": RANGE["start"]}, "end"),
    ({"spaceship_id": "1", "start": "yesterday", "end": RANGE["end"]}, "start"),
    ({"spaceship_id": "1", "start": RANGE["start"], "end": "2018-13-01T00:00:00Z"}, "end"),
    ({"spaceship_id": "1", "start": RANGE["start"], "end": "3000-01-01T00:00:00Z"}, "end"),
    ({"spaceship_id": "1", "start": RANGE["end"], "end": RANGE["start"]}, "start"),
    ({"spaceship_id": "1", "start": RANGE["start"], "end": RANGE["start"]}, "start"),
]


def test_data_bad_parameters_are_400(cfg: Config) -> None:
    replies = requests(cfg, *(("GET", "/data", params) for params, _ in BAD_DATA))
    for reply, (params, name) in zip(replies, BAD_DATA, strict=True):
        assert reply.status == 400, (params, reply.text)
        assert name in reply.json["error"], (params, reply.json)


BAD_ENERGY = [
    ("1", {"every": "5m"}, "every"),
    ("1", {"every": "15M"}, "every"),
    ("1", {"label": "middle"}, "label"),
    ("1", {"fill": "linear"}, "fill"),
    ("bad.id", {}, "id"),
    ("1", {"start": "", "end": RANGE["end"]}, "start"),
    ("1", {"start": "2018-08-24", "end": "not a time"}, "end"),
    ("1", {"start": RANGE["end"], "end": RANGE["start"]}, "end"),
]


def test_energy_bad_parameters_are_400(cfg: Config) -> None:
    calls = [("GET", f"/v1/ships/{ship}/energy", {**RANGE, **params})
             for ship, params, _ in BAD_ENERGY]
    replies = requests(cfg, *calls)
    for reply, (ship, params, name) in zip(replies, BAD_ENERGY, strict=True):
        assert reply.status == 400, (ship, params, reply.text)
        assert name in reply.json["error"], (ship, params, reply.json)


def test_too_many_windows_is_400_and_suggests_coarser(influx: str) -> None:
    small = make_config(influx, max_windows=24)
    day = {"start": f"{DAY}T00:00:00Z", "end": "2018-08-25T00:00:00Z"}
    too_many, hourly, data = requests(
        small,
        ("GET", "/v1/ships/1/energy", day),
        ("GET", "/v1/ships/1/energy", {**day, "every": "1h"}),
        ("GET", "/data", {"spaceship_id": "1", **day}),
    )
    assert too_many.status == 400
    assert "every" in too_many.json["error"]
    assert "1h" in too_many.json["error"]
    assert "96" in too_many.json["error"]
    assert hourly.status == 200, hourly.text
    assert data.status == 400
    assert "shorter range" in data.json["error"]


def test_unknown_route_and_method_are_json(cfg: Config) -> None:
    missing, wrong = requests(cfg, ("GET", "/nope", None), ("PUT", "/data", None))
    assert missing.status == 404
    assert "/nope" in missing.json["error"]
    assert wrong.status == 405
    assert "PUT" in wrong.json["error"]
    assert "GET" in wrong.headers["Allow"]


def test_missing_database_is_not_an_error(influx: str) -> None:
    config = make_config(influx)
    config = replace(config, influxdb=replace(config.influxdb, database="never_created"))
    energy_reply, ships_reply = requests(config, ("GET", "/v1/ships/1/energy", RANGE),
                                         ("GET", "/v1/ships", None))
    assert energy_reply.status == 404, energy_reply.text
    assert ships_reply.json == {"ships": []}


def test_influxdb_down_is_503(cfg: Config) -> None:
    down = make_config(f"http://127.0.0.1:{free_port()}")
    for reply in requests(down, ("GET", "/v1/ships/1/energy", RANGE),
                          ("GET", "/data", {"spaceship_id": "1", **RANGE})):
        assert reply.status == 503
        assert "unavailable" in reply.json["error"]


# -- /healthz and /metrics ------------------------------------------------------------------------

def test_healthz_ok_with_a_broker_that_refuses_anonymous(influx: str, broker_port: int) -> None:
    reply = get(make_config(influx, broker_port), "/healthz")
    assert reply.status == 200, reply.text
    assert reply.json == {"status": "ok", "influxdb": "ok", "broker": "ok"}


def test_healthz_503_without_broker(influx: str) -> None:
    reply = get(make_config(influx, free_port()), "/healthz")
    assert reply.status == 503
    body = reply.json
    assert body["influxdb"] == "ok"
    assert body["broker"] != "ok"
    assert body["status"] != "ok"


def test_healthz_503_when_broker_stays_silent(influx: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)  # accepts TCP (in the backlog) but never speaks MQTT
        started = time.monotonic()
        reply = get(make_config(influx, silent.getsockname()[1]), "/healthz")
    assert reply.status == 503
    assert "CONNACK" in reply.json["broker"]
    assert time.monotonic() - started < 10


def test_healthz_503_without_influxdb(broker_port: int) -> None:
    reply = get(make_config(f"http://127.0.0.1:{free_port()}", broker_port), "/healthz")
    assert reply.status == 503
    assert reply.json["broker"] == "ok"
    assert reply.json["influxdb"] != "ok"


def test_metrics_count_requests_and_queries(cfg: Config) -> None:
    *_, metrics = requests(
        cfg,
        ("GET", "/v1/ships/1/energy", RANGE),
        ("GET", "/v1/ships/never-seen/energy", RANGE),
        ("GET", "/v1/ships/1/energy", {**RANGE, "every": "2h"}),
        ("GET", "/metrics", None),
    )
    assert metrics.status == 200
    assert metrics.headers["Content-Type"].startswith("text/plain")
    text = metrics.text
    for expected in (
        'fleet_query_http_requests_total{method="GET",route="/v1/ships/{id}/energy",status="200"} 1.0',
        'fleet_query_http_requests_total{method="GET",route="/v1/ships/{id}/energy",status="404"} 1.0',
        'fleet_query_http_requests_total{method="GET",route="/v1/ships/{id}/energy",status="400"} 1.0',
        'fleet_query_http_request_duration_seconds_count{route="/v1/ships/{id}/energy"} 3.0',
        'fleet_query_influxdb_query_duration_seconds_count{query="windows"} 2.0',
        'fleet_query_influxdb_query_duration_seconds_count{query="ship_known"} 1.0',
    ):
        assert expected in text, expected


def test_two_apps_in_one_process_have_separate_metrics(cfg: Config) -> None:
    """Requests to one app are counted by it alone: the other's registry does not see them."""
    async def run() -> tuple[str, str]:
        async with TestClient(TestServer(create_app(cfg))) as a, \
                TestClient(TestServer(create_app(cfg))) as b:
            for _ in range(3):
                async with a.get("/v1/ships/1/energy", params=RANGE) as resp:
                    assert resp.status == 200
            async with a.get("/metrics") as ra, b.get("/metrics") as rb:
                assert ra.status == rb.status == 200
                return await ra.text(), await rb.text()

    def energy_requests(text: str) -> float:
        return sum(float(row.rsplit(" ", 1)[1]) for row in text.splitlines()
                   if row.startswith("fleet_query_http_requests_total{") and "energy" in row)

    first, second = asyncio.run(run())
    assert energy_requests(first) == 3
    assert energy_requests(second) == 0
    assert "fleet_query_influxdb_query_duration_seconds" in second


# -- entry points ---------------------------------------------------------------------------------

def test_gunicorn_app_reads_the_environment(influx: str, monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    (tmp_path / "fleet.toml").write_text("[http]\nmax_windows = 3\n", encoding="utf-8")
    monkeypatch.setenv("FLEET_CONFIG", str(tmp_path / "fleet.toml"))
    monkeypatch.setenv("FLEET_INFLUXDB_URL", influx)
    monkeypatch.setenv("FLEET_INFLUXDB_DATABASE", DATABASE)
    monkeypatch.setenv("FLEET_HTTP_AUTH", "none")
    monkeypatch.setenv("FLEET_LOCAL_DATA_DIR", str(tmp_path))

    async def run() -> tuple[int, Any]:
        async with TestClient(TestServer(await gunicorn_app())) as client:
            async with client.get("/v1/ships/1/energy", params=RANGE) as resp:
                return resp.status, await resp.json()

    status, body = asyncio.run(run())
    assert status == 400  # 12 windows > max_windows = 3 from the file
    assert "every" in body["error"]


def _http_json(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return int(resp.status), json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


@pytest.mark.parametrize("command", ["gunicorn", "module"])
def test_serves_as_a_process(influx: str, tmp_path: Path, command: str) -> None:
    """`python -m query_service`, and gunicorn's aiohttp worker with two workers."""
    port = free_port()
    env = {**os.environ, "FLEET_CONFIG": str(tmp_path / "fleet.toml"),
           "FLEET_INFLUXDB_URL": influx, "FLEET_INFLUXDB_DATABASE": DATABASE,
           "FLEET_INFLUXDB_RETENTION_POLICY": RP, "FLEET_HTTP_PORT": str(port),
           "FLEET_HTTP_AUTH": "none", "FLEET_LOCAL_DATA_DIR": str(tmp_path)}
    (tmp_path / "fleet.toml").write_text("", encoding="utf-8")
    if command == "gunicorn":
        args = [sys.executable, "-m", "gunicorn", "query_service.main:gunicorn_app",
                "--worker-class", "aiohttp.GunicornWebWorker", "--workers", "2",
                "--bind", f"127.0.0.1:{port}"]
    else:
        args = [sys.executable, "-m", "query_service"]
    repo = Path(__file__).resolve().parents[2]
    with (tmp_path / "service.log").open("wb") as log:
        proc = subprocess.Popen(args, cwd=repo, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: proc.poll() is None and tcp_open(port), 30,
                   "the query service did not listen")
        query = urllib.parse.urlencode({**RANGE, "every": "1h"})
        status, body = _http_json(f"http://127.0.0.1:{port}/v1/ships/1/energy?{query}")
        assert status == 200, body
        assert [w["kwh"] for w in body["windows"]] == [12.0, 26.0, 18.0]
    finally:
        stop(proc)
    assert proc.returncode in {0, -15}, (tmp_path / "service.log").read_text()
    log_text = (tmp_path / "service.log").read_text()
    assert "Traceback" not in log_text, log_text

