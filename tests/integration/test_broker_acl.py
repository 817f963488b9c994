"""The broker policy against a real Mosquitto: passwords, per-account ACLs, reload without restart.

Self-contained: ``_own_broker`` starts its own Mosquitto from the checked-in policy
(``mosquitto/conf.d``) with the account files of an :class:`Accounts` directory, and the clients
are real paho MQTT 5 clients, so PUBACK reason codes show what the ACL refused.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import queue
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

import fleetctl.main as cli
from fleet.accounts import Accounts

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
POLICY_DIR = REPO / "mosquitto" / "conf.d"
NOT_AUTHORIZED = 135
BAD_USER_OR_PASSWORD = 134
ACCEPTED = {0, 16}  # PUBACK: success, or "no matching subscribers" (still accepted)
TIMEOUT = 10.0


def _eventually(check: Callable[[], Any], timeout: float = TIMEOUT, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            assert result, f"{what} not met within {timeout} s"
            return result
        time.sleep(0.05)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class OwnBroker:
    port: int
    data_dir: Path  # FLEET_LOCAL_DATA_DIR: the accounts live in data_dir / "mosquitto"
    accounts: Accounts
    log: Path
    operator: tuple[str, str]
    bridge: tuple[str, str]

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def _own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnBroker]:
    binary = "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else (
        shutil.which("mosquitto"))
    if not binary:
        pytest.fail("mosquitto is not installed: run `make test`, which installs it")
    base = tmp_path_factory.mktemp("own-broker")
    data_dir = base / "data"
    accounts = Accounts(data_dir / "mosquitto")
    operator = ("ops", accounts.add_operator("ops"))
    bridge = ("fleet-bridge", accounts.ensure_service("fleet-bridge", "bridge"))
    (base / "persist").mkdir()
    port = _free_port()
    conf = base / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\n"
        f"persistence_location {base / 'persist'}/\n"
        f"password_file {accounts.passwd_path}\n"
        f"acl_file {accounts.acl_path}\n"
        f"pid_file {accounts.pid_path}\n"
        # Tests run as root, and Mosquitto run as root switches to the `mosquitto` user, which
        # could not read these 0600 files.
        f"user {getpass.getuser()}\n"
        f"include_dir {POLICY_DIR}\n"
    )
    log = base / "mosquitto.log"
    with log.open("wb") as log_fh:
        proc = subprocess.Popen([binary, "-c", str(conf)], stdout=log_fh,
                                stderr=subprocess.STDOUT)
    try:
        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"mosquitto exited {proc.returncode}:\n{log.read_text()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                return accounts.pid_path.exists()
            return False

        _eventually(ready, what="mosquitto listening")
        yield OwnBroker(port, data_dir, accounts, log, operator, bridge)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- a small synchronous wrapper over paho --------------------------------------------------


class Session:
    """One MQTT 5 client: connect, subscribe, publish and wait for the broker's answers."""

    def __init__(self, port: int, username: str | None, password: str | None) -> None:
        self.port = port
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2,
                                  client_id=f"test-{uuid.uuid4().hex[:12]}",
                                  protocol=mqtt.MQTTv5)
        self.client.reconnect_delay_set(min_delay=30, max_delay=60)  # no retry loop in tests
        if username is not None:
            self.client.username_pw_set(username, password)
        self.connack: queue.Queue[ReasonCode] = queue.Queue()
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.disconnected = threading.Event()
        self._acks: dict[int, Any] = {}
        self._cond = threading.Condition()
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = self._on_disconnect

    def _on_connect(self, _c: Any, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        self.connack.put(rc)

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        self.messages.put(message)

    def _on_publish(self, _c: Any, _u: Any, mid: int, rc: ReasonCode, _p: Any) -> None:
        with self._cond:
            self._acks[mid] = rc
            self._cond.notify_all()

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, rcs: list[ReasonCode], _p: Any) -> None:
        with self._cond:
            self._acks[mid] = rcs
            self._cond.notify_all()

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, _rc: ReasonCode, _p: Any) -> None:
        self.disconnected.set()

    def _wait_ack(self, mid: int) -> Any:
        with self._cond:
            assert self._cond.wait_for(lambda: mid in self._acks, TIMEOUT), f"no ack for {mid}"
            return self._acks.pop(mid)

    def connect(self) -> ReasonCode:
        """Connect and return the CONNACK reason code (0: accepted)."""
        self.client.connect("127.0.0.1", self.port, keepalive=30)
        self.client.loop_start()
        return self.connack.get(timeout=TIMEOUT)

    def subscribe(self, topic: str) -> int:
        result, mid = self.client.subscribe(topic, qos=1)
        assert result == mqtt.MQTT_ERR_SUCCESS
        assert mid is not None
        (granted,) = self._wait_ack(mid)
        return int(granted.value)

    def publish(self, topic: str, payload: str, *, retain: bool = False) -> int:
        """Publish at QoS 1 and return the PUBACK reason code (135: refused by the ACL)."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        assert info.rc == mqtt.MQTT_ERR_SUCCESS
        return int(self._wait_ack(info.mid).value)

    def received(self, timeout: float = TIMEOUT) -> tuple[str, str]:
        message = self.messages.get(timeout=timeout)
        return message.topic, message.payload.decode()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def session(_own_broker: OwnBroker) -> Iterator[Callable[..., Session]]:
    """Factory: ``session(username, password)`` makes a client; all are closed afterwards."""
    made: list[Session] = []

    def make(username: str | None, password: str | None = None) -> Session:
        made.append(Session(_own_broker.port, username, password))
        return made[-1]

    yield make
    for s in made:
        s.close()


def connected(make: Callable[..., Session], username: str, password: str) -> Session:
    s = make(username, password)
    rc = s.connect()
    assert not rc.is_failure, f"{username} refused: {rc}"
    return s


def connack(port: int, username: str | None, password: str | None) -> int:
    s = Session(port, username, password)
    try:
        return int(s.connect().value)
    finally:
        s.close()


def new_ship(broker: OwnBroker, prefix: str = "ship") -> tuple[str, str]:
    ship_id = f"{prefix}-{uuid.uuid4().hex[:8]}"
    password = broker.accounts.add_ship(ship_id)
    assert broker.accounts.reload_broker()
    _eventually(lambda: connack(broker.port, ship_id, password) == 0, what=f"{ship_id} accepted")
    return ship_id, password


@pytest.fixture
def cli_env(_own_broker: OwnBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> OwnBroker:
    """fleetctl pointed at the broker's account directory, as FLEET_LOCAL_DATA_DIR does."""
    config = tmp_path / "fleet.toml"
    config.write_text("")
    monkeypatch.setenv("FLEET_CONFIG", str(config))
    monkeypatch.setenv("FLEET_LOCAL_DATA_DIR", str(_own_broker.data_dir))
    monkeypatch.setenv("FLEET_MQTT_PORT", str(_own_broker.port))
    return _own_broker


# --- authentication -------------------------------------------------------------------------


def test_anonymous_refused(_own_broker: OwnBroker) -> None:
    assert connack(_own_broker.port, None, None) in {NOT_AUTHORIZED, BAD_USER_OR_PASSWORD}


def test_wrong_password_refused(_own_broker: OwnBroker) -> None:
    ship_id, password = new_ship(_own_broker)
    assert connack(_own_broker.port, ship_id, password + "x") in {
        NOT_AUTHORIZED, BAD_USER_OR_PASSWORD}
    assert connack(_own_broker.port, "nobody", password) in {NOT_AUTHORIZED, BAD_USER_OR_PASSWORD}
    assert connack(_own_broker.port, ship_id, password) == 0


# --- authorization ---------------------------------------------------------------------------


def test_ship_publishes_and_operator_receives(_own_broker: OwnBroker,
                                              session: Callable[..., Session]) -> None:
    ship_id, password = new_ship(_own_broker)
    ops = connected(session, *_own_broker.operator)
    assert ops.subscribe("fleet/#") == 1
    ship = connected(session, ship_id, password)
    payload = '{"units": "kW", "data": [{"datetime": "2018-08-24T00:00:00Z", "value": 22}]}'
    assert ship.publish(f"fleet/ships/{ship_id}/readings", payload) in ACCEPTED
    assert ops.received() == (f"fleet/ships/{ship_id}/readings", payload)
    assert ship.publish(f"fleet/ships/{ship_id}/status", "online", retain=True) in ACCEPTED
    assert ops.received() == (f"fleet/ships/{ship_id}/status", "online")
    assert ship.publish(f"fleet/ships/{ship_id}/status", "", retain=True) in ACCEPTED  # clear


def test_bridge_reads_readings_through_a_shared_subscription(
        _own_broker: OwnBroker, session: Callable[..., Session]) -> None:
    ship_id, password = new_ship(_own_broker)
    bridge = connected(session, *_own_broker.bridge)
    assert bridge.subscribe("$share/bridges/fleet/ships/+/readings") == 1
    ship = connected(session, ship_id, password)
    assert ship.publish(f"fleet/ships/{ship_id}/readings", "r1") in ACCEPTED
    assert bridge.received() == (f"fleet/ships/{ship_id}/readings", "r1")


def test_ship_cannot_pose_as_another(_own_broker: OwnBroker,
                                     session: Callable[..., Session]) -> None:
    a_id, a_pw = new_ship(_own_broker, "a")
    b_id, _ = new_ship(_own_broker, "b")
    ops = connected(session, *_own_broker.operator)
    ops.subscribe(f"fleet/ships/{a_id}/#")  # not fleet/#: other tests leave retained statuses
    ops.subscribe(f"fleet/ships/{b_id}/#")
    a = connected(session, a_id, a_pw)
    assert a.publish(f"fleet/ships/{b_id}/readings", "forged") == NOT_AUTHORIZED
    assert a.publish(f"fleet/ships/{b_id}/status", "forged") == NOT_AUTHORIZED
    assert a.publish(f"fleet/ships/{a_id}/ack", "forged") == NOT_AUTHORIZED  # bridge's topic
    assert a.publish(f"fleet/ships/{a_id}/readings", "marker") in ACCEPTED
    # Same publisher, same order: had a forgery got through it would have arrived first.
    assert ops.received() == (f"fleet/ships/{a_id}/readings", "marker")


def test_ship_reads_only_its_own_subtree(_own_broker: OwnBroker,
                                         session: Callable[..., Session]) -> None:
    a_id, a_pw = new_ship(_own_broker, "a")
    b_id, b_pw = new_ship(_own_broker, "b")
    a = connected(session, a_id, a_pw)
    # 2.0.11 grants this SUBACK (QoS 1) and applies the ACL at delivery: nothing may arrive.
    assert a.subscribe(f"fleet/ships/{b_id}/#") in {1, NOT_AUTHORIZED}
    a.subscribe(f"fleet/ships/{a_id}/#")
    b = connected(session, b_id, b_pw)
    assert b.publish(f"fleet/ships/{b_id}/readings", "secret") in ACCEPTED
    bridge = connected(session, *_own_broker.bridge)
    assert bridge.publish(f"fleet/ships/{a_id}/ack", '{"batch_id": "1"}') in ACCEPTED
    assert a.received() == (f"fleet/ships/{a_id}/ack", '{"batch_id": "1"}')
    assert a.messages.empty()


def test_operator_cannot_publish(_own_broker: OwnBroker, session: Callable[..., Session]) -> None:
    ship_id, password = new_ship(_own_broker)
    bridge = connected(session, *_own_broker.bridge)
    bridge.subscribe(f"fleet/ships/{ship_id}/readings")
    ops = connected(session, *_own_broker.operator)
    assert ops.publish(f"fleet/ships/{ship_id}/readings", "forged") == NOT_AUTHORIZED
    assert ops.publish(f"fleet/ships/{ship_id}/ack", "forged") == NOT_AUTHORIZED
    assert ops.publish("fleet/anything", "x") == NOT_AUTHORIZED
    ship = connected(session, ship_id, password)
    assert ship.publish(f"fleet/ships/{ship_id}/readings", "marker") in ACCEPTED
    assert bridge.received() == (f"fleet/ships/{ship_id}/readings", "marker")


def test_bridge_cannot_pose_as_a_ship(_own_broker: OwnBroker,
                                      session: Callable[..., Session]) -> None:
    ship_id, _ = new_ship(_own_broker)
    bridge = connected(session, *_own_broker.bridge)
    assert bridge.publish(f"fleet/ships/{ship_id}/readings", "forged") == NOT_AUTHORIZED
    assert bridge.publish(f"fleet/ships/{ship_id}/status", "forged") == NOT_AUTHORIZED
    for topic in ("ack", "rejected", "energy"):
        assert bridge.publish(f"fleet/ships/{ship_id}/{topic}", "{}") in ACCEPTED


# --- fleetctl on a running broker -----------------------------------------------------------


def test_ship_add_is_effective_without_restart(cli_env: OwnBroker,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    ship_id = f"new-{uuid.uuid4().hex[:8]}"
    assert connack(cli_env.port, ship_id, "chosen-pw") in {NOT_AUTHORIZED, BAD_USER_OR_PASSWORD}
    log_before = cli_env.log_text()
    assert cli.main(["ship", "add", ship_id, "--password", "chosen-pw"]) == 0
    assert "broker was reloaded" in capsys.readouterr().out
    _eventually(lambda: connack(cli_env.port, ship_id, "chosen-pw") == 0, what="accepted")
    assert "mosquitto version" not in cli_env.log_text()[len(log_before):]  # no restart


def test_ship_add_generated_password_works(cli_env: OwnBroker,
                                           capsys: pytest.CaptureFixture[str],
                                           session: Callable[..., Session]) -> None:
    ship_id = f"gen-{uuid.uuid4().hex[:8]}"
    assert cli.main(["ship", "add", ship_id]) == 0
    out = capsys.readouterr().out.splitlines()
    password = out[-1]
    assert f"-p {cli_env.port}" in "\n".join(out)
    _eventually(lambda: connack(cli_env.port, ship_id, password) == 0, what="accepted")
    ship = connected(session, ship_id, password)
    assert ship.publish(f"fleet/ships/{ship_id}/readings", "{}") in ACCEPTED


def test_ship_remove_refuses_the_next_connection(cli_env: OwnBroker,
                                                 capsys: pytest.CaptureFixture[str],
                                                 session: Callable[..., Session]) -> None:
    ship_id, password = new_ship(cli_env)
    live = connected(session, ship_id, password)
    assert cli.main(["ship", "remove", ship_id]) == 0
    assert "broker was reloaded" in capsys.readouterr().out
    _eventually(lambda: connack(cli_env.port, ship_id, password) != 0, what="refused")
    # Mosquitto re-checks connected clients on reload: the removed ship is cut off at once.
    assert live.disconnected.wait(TIMEOUT)


def test_operator_add_via_cli(cli_env: OwnBroker, session: Callable[..., Session]) -> None:
    name = f"op-{uuid.uuid4().hex[:8]}"
    assert cli.main(["operator", "add", name, "--password", "op-pw"]) == 0
    _eventually(lambda: connack(cli_env.port, name, "op-pw") == 0, what="accepted")
    op = connected(session, name, "op-pw")
    assert op.publish("fleet/ships/x/readings", "forged") == NOT_AUTHORIZED


@pytest.mark.parametrize("bad", ["bad/id", "a b", "x" * 65, "+", "#", ""])
def test_bad_ids_refused(cli_env: OwnBroker, capsys: pytest.CaptureFixture[str],
                         bad: str) -> None:
    before = cli_env.accounts.acl_path.read_text()
    assert cli.main(["ship", "add", bad]) == 2
    err = capsys.readouterr().err
    assert f"bad ship id {bad!r}" in err
    assert "A-Z, a-z, 0-9, '_' and '-'" in err
    assert "Traceback" not in err
    assert cli_env.accounts.acl_path.read_text() == before


def test_duplicate_and_unknown_refused(cli_env: OwnBroker,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    ship_id, _ = new_ship(cli_env)
    assert cli.main(["operator", "add", ship_id]) == 2
    assert "already exists (ship)" in capsys.readouterr().err
    assert cli.main(["ship", "add", "ops"]) == 2
    assert "already exists (operator)" in capsys.readouterr().err
    assert cli.main(["ship", "remove", "never-added"]) == 2
    assert "unknown ship 'never-added'" in capsys.readouterr().err


def test_ship_list(cli_env: OwnBroker, capsys: pytest.CaptureFixture[str]) -> None:
    added = sorted(new_ship(cli_env, "list")[0] for _ in range(3))
    assert cli.main(["ship", "list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed == sorted(listed)
    assert set(added) <= set(listed)
    assert "ops" not in listed
    assert "fleet-bridge" not in listed
    assert listed == cli_env.accounts.list_ships()
