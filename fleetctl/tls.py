"""fleetctl commands of development TLS: ``tls init`` and ``tls client`` (the certificates
themselves are made by :mod:`fleet.tls`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from fleet import topics
from fleet.config import load_config
from fleet.tls import CA_CERT, client_cert, init, tls_dir

if TYPE_CHECKING:
    from fleetctl.main import CommandTree


def _init_cmd(args: argparse.Namespace) -> int:
    cfg = load_config()
    directory = Path(args.dir) if args.dir else tls_dir(cfg)
    hosts = ["localhost", "127.0.0.1", *args.host]
    files = init(directory, hosts=list(dict.fromkeys(hosts)), days=args.days, force=args.force)
    print(f"Development CA and server certificate for {', '.join(dict.fromkeys(hosts))}:")
    for f in files:
        print(f"  {f}")
    port = cfg.mqtt.tls_port or 8883
    print(f"The launcher opens a TLS listener on 127.0.0.1:{port} at the broker's next start"
          " (make run, or restart it).")
    print("Clients use it with:")
    print(f"  export FLEET_MQTT_TLS_CA={directory / CA_CERT}")
    print(f"  mosquitto_sub --cafile {directory / CA_CERT} -h localhost -p {port} "
          f"-u OPERATOR -P PASSWORD -t '{topics.EVERYTHING}' -v")
    return 0


def _client_cmd(args: argparse.Namespace) -> int:
    cfg = load_config()
    directory = Path(args.dir) if args.dir else tls_dir(cfg)
    crt, key = client_cert(directory, args.name, days=args.days)
    print(f"Client certificate for {args.name!r}: {crt} (key {key})")
    print(f"  export FLEET_MQTT_TLS_CERT={crt} FLEET_MQTT_TLS_KEY={key}")
    return 0


def register(tree: CommandTree) -> None:
    """``fleetctl tls init`` and ``fleetctl tls client``."""
    tree.group("tls", "development TLS: a local CA and certificates")
    init_p = tree.command("tls init", _init_cmd,
                          "create a local CA and a server certificate for the broker")
    init_p.add_argument("--host", action="append", default=[],
                        help="another name or address for the server certificate (repeatable)")
    init_p.add_argument("--days", type=int, default=825, help="server certificate validity")
    init_p.add_argument("--dir", help="where to write (default: <[local] data_dir>/tls)")
    init_p.add_argument("--force", action="store_true", help="replace an existing CA")
    client = tree.command("tls client", _client_cmd,
                          "create a client certificate signed by the local CA")
    client.add_argument("name")
    client.add_argument("--days", type=int, default=825)
    client.add_argument("--dir", help="where the CA is (default: <[local] data_dir>/tls)")
