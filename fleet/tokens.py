"""API tokens for the query service's read endpoints: ``Authorization: Bearer <token>``.

One file, ``tokens.json`` under ``[local] data_dir``, mode 0600, rewritten atomically under an
exclusive ``flock``: ``{"version": 1, "tokens": {name: {"salt", "sha256", "created"}}}``. Only a
salted SHA-256 of each token is kept. A token is ``fleet_`` + 256 random bits (base64url), so a
fast hash is enough: stretching protects guessable secrets, and these are not guessable.

The query service holds a :class:`TokenVerifier`, which rereads the file when its mtime, inode or
size changes (one ``stat`` per request), so ``fleetctl token revoke`` takes effect at once.
"""

from __future__ import annotations

import argparse
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
from typing import TYPE_CHECKING, Any

from fleet.accounts import _atomic_write
from fleet.errors import AccountError, FleetError
from fleet.schema import SHIP_ID

if TYPE_CHECKING:
    from fleet.cli import CommandTree

TOKEN_PREFIX = "fleet_"  # noqa: S105 - a prefix, not a secret
TOKENS_FILE = "tokens.json"
DEV_TOKEN_NAME = "dev"  # noqa: S105 - a name, not a secret
_MAX_TOKEN_CHARS = 200


def tokens_path(data_dir: Path) -> Path:
    return Path(data_dir) / TOKENS_FILE


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
    secret_file = Path(data_dir) / "dev.token"
    with contextlib.suppress(OSError):
        token = secret_file.read_text(encoding="utf-8").strip()
        if token and store.verify(token) == DEV_TOKEN_NAME:
            return token
    token = store.create(DEV_TOKEN_NAME, replace=True)
    _atomic_write(secret_file, token + "\n")
    return token


# --- fleetctl token ... ---------------------------------------------------------------------------


def _store() -> TokenStore:
    from fleet.config import load_config  # noqa: PLC0415 - only the CLI reads the configuration

    return TokenStore(tokens_path(load_config().local.path))


def _create(args: argparse.Namespace) -> int:
    token = _store().create(args.name)
    print(f"Token {args.name!r} created; send it as 'Authorization: Bearer <token>'. "
          "Shown once (only its hash is kept):")
    print(token)
    return 0


def _list(args: argparse.Namespace) -> int:
    for info in _store().list():
        print(f"{info.name}\t{info.created}")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    _store().revoke(args.name)
    print(f"Token {args.name!r} revoked: refused from now on.")
    return 0


def register(tree: CommandTree) -> None:
    """``fleetctl token create|list|revoke``."""
    tree.group("token", "API tokens for the HTTP query service")
    create = tree.command("token create", _create, "create a token; prints it on the last line")
    create.add_argument("--name", required=True, help="1-64 characters of [A-Za-z0-9_-]")
    tree.command("token list", _list, "list token names and creation times")
    revoke = tree.command("token revoke", _revoke, "revoke a token by name")
    revoke.add_argument("name")


def dev_token_text(http_url: str, token: str, *, auth: str = "token") -> str:
    """What ``make run`` prints about the read API's authentication."""
    if auth == "none":
        return (f"HTTP auth is off (http.auth = none): {http_url}/v1/... answers anyone.\n"
                f"Dashboard: {http_url}/\n")
    return (f"Development API token (stored hashed as {DEV_TOKEN_NAME!r}; kept in dev.token):\n"
            f"  {token}\n"
            f"  curl -H 'Authorization: Bearer {token}' {http_url}/v1/ships\n"
            f"Dashboard: {http_url}/#token={token}\n"
            "More tokens: .venv/bin/fleetctl token create --name NAME\n")
