"""fleetctl commands of the broker accounts: ``ship add|remove|list``, ``operator add``,
``service ensure`` (the accounts themselves are :mod:`fleet.accounts`)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from fleet import paths, topics
from fleet.accounts import SERVICE_ROLES, Accounts
from fleet.config import Config, load_config

if TYPE_CHECKING:
    from fleetctl.main import CommandTree


def _accounts(cfg: Config | None = None) -> Accounts:
    """The accounts of ``[local] data_dir``/mosquitto, where the launcher's broker reads them."""
    return Accounts(paths.broker_dir((cfg or load_config()).local.path))


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
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:00Z")
    sample = f'{{"units": "kW", "data": [{{"datetime": "{now}", "value": 22}}]}}'
    _announce(accounts, f"Ship {args.ship_id!r} added.", "Publish a reading with:",
              f"mosquitto_pub -h {mqtt.host} -p {mqtt.port} -V mqttv5 -q 1 -u {args.ship_id} "
              f"-P '{{secret}}' -t {topics.readings(args.ship_id)} -m '{sample}'",
              password, given=args.password is not None)
    return 0


def _announce(accounts: Accounts, added: str, usage: str, command: str, password: str, *,
              given: bool) -> None:
    """What an added account means: the broker's reload, a command using it (``{secret}``
    stands for its password) and the generated password, if any, on the last line."""
    print(added)
    _report_reload(accounts)
    print(usage)
    print("  " + command.replace("{secret}", "YOUR-PASSWORD" if given else "PASSWORD"))
    _print_generated(password, given=given)


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
    _announce(accounts, f"Operator {args.name!r} added (reads {topics.EVERYTHING}, writes nothing).",
              "Watch the fleet with:",
              f"mosquitto_sub -h {mqtt.host} -p {mqtt.port} -V mqttv5 -u {args.name} "
              f"-P '{{secret}}' -t '{topics.EVERYTHING}' -v",
              password, given=args.password is not None)
    return 0


def _service_ensure(args: argparse.Namespace) -> int:
    accounts = _accounts()
    accounts.ensure_service(args.name, args.role, args.password)
    # The password itself is never printed: services read it from the file.
    print(f"Service account {args.name!r} ({args.role}) ready; "
          f"password in {accounts.secrets_dir / args.name}.")
    _report_reload(accounts)
    return 0


def register(tree: CommandTree) -> None:
    """``ship add|remove|list``, ``operator add`` and ``service ensure``."""
    tree.group("ship", "ship accounts and the on-board ship agent")
    add = tree.command("ship add", _ship_add, "create a ship's broker account")
    add.add_argument("ship_id", help="1-64 characters of [A-Za-z0-9_-]; the MQTT username")
    add.add_argument("--password", help="use this password instead of generating one")
    remove = tree.command("ship remove", _ship_remove, "delete a ship's broker account")
    remove.add_argument("ship_id")
    tree.command("ship list", _ship_list, "list ship ids, one per line")

    tree.group("operator", f"operator accounts (read {topics.EVERYTHING}, write nothing)")
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
