"""The data directory's layout (``[local] data_dir``), named once.

::

    <data_dir>/
      mosquitto/            the broker: accounts.json, passwd, acl, mosquitto.conf, data/
        secrets/<name>      service accounts' passwords (0600), read by the services
      influxdb/             the launcher's InfluxDB (config, meta, data, wal)
      tls/                  the development CA and certificates (fleetctl tls init)
      tokens.json           API tokens, hashed; dev.token: make run's development token
      ships/<id>.spool      ship agents' spools (unless [ship] spool_dir is set)
      simulate/             the fleet simulator: credentials.json, spools/<id>.spool
      demo-ship.password    make run's demo ship
      logs/<name>.log       the launcher's processes
      run/<name>.ready      readiness files (the bridge touches its own once subscribed)
"""

from __future__ import annotations

from pathlib import Path

SECRETS = "secrets"  # under the broker directory


def broker_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "mosquitto"


def secrets_dir(data_dir: Path) -> Path:
    return broker_dir(data_dir) / SECRETS


def secret_file(data_dir: Path, account: str) -> Path:
    """Where a service account's password is kept."""
    return secrets_dir(data_dir) / account


def read_secret(data_dir: Path, account: str) -> str:
    """A service account's password from its secret file; "" when missing or unreadable."""
    try:
        return secret_file(data_dir, account).read_text(encoding="utf-8").strip()
    except OSError:
        return ""


def influxdb_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "influxdb"


def tls_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "tls"


def tokens_file(data_dir: Path) -> Path:
    return Path(data_dir) / "tokens.json"


def dev_token_file(data_dir: Path) -> Path:
    return Path(data_dir) / "dev.token"


def ship_spools_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "ships"


def simulate_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "simulate"


def simulate_spools_dir(data_dir: Path) -> Path:
    return simulate_dir(data_dir) / "spools"


def simulate_credentials(data_dir: Path) -> Path:
    return simulate_dir(data_dir) / "credentials.json"


def spool_file(directory: Path, ship: str) -> Path:
    return Path(directory) / f"{ship}.spool"


def demo_ship_password(data_dir: Path) -> Path:
    return Path(data_dir) / "demo-ship.password"


def logs_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "logs"


def log_file(data_dir: Path, name: str) -> Path:
    return logs_dir(data_dir) / f"{name}.log"


def run_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "run"


def ready_file(data_dir: Path, name: str) -> Path:
    return run_dir(data_dir) / f"{name}.ready"
