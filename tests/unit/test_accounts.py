"""Broker accounts at the file level: password hashes, ACL content, errors, concurrency."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import threading
from pathlib import Path

import pytest

import fleetctl.main as cli
from fleet.accounts import (
    HASH_ITERATIONS,
    Accounts,
    acl_rules,
    hash_password,
    render_acl,
    verify_password,
)
from fleet.errors import AccountError, FleetError

MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
HASH_LINE = re.compile(r"^\$7\$(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$")


@pytest.fixture
def accounts(tmp_path: Path) -> Accounts:
    return Accounts(tmp_path / "mosquitto")


def passwd_entries(accounts: Accounts) -> dict[str, str]:
    lines = accounts.passwd_path.read_text().splitlines()
    return dict(line.split(":", 1) for line in lines)


def acl_blocks(accounts: Accounts) -> dict[str, list[str]]:
    """user -> its topic lines, parsed from the ACL file as Mosquitto reads it."""
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in accounts.acl_path.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        if keyword == "user":
            current = blocks.setdefault(rest, [])
        else:
            assert keyword == "topic", line
            assert current is not None, f"topic line before any user line: {line}"
            current.append(rest)
    return blocks


# --- hashes ---------------------------------------------------------------------------------


def test_hash_format_is_mosquitto_2() -> None:
    encoded = hash_password("s3cret")
    match = HASH_LINE.fullmatch(encoded)
    assert match, encoded
    assert int(match[1]) == HASH_ITERATIONS
    assert len(base64.b64decode(match[2], validate=True)) == 12
    assert len(base64.b64decode(match[3], validate=True)) == 64
    assert verify_password("s3cret", encoded)
    assert not verify_password("s3cret!", encoded)
    assert hash_password("s3cret") != encoded  # a fresh salt each time


def test_hash_is_pbkdf2_sha512() -> None:
    salt = bytes(range(12))
    expected = hashlib.pbkdf2_hmac("sha512", "pässword".encode(), salt, 101, 64)
    assert hash_password("pässword", salt=salt, iterations=101) == (
        f"$7$101${base64.b64encode(salt).decode()}${base64.b64encode(expected).decode()}")


@pytest.mark.skipif(not Path(MOSQUITTO_PASSWD).exists(), reason="mosquitto_passwd not installed")
def test_verifies_mosquitto_passwd_lines(tmp_path: Path) -> None:
    """Same format both ways: mosquitto_passwd's line verifies here with its own parameters."""
    pw_file = tmp_path / "pw"
    subprocess.run([MOSQUITTO_PASSWD, "-c", "-b", str(pw_file), "alice", "correct horse"],
                   check=True, capture_output=True)
    user, encoded = pw_file.read_text().strip().split(":", 1)
    assert user == "alice"
    match = HASH_LINE.fullmatch(encoded)
    assert match, encoded
    assert verify_password("correct horse", encoded)
    assert not verify_password("correct horse ", encoded)
    salt = base64.b64decode(match[2])
    assert hash_password("correct horse", salt=salt, iterations=int(match[1])) == encoded


@pytest.mark.parametrize("encoded", ["", "$6$abc$def", "$7$x$AAAA$AAAA", "$7$10$!!$AAAA",
                                     "$7$0$AAAA$AAAA", "plain"])
def test_verify_rejects_malformed(encoded: str) -> None:
    assert not verify_password("anything", encoded)


# --- files and ACL --------------------------------------------------------------------------


def test_add_ship_writes_all_files(accounts: Accounts) -> None:
    password = accounts.add_ship("ship-1")
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", password)
    assert verify_password(password, passwd_entries(accounts)["ship-1"])
    assert json.loads(accounts.accounts_path.read_text()) == {"ship-1": "ship"}
    assert acl_blocks(accounts) == {"ship-1": [
        "write fleet/ships/ship-1/readings",
        "write fleet/ships/ship-1/status",
        "read fleet/ships/ship-1/#",
    ]}
    for path in (accounts.passwd_path, accounts.acl_path, accounts.accounts_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    # Atomic writes leave no temporary files behind.
    assert sorted(p.name for p in accounts.broker_dir.iterdir()) == [
        "accounts.json", "accounts.lock", "acl", "passwd"]


def test_given_password_is_used(accounts: Accounts) -> None:
    assert accounts.add_ship("s", "pass:with$odd chars") == "pass:with$odd chars"
    assert verify_password("pass:with$odd chars", passwd_entries(accounts)["s"])


def test_roles_acl(accounts: Accounts) -> None:
    accounts.add_ship("a")
    accounts.add_operator("ops")
    accounts.ensure_service("fleet-bridge", "bridge")
    accounts.ensure_service("fleet-query", "query")
    blocks = acl_blocks(accounts)
    assert blocks["ops"] == ["read fleet/#"]
    assert blocks["fleet-query"] == ["read fleet/#"]
    assert blocks["fleet-bridge"] == [
        "read fleet/ships/+/readings",
        "read fleet/ships/+/status",
        "write fleet/ships/+/ack",
        "write fleet/ships/+/rejected",
        "write fleet/ships/+/energy",
        "write fleet/ships/+/rollup",
        "readwrite fleet/bridges/handoff",
    ]
    text = accounts.acl_path.read_text()
    assert "pattern" not in text.replace("no pattern lines", "")
    assert "%u" not in text
    assert "%c" not in text
    assert set(passwd_entries(accounts)) == {"a", "ops", "fleet-bridge", "fleet-query"}


def test_only_a_ship_writes_its_readings_or_status() -> None:
    roles = {"a": "ship", "b": "ship", "ops": "operator", "br": "bridge", "q": "query"}
    for name, role in roles.items():
        writes = [r.split()[2] for r in acl_rules(name, role) if r.split()[1] != "read"]
        for topic in writes:
            if topic.endswith(("/readings", "/status")):
                assert role == "ship", (name, topic)
                assert topic.startswith(f"fleet/ships/{name}/"), (name, topic)
            assert "#" not in topic, (name, topic)
    assert "user" not in render_acl({}).replace("#", "")  # no block for anyone, anonymous none


def test_remove_ship(accounts: Accounts) -> None:
    accounts.add_ship("a")
    accounts.add_ship("b")
    accounts.remove_ship("a")
    assert accounts.list_ships() == ["b"]
    assert set(passwd_entries(accounts)) == {"b"}
    assert set(acl_blocks(accounts)) == {"b"}
    assert "fleet/ships/a/" not in accounts.acl_path.read_text()


def test_list_ships_sorted_and_ships_only(accounts: Accounts) -> None:
    assert accounts.list_ships() == []
    for ship in ("zeta", "Alpha", "mid_1"):
        accounts.add_ship(ship)
    accounts.add_operator("ops")
    assert accounts.list_ships() == ["Alpha", "mid_1", "zeta"]


# --- errors ---------------------------------------------------------------------------------

BAD_NAMES = ["", "a/b", "a b", "a+b", "#", "a.b", "é", "x" * 65, "a\nb", "fleet/#"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_names_refused(accounts: Accounts, name: str) -> None:
    with pytest.raises(AccountError, match="bad ship id"):
        accounts.add_ship(name)
    with pytest.raises(AccountError, match="bad ship id"):
        accounts.remove_ship(name)
    with pytest.raises(AccountError, match="bad operator name"):
        accounts.add_operator(name)
    with pytest.raises(AccountError, match="bad service account name"):
        accounts.ensure_service(name, "bridge")
    assert not accounts.passwd_path.exists()


def test_longest_name_accepted(accounts: Accounts) -> None:
    accounts.add_ship("x" * 64)
    assert accounts.list_ships() == ["x" * 64]


def test_names_unique_across_roles(accounts: Accounts) -> None:
    accounts.add_ship("one")
    with pytest.raises(AccountError, match=r"'one' already exists \(ship\)"):
        accounts.add_ship("one")
    with pytest.raises(AccountError, match="already exists"):
        accounts.add_operator("one")
    with pytest.raises(AccountError, match="already exists"):
        accounts.ensure_service("one", "bridge")
    accounts.add_operator("ops")
    with pytest.raises(AccountError, match=r"'ops' already exists \(operator\)"):
        accounts.add_ship("ops")
    accounts.ensure_service("fleet-bridge", "bridge")
    with pytest.raises(AccountError, match="already exists"):
        accounts.add_ship("fleet-bridge")
    with pytest.raises(AccountError, match=r"already exists \(bridge\)"):
        accounts.ensure_service("fleet-bridge", "query")


def test_remove_unknown_or_non_ship(accounts: Accounts) -> None:
    with pytest.raises(AccountError, match="unknown ship 'ghost'"):
        accounts.remove_ship("ghost")
    accounts.add_operator("ops")
    with pytest.raises(AccountError, match="not a ship"):
        accounts.remove_ship("ops")
    assert "ops" in passwd_entries(accounts)


def test_empty_password_refused(accounts: Accounts) -> None:
    with pytest.raises(AccountError, match="empty password"):
        accounts.add_ship("s", "")
    with pytest.raises(AccountError, match="empty password"):
        accounts.add_operator("o", "")
    with pytest.raises(AccountError, match="empty password"):
        accounts.ensure_service("b", "bridge", "")
    assert not accounts.accounts_path.exists()


def test_bad_service_role(accounts: Accounts) -> None:
    for role in ("ship", "operator", "admin"):
        with pytest.raises(AccountError, match="bad service role"):
            accounts.ensure_service("svc", role)


# --- service accounts -----------------------------------------------------------------------


def test_ensure_service_is_idempotent(accounts: Accounts) -> None:
    first = accounts.ensure_service("fleet-bridge", "bridge")
    secret = accounts.secrets_dir / "fleet-bridge"
    assert secret.read_text() == first
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE(accounts.secrets_dir.stat().st_mode) == 0o700
    before = accounts.passwd_path.read_text()
    assert accounts.ensure_service("fleet-bridge", "bridge") == first
    assert accounts.passwd_path.read_text() == before  # nothing rewritten
    assert verify_password(first, passwd_entries(accounts)["fleet-bridge"])


def test_ensure_service_with_password_replaces(accounts: Accounts) -> None:
    accounts.ensure_service("fleet-bridge", "bridge")
    assert accounts.ensure_service("fleet-bridge", "bridge", "chosen") == "chosen"
    assert (accounts.secrets_dir / "fleet-bridge").read_text() == "chosen"
    assert verify_password("chosen", passwd_entries(accounts)["fleet-bridge"])
    assert accounts.ensure_service("fleet-bridge", "bridge") == "chosen"


def test_ensure_service_lost_secret_gets_new_password(accounts: Accounts) -> None:
    old = accounts.ensure_service("fleet-bridge", "bridge")
    (accounts.secrets_dir / "fleet-bridge").unlink()
    new = accounts.ensure_service("fleet-bridge", "bridge")
    assert new != old
    assert verify_password(new, passwd_entries(accounts)["fleet-bridge"])


def test_ensure_service_rehashes_stored_secret(accounts: Accounts) -> None:
    """An account whose passwd entry is missing (say, an interrupted write) heals from secrets/."""
    stored = accounts.ensure_service("fleet-bridge", "bridge")
    accounts.passwd_path.write_text("")
    assert accounts.ensure_service("fleet-bridge", "bridge") == stored
    assert verify_password(stored, passwd_entries(accounts)["fleet-bridge"])


# --- robustness ------------------------------------------------------------------------------


def test_unknown_passwd_entries_are_dropped(accounts: Accounts) -> None:
    """passwd is generated: an entry that accounts.json does not list cannot survive a write."""
    accounts.add_ship("a")
    with accounts.passwd_path.open("a") as fh:
        fh.write(f"intruder:{hash_password('x')}\n")
    accounts.add_ship("b")
    assert set(passwd_entries(accounts)) == {"a", "b"}


def test_interrupted_removal_can_be_redone(accounts: Accounts) -> None:
    """Crash after passwd was rewritten but before accounts.json: removing again completes it."""
    accounts.add_ship("a")
    accounts.add_ship("b")
    entries = passwd_entries(accounts)
    accounts.passwd_path.write_text(f"b:{entries['b']}\n")
    assert accounts.list_ships() == ["a", "b"]
    accounts.remove_ship("a")
    assert accounts.list_ships() == ["b"]


def test_corrupt_accounts_file_is_reported(accounts: Accounts) -> None:
    accounts.add_ship("a")
    accounts.accounts_path.write_text("{not json")
    with pytest.raises(FleetError, match=r"accounts\.json"):
        accounts.list_ships()
    accounts.accounts_path.write_text('{"a/b": "ship"}')
    with pytest.raises(FleetError, match="bad entry"):
        accounts.add_ship("c")


def test_concurrent_writers_lose_nothing(accounts: Accounts) -> None:
    """Each thread opens the lock file itself, so flock serializes them as it does processes."""
    errors: list[BaseException] = []

    def add(prefix: str) -> None:
        try:
            for i in range(5):
                Accounts(accounts.broker_dir).add_ship(f"{prefix}-{i}")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(f"t{n}",)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(accounts.list_ships()) == 40
    assert len(passwd_entries(accounts)) == 40
    assert len(acl_blocks(accounts)) == 40


# --- reload ---------------------------------------------------------------------------------


@pytest.mark.parametrize("content", [None, "", "garbage", "0", "-1", "1", "99999999"])
def test_reload_without_a_broker(accounts: Accounts, content: str | None) -> None:
    accounts.broker_dir.mkdir(parents=True)
    if content is not None:
        accounts.pid_path.write_text(content)
    assert accounts.reload_broker() is False


def test_reload_skips_a_process_that_is_not_mosquitto(accounts: Accounts) -> None:
    """A stale pid file naming an unrelated process (here: this test) must not signal it."""
    accounts.broker_dir.mkdir(parents=True)
    accounts.pid_path.write_text(f"{os.getpid()}\n")
    assert accounts.reload_broker() is False  # had it sent SIGHUP, pytest would have died


# --- CLI without a broker ---------------------------------------------------------------------


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Accounts:
    config = tmp_path / "fleet.toml"
    config.write_text("")
    monkeypatch.setenv("FLEET_CONFIG", str(config))
    monkeypatch.setenv("FLEET_LOCAL_DATA_DIR", str(tmp_path / "data"))
    return Accounts(tmp_path / "data" / "mosquitto")


def test_cli_ship_add_prints_password_last(cli_env: Accounts,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["ship", "add", "demo-1"]) == 0
    out = capsys.readouterr().out.splitlines()
    password = out[-1]
    assert verify_password(password, passwd_entries(cli_env)["demo-1"])
    assert any(line.strip().startswith("mosquitto_pub ") and "fleet/ships/demo-1/readings" in line
               for line in out)
    assert any("No running broker" in line for line in out)
    assert password not in "\n".join(out[:-1])


def test_cli_given_password_is_not_printed(cli_env: Accounts,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["operator", "add", "ops", "--password", "hunter2-long"]) == 0
    out = capsys.readouterr().out
    assert "hunter2-long" not in out
    assert "mosquitto_sub" in out
    assert cli_env.roles() == {"ops": "operator"}


def test_cli_service_ensure_prints_no_secret(cli_env: Accounts,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["service", "ensure", "fleet-bridge", "--role", "bridge"]) == 0
    captured = capsys.readouterr()
    secret = (cli_env.secrets_dir / "fleet-bridge").read_text()
    assert secret not in captured.out + captured.err
    assert str(cli_env.secrets_dir / "fleet-bridge") in captured.out
    assert cli.main(["service", "ensure", "fleet-bridge", "--role", "bridge"]) == 0
    assert (cli_env.secrets_dir / "fleet-bridge").read_text() == secret


@pytest.mark.parametrize(("argv", "code", "message"), [
    (["ship", "add", "bad/id"], 2, "bad ship id 'bad/id'"),
    (["ship", "add", "ok", "--password", ""], 2, "empty password"),
    (["ship", "remove", "ghost"], 2, "unknown ship 'ghost'"),
    (["operator", "add", "a b"], 2, "bad operator name"),
    (["ship"], 2, "required"),
    (["ship", "launch"], 2, "invalid choice"),
    (["nonsense"], 2, "invalid choice"),
    (["service", "ensure", "x", "--role", "ship"], 2, "invalid choice"),
])
def test_cli_usage_errors(cli_env: Accounts, capsys: pytest.CaptureFixture[str],
                          argv: list[str], code: int, message: str) -> None:
    assert cli.main(argv) == code
    captured = capsys.readouterr()
    assert message in captured.err
    assert "Traceback" not in captured.err


def test_cli_other_failures_exit_1(cli_env: Accounts, capsys: pytest.CaptureFixture[str]) -> None:
    cli.main(["ship", "add", "a", "--password", "p"])
    cli_env.accounts_path.write_text("[]")
    assert cli.main(["ship", "list"]) == 1
    err = capsys.readouterr().err
    assert "accounts.json" in err
    assert "Traceback" not in err


def test_cli_bad_config_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FLEET_CONFIG", str(tmp_path / "missing.toml"))
    assert cli.main(["ship", "list"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_cli_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "ship" in out
    assert "operator" in out
    assert not re.search(r"^\s+service\b", out, re.MULTILINE)  # the hidden provisioning command


def test_generated_passwords_never_look_like_options() -> None:
    from fleet.accounts import generate_password

    assert not any(generate_password().startswith("-") for _ in range(2000))
