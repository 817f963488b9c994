"""Splitting ships between bridges (bridge/partition.py) and the handoff when their number changes.

The handoff property is checked on a model of the broker: every bridge's session receives the
whole stream (plain subscriptions); each bridge processes its queue in order, with the partition
it runs at each point; a message is stored when some bridge that received it owned its ship then.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.partition import Partition, client_id, owner, ship_hash
from fleet.config import load_config
from fleet.errors import ConfigError
from launcher.bridges import bridge_services, record_workers, recorded_workers

SHIP = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=20)


@pytest.mark.parametrize(("ship", "value"), [("ship-1", 4129122380), ("demo-1", 2286349764),
                                             ("sim-1", 260429613), ("a", 3904355907)])
def test_the_hash_is_crc32_and_stable_across_processes(ship: str, value: int) -> None:
    assert ship_hash(ship) == value == zlib.crc32(ship.encode())


@given(SHIP, st.integers(1, 16))
def test_each_ship_has_exactly_one_owner(ship: str, workers: int) -> None:
    owners = [i for i in range(workers) if Partition(i, workers).owns(ship)]
    assert owners == [owner(ship, workers)]


def test_one_bridge_owns_everything_without_hashing() -> None:
    assert Partition().everything
    assert Partition(0, 1, handoff_from=1, epoch="e").everything
    assert not Partition(0, 2).everything
    assert not Partition(0, 1, handoff_from=2, epoch="e").everything


@given(SHIP, st.integers(1, 8), st.integers(1, 8))
def test_union_mode_owns_under_either_count_and_settles_to_the_new_one(
        ship: str, old: int, new: int) -> None:
    for i in range(max(old, new)):
        p = Partition(i, new, handoff_from=old, epoch="e")
        assert p.owns(ship) == (owner(ship, new) == i or owner(ship, old) == i)
        if i < new:
            assert p.settled() == Partition(i, new)
            assert p.settled().owns(ship) == (owner(ship, new) == i)


@pytest.mark.parametrize(("partition", "handoff", "expected"), [
    ("", "", Partition(0, 1)),
    ("1/3", "", Partition(1, 3)),
    ("2/3", "2@abc", Partition(2, 3, 2, "abc")),
    ("2/2", "3@x", Partition(2, 2, 3, "x")),  # a bridge being retired (3 -> 2)
])
def test_parse(partition: str, handoff: str, expected: Partition) -> None:
    assert Partition.parse(partition, handoff) == expected


@pytest.mark.parametrize(("partition", "handoff"), [
    ("3/3", ""), ("2/2", ""), ("0/0", ""), ("x/2", ""), ("1", ""), ("0/2", "2"), ("0/2", "0@e"),
    ("0/2", "2@"),
])
def test_parse_refuses(partition: str, handoff: str) -> None:
    with pytest.raises(ConfigError):
        Partition.parse(partition, handoff)


def test_client_ids_keep_the_first_bridges_session() -> None:
    assert client_id("fleet-bridge-1", 0) == "fleet-bridge-1"
    assert [client_id("b", i) for i in (1, 2)] == ["b.w1", "b.w2"]


# -- the handoff, on a model of the broker ---------------------------------------------------------

def stored(ships: list[str], old: int, new: int, marker: int, stops: list[int],
           joins: list[int], *, union: bool = True) -> list[bool]:
    """Whether each message of the stream (ship per position) is stored by some bridge.

    Bridge i < old ran the old partition up to queue position ``stops[i]`` (where it was
    stopped), then the handoff partition up to the marker, then the settled one. A bridge
    i >= old exists from ``joins[i - old]`` (its subscription) on. ``union=False`` models a
    restart straight into the new partition, without the handoff.
    """
    out = []
    for t, ship in enumerate(ships):
        ok = False
        for i in range(max(old, new)):
            if i < old and t < stops[i]:
                part = Partition(i, old)
            elif i >= old and t < joins[i - old]:
                continue  # its session did not exist yet: the broker queued nothing for it
            elif t < marker and union:
                part = Partition(i, new, handoff_from=old, epoch="e")
            elif i >= new:
                continue  # retired after the marker
            else:
                part = Partition(i, new)
            ok = ok or part.owns(ship)
        out.append(ok)
    return out


@settings(max_examples=300)
@given(st.data(), st.integers(1, 5), st.integers(1, 5),
       st.lists(SHIP, min_size=1, max_size=40))
def test_the_handoff_stores_every_message_whatever_each_bridge_lags(
        data: st.DataObject, old: int, new: int, ships: list[str]) -> None:
    n = len(ships)
    # The launcher publishes the marker after every bridge runs the handoff partition and is
    # subscribed: each old bridge stopped at some point before the marker (how far it had got
    # is its lag), each new one subscribed before it.
    marker = data.draw(st.integers(0, n))
    stops = [data.draw(st.integers(0, marker)) for _ in range(old)]
    joins = [data.draw(st.integers(0, marker)) for _ in range(max(0, new - old))]
    assert all(stored(ships, old, new, marker, stops, joins))


def test_without_the_handoff_a_change_loses_messages() -> None:
    """The model is not vacuous: restarting straight into 3 bridges loses what bridge 2 was
    not subscribed for and what a lagging old owner skips."""
    ships = [f"s{k}" for k in range(30)]
    assert not all(stored(ships, 2, 3, marker=20, stops=[5, 5], joins=[10], union=False))


# -- the launcher's side -------------------------------------------------------------------------------

def test_bridge_services_partitions_and_handoff(tmp_path: Path) -> None:
    env = {"FLEET_CONFIG": str(tmp_path / "none.toml"), "FLEET_LOCAL_DATA_DIR": str(tmp_path),
           "FLEET_BRIDGE_METRICS_PORT": "0", "FLEET_BRIDGE_CLIENT_ID": "br"}
    (tmp_path / "none.toml").write_text("")
    cfg = load_config(env=env)
    steady = bridge_services(cfg, env, 2)
    assert [s.env["FLEET_BRIDGE_PARTITION"] for s in steady if s.env] == ["0/2", "1/2"]
    assert [s.env["FLEET_BRIDGE_CLIENT_ID"] for s in steady if s.env] == ["br", "br.w1"]
    assert all("FLEET_BRIDGE_HANDOFF" not in (s.env or {}) for s in steady)
    shrink = bridge_services(cfg, env, 2, handoff_from=3, epoch="e1")
    assert [(s.env or {})["FLEET_BRIDGE_PARTITION"] for s in shrink] == ["0/2", "1/2", "2/2"]
    assert {(s.env or {})["FLEET_BRIDGE_HANDOFF"] for s in shrink} == {"3@e1"}
    assert len({(s.env or {})["FLEET_BRIDGE_READY_FILE"] for s in shrink}) == 3
    assert recorded_workers(cfg) is None
    record_workers(cfg, 3)
    assert recorded_workers(cfg) == 3


def test_workers_default_follows_the_cores(monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    assert load_config(env={}).bridge.worker_count == 4
    monkeypatch.setattr("os.cpu_count", lambda: 4)  # the broker and the database take the rest
    assert load_config(env={}).bridge.worker_count == 2
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert load_config(env={}).bridge.worker_count == 1
    monkeypatch.setattr("os.cpu_count", lambda: 1)
    assert load_config(env={}).bridge.worker_count == 1
    assert load_config(env={"FLEET_BRIDGE_WORKERS": "6"}).bridge.worker_count == 6
    with pytest.raises(ConfigError):
        load_config(env={"FLEET_BRIDGE_WORKERS": "-1"})
