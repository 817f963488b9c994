"""Start ``[bridge] workers`` bridge processes, handing ships over safely when the number changes.

``make run`` calls :func:`start_bridges`; in docker-compose the bridge container runs
``python -m launcher.bridges``, which does the same and supervises them. The number last run is
kept in ``<data_dir>/run/<client_id>.workers.json``. When it differs from ``[bridge] workers`` (or this is the
first run, after releases that ran one bridge), the bridges go through the handoff of
:mod:`bridge.partition`: all start in union mode, the marker is published once every one of them
is subscribed, each drops its old ships once it has stored everything queued before the marker,
and the bridges beyond the new number are then stopped and their sessions discarded.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from bridge.ownership import handoff_file
from bridge.partition import client_id
from fleet import paths
from fleet.config import Config, load_config
from fleet.errors import FleetError
from fleet.mqttclient import connect, connect_async, new_client
from fleet.service import setup_logging, stop_on_signals
from fleet.topics import BRIDGE_HANDOFF as HANDOFF_TOPIC
from launcher.servers import Service, free_port, port_in_use, python_service

log = logging.getLogger(__name__)


def state_path(cfg: Config) -> Path:
    return paths.run_dir(cfg.local.path) / f"{cfg.bridge.client_id}.workers.json"


def recorded_workers(cfg: Config) -> int | None:
    """How many partitioned bridges ran last (None: never recorded)."""
    try:
        return int(json.loads(state_path(cfg).read_text(encoding="utf-8"))["workers"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def record_workers(cfg: Config, workers: int) -> None:
    path = state_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"workers": workers}) + "\n", encoding="utf-8")
    tmp.replace(path)


def _metrics_port(base: int, index: int) -> int:
    if not base or not index:
        return base
    port = base + index
    return port if not port_in_use(port) else free_port()


def bridge_services(cfg: Config, env: Mapping[str, str], workers: int, *, handoff_from: int = 0,
                    epoch: str = "") -> list[Service]:
    """The bridge processes for ``workers`` (``max(workers, handoff_from)`` during a handoff),
    each with its client id, partition, ready file and metrics port."""
    base_port = int(env.get("FLEET_BRIDGE_METRICS_PORT", cfg.bridge.metrics_port))
    services = []
    for index in range(max(workers, handoff_from)):
        cid = client_id(cfg.bridge.client_id, index)
        ready = paths.ready_file(cfg.local.path, cid)
        child = {k: v for k, v in env.items() if k != "FLEET_BRIDGE_HANDOFF"}
        child.update({
            "FLEET_BRIDGE_CLIENT_ID": cid,
            "FLEET_BRIDGE_READY_FILE": str(ready),
            "FLEET_BRIDGE_PARTITION": "" if cfg.bridge.shared_group else f"{index}/{workers}",
            "FLEET_BRIDGE_METRICS_PORT": str(_metrics_port(base_port, index)),
        })
        if handoff_from:
            child["FLEET_BRIDGE_HANDOFF"] = f"{handoff_from}@{epoch}"

        def clear(ready: Path = ready) -> None:
            ready.unlink(missing_ok=True)

        name = "bridge" if index == 0 else f"bridge-{index}"
        services.append(python_service(name, "bridge", cfg, child, ready.exists, clear))
    return services


def _client(cfg: Config, cid: str) -> mqtt.Client:
    return new_client(cfg, cid, username=cfg.mqtt.username, password=cfg.mqtt.password)


def publish_marker(cfg: Config, epoch: str, workers: int, timeout: float = 30.0) -> None:
    """Publish the handoff marker (QoS 1) as the bridge account; raise unless the broker took it."""
    client = _client(cfg, f"fleet-handoff-{uuid.uuid4().hex[:8]}")
    acked = threading.Event()
    reasons: list[ReasonCode] = []

    def on_publish(_c: mqtt.Client, _u: object, _mid: int, reason: ReasonCode,
                   _p: object) -> None:
        reasons.append(reason)
        acked.set()

    client.on_publish = on_publish
    connect(client, cfg)
    try:
        client.publish(HANDOFF_TOPIC, json.dumps({"epoch": epoch, "workers": workers}), qos=1)
        if not acked.wait(timeout):
            raise FleetError("the broker did not acknowledge the bridge handoff marker")
        if reasons and reasons[0].is_failure:
            raise FleetError(f"the broker refused the bridge handoff marker ({reasons[0]}): "
                             "the bridge account's ACL needs fleet/bridges/handoff")
    finally:
        client.disconnect()
        client.loop_stop()


def forget_session(cfg: Config, cid: str) -> None:
    """Discard a retired bridge's persistent session, so the broker stops queueing for it."""
    client = _client(cfg, cid)
    connect_async(client, cfg, clean_start=True, session_expiry=0)
    deadline = time.monotonic() + 10
    while not client.is_connected() and time.monotonic() < deadline:
        time.sleep(0.05)
    client.disconnect()
    client.loop_stop()


def _passed(svc: Service, epoch: str) -> bool:
    f = handoff_file(svc.env.get("FLEET_BRIDGE_READY_FILE", "") if svc.env else "")
    try:
        return f is not None and f.read_text(encoding="utf-8").strip() == epoch
    except OSError:
        return False


def start_bridges(cfg: Config, env: Mapping[str, str], stop: threading.Event | None = None,
                  *, die_with_parent: bool = True, timeout: float = 60.0) -> list[Service]:
    """Start the bridges (ready = subscribed) and return those to supervise.

    ``env`` is what the bridges get (``FLEET_MQTT_PASSWORD`` included); the same variables
    configure the marker's connection. Bridges of an earlier run must be stopped first (two
    processes with one client id take the session from each other); their sessions keep
    queueing meanwhile, so nothing published in between is lost.
    """
    stop = stop or threading.Event()
    bcfg = load_config(env=env)
    workers = bcfg.bridge.worker_count
    old = recorded_workers(bcfg)
    old = 1 if old is None else old  # releases before [bridge] workers ran one bridge
    handoff = 0 if bcfg.bridge.shared_group or old == workers else old
    epoch = uuid.uuid4().hex[:12] if handoff else ""
    services = bridge_services(bcfg, env, workers, handoff_from=handoff, epoch=epoch)
    try:
        for svc in services:
            svc.die_with_parent = die_with_parent
            log.info("starting %s (%s)", svc.name, _partition_text(svc))
            svc.start(timeout=timeout)
        if handoff:
            log.info("[bridge] workers %d -> %d: handing ships over (marker %s)", old, workers,
                     epoch)
            publish_marker(bcfg, epoch, workers)
            _wait_passed(services, epoch, stop)
            if stop.is_set():
                return services
        record_workers(bcfg, workers)
        for svc in services[workers:]:
            svc.stop(timeout=30)
            assert svc.env is not None
            forget_session(bcfg, svc.env["FLEET_BRIDGE_CLIENT_ID"])
            log.info("%s retired (its ships handed over, its session discarded)", svc.name)
        kept = services[:workers]
        for svc in kept:  # a restart from now on runs the settled partition
            if svc.env is not None:
                svc.env = {k: v for k, v in svc.env.items() if k != "FLEET_BRIDGE_HANDOFF"}
    except BaseException:
        for svc in services:
            svc.stop(timeout=15)
        raise
    return kept


def _partition_text(svc: Service) -> str:
    env = svc.env or {}
    part = env.get("FLEET_BRIDGE_PARTITION") or "shared group"
    hand = env.get("FLEET_BRIDGE_HANDOFF")
    return f"client id {env.get('FLEET_BRIDGE_CLIENT_ID')}, partition {part}" + (
        f", handoff from {hand}" if hand else "")


def _wait_passed(services: list[Service], epoch: str, stop: threading.Event) -> None:
    """Until every bridge passed the marker; a bridge that dies meanwhile is started again."""
    last_log = time.monotonic()
    while not stop.is_set():
        waiting = [s for s in services if not _passed(s, epoch)]
        if not waiting:
            return
        for svc in waiting:
            if not svc.running():
                log.warning("%s exited during the handoff; starting it again", svc.name)
                svc.stop(timeout=1)
                svc.launch()
        if time.monotonic() - last_log > 10:
            log.info("handoff %s: waiting for %s to store what was queued before the marker",
                     epoch, ", ".join(s.name for s in waiting))
            last_log = time.monotonic()
        stop.wait(0.1)


def main() -> int:
    """``python -m launcher.bridges``: the bridges of one container (docker-compose), supervised."""
    from launcher.run import supervise  # noqa: PLC0415 - the launcher's supervisor

    setup_logging()
    stop = stop_on_signals(log, "stopping the bridges")
    env = dict(os.environ)
    try:
        cfg = load_config(env=env)
        services = start_bridges(cfg, env, stop, die_with_parent=True, timeout=120)
    except FleetError as exc:
        log.error("%s", exc)
        return 1
    try:
        if cfg.bridge.ready_file:  # the container's health check: every bridge subscribed
            Path(cfg.bridge.ready_file).write_text("subscribed\n", encoding="utf-8")
        supervise(services, stop)
    finally:
        for svc in reversed(services):
            svc.stop(timeout=15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
