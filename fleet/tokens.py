"""API tokens for the query service's read endpoints: ``Authorization: Bearer <token>``.

One file, ``tokens.json`` under ``[local] data_dir``, mode 0600, rewritten atomically under an
exclusive ``flock``: ``{"version": 1, "tokens": {name: {"salt", "sha256", "created"}}}``. Only a
salted SHA-256 of each token is kept. A token is ``fleet_`` + 256 random bits (base64url), so a
fast hash is enough: stretching protects guessable secrets, and these are not guessable.

The query service holds a :class:`TokenVerifier`, which rereads the file when its mtime, inode or
size changes (one ``stat`` per request), so ``fleetctl token revoke`` takes effect at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fleet import paths
from fleet.accounts import _atomic_write
from fleet.errors import AccountError, FleetError
from fleet.schema import SHIP_ID

TOKEN_PREFIX = "fleet_"  # noqa: S105 - a prefix, not a secret
DEV_TOKEN_NAME = "dev"  # noqa: S105 - a name, not a secret
_MAX_TOKEN_CHARS = 200


def tokens_path(data_dir: Path) -> Path:
    return paths.tokens_file(data_dir)


def _digest(salt: bytes, token: str) -> bytes:
    return hashlib.sha256(salt + token.encode("utf-8")).digest()


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A stored token: its name and creation time (the secret itself is never kept)."""

    name: str
    created: str


@dataclass(frozen=True, slots=True)
class _Entry:
    name: str
    salt: bytes
    digest: bytes
    created: str


class TokenStore:
    """Create, list and revoke tokens in ``tokens.json`` (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock_path = self.path.with_name(self.path.name + ".lock")

    def create(self, name: str, *, replace: bool = False) -> str:
        """Store a new token named ``name`` and return it (shown once)."""
        _check_name(name)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        salt = secrets.token_bytes(16)
        with self._locked() as entries:
            if name in entries and not replace:
                raise AccountError(f"a token named {name!r} already exists; revoke it first")
            entries[name] = _Entry(name, salt, _digest(salt, token),
                                   datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
            self._write(entries)
        return token

    def revoke(self, name: str) -> None:
        _check_name(name)
        with self._locked() as entries:
            if name not in entries:
                raise AccountError(f"no token named {name!r}")
            del entries[name]
            self._write(entries)

    def list(self) -> list[TokenInfo]:
        return [TokenInfo(e.name, e.created) for e in sorted(_read(self.path).values(),
                                                               key=lambda e: e.name)]

    def verify(self, token: str) -> str | None:
        """The name of the token, or None when it is unknown (or revoked)."""
        return _match(_read(self.path), token)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, _Entry]]:
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise FleetError(f"cannot use the token directory {self.path.parent}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield _read(self.path)
        finally:
            os.close(fd)

    def _write(self, entries: dict[str, _Entry]) -> None:
        doc = {"version": 1, "tokens": {
            e.name: {"salt": e.salt.hex(), "sha256": e.digest.hex(), "created": e.created}
            for e in sorted(entries.values(), key=lambda e: e.name)}}
        try:
            _atomic_write(self.path, json.dumps(doc, indent=2) + "\n")
        except OSError as exc:
            raise FleetError(f"cannot write {self.path}: {exc}") from exc


def _check_name(name: str) -> None:
    if not SHIP_ID.fullmatch(name):
        raise AccountError(f"bad token name {name!r}: must be 1 to 64 characters of "
                           "A-Z, a-z, 0-9, '_' and '-'")


def _read(path: Path) -> dict[str, _Entry]:
    try:
        doc: Any = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise FleetError(f"cannot read {path}: {exc}") from exc
    tokens = doc.get("tokens") if isinstance(doc, dict) else None
    if not isinstance(tokens, dict):
        raise FleetError(f"{path}: expected {{\"tokens\": {{...}}}}")
    entries: dict[str, _Entry] = {}
    for name, raw in tokens.items():
        try:
            entries[name] = _Entry(name, bytes.fromhex(raw["salt"]), bytes.fromhex(raw["sha256"]),
                                   str(raw.get("created", "")))
        except (TypeError, KeyError, ValueError) as exc:
            raise FleetError(f"{path}: bad entry {name!r}") from exc
    return entries


def _match(entries: dict[str, _Entry], token: str) -> str | None:
    if not token.startswith(TOKEN_PREFIX) or len(token) > _MAX_TOKEN_CHARS:
        return None
    found = None
    for entry in entries.values():  # every entry is compared: no early exit to time
        if hmac.compare_digest(_digest(entry.salt, token), entry.digest):
            found = entry.name
    return found


class TokenVerifier:
    """The query service's view of ``tokens.json``: reread when the file changes.

    Thread-safe (gunicorn workers are processes; aiohttp runs one loop, but a check is cheap
    enough to do under a lock). A missing file means no token is valid.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._entries: dict[str, _Entry] = {}
        self._verified: dict[str, str] = {}

    def _refresh(self) -> None:
        try:
            st = self.path.stat()
            stamp: tuple[int, int, int] | None = (st.st_mtime_ns, st.st_ino, st.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp == self._stamp and (stamp is not None or not self._entries):
            return
        self._entries = _read(self.path) if stamp is not None else {}
        self._verified = {}
        self._stamp = stamp

    def count(self) -> int:
        with self._lock:
            self._refresh()
            return len(self._entries)

    def verify(self, token: str) -> str | None:
        """The token's name, or None. Raises FleetError when the file cannot be read."""
        with self._lock:
            self._refresh()
            name = self._verified.get(token)
            if name is not None:
                return name
            name = _match(self._entries, token)
            if name is not None and len(self._verified) < 1000:
                self._verified[token] = name
            return name


def ensure_dev_token(data_dir: Path) -> str:
    """The development token of ``make run``: kept in ``dev.token`` (0600) and stored hashed as
    the token ``dev``; recreated when the file is missing or no longer matches."""
    store = TokenStore(tokens_path(data_dir))
    secret_file = paths.dev_token_file(data_dir)
    with contextlib.suppress(OSError):
        token = secret_file.read_text(encoding="utf-8").strip()
        if token and store.verify(token) == DEV_TOKEN_NAME:
            return token
    token = store.create(DEV_TOKEN_NAME, replace=True)
    _atomic_write(secret_file, token + "\n")
    return token
