"""fleetctl commands of the API tokens: ``token create|list|revoke`` (the tokens themselves are
:mod:`fleet.tokens`)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from fleet.config import load_config
from fleet.tokens import TokenStore, tokens_path

if TYPE_CHECKING:
    from fleetctl.main import CommandTree


def _store() -> TokenStore:
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
