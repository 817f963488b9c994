"""The bridge's MQTT side: subscribe, validate and normalize, hand to the batcher, acknowledge.

paho-mqtt 2.x, MQTT 5, persistent session (``clean_start=False`` with a session expiry) and manual
acknowledgements: a message is PUBACKed only after the write holding its data succeeded, so a
crash or a database outage loses nothing: the broker delivers unacknowledged messages again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from bridge import pahofast
from bridge.batcher import Batcher, Pending
from bridge.metrics import BridgeMetrics
from bridge.ownership import Ownership
from bridge.totals import InfluxRegisters, Registers, Settler, settle_with_retry
from fleet import topics
from fleet.config import Config
from fleet.errors import PayloadError
from fleet.mqttclient import connect_async, new_client
from fleet.normalize import TOTAL, Normalized, process_payload, window_sums
from fleet.schema import Part, lines
from fleet.store import InfluxStore
from fleet.timeutil import format_datetime
from fleet.totals import register_lines

log = logging.getLogger(__name__)


# The bridge's own QoS 1 publishes (energy and ack topics, one per ship and batch) that may await
# their PUBACKs at once. Those PUBACKs reach the bridge behind the broker's backlog of ship
# messages on the same connection (up to [bridge] max_inflight of them), so they take as long as
# reading that backlog does: with 1,000, under a sustained load, the notices of a whole run
# waited in paho's queue for the backlog to drain (measured: most came in the last 0.3 s of a
# 4 s run). paho does not honour the broker's Receive Maximum itself: the bridge does, on connect.
OWN_INFLIGHT = 10_000

# Makes the bridge's paho client; tests pass one returning a fake client.
ClientFactory = Callable[[Config], mqtt.Client]


def bridge_client(cfg: Config) -> mqtt.Client:
    """The bridge's client: its client id, manual acknowledgements, nothing dropped by paho."""
    pahofast.install()  # paho's Properties per received message, without rebuilding its tables
    client = new_client(cfg, cfg.bridge.client_id, username=cfg.mqtt.username,
                        password=cfg.mqtt.password, manual_ack=True)
    # paho's own queue of outgoing messages must not drop acks while reconnecting.
    client.max_queued_messages_set(0)
    client.max_inflight_messages_set(OWN_INFLIGHT)  # lowered to the broker's limit on connect
    pahofast.lean_inflight(client)
    pahofast.buffered_reads(client)
    return client


def subscription(cfg: Config) -> str:
    """Plain subscription for one bridge; ``$share/<group>/...`` when a group is configured.

    Mosquitto does not restore shared subscriptions after a broker restart (NOTES.md), so the
    bridge subscribes on every connect; with ``$share`` the messages published between a broker
    restart and that resubscription reach nobody, which is why one bridge uses a plain one.
    """
    return topics.readings_subscription(cfg.bridge.shared_group)


def _dumps(obj: dict[str, Any]) -> bytes:
    """Compact JSON, by orjson: about 8x faster than json.dumps, and one is sent per message (the
    ack topic) and per ship and batch (the energy topic). Floats here are finite (the readings
    are validated; orjson would write a NaN as null where json.dumps raised)."""
    return orjson.dumps(obj)


def _energy(ship: str, parts: list[Part], meter: str = "main") -> bytes:
    """The energy topic's JSON for one ship's meter's parts in a batch (one message per meter)."""
    return _dumps({"ship": ship, "meter": meter, "unit": "kWh",
                   "windows": [{"time": format_datetime(w), "kwh": kwh, "coverage": coverage}
                               for w, kwh, coverage in window_sums(parts)]})


class Bridge:
    """Wires paho callbacks to the batcher and publishes ack, rejected and energy topics."""

    def __init__(self, cfg: Config, batcher_factory: Any, metrics: BridgeMetrics,
                 client_factory: ClientFactory = bridge_client, *,
                 registers: Registers | None = None) -> None:
        self.cfg = cfg
        # Running totals read the stored readings back: a store of their own, beside the
        # batcher's (which only writes).
        self.settler = Settler(registers if registers is not None
                               else InfluxRegisters(InfluxStore(cfg.influxdb)))
        self.metrics = metrics
        self.generation = 0
        self.subscribed = threading.Event()
        self._default_interval = cfg.ingest.default_interval_seconds
        self._max_readings = cfg.ingest.max_readings_per_message
        self._max_bytes = cfg.ingest.max_payload_bytes
        self.ownership = Ownership(cfg)  # which ships this bridge handles (bridge/partition.py)
        self.batcher: Batcher = batcher_factory(self)
        self.client = client_factory(cfg)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.ownership.install(self.client)

    # -- connection ---------------------------------------------------------------------------

    def start(self) -> None:
        # A persistent session; Receive Maximum: the broker sends at most this many
        # unacknowledged messages (the in-flight bound).
        connect_async(self.client, self.cfg, clean_start=False,
                      session_expiry=self.cfg.bridge.session_expiry,
                      receive_maximum=self.cfg.bridge.max_inflight)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        self.settler.registers.close()

    def _on_connect(self, client: mqtt.Client, _userdata: Any, flags: mqtt.ConnectFlags,
                    reason: ReasonCode, props: Properties | None) -> None:
        if reason.is_failure:
            log.error("broker %s:%d refused the bridge (user %r): %s", self.cfg.mqtt.host,
                      self.cfg.mqtt.client_port, self.cfg.mqtt.username, reason)
            return
        self.generation += 1
        self.metrics.connected.set(1)
        # Sending more unacknowledged publishes than the broker's Receive Maximum is a protocol
        # error (MQTT 5, 3.3.4): EMQX, for one, disconnects the client. paho runs this callback
        # before it resends what was in flight (how much of it at once, it decided with the
        # limit of the connection before: the broker's own, after the first).
        server = getattr(props, "ReceiveMaximum", None) if props is not None else None
        pahofast.limit_inflight(client, min(OWN_INFLIGHT, int(server)) if server else OWN_INFLIGHT)
        log.info("connected to %s:%d (session present: %s); subscribing to %s",
                 self.cfg.mqtt.host, self.cfg.mqtt.client_port, flags.session_present,
                 subscription(self.cfg))
        # Subscribe on every connect, not only for a new session (shared subscriptions are not
        # restored by Mosquitto after a restart).
        client.subscribe([(topic, SubscribeOptions(qos=qos))
                          for topic, qos in self.ownership.topics(subscription(self.cfg))])

    def _on_subscribe(self, _client: mqtt.Client, _userdata: Any, _mid: int,
                      reasons: list[ReasonCode], _props: Properties | None) -> None:
        if reasons[0].is_failure:
            log.error("subscription to %s refused: %s (check the bridge account's ACL)",
                      subscription(self.cfg), [str(r) for r in reasons])
            return
        if any(r.is_failure for r in reasons[1:]):
            log.error("subscription to the handoff marker refused: %s; a change of [bridge] "
                      "workers cannot complete (the bridge account's ACL is older)",
                      [str(r) for r in reasons[1:]])
        self.subscribed.set()
        if self.cfg.bridge.ready_file:
            Path(self.cfg.bridge.ready_file).parent.mkdir(parents=True, exist_ok=True)
            Path(self.cfg.bridge.ready_file).write_text("subscribed\n", encoding="utf-8")

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any, _flags: mqtt.DisconnectFlags,
                       reason: ReasonCode, _props: Properties | None) -> None:
        self.metrics.connected.set(0)
        self.subscribed.clear()
        self.ownership.drop_skipped()
        log.warning("disconnected from broker (%s); paho reconnects", reason)

    # -- messages -----------------------------------------------------------------------------

    def _on_message(self, client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            if self.ownership.intercept(self, msg):
                return
            self._handle(msg)
        except Exception:
            # A bug must not kill paho's network thread nor leave the message unacknowledged
            # forever; it is logged, counted and reported to the ship.
            log.exception("internal error handling a message on %s", msg.topic)
            self.metrics.rejected.labels("internal_error").inc()
            topic = topics.parse_ship_topic(msg.topic)
            if topic is not None:
                self._publish(topic.ship, topics.REJECTED,
                              {"status": "rejected", "reason": "internal_error",
                               "detail": "the bridge failed on this payload"})
            client.ack(msg.mid, msg.qos)

    def _handle(self, msg: mqtt.MQTTMessage) -> None:
        topic = topics.parse_ship_topic(msg.topic)
        if topic is None:
            log.warning("ignoring message on unexpected topic %r", msg.topic)
            self.metrics.messages.labels("refused").inc()
            self.client.ack(msg.mid, msg.qos)
            return
        ship = topic.ship
        try:
            n = process_payload(ship, bytes(msg.payload), default_interval_s=self._default_interval,
                                max_readings=self._max_readings, max_bytes=self._max_bytes)
        except PayloadError as exc:
            self.metrics.messages.labels("refused").inc()
            self.metrics.rejected.labels(exc.reason).inc()
            body: dict[str, Any] = {"status": "rejected", "reason": exc.reason,
                                    "detail": exc.detail}
            if exc.batch_id is not None:
                body["batch_id"] = exc.batch_id
                self._publish(ship, topics.ACK, {"batch_id": exc.batch_id, "status": "rejected",
                                            "reason": exc.reason, "detail": exc.detail})
            self._publish(ship, topics.REJECTED, body)
            self.client.ack(msg.mid, msg.qos)
            return
        if n.rejected:
            self._report_readings(n)
        self.metrics.readings_accepted.inc(n.accepted)
        if n.kind == TOTAL and n.registers:
            self.metrics.inflight.inc()
            self.batcher.add(Pending(
                mid=msg.mid, qos=msg.qos, generation=self.generation, ship=ship,
                batch_id=n.batch_id, accepted=n.accepted, rejected=len(n.rejected),
                body=register_lines(ship, n.meter, n.registers), npoints=len(n.registers),
                parts=[], meter=n.meter, registers=n.registers,
            ))
            return
        if not n.parts:
            self.metrics.messages.labels("empty").inc()
            self._confirm(n.ship, n.batch_id, n.accepted, len(n.rejected))
            self.client.ack(msg.mid, msg.qos)
            return
        self.metrics.inflight.inc()
        self.batcher.add(Pending(
            mid=msg.mid, qos=msg.qos, generation=self.generation, ship=ship,
            batch_id=n.batch_id, accepted=n.accepted, rejected=len(n.rejected),
            body=lines(n.parts), npoints=len(n.parts), parts=n.parts, meter=n.meter,
        ))

    def _report_readings(self, n: Normalized) -> None:
        self.metrics.readings.labels("rejected").inc(len(n.rejected))
        for r in n.rejected:
            self.metrics.rejected.labels(r.reason).inc()
        body: dict[str, Any] = {
            "status": "partial" if n.accepted else "rejected",
            "reason": "bad_readings",
            "detail": f"{len(n.rejected)} of {n.accepted + len(n.rejected)} readings refused",
            "readings": [{"index": r.index, "reason": r.reason, "detail": r.detail}
                         for r in n.rejected[:1000]],
        }
        if n.batch_id is not None:
            body["batch_id"] = n.batch_id
        self._publish(n.ship, topics.REJECTED, body)

    def _publish(self, ship: str, kind: str, body: dict[str, Any], qos: int = 1) -> None:
        self.client.publish(topics.ship_topic(ship, kind), _dumps(body), qos=qos)

    def _confirm(self, ship: str, batch_id: str | None, readings: int, rejected: int) -> None:
        if batch_id is None:
            return
        body: dict[str, Any] = {"batch_id": batch_id, "status": "stored", "readings": readings,
                                "rejected": rejected}
        if not readings:  # every reading refused: nothing was stored
            body.update(status="rejected", reason="bad_readings",
                        detail=f"all {rejected} readings refused (see the rejected topic)")
        self._publish(ship, topics.ACK, body)

    # -- batcher sink (writer thread) ----------------------------------------------------------

    def _settle(self, items: Sequence[Pending]) -> bool:
        """Recompute the register spans of the batch's total readings (already stored) and
        publish their windows on the energy topic; False when abandoned at shutdown."""
        spans: dict[tuple[str, str], tuple[int, int]] = {}
        for item in items:
            if item.registers:
                key = (item.ship, item.meter)
                lo, hi = item.registers[0][0], item.registers[-1][0]
                if key in spans:
                    lo, hi = min(lo, spans[key][0]), max(hi, spans[key][1])
                spans[key] = (lo, hi)
        for (ship, meter), (lo, hi) in spans.items():

            def energy(parts: Sequence[Part], ship: str = ship, meter: str = meter) -> None:
                # Each chunk of recomputed parts as it is written: memory stays bounded over a
                # long span, and every window it touched is named before the ack (the query
                # cache relies on that). A round redone after a concurrent write publishes
                # again; the later message carries the verified values.
                if self.cfg.bridge.publish_energy:
                    self.client.publish(topics.energy(ship), _energy(ship, list(parts), meter),
                                        qos=1)
                # The coarse series follow the recomputed parts too (bridge/rollup.py); a crash
                # before this is redelivered, settled and so marked again.
                if self.batcher.coarse is not None:
                    self.batcher.coarse.after(self.batcher.coarse.before(parts))

            span = settle_with_retry(self.settler, ship, meter, lo, hi,
                                     abandoned=self.batcher.wait_abandoned,
                                     max_delay=self.cfg.bridge.retry_max_delay, on_parts=energy)
            if span is None:
                return False
        return True

    def stored(self, items: Sequence[Pending]) -> None:
        generation = self.generation
        # Running totals first: their spans are recomputed (and their windows published)
        # before any ack of the batch.
        if any(item.registers for item in items) and not self._settle(items):
            return  # stopping with the database down: left unacknowledged, redelivered
        self.metrics.inflight.dec(len(items))
        self.metrics.messages_stored.inc(len(items))
        if self.cfg.bridge.publish_energy:
            by_meter: dict[tuple[str, str], list[Part]] = {}
            for item in items:
                if item.parts:
                    by_meter.setdefault((item.ship, item.meter), []).extend(item.parts)
            # Before the acks, and QoS 1 (paho keeps it through a reconnect): whoever saw a
            # batch's ack finds the query service's cache told already (query_service/cache.py).
            # One message per meter, naming it.
            for (ship, meter), parts in by_meter.items():
                self.client.publish(topics.energy(ship), _energy(ship, parts, meter), qos=1)
        # The PUBACKs of the whole batch in one write (paho: one packet each, one wake-up of its
        # network thread and one send each). Only for the connection they came on: when it is
        # gone the broker delivers them again and that copy (stored again, idempotently) is the
        # one acknowledged. All before the batch's confirmations and handoff markers, as before.
        pahofast.ack_all(self.client, [(item.mid, item.qos) for item in items
                                       if item.generation == generation])
        for item in items:
            if not item.ship:  # the handoff marker (bridge/ownership.py)
                self.ownership.passed(item)
                continue
            self._confirm(item.ship, item.batch_id, item.accepted, item.rejected)

    def refused(self, item: Pending, detail: str) -> None:
        if item.generation == self.generation:
            self.client.ack(item.mid, item.qos)
        self.metrics.inflight.dec()
        self.metrics.messages.labels("refused").inc()
        self.metrics.rejected.labels("storage_refused").inc()
        body: dict[str, Any] = {"status": "rejected", "reason": "storage_refused",
                                "detail": detail}
        if item.batch_id is not None:
            body["batch_id"] = item.batch_id
            self._publish(item.ship, topics.ACK, {"batch_id": item.batch_id, "status": "rejected",
                                             "readings": 0, "rejected": item.accepted,
                                             "reason": "storage_refused", "detail": detail})
        self._publish(item.ship, topics.REJECTED, body)
