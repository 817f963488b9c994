from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from fleet.config import Config, load_config, parse_duration
from fleet.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no config.toml here
    assert load_config(env={}) == Config()


def test_env_overrides_file(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text('[mqtt]\nport = 1999\n[http]\nport = 8181\n')
    cfg = load_config(f, env={"FLEET_MQTT_PORT": "21883",
                              "FLEET_INFLUXDB_URL": "http://127.0.0.1:28086",
                              "FLEET_BRIDGE_PUBLISH_ENERGY": "false"})
    assert cfg.mqtt.port == 21883
    assert cfg.http.port == 8181
    assert cfg.influxdb.port == 28086
    assert cfg.bridge.publish_energy is False


@pytest.mark.parametrize(("text", "env", "message"), [
    ("[mqtt]\nport = 0\n", {}, "mqtt.port"),
    ("[mqtt]\nprot = 1\n", {}, "unknown key(s) in [mqtt]: prot"),
    ("[nope]\n", {}, "unknown section(s): nope"),
    ("", {"FLEET_MQTT_PORT": "abc"}, "mqtt.port must be an integer"),
    ("", {"FLEET_BRIDGE_PUBLISH_ENERGY": "maybe"}, "bridge.publish_energy"),
    ("[influxdb]\nurl = \"ftp://x\"\n", {}, "influxdb.url"),
    ("[ingest]\ndefault_interval = \"soon\"\n", {}, "ingest.default_interval"),
    ("[bridge]\nmax_inflight = 70000\n", {}, "bridge.max_inflight"),
    ("[mqtt\n", {}, "c.toml"),
])
def test_errors_name_the_key(tmp_path: Path, text: str, env: dict[str, str],
                             message: str) -> None:
    f = tmp_path / "c.toml"
    f.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(f, env=env)
    assert message in str(info.value)


def test_explicit_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(env={"FLEET_CONFIG": str(tmp_path / "missing.toml")})


def test_example_documents_every_key_with_its_default() -> None:
    """config.example.toml lists each key, commented, with the built-in default."""
    text = (ROOT / "config.example.toml").read_text()
    doc = tomllib.loads("\n".join(_uncomment(text)))
    defaults = Config()
    for section, keys in doc.items():
        for key, value in keys.items():
            assert getattr(getattr(defaults, section), key) == value, f"{section}.{key}"
    for section in ("mqtt", "influxdb", "ingest", "bridge", "http", "query", "local", "ship",
                    "simulate", "alerts"):
        fields = set(getattr(defaults, section).__dataclass_fields__) - {"rules"}
        assert fields == set(doc[section]), section


def _uncomment(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        if line.startswith("["):
            out.append(line)
        elif line.startswith("# ") and "=" in line:
            out.append(line[2:])
    return out


@pytest.mark.parametrize(("value", "seconds"), [
    ("PT15M", 900), ("PT5M", 300), ("PT1H", 3600), ("P1D", 86400), (300, 300), ("300", 300),
    ("PT1H30M", 5400), ("PT0.5S", 0.5),
])
def test_parse_duration(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["", "P", "PT", "0", -5, "PT0M", True, None, "5 minutes"])
def test_parse_duration_refuses(value: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)


def test_default_metrics_ports_leave_room_for_every_bridge_worker() -> None:
    # Bridge i of [bridge] workers listens on metrics_port + i: a default port of another service
    # inside that range is taken by a bridge first, and that service then never starts.
    from fleet.config import AUTO_BRIDGE_WORKERS, Config

    cfg = Config()
    bridges = range(cfg.bridge.metrics_port, cfg.bridge.metrics_port + max(AUTO_BRIDGE_WORKERS, 8))
    assert cfg.alerts.metrics_port not in bridges
    assert cfg.http.port not in bridges
