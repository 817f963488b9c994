"""Broker accounts: Mosquitto's password and ACL files, generated from one list of accounts.

Files in ``broker_dir``, rewritten together under a lock (``fcntl.flock``), each atomically:

- ``accounts.json``: username -> role (``ship``, ``operator``, ``bridge``, ``query``, ``alerts``);
- ``passwd``: Mosquitto 2.0's password file, ``user:$7$<iterations>$<salt>$<hash>``
  (PBKDF2-HMAC-SHA512), written here so no ``mosquitto_passwd`` binary is needed;
- ``acl``: one ``user`` block per account with every topic spelled out. There are no ``pattern``
  lines, so an account that is not a ship can never write under a ship's topic;
- ``secrets/<name>``: the passwords of service accounts (bridge, query), for the services to read.

A name is unique across roles: the operator ``x`` and the ship ``x`` cannot both exist, since a
ship's username is its identity. Mosquitto rereads ``passwd`` and ``acl`` on SIGHUP
(:meth:`Accounts.reload_broker`), so changes take effect without a restart.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import signal
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from fleet import paths, topics
from fleet.errors import AccountError, FleetError
from fleet.schema import SHIP_ID

ROLES: Final = ("ship", "operator", "bridge", "query", "alerts")
SERVICE_ROLES: Final = ("bridge", "query", "alerts")

# Mosquitto's $7$ format: PBKDF2-HMAC-SHA512, 12-byte salt, 64-byte hash, standard base64.
# mosquitto_passwd uses 101 iterations; we use 1000. The broker derives the hash on its single
# thread at every CONNECT, so the count is a cost paid per reconnecting ship (about 0.4 ms here);
# generated passwords carry 192 random bits, where stretching adds nothing, and the extra
# iterations are for passwords people choose.
HASH_ITERATIONS: Final = 1000
SALT_BYTES: Final = 12
HASH_BYTES: Final = 64
MAX_PASSWORD_BYTES: Final = 65535  # an MQTT CONNECT password field holds at most this much

_NAME_RULE = "1 to 64 characters of A-Z, a-z, 0-9, '_' and '-'"


def hash_password(password: str, *, salt: bytes | None = None,
                  iterations: int = HASH_ITERATIONS) -> str:
    """The password file entry (after ``user:``) for ``password``, in Mosquitto 2.0's format."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations, HASH_BYTES)
    return f"$7${iterations}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches a ``$7$`` entry (as written here or by mosquitto_passwd)."""
    parts = encoded.split("$")
    if len(parts) != 5 or parts[0] or parts[1] != "7":
        return False
    try:
        iterations = int(parts[2])
        salt = base64.b64decode(parts[3], validate=True)
        expected = base64.b64decode(parts[4], validate=True)
    except (ValueError, binascii.Error):
        return False
    if iterations < 1 or not expected:
        return False
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations,
                                 len(expected))
    return hmac.compare_digest(digest, expected)


def generate_password() -> str:
    """A random password: 32 characters of ``[A-Za-z0-9_-]`` (192 bits), safe in a shell.

    Never starting with ``-``, so ``--password P`` cannot be taken for an option.
    """
    while True:
        password = secrets.token_urlsafe(24)
        if not password.startswith("-"):
            return password


def acl_rules(name: str, role: str) -> list[str]:
    """The ACL lines granted to the account ``name`` of ``role`` (after its ``user`` line)."""
    if role == "ship":
        return [f"topic write {topics.readings(name)}", f"topic write {topics.status(name)}",
                f"topic read {topics.ship_tree(name)}"]
    if role in {"operator", "query"}:
        return [f"topic read {topics.EVERYTHING}"]
    if role == "bridge":
        return [
            f"topic read {topics.READINGS_FILTER}",
            f"topic read {topics.STATUS_FILTER}",
            f"topic write {topics.every_ship(topics.ACK)}",
            f"topic write {topics.every_ship(topics.REJECTED)}",
            f"topic write {topics.every_ship(topics.ENERGY)}",
            f"topic write {topics.every_ship(topics.ROLLUP)}",
            # The handoff marker between bridges when [bridge] workers changes (bridge/partition.py).
            f"topic readwrite {topics.BRIDGE_HANDOFF}",
        ]
    if role == "alerts":
        # The alert service: follows what is stored and presence, and is the only writer of
        # the retained alert topics (it reads them back: its own retained state).
        return [
            f"topic read {topics.every_ship(topics.ENERGY)}",
            f"topic read {topics.STATUS_FILTER}",
            f"topic readwrite {topics.ALERTS_FILTER}",
        ]
    raise AccountError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")


def render_acl(roles: Mapping[str, str]) -> str:
    """The whole ACL file for ``roles`` (username -> role), services and operators first."""
    lines = [
        "# Generated by fleetctl (fleet/accounts.py) from accounts.json: edits are overwritten.",
        "# Every topic is spelled out per account; no pattern lines, no anonymous access.",
    ]
    order = {role: i for i, role in enumerate(("bridge", "query", "alerts", "operator", "ship"))}
    for name in sorted(roles, key=lambda n: (order[roles[n]], n)):
        lines += ["", f"# {roles[name]}", f"user {name}", *acl_rules(name, roles[name])]
    return "\n".join(lines) + "\n"


def render_passwd(hashes: Mapping[str, str]) -> str:
    return "".join(f"{name}:{hashes[name]}\n" for name in sorted(hashes))


@dataclass(slots=True)
class _State:
    roles: dict[str, str] = field(default_factory=dict)
    hashes: dict[str, str] = field(default_factory=dict)


class Accounts:
    """The broker accounts kept in ``broker_dir`` (see the module docstring for the files)."""

    def __init__(self, broker_dir: Path) -> None:
        self.broker_dir = Path(broker_dir)
        self.passwd_path = self.broker_dir / "passwd"
        self.acl_path = self.broker_dir / "acl"
        self.accounts_path = self.broker_dir / "accounts.json"
        self.pid_path = self.broker_dir / "mosquitto.pid"
        self.secrets_dir = self.broker_dir / paths.SECRETS
        self._lock_path = self.broker_dir / "accounts.lock"

    # --- public API ----------------------------------------------------------------------------

    def add_ship(self, ship_id: str, password: str | None = None) -> str:
        """Create the ship's account; return its password (generated when none is given)."""
        return self._add(ship_id, "ship", "ship id", password)

    def remove_ship(self, ship_id: str) -> None:
        """Delete the ship's account: its next connection is refused once the broker reloads."""
        _check_name(ship_id, "ship id")
        with self._locked() as state:
            role = state.roles.get(ship_id)
            if role is None:
                raise AccountError(f"unknown ship {ship_id!r}")
            if role != "ship":
                raise AccountError(f"{ship_id!r} is not a ship but the {role} account")
            del state.roles[ship_id]
            state.hashes.pop(ship_id, None)
            self._write(state)

    def list_ships(self) -> list[str]:
        """The ship ids with an account, sorted."""
        with self._locked() as state:
            return sorted(name for name, role in state.roles.items() if role == "ship")

    def roles(self) -> dict[str, str]:
        """Every account: username -> role."""
        with self._locked() as state:
            return dict(sorted(state.roles.items()))

    def add_operator(self, name: str, password: str | None = None) -> str:
        """Create a read-only operator account (``fleet/#``); return its password."""
        return self._add(name, "operator", "operator name", password)

    def _add(self, name: str, role: str, what: str, password: str | None) -> str:
        """Create a new account of ``role``; return its password (generated when none given)."""
        _check_name(name, what)
        password = _checked_password(password)
        with self._locked() as state:
            self._check_free(state, name)
            state.roles[name] = role
            state.hashes[name] = hash_password(password)
            self._write(state)
        return password

    def ensure_service(self, name: str, role: str, password: str | None = None) -> str:
        """Make sure the service account exists; return its password.

        ``role`` is ``bridge``, ``query`` or ``alerts``. The password is kept in
        ``secrets/<name>`` (mode 0600). Idempotent: an existing account keeps its stored password
        unless ``password`` is given, in which case that one replaces it.
        """
        if role not in SERVICE_ROLES:
            raise AccountError(
                f"bad service role {role!r}: expected one of {', '.join(SERVICE_ROLES)}")
        _check_name(name, "service account name")
        if password is not None:
            password = _checked_password(password)
        secret_path = self.secrets_dir / name
        with self._locked() as state:
            current = state.roles.get(name)
            if current is not None and current != role:
                raise AccountError(f"an account named {name!r} already exists ({current})")
            stored = _read_secret(secret_path) if current == role else None
            if password is None:
                if stored is not None and verify_password(stored, state.hashes.get(name, "")):
                    if _read_text(self.acl_path) != render_acl(state.roles):
                        _atomic_write(self.acl_path, render_acl(state.roles))  # rules of a newer release
                    return stored  # nothing else to change
                # Existing account whose hash is missing: re-hash the stored password. A missing
                # account, or one whose secret was lost: a new password.
                password = stored if stored else generate_password()
            self.secrets_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            _atomic_write(secret_path, password)
            state.roles[name] = role
            state.hashes[name] = hash_password(password)
            self._write(state)
        return password

    def reload_broker(self) -> bool:
        """SIGHUP the broker named in ``mosquitto.pid`` so it rereads passwd and acl.

        Returns whether a signal was sent: False when there is no pid file, or its process is
        gone, is not a ``mosquitto``, or is not ours to signal. Linux only (reads ``/proc``).
        The broker applies the reload in its next loop iteration, a moment later.
        """
        try:
            pid = int(self.pid_path.read_text(encoding="ascii").strip())
        except (OSError, ValueError):
            return False
        if pid <= 1 or not _is_mosquitto(pid):  # never kill(0) or kill(-1): whole groups
            return False
        try:
            os.kill(pid, signal.SIGHUP)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    # --- files ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[_State]:
        """Hold the lock for one read-modify-write; two fleetctl runs never interleave."""
        try:
            self.broker_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise FleetError(f"cannot use the broker directory {self.broker_dir}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield self._read()
        finally:
            os.close(fd)  # releases the lock

    def _read(self) -> _State:
        state = _State()
        try:
            raw = json.loads(self.accounts_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return state  # nothing created yet: an orphan passwd is replaced at the first write
        except (OSError, ValueError) as exc:
            raise FleetError(f"cannot read {self.accounts_path}: {exc}") from exc
        if not isinstance(raw, dict):
            raise FleetError(f"{self.accounts_path}: expected an object of username -> role")
        for name, role in raw.items():
            if not SHIP_ID.fullmatch(name) or role not in ROLES:
                raise FleetError(f"{self.accounts_path}: bad entry {name!r}: {role!r}")
            state.roles[name] = role
        try:
            text = self.passwd_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            text = ""
        except OSError as exc:
            raise FleetError(f"cannot read {self.passwd_path}: {exc}") from exc
        for line in text.splitlines():
            name, sep, encoded = line.partition(":")
            # Entries of unknown accounts are dropped at the next write. An account without an
            # entry (a removal interrupted between files) simply cannot log in.
            if sep and name in state.roles:
                state.hashes[name] = encoded
        return state

    def _write(self, state: _State) -> None:
        """passwd and acl first, accounts.json last, so an interrupted change leaves no account
        that can log in without being listed (see ``_read`` for how each half-state heals)."""
        hashes = {n: h for n, h in state.hashes.items() if n in state.roles}
        try:
            _atomic_write(self.passwd_path, render_passwd(hashes))
            _atomic_write(self.acl_path, render_acl(state.roles))
            _atomic_write(self.accounts_path,
                          json.dumps(state.roles, indent=2, sort_keys=True) + "\n")
        except OSError as exc:
            raise FleetError(f"cannot write the broker account files: {exc}") from exc

    @staticmethod
    def _check_free(state: _State, name: str) -> None:
        role = state.roles.get(name)
        if role is not None:
            raise AccountError(f"an account named {name!r} already exists ({role})")


def _check_name(name: str, what: str) -> None:
    if not isinstance(name, str) or not SHIP_ID.fullmatch(name):
        raise AccountError(f"bad {what} {name!r}: must be {_NAME_RULE}")


def _checked_password(password: str | None) -> str:
    if password is None:
        return generate_password()
    if not password:
        raise AccountError("empty password: give a non-empty one, or none to generate one")
    if len(password.encode("utf-8")) > MAX_PASSWORD_BYTES:
        raise AccountError(f"password too long: at most {MAX_PASSWORD_BYTES} bytes (MQTT limit)")
    return password


def _read_secret(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").rstrip("\n") or None
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise FleetError(f"cannot read {path}: {exc}") from exc


def _atomic_write(path: Path, text: str, mode: int = 0o600) -> None:
    """Write via a temporary file in the same directory and ``os.replace``: the broker, reloading
    at any moment, sees the old file or the new one, never half of one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _is_mosquitto(pid: int) -> bool:
    try:
        comm = Path(f"/proc/{pid}/comm").read_text(encoding="utf-8").strip()
    except OSError:
        return False
    return comm == "mosquitto"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return ""
