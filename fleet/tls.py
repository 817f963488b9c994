"""TLS for development: a local CA, a server certificate for the broker, client certificates.

``fleetctl tls init`` writes, into ``<[local] data_dir>/tls``, ``ca.crt``/``ca.key`` (the local CA)
and ``server.crt``/``server.key`` (for ``localhost`` and ``127.0.0.1``), with the ``openssl``
binary so no Python dependency is added. The launcher (:func:`launcher.servers.render_mosquitto_conf`)
then opens a TLS listener on ``[mqtt] tls_port``, on 127.0.0.1, next to the plain one. Clients use
TLS when ``[mqtt] tls_ca`` names the CA file (:func:`configure_client`).

This is a development CA: its key sits next to the certificates. For real ships, the broker gets
a certificate from the organization's CA and binds its TLS listener on a public address.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from fleet import paths
from fleet.config import Config
from fleet.errors import ConfigError, FleetError
from fleet.schema import SHIP_ID

if TYPE_CHECKING:
    import paho.mqtt.client as mqtt

CA_CERT = "ca.crt"
CA_KEY = "ca.key"
SERVER_CERT = "server.crt"
SERVER_KEY = "server.key"


def tls_dir(cfg: Config) -> Path:
    return paths.tls_dir(cfg.local.path)


def server_files(cfg: Config) -> tuple[Path, Path, Path] | None:
    """(CA, server certificate, server key) under the data directory, when all three exist."""
    d = tls_dir(cfg)
    files = (d / CA_CERT, d / SERVER_CERT, d / SERVER_KEY)
    return files if all(f.is_file() for f in files) else None


def configure_client(client: mqtt.Client, cfg: Config) -> None:
    """Turn on TLS for a paho client when ``[mqtt] tls_ca`` is set (with the optional client
    certificate). Connect it to ``cfg.mqtt.client_port``."""
    if not cfg.mqtt.tls_ca:
        return
    for key in ("tls_ca", "tls_cert", "tls_key"):
        value = getattr(cfg.mqtt, key)
        if value and not Path(value).is_file():
            raise ConfigError(f"mqtt.{key}: no such file {value!r}")
    client.tls_set(ca_certs=cfg.mqtt.tls_ca, certfile=cfg.mqtt.tls_cert or None,
                   keyfile=cfg.mqtt.tls_key or None)


def _openssl(*args: str) -> None:
    binary = shutil.which("openssl")
    if binary is None:
        raise FleetError("openssl not found: install it (Debian: apt-get install openssl)")
    proc = subprocess.run([binary, *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise FleetError(f"openssl {args[0]} failed: {proc.stderr.strip()[-500:]}")


def _ec_key_args() -> list[str]:
    return ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]


def _sign(directory: Path, name: str, subject: str, extensions: str, days: int) -> None:
    """Create ``name.key`` and ``name.crt`` signed by the CA in ``directory``."""
    key, crt = directory / f"{name}.key", directory / f"{name}.crt"
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        csr, ext = Path(tmp) / "req.csr", Path(tmp) / "ext.cnf"
        ext.write_text(extensions, encoding="utf-8")
        _openssl("req", "-new", *_ec_key_args(), "-keyout", str(key), "-out", str(csr),
                 "-subj", subject)
        key.chmod(0o600)
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(directory / CA_CERT),
                 "-CAkey", str(directory / CA_KEY), "-CAcreateserial",
                 "-CAserial", str(Path(tmp) / "ca.srl"), "-out", str(crt),
                 "-days", str(days), "-sha256", "-extfile", str(ext))


def init(directory: Path, *, hosts: list[str], days: int = 825, force: bool = False) -> list[Path]:
    """Create a CA and a server certificate for ``hosts`` in ``directory``; return the files.

    Refuses to overwrite an existing CA unless ``force`` (clients trust it already).
    """
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    ca_key, ca_crt = directory / CA_KEY, directory / CA_CERT
    if ca_crt.exists() and not force:
        raise FleetError(f"{ca_crt} exists already: clients may trust it. Use --force to "
                         "replace the CA and every certificate")
    _openssl("req", "-x509", "-new", *_ec_key_args(), "-keyout", str(ca_key), "-out",
             str(ca_crt), "-days", "3650", "-sha256", "-subj", "/CN=fleet-telemetry development CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    ca_key.chmod(0o600)
    sans = ",".join(f"IP:{h}" if _is_ip(h) else f"DNS:{h}" for h in hosts)
    _sign(directory, "server", f"/CN={hosts[0]}",
          f"subjectAltName={sans}\nbasicConstraints=CA:FALSE\n"
          "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n", days)
    return [ca_crt, ca_key, directory / SERVER_CERT, directory / SERVER_KEY]


def client_cert(directory: Path, name: str, days: int = 825) -> tuple[Path, Path]:
    """A client certificate (CN = ``name``) signed by the CA in ``directory``."""
    if not SHIP_ID.fullmatch(name):
        raise ConfigError(f"bad name {name!r}: 1-64 characters of [A-Za-z0-9_-]")
    if not (directory / CA_KEY).is_file():
        raise FleetError(f"no CA in {directory}: run `fleetctl tls init` first")
    _sign(directory, f"client-{name}", f"/CN={name}",
          "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
          "extendedKeyUsage=clientAuth\n", days)
    return directory / f"client-{name}.crt", directory / f"client-{name}.key"


def _is_ip(host: str) -> bool:
    import ipaddress  # noqa: PLC0415 - only here

    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
