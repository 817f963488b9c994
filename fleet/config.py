"""Configuration: one frozen dataclass per section, loaded from TOML, overridden by environment.

The file is ``$FLEET_CONFIG`` (default ``config.toml``; missing means built-in defaults). Any key
can be overridden by ``FLEET_<SECTION>_<KEY>``, for example ``FLEET_MQTT_PORT=21883``.
``config.example.toml`` documents every key; keep it in step with the defaults here.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fleet.calendar import CalendarError, parse_tz
from fleet.errors import ConfigError
from fleet.schema import RULE_NAME_RE, SHIP_ID

_DURATION = re.compile(
    r"^P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<s>\d+(?:\.\d+)?)S)?)?$",
    re.IGNORECASE,
)


def parse_duration(value: object) -> float:
    """Seconds from an ISO 8601 duration (``PT15M``) or a number of seconds (``900``, ``"900"``).

    Raises ValueError for anything else, including zero and negative durations.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:  # an int beyond float range (a JSON payload can carry one)
            raise ValueError(f"duration out of range: {value!r}") from None
    elif isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            match = _DURATION.match(text)
            if not match or text.upper() in {"P", "PT"} or text.upper().endswith("T"):
                raise ValueError(f"not a duration: {value!r}") from None
            parts = {k: float(v) if v else 0.0 for k, v in match.groupdict().items()}
            seconds = parts["d"] * 86400 + parts["h"] * 3600 + parts["m"] * 60 + parts["s"]
    else:
        raise ValueError(f"not a duration: {value!r}")
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError(f"duration must be positive and finite: {value!r}")
    return seconds


@dataclass(frozen=True, slots=True)
class MqttConfig:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str = "fleet-bridge"
    password: str = ""
    keepalive: int = 30
    tls_ca: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    tls_port: int = 8883

    def __post_init__(self) -> None:
        _port("mqtt", "port", self.port)
        if self.keepalive < 5:
            raise ConfigError("mqtt.keepalive must be at least 5 seconds")
        if self.tls_port != 0:
            _port("mqtt", "tls_port", self.tls_port)
            if self.tls_port == self.port:
                raise ConfigError("mqtt.tls_port must differ from mqtt.port (or be 0: no TLS)")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError("mqtt.tls_cert and mqtt.tls_key go together: set both or neither")
        if self.tls_cert and not self.tls_ca:
            raise ConfigError("mqtt.tls_cert needs mqtt.tls_ca (a client certificate is only "
                              "sent over TLS)")

    @property
    def client_port(self) -> int:
        """The port clients connect to: the TLS listener when a CA is configured, else ``port``."""
        return self.tls_port if self.tls_ca and self.tls_port else self.port


@dataclass(frozen=True, slots=True)
class InfluxConfig:
    url: str = "http://127.0.0.1:8086"
    database: str = "fleet"
    retention_policy: str = "fleet_raw"
    retention: str = "INF"
    rollup_retention: str = "INF"
    create_database: bool = True
    username: str = ""
    password: str = ""
    timeout: float = 10.0

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ConfigError(f"influxdb.url must be an http(s) URL, got {self.url!r}")
        for key in ("database", "retention_policy"):
            if not re.fullmatch(r"[A-Za-z0-9_]{1,64}", getattr(self, key)):
                raise ConfigError(f"influxdb.{key} must be 1-64 characters of [A-Za-z0-9_]")
        for key in ("retention", "rollup_retention"):
            value = getattr(self, key)
            if value.upper() != "INF" and not re.fullmatch(r"\d+[hdw]", value):
                raise ConfigError(f"influxdb.{key} must be INF or a duration like 52w, 30d, 24h")
        if self.timeout <= 0:
            raise ConfigError("influxdb.timeout must be positive")

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (443 if parts.scheme == "https" else 80)


@dataclass(frozen=True, slots=True)
class IngestConfig:
    default_interval: str = "PT15M"
    max_readings_per_message: int = 10000
    max_payload_bytes: int = 1_048_576

    def __post_init__(self) -> None:
        try:
            parse_duration(self.default_interval)
        except ValueError as exc:
            raise ConfigError(f"ingest.default_interval: {exc}") from None
        if self.max_readings_per_message < 1:
            raise ConfigError("ingest.max_readings_per_message must be at least 1")
        if not 1024 <= self.max_payload_bytes <= 4_194_304:
            raise ConfigError("ingest.max_payload_bytes must be between 1024 and 4194304 "
                              "(the broker's message_size_limit)")

    @property
    def default_interval_seconds(self) -> float:
        return parse_duration(self.default_interval)


# Every bridge receives every message and skips the ships it does not own (bridge/partition.py),
# so the skipping cost grows with N: past about 4 a bigger N buys little on one broker.
AUTO_BRIDGE_WORKERS = 4
MAX_BRIDGE_WORKERS = 64


@dataclass(frozen=True, slots=True)
class BridgeConfig:
    client_id: str = "fleet-bridge-1"
    shared_group: str = ""
    session_expiry: int = 7 * 86400
    max_inflight: int = 10000
    batch_size: int = 5000
    flush_interval: float = 0.2
    retry_max_delay: float = 30.0
    metrics_port: int = 9108
    publish_energy: bool = True
    ready_file: str = ""
    workers: int = 0
    partition: str = ""
    handoff: str = ""

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", self.client_id):
            raise ConfigError("bridge.client_id must be 1-64 characters of [A-Za-z0-9_.-]")
        if self.shared_group and not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", self.shared_group):
            raise ConfigError("bridge.shared_group must be empty or 1-64 characters of [A-Za-z0-9_-]")
        if not 1 <= self.max_inflight <= 65535:
            raise ConfigError("bridge.max_inflight must be between 1 and 65535 (MQTT Receive Maximum)")
        if self.batch_size < 1:
            raise ConfigError("bridge.batch_size must be at least 1")
        if self.flush_interval <= 0:
            raise ConfigError("bridge.flush_interval must be positive")
        if self.retry_max_delay <= 0:
            raise ConfigError("bridge.retry_max_delay must be positive")
        if self.session_expiry < 0:
            raise ConfigError("bridge.session_expiry must be >= 0")
        if self.metrics_port != 0:
            _port("bridge", "metrics_port", self.metrics_port)
        if not 0 <= self.workers <= MAX_BRIDGE_WORKERS:
            raise ConfigError(f"bridge.workers must be between 0 (as many as the cores allow) "
                              f"and {MAX_BRIDGE_WORKERS}")
        if self.partition and not re.fullmatch(r"\d{1,3}/\d{1,3}", self.partition):
            raise ConfigError("bridge.partition must be empty or INDEX/WORKERS (set by the launcher)")
        if self.handoff and not re.fullmatch(r"\d{1,3}@[A-Za-z0-9_-]{1,64}", self.handoff):
            raise ConfigError("bridge.handoff must be empty or OLD_WORKERS@EPOCH (set by the launcher)")

    @property
    def worker_count(self) -> int:
        """``workers``, or for 0 one bridge per two cores, 1 to 4 (see config.example.toml)."""
        if self.workers:
            return self.workers
        return max(1, min((os.cpu_count() or 1) // 2, AUTO_BRIDGE_WORKERS))


@dataclass(frozen=True, slots=True)
class HttpConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    max_windows: int = 50000
    auth: str = "token"
    mqtt_username: str = "fleet-query"
    mqtt_password: str = ""
    cache_entries: int = 4096
    workers: int = 0
    calendar_watch: float = 1.0

    def __post_init__(self) -> None:
        _port("http", "port", self.port)
        if not 0.05 <= self.calendar_watch <= 60:
            raise ConfigError("http.calendar_watch must be between 0.05 and 60 seconds")
        if not 0 <= self.cache_entries <= 1_000_000:
            raise ConfigError("http.cache_entries must be between 0 (no cache) and 1000000")
        if not 0 <= self.workers <= 64:
            raise ConfigError("http.workers must be between 0 (one per core, up to 4) and 64")
        if self.max_windows < 1:
            raise ConfigError("http.max_windows must be at least 1")
        if self.auth not in {"token", "none"}:
            raise ConfigError(f"http.auth must be token or none, got {self.auth!r}")
        if self.mqtt_username and not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", self.mqtt_username):
            raise ConfigError("http.mqtt_username must be empty or 1-64 characters of [A-Za-z0-9_-]")


    @property
    def worker_count(self) -> int:
        """``workers``, or for 0 one gunicorn worker per core up to 4."""
        return self.workers or max(1, min(os.cpu_count() or 1, 4))


@dataclass(frozen=True, slots=True)
class QueryConfig:
    """Calendar queries: the fleet's own time zone, in which the daily coarse series are kept."""

    timezone: str = "UTC"

    def __post_init__(self) -> None:
        try:
            parse_tz(self.timezone)
        except CalendarError:
            raise ConfigError(f"query.timezone must be an IANA time zone such as Europe/Oslo, "
                              f"got {self.timezone!r}") from None


@dataclass(frozen=True, slots=True)
class LocalConfig:
    data_dir: str = ".fleet"
    mosquitto_bin: str = "mosquitto"
    influxd_bin: str = "influxd"
    influxdb_rpc_port: int = 0
    demo_ship: str = "demo-1"
    alertmanager_port: int = 9093

    @property
    def path(self) -> Path:
        return Path(self.data_dir).expanduser().resolve()


@dataclass(frozen=True, slots=True)
class ShipConfig:
    """The ship agent (``fleetctl ship run``): spool, batching, resending, backlog drain."""

    spool_dir: str = ""
    batch_size: int = 500
    max_inflight: int = 4
    ack_timeout: float = 30.0
    drain_rate: float = 1000.0
    spool_max_readings: int = 1_000_000
    session_expiry: int = 7 * 86400
    reconnect_max_delay: float = 30.0

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError("ship.batch_size must be at least 1")
        if not 1 <= self.max_inflight <= 1000:
            raise ConfigError("ship.max_inflight must be between 1 and 1000")
        if self.ack_timeout <= 0:
            raise ConfigError("ship.ack_timeout must be positive")
        if self.drain_rate <= 0:
            raise ConfigError("ship.drain_rate must be positive")
        if self.spool_max_readings < 1:
            raise ConfigError("ship.spool_max_readings must be at least 1")
        if self.session_expiry < 0:
            raise ConfigError("ship.session_expiry must be >= 0")
        if self.reconnect_max_delay < 1:
            raise ConfigError("ship.reconnect_max_delay must be at least 1 second")


@dataclass(frozen=True, slots=True)
class SimulateConfig:
    """The fleet simulator that ``make run`` starts (``fleetctl simulate`` takes flags too)."""

    ships: int = 3
    prefix: str = "sim"
    interval: str = "PT1M"
    speed: float = 1.0
    backfill: str = "PT6H"
    outage_rate: float = 0.0
    meters: int = 3

    def __post_init__(self) -> None:
        if not 1 <= self.meters <= 3:
            raise ConfigError("simulate.meters must be 1 (main), 2 (main, hotel) or 3 (main, "
                              "hotel and the shore-power register)")
        if not 0 <= self.ships <= 10000:
            raise ConfigError("simulate.ships must be between 0 and 10000")
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,50}", self.prefix):
            raise ConfigError("simulate.prefix must be 1-50 characters of [A-Za-z0-9_-]")
        try:
            parse_duration(self.interval)
        except ValueError as exc:
            raise ConfigError(f"simulate.interval: {exc}") from None
        if self.backfill:
            try:
                parse_duration(self.backfill)
            except ValueError as exc:
                raise ConfigError(f"simulate.backfill: {exc}") from None
        if not self.speed >= 1:
            raise ConfigError("simulate.speed must be at least 1")
        if not self.outage_rate >= 0:
            raise ConfigError("simulate.outage_rate must be >= 0")


_SHORT_DURATION = re.compile(r"^(?:(?P<w>\d+(?:\.\d+)?)w)?(?:(?P<d>\d+(?:\.\d+)?)d)?"
                             r"(?:(?P<h>\d+(?:\.\d+)?)h)?(?:(?P<m>\d+(?:\.\d+)?)m)?"
                             r"(?:(?P<s>\d+(?:\.\d+)?)s)?$")


def parse_span(value: object) -> float:
    """Seconds from ``30m``, ``1h30m``, ``6h``, ``2d``, ``45s`` (Prometheus style), an ISO 8601
    duration or a number of seconds. Raises ValueError otherwise (zero and negative included)."""
    if isinstance(value, str):
        match = _SHORT_DURATION.match(value.strip().lower())
        if match and value.strip():
            units = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
            seconds = sum(float(v) * units[k] for k, v in match.groupdict().items() if v)
            if not seconds > 0:
                raise ValueError(f"duration must be positive: {value!r}")
            return seconds
    return parse_duration(value)


RULE_KINDS: tuple[str, ...] = ("silent", "offline", "usage", "coverage", "anomaly")
SEVERITIES: tuple[str, ...] = ("info", "warning", "critical")
# Keys each kind takes besides name, kind, ships and severity; the required ones first.
_RULE_KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "silent": (("for",), ()),
    "offline": (("for",), ()),
    "usage": (("above",), ("every", "for")),
    "coverage": (("over", "below"), ("for",)),
    "anomaly": (("above",), ("every", "over", "for")),
}
_USAGE_EVERY = ("15m", "1h", "1d")


@dataclass(frozen=True, slots=True)
class AlertRule:
    """One ``[[alerts.rules]]`` table (CONTRACT section 8). Durations in seconds.

    ``for_seconds``: silent/offline: how long the condition lasts before the alert fires (the
    silence or the offline presence); the other kinds: how long it must hold (pending) before it
    fires, 0 by default. ``every``: usage and anomaly windows (15m, 1h, 1d). ``over``: coverage's
    trailing range, anomaly's recent range examined.
    """

    name: str
    kind: str
    for_seconds: float = 0.0
    ships: tuple[str, ...] = ()
    every: str = "1h"
    above: float = 0.0
    over_seconds: float = 0.0
    below: float = 0.0
    severity: str = "warning"

    def applies_to(self, ship: str) -> bool:
        return not self.ships or ship in self.ships


def parse_rule(index: int, raw: object) -> AlertRule:
    """Validate one rule table; errors name ``alerts.rules[<index>].<key>``."""
    where = f"alerts.rules[{index}]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a table ([[alerts.rules]])")
    name = raw.get("name")
    if not isinstance(name, str) or not RULE_NAME_RE.fullmatch(name):
        raise ConfigError(f"{where}.name must be 1 to 32 characters of [A-Za-z0-9_-], got {name!r}")
    where = f"alerts.rules[{index}] ({name})"
    kind = raw.get("kind")
    if kind not in _RULE_KEYS:
        raise ConfigError(f"{where}.kind must be one of {', '.join(RULE_KINDS)}, got {kind!r}")
    required, optional = _RULE_KEYS[kind]
    allowed = {"name", "kind", "ships", "severity", *required, *optional}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) for kind {kind}: {', '.join(unknown)}")
    for key in required:
        if key not in raw:
            raise ConfigError(f"{where}.{key} is required for kind {kind}")

    def span(key: str, default: str) -> float:
        try:
            return parse_span(raw.get(key, default))
        except ValueError as exc:
            raise ConfigError(f"{where}.{key}: {exc}") from None

    def number(key: str) -> float:
        value = raw.get(key, 0.0)
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            raise ConfigError(f"{where}.{key} must be a number, got {value!r}")
        return float(value)

    ships = raw.get("ships", [])
    if not isinstance(ships, list) or not all(isinstance(s, str) and SHIP_ID.fullmatch(s)
                                              for s in ships):
        raise ConfigError(f"{where}.ships must be a list of ship ids, got {ships!r}")
    severity = raw.get("severity", "warning")
    if severity not in SEVERITIES:
        raise ConfigError(f"{where}.severity must be one of {', '.join(SEVERITIES)}, "
                          f"got {severity!r}")
    every = raw.get("every", "1h" if kind == "usage" else "15m")
    if kind in {"usage", "anomaly"} and every not in _USAGE_EVERY:
        raise ConfigError(f"{where}.every must be one of {', '.join(_USAGE_EVERY)}, got {every!r}")
    rule = AlertRule(
        name=name, kind=kind, ships=tuple(ships), severity=severity, every=every,
        for_seconds=span("for", "0s") if "for" in raw else 0.0,
        above=number("above") if "above" in raw else 0.0,
        below=number("below") if "below" in raw else 0.0,
        over_seconds=span("over", "1h") if kind in {"coverage", "anomaly"} else 0.0,
    )
    if kind == "coverage":
        if not 0 < rule.below <= 1:
            raise ConfigError(f"{where}.below must be a share of the time, in (0, 1], got "
                              f"{rule.below}")
        if rule.over_seconds < 900 or rule.over_seconds % 900:
            raise ConfigError(f"{where}.over must be a whole number of 15-minute windows "
                              "(15m, 1h, 6h, ...)")
    if kind == "usage" and rule.above < 0:
        raise ConfigError(f"{where}.above must be >= 0 (kWh), got {rule.above}")
    if kind == "anomaly" and not 0.5 <= rule.above <= 1000:
        raise ConfigError(f"{where}.above must be a score between 0.5 and 1000, got {rule.above}")
    return rule


def parse_rules(raw: object, origin: str = "alerts.rules") -> tuple[AlertRule, ...]:
    if not isinstance(raw, list):
        raise ConfigError(f"{origin} must be a list of tables ([[alerts.rules]])")
    rules = tuple(parse_rule(i, r) for i, r in enumerate(raw))
    names = [r.name for r in rules]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"alerts.rules: rule names must be unique: {', '.join(dupes)}")
    return rules


@dataclass(frozen=True, slots=True)
class AlertsConfig:
    """The alert service (``python -m alerts``, CONTRACT section 8)."""

    alertmanager_url: str = ""
    evaluation_interval: str = "60s"
    resend_interval: str = "60s"
    state_path: str = ""
    metrics_port: int = 9119
    mqtt_username: str = "fleet-alerts"
    mqtt_password: str = ""
    query_url: str = ""
    api_token: str = ""
    startup_grace: str = "10s"
    rules: tuple[AlertRule, ...] = ()

    def __post_init__(self) -> None:
        if self.alertmanager_url:
            parts = urlsplit(self.alertmanager_url)
            if parts.scheme not in {"http", "https"} or not parts.hostname:
                raise ConfigError("alerts.alertmanager_url must be empty or an http(s) URL, got "
                                  f"{self.alertmanager_url!r}")
        if self.query_url:
            parts = urlsplit(self.query_url)
            if parts.scheme not in {"http", "https"} or not parts.hostname:
                raise ConfigError(f"alerts.query_url must be empty or an http(s) URL, got "
                                  f"{self.query_url!r}")
        for key in ("evaluation_interval", "resend_interval", "startup_grace"):
            try:
                parse_span(getattr(self, key))
            except ValueError as exc:
                raise ConfigError(f"alerts.{key}: {exc}") from None
        if self.metrics_port != 0:
            _port("alerts", "metrics_port", self.metrics_port)
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", self.mqtt_username):
            raise ConfigError("alerts.mqtt_username must be 1-64 characters of [A-Za-z0-9_-]")

    @property
    def evaluation_seconds(self) -> float:
        return parse_span(self.evaluation_interval)

    @property
    def resend_seconds(self) -> float:
        return parse_span(self.resend_interval)

    @property
    def startup_grace_seconds(self) -> float:
        return parse_span(self.startup_grace)


@dataclass(frozen=True, slots=True)
class Config:
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    influxdb: InfluxConfig = field(default_factory=InfluxConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    bridge: BridgeConfig = field(default_factory=BridgeConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    query: QueryConfig = field(default_factory=QueryConfig)
    local: LocalConfig = field(default_factory=LocalConfig)
    ship: ShipConfig = field(default_factory=ShipConfig)
    simulate: SimulateConfig = field(default_factory=SimulateConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)


def _port(section: str, key: str, value: int) -> None:
    if not 1 <= value <= 65535:
        raise ConfigError(f"{section}.{key} must be a TCP port (1-65535), got {value}")


def _coerce(section: str, key: str, kind: Any, value: object) -> object:
    """Convert a TOML or environment value to the field's type, or name the key in an error."""
    name = f"{section}.{key}"
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in {"1", "true", "yes", "on"}:
            return True
        if isinstance(value, str) and value.strip().lower() in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    if kind is int:
        if isinstance(value, bool):
            raise ConfigError(f"{name} must be an integer, got {value!r}")
        try:
            return int(value) if isinstance(value, int | str) else int(str(value), 10)
        except ValueError:
            raise ConfigError(f"{name} must be an integer, got {value!r}") from None
    if kind is float:
        if isinstance(value, bool):
            raise ConfigError(f"{name} must be a number, got {value!r}")
        try:
            return float(value) if isinstance(value, int | float | str) else float(str(value))
        except ValueError:
            raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if not isinstance(value, str):
        raise ConfigError(f"{name} must be a string, got {value!r}")
    return value


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        if isinstance(kind, types.UnionType):  # pragma: no cover - no optional keys today
            kind = next(a for a in typing.get_args(kind) if a is not type(None))
        out[f.name] = kind
    return out


def load_config(path: str | os.PathLike[str] | None = None,
                env: Mapping[str, str] | None = None) -> Config:
    """Read the TOML file (if any), apply ``FLEET_<SECTION>_<KEY>`` overrides, validate."""
    env = os.environ if env is None else env
    explicit = path is not None or "FLEET_CONFIG" in env
    file = Path(path if path is not None else env.get("FLEET_CONFIG", "config.toml"))
    raw: dict[str, Any] = {}
    if file.is_file():
        try:
            raw = tomllib.loads(file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: {exc}") from None
    elif explicit:
        raise ConfigError(f"configuration file {file} does not exist")

    sections: dict[str, Any] = {}
    for sec in dataclasses.fields(Config):
        cls = sec.type if isinstance(sec.type, type) else typing.get_type_hints(Config)[sec.name]
        given = raw.pop(sec.name, {})
        if not isinstance(given, dict):
            raise ConfigError(f"[{sec.name}] must be a table")
        kinds = _field_types(cls)
        rules: tuple[AlertRule, ...] | None = None
        if cls is AlertsConfig:  # [[alerts.rules]]: a list of tables, not a scalar key
            given = dict(given)
            kinds.pop("rules")
            if "FLEET_ALERTS_RULES" in env:  # a JSON array of rule objects
                try:
                    rules = parse_rules(json.loads(env["FLEET_ALERTS_RULES"]),
                                        "FLEET_ALERTS_RULES")
                except ValueError as exc:
                    raise ConfigError(f"FLEET_ALERTS_RULES is not JSON: {exc}") from None
                given.pop("rules", None)
            elif "rules" in given:
                rules = parse_rules(given.pop("rules"))
        unknown = set(given) - set(kinds)
        if unknown:
            raise ConfigError(f"unknown key(s) in [{sec.name}]: {', '.join(sorted(unknown))}")
        values = {k: _coerce(sec.name, k, kinds[k], v) for k, v in given.items()}
        for key, kind in kinds.items():
            env_key = f"FLEET_{sec.name.upper()}_{key.upper()}"
            if env_key in env:
                values[key] = _coerce(sec.name, key, kind, env[env_key])
        if rules is not None:
            values["rules"] = rules
        try:
            sections[sec.name] = cls(**values)
        except TypeError as exc:  # pragma: no cover - guarded by the unknown-key check
            raise ConfigError(str(exc)) from None
    if raw:
        raise ConfigError(f"unknown section(s): {', '.join(sorted(raw))}")
    return Config(**sections)
