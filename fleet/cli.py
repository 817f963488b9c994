"""``fleetctl``: broker accounts, the ship agent, tokens, TLS, fleet status and the simulator.

The parser is a tree: groups (``ship``, ``operator``, ``tls``, ``token``, ``fleet``) hold
commands, and a command may also sit at the top (``simulate``). Each module contributes its
commands through a ``register(tree: CommandTree) -> None`` function listed in ``REGISTRARS``, so
``ship run`` can live with the ship agent and ``token create`` with the tokens::

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
from datetime import UTC, datetime

from fleet.accounts import SERVICE_ROLES, Accounts
from fleet.config import Config, load_config
from fleet.errors import AccountError, ConfigError, FleetError
from fleet.tls import register as _register_tls
from fleet.tokens import register as _register_tokens
from fleetctl.report import register as _register_report
from ship.cli import register as _register_ship

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


# --- account commands ---------------------------------------------------------------------------


def _accounts(cfg: Config | None = None) -> Accounts:
    """The accounts of ``[local] data_dir``/mosquitto, where the launcher's broker reads them."""
    return Accounts((cfg or load_config()).local.path / "mosquitto")


def _report_reload(accounts: Accounts) -> None:
    if accounts.reload_broker():
        print("The running broker was reloaded: the change is effective now.")
    else:
        print(f"No running broker found (pid file {accounts.pid_path}): the change takes effect "
              "when the broker starts or is sent SIGHUP "
              "(docker compose: docker compose kill -s HUP mosquitto).")


def _ship_add(args: argparse.Namespace) -> int:
    cfg = load_config()
    accounts, mqtt = _accounts(cfg), cfg.mqtt
    password = accounts.add_ship(args.ship_id, args.password)
    print(f"Ship {args.ship_id!r} added.")
    _report_reload(accounts)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:00Z")
    sample = f'{{"units": "kW", "data": [{{"datetime": "{now}", "value": 22}}]}}'
    secret = "PASSWORD" if args.password is None else "YOUR-PASSWORD"
    print("Publish a reading with:")
    print(f"  mosquitto_pub -h {mqtt.host} -p {mqtt.port} -V mqttv5 -q 1 -u {args.ship_id} "
          f"-P '{secret}' -t fleet/ships/{args.ship_id}/readings -m '{sample}'")
    _print_generated(password, given=args.password is not None)
    return 0


def _print_generated(password: str, *, given: bool) -> None:
    """A generated password, alone on the last line; one the user gave is never printed."""
    if not given:
        print("PASSWORD (shown once; only its hash is kept):")
        print(password)


def _ship_remove(args: argparse.Namespace) -> int:
    accounts = _accounts()
    accounts.remove_ship(args.ship_id)
    print(f"Ship {args.ship_id!r} removed: once the broker reloads, it is disconnected and "
          "refused.")
    _report_reload(accounts)
    return 0


def _ship_list(args: argparse.Namespace) -> int:
    for ship_id in _accounts().list_ships():
        print(ship_id)
    return 0


def _operator_add(args: argparse.Namespace) -> int:
    cfg = load_config()
    accounts, mqtt = _accounts(cfg), cfg.mqtt
    password = accounts.add_operator(args.name, args.password)
    print(f"Operator {args.name!r} added (reads fleet/#, writes nothing).")
    _report_reload(accounts)
    secret = "PASSWORD" if args.password is None else "YOUR-PASSWORD"
    print("Watch the fleet with:")
    print(f"  mosquitto_sub -h {mqtt.host} -p {mqtt.port} -V mqttv5 -u {args.name} "
          f"-P '{secret}' -t 'fleet/#' -v")
    _print_generated(password, given=args.password is not None)
    return 0


def _service_ensure(args: argparse.Namespace) -> int:
    accounts = _accounts()
    accounts.ensure_service(args.name, args.role, args.password)
    # The password itself is never printed: services read it from the file.
    print(f"Service account {args.name!r} ({args.role}) ready; "
          f"password in {accounts.secrets_dir / args.name}.")
    _report_reload(accounts)
    return 0


def _register_accounts(tree: CommandTree) -> None:
    tree.group("ship", "ship accounts and the on-board ship agent")
    add = tree.command("ship add", _ship_add, "create a ship's broker account")
    add.add_argument("ship_id", help="1-64 characters of [A-Za-z0-9_-]; the MQTT username")
    add.add_argument("--password", help="use this password instead of generating one")
    remove = tree.command("ship remove", _ship_remove, "delete a ship's broker account")
    remove.add_argument("ship_id")
    tree.command("ship list", _ship_list, "list ship ids, one per line")

    tree.group("operator", "operator accounts (read fleet/#, write nothing)")
    op = tree.command("operator add", _operator_add, "create an operator's broker account")
    op.add_argument("name", help="1-64 characters of [A-Za-z0-9_-]; the MQTT username")
    op.add_argument("--password", help="use this password instead of generating one")

    # Provisioning for docker-compose and the launcher, left out of the help: create the
    # account when missing, keep its password in secrets/<name>, print nothing secret.
    tree.group("service")
    svc = tree.command("service ensure", _service_ensure)
    svc.add_argument("name")
    svc.add_argument("--role", required=True, choices=SERVICE_ROLES)
    svc.add_argument("--password", help="set this password (default: keep or generate)")


REGISTRARS: list[Callable[[CommandTree], None]] = [
    _register_accounts, _register_tokens, _register_tls, _register_ship, _register_report]


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
