"""``fleetctl``: broker accounts, the ship agent, tokens, TLS, fleet status and the simulator.

The parser is a tree: groups (``ship``, ``operator``, ``tls``, ``token``, ``fleet``) hold
commands, and a command may also sit at the top (``simulate``). Each module contributes its
commands through a ``register(tree: CommandTree) -> None`` function listed in ``REGISTRARS``: one
module per group (``accounts``: ship/operator/service accounts, ``tokens``, ``tls``, ``ship``: the
agent's ``ship run``/``ship status``, ``status``: ``fleet status``, ``simulate``)::

    def register(tree: CommandTree) -> None:
        run = tree.command("ship run", _run, "run the ship agent")
        run.add_argument("ship_id")

Handlers take the parsed arguments and return the exit code. Errors: :class:`AccountError` and
:class:`ConfigError` (bad input) exit 2, any other :class:`FleetError` exits 1; both print one
line on stderr, no traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from fleet.errors import AccountError, ConfigError, FleetError
from fleetctl import accounts, alerts, importer, report, rollup, ship, simulate, status, tls, tokens

Handler = Callable[[argparse.Namespace], int]
_Subparsers = argparse._SubParsersAction  # argparse has no public name for it


class CommandTree:
    """The ``fleetctl`` parser, to which modules add their groups and commands."""

    def __init__(self) -> None:
        self.parser = argparse.ArgumentParser(
            prog="fleetctl", description="Manage the fleet telemetry system.")
        self._top: _Subparsers[argparse.ArgumentParser] = self.parser.add_subparsers(
            dest="command", metavar="COMMAND", required=True)
        self._groups: dict[str, _Subparsers[argparse.ArgumentParser]] = {}

    def group(self, name: str, summary: str | None = None) -> None:
        """Declare a group such as ``ship``; ``summary=None`` keeps it out of the help."""
        if name in self._groups:
            return
        parser = _add_parser(self._top, name, summary)
        self._groups[name] = parser.add_subparsers(
            dest="subcommand", metavar="SUBCOMMAND", required=True)

    def command(self, path: str, handler: Handler, summary: str | None = None,
                ) -> argparse.ArgumentParser:
        """Add ``"group name"`` or a top-level ``"name"``; return its parser for arguments.

        ``summary=None`` adds a command left out of the help (for provisioning scripts).
        """
        *group, name = path.split()
        if len(group) > 1:
            raise ValueError(f"commands nest one level deep, got {path!r}")
        if group:
            self.group(group[0])
            subparsers = self._groups[group[0]]
        else:
            subparsers = self._top
        parser = _add_parser(subparsers, name, summary)
        parser.set_defaults(handler=handler)
        return parser


def _add_parser(subparsers: _Subparsers[argparse.ArgumentParser], name: str,
                summary: str | None) -> argparse.ArgumentParser:
    if summary is None:  # no help= at all: argparse then leaves it out of the listing
        return subparsers.add_parser(name)
    return subparsers.add_parser(name, help=summary, description=summary)


REGISTRARS: list[Callable[[CommandTree], None]] = [
    accounts.register, tokens.register, tls.register, ship.register, status.register,
    simulate.register, alerts.register, importer.register, report.register, rollup.register]


def build_parser() -> argparse.ArgumentParser:
    tree = CommandTree()
    for register in REGISTRARS:
        register(tree)
    return tree.parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``fleetctl``; returns the exit code (2: bad usage or input, 1: failure)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed usage (code 2) or help (code 0)
        return exc.code if isinstance(exc.code, int) else 2
    handler: Handler = args.handler
    try:
        return handler(args)
    except (AccountError, ConfigError) as exc:
        print(f"fleetctl: {exc}", file=sys.stderr)
        return 2
    except FleetError as exc:
        print(f"fleetctl: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"fleetctl: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
