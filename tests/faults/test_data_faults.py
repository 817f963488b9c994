"""Data faults: hostile payloads mixed into good traffic, and writes InfluxDB refuses."""

from __future__ import annotations

import json
import random
import subprocess
import urllib.request

import pytest

from fleet.errors import PayloadError
from fleet.normalize import process_payload
from tests.conftest import eventually
from tests.faults.conftest import Rig, good_message, iso, run_in_thread, stream

pytestmark = [pytest.mark.integration, pytest.mark.faults]

LIMIT = 1_048_576  # [ingest] max_payload_bytes (default)
BROKER_LIMIT = 4_194_304  # message_size_limit in mosquitto/conf.d/fleet.conf


def doc(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def padded(size: int) -> bytes:
    """A valid payload of exactly ``size`` bytes (whitespace after the object)."""
    body = doc(units="kWh", batch_id="padded", data=[{"datetime": "2019-01-01T00:00:00Z",
                                                      "value": 1}])
    return body + b" " * (size - len(body))


def many(n: int) -> bytes:
    data = [{"datetime": iso(1_546_300_800 + k * 300), "value": k % 9} for k in range(n)]
    return doc(units="kW", batch_id=f"many-{n}", data=data)


STORED = "stored"  # every reading stored, nothing reported


def refused_readings(n: int) -> tuple[str, int]:
    """Some readings refused one by one: one ``bad_readings`` report naming ``n`` of them."""
    return ("bad_readings", n)


def hostile_cases() -> list[tuple[str, bytes, str | tuple[str, int]]]:
    """(what, payload, outcome): each outcome stated from the contract, not from the code under
    test. A string other than STORED is the reason the whole payload is refused with."""
    rnd = random.Random(4)
    reading = {"datetime": "2019-06-01T00:00:00Z", "value": 1}
    plain = json.dumps({"units": "kW", "data": [reading]})
    return [
        *((f"{n} random bytes", rnd.randbytes(n), "not_json") for n in (1, 64, 4096)),
        ("empty", b"", "not_json"),
        ("nested past the parser's recursion limit", b"[" * 100_000 + b"]" * 100_000,
         "not_json"),
        ("data nested past the limit",
         b'{"units": "kW", "data": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", "not_json"),
        ("a value that is an object", json.dumps(
            {"units": "kW", "data": [{"datetime": "2019-06-01T00:00:00Z",
                                      "value": {"a": [[[{"b": 1}]]]}}]}).encode(),
         refused_readings(1)),
        ("exactly at the size limit", padded(LIMIT), STORED),
        ("one byte over the size limit", padded(LIMIT + 1), "too_large"),
        ("extreme numbers", doc(units="kWh", batch_id="extremes", data=[
            {"datetime": "2019-06-01T00:00:00Z", "value": 1e308},  # too large to store
            {"datetime": "2019-06-01T00:15:00Z", "value": -0.0},  # kept, stored as 0
            {"datetime": "2019-06-01T00:30:00Z", "value": 5e-324},  # kept (subnormal)
            {"datetime": "2019-06-01T00:45:00Z", "value": "1e308"},  # refused
            {"datetime": "2019-06-01T01:00:00Z", "value": -1e-300},  # negative
            {"datetime": "2019-06-01T01:15:00Z", "value": "NaN"},  # refused
            {"datetime": "2019-06-01T01:30:00Z", "value": 2.5},  # kept
        ]), refused_readings(4)),
        ("an integer beyond float range", b'{"units": "kW", "data": [{"datetime": '
         b'"2019-06-01T00:00:00Z", "value": 1' + b"0" * 400 + b"}]}", refused_readings(1)),
        ("-0", b'{"units": "kW", "data": [{"datetime": "2019-06-01T00:00:00Z", "value": -0}]}',
         STORED),
        ("UTF-16", plain.encode("utf-16"), "not_json"),
        ("UTF-32", plain.encode("utf-32"), "not_json"),
        ("UTF-8 with a BOM", b"\xef\xbb\xbf" + plain.encode(), "not_json"),
        ("Latin-1", '{"units": "kW", "batch_id": "caf\xe9", "data": []}'.encode("latin-1"),
         "not_json"),
        ("fullwidth units", doc(units="\uff4b\uff37", data=[reading]), "unknown_units"),
        ("odd strings", doc(units="kW", batch_id="odd-strings", data=[
            {"datetime": "2019-06-01T00:00:00Z", "value": "\uff11\uff12"},  # fullwidth digits
            {"datetime": "2019-06-01T00:15:00\ud800Z", "value": 1},  # lone surrogate
            {"datetime": "\u0662\u0660\u0661\u0669-06-01T00:30:00Z", "value": 1},  # Arabic digits
            {"datetime": "2019-06-01T00:45:00Z", "value": "3.5"},  # kept
        ]), refused_readings(3)),
        ("a lone surrogate as batch id", doc(units="kW", batch_id="\ud800", data=[reading]),
         "bad_batch_id"),
        ("a 65-character batch id", doc(units="kW", batch_id="x" * 65, data=[reading]),
         "bad_batch_id"),
        ("exactly max_readings_per_message", many(10_000), STORED),
        ("one reading over it", many(10_001), "too_many_readings"),
    ]


def hostile_payloads() -> list[bytes]:
    return [payload for _, payload, _ in hostile_cases()]


def expected_reports(payloads: list[bytes]) -> tuple[list[str], int]:
    """The reasons the bridge must report for ``payloads`` (hostile cases and good messages) and
    how many readings it refuses one by one, from the stated outcomes."""
    outcome = {payload: want for _, payload, want in hostile_cases()}
    reasons: list[str] = []
    refused = 0
    for p in payloads:
        want = outcome.get(p, STORED)
        if isinstance(want, tuple):
            reasons.append(want[0])
            refused += want[1]
        elif want != STORED:
            reasons.append(want)
    return sorted(reasons), refused


@pytest.mark.parametrize(("what", "payload", "want"), hostile_cases(),
                         ids=[what for what, _, _ in hostile_cases()])
def test_each_hostile_payload_has_its_stated_outcome(what: str, payload: bytes,
                                                     want: str | tuple[str, int]) -> None:
    """The normalizer against the table (the integration case below checks the bridge)."""
    try:
        n = process_payload("hostile-1", payload)
    except PayloadError as exc:
        assert exc.reason == want, what
        return
    if isinstance(want, tuple):
        assert len(n.rejected) == want[1], (what, n.rejected)
    else:
        assert want == STORED and not n.rejected and n.parts, what


@pytest.mark.timeout(120)
def test_hostile_payloads_mixed_into_good_traffic(faults: Rig) -> None:
    accounts = faults.ships(6, "hostile")
    (bad_ship, bad_password), good = accounts[0], accounts[1:]
    good_ships = [s for s, _ in good]
    messages = stream(good_ships, 300)
    bridge = faults.bridge()
    pid = bridge.pid
    pub = faults.publisher(good)
    thread, box = run_in_thread(pub, messages, rate=300, timeout=60)

    hostile = hostile_payloads()
    session = faults.stack.client(bad_ship, bad_password, timeout=30)
    sent: list[bytes] = []
    for i, payload in enumerate(hostile):
        good_one = good_message(bad_ship, i)
        assert not session.publish(f"fleet/ships/{bad_ship}/readings", good_one).is_failure
        sent.append(good_one)
        reason = session.publish(f"fleet/ships/{bad_ship}/readings", payload)
        assert not reason.is_failure, reason
        sent.append(payload)
    session.close()
    # Beyond the broker's own cap (4 MiB) Mosquitto 2.0.11 drops the message and answers PUBACK
    # reason 149 (packet too large); the bridge never sees it. Sent with mosquitto_pub: paho 2.2
    # takes that PUBACK for a malformed packet, disconnects, and resends it after reconnecting,
    # forever (measured), so a ship agent on paho must refuse such payloads itself.
    big = faults.stack.root / "big.json"
    big.write_bytes(padded(BROKER_LIMIT + 1))
    out = subprocess.run(
        ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(faults.stack.cfg.mqtt.port), "-V", "mqttv5",
         "-u", bad_ship, "-P", bad_password, "-q", "1", "-t", f"fleet/ships/{bad_ship}/readings",
         "-f", str(big), "-d"], capture_output=True, text=True, timeout=30, check=False)
    assert "RC:149" in out.stdout, out.stdout + out.stderr
    thread.join(90)
    pub.close()
    (result,) = box
    assert result.total_acked == len(good_ships) * 300

    faults.check_stored([*good_ships, bad_ship], [*messages, sent],
                        accepted=lambda k, i: True, timeout=60)
    faults.assert_no_reports(good_ships)
    want, want_readings = expected_reports(sent)

    def reported() -> tuple[list[str], int]:
        got = faults.reports(bad_ship)
        return (sorted(r["reason"] for r in got),
                sum(int(r["detail"].split()[0]) for r in got if r["reason"] == "bad_readings"))

    eventually(lambda: reported() == (want, want_readings), timeout=20,
               message=f"reports differ from {(want, want_readings)}")
    assert want_readings == 9 and len(want) == 19  # the table above, whole
    for svc in (bridge, faults.stack.broker, faults.stack.influx):
        assert svc.running(), f"{svc.name} died"
    assert bridge.pid == pid
    assert faults.metric(bridge, "fleet_bridge_rejected_total", reason="internal_error", default=0.0) == 0


POISON_US = 1_925_078_400 * 1_000_000  # 2031-01-02T00:00:00Z; its shard (one week) is poisoned


def poisoned_message(ship: str, i: int) -> bytes:
    start = POISON_US // 1_000_000 + 3600 + i * 900
    return doc(units="kWh", batch_id=f"poison-{i}",
               data=[{"datetime": iso(start), "value": 1.5}])


@pytest.mark.timeout(120)
def test_write_refused_by_influxdb_is_reported_and_the_rest_flows(faults: Rig) -> None:
    """A field type conflict (``kwh`` already a string in that shard) makes InfluxDB answer 400:
    the bridge isolates the message at fault, reports it, and keeps storing the rest."""
    cfg = faults.stack.cfg.influxdb
    req = urllib.request.Request(
        f"{cfg.url}/write?db={cfg.database}&rp={cfg.retention_policy}&precision=u",
        data=f'energy,ship=poison kwh="not a number" {POISON_US}'.encode(), method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 204

    accounts = faults.ships(10, "conflict")
    ships = [s for s, _ in accounts]
    messages = stream(ships, 200)
    poisoned: set[tuple[int, int]] = set()
    for k in range(0, len(ships), 3):  # every third ship sends two poisoned messages mid-stream
        for j, i in enumerate((60, 140)):
            messages[k][i] = poisoned_message(ships[k], j)
            poisoned.add((k, i))
    bridge = faults.bridge()
    before = faults.metric(bridge, "fleet_bridge_rejected_total", reason="storage_refused", default=0.0)
    pub = faults.publisher(accounts)
    thread, box = run_in_thread(pub, messages, rate=400, timeout=60)
    thread.join(90)
    pub.close()
    (result,) = box
    assert result.total_acked == 2000
    faults.check_stored(ships, messages, result, timeout=60,
                        accepted=lambda k, i: (k, i) not in poisoned)
    eventually(lambda: faults.metric(bridge, "fleet_bridge_rejected_total",
                                     reason="storage_refused", default=0.0) - before == len(poisoned),
               timeout=20, message="each refused message counted once")
    for k, ship in enumerate(ships):
        reports = faults.reports(ship)
        want = sorted(f"poison-{j}" for j in range(2)) if (k, 60) in poisoned else []
        assert sorted(r["batch_id"] for r in reports) == want, reports
        assert all(r["reason"] == "storage_refused" for r in reports)
    assert bridge.running()
