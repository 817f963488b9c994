"""The ship agent: readings go to the spool first, then to the broker, and leave the spool only
when the bridge says they are stored.

One thread owns the spool and calls :meth:`Agent.step` (``ship run`` has one agent per process,
the fleet simulator steps many in one thread); paho's network thread only queues events (connected,
disconnected, ack) for it. Each step:

1. applies the events: an ack deletes its batch from the spool; a (re)connect sends every
   unconfirmed batch again (the broker may have lost it: Mosquitto keeps its queue in memory
   between snapshots);
2. moves the source's new readings into the spool (one transaction, with the source's cursor);
3. when connected: sends the readings just measured at once (live), then drains the backlog
   oldest first, at most ``[ship] drain_rate`` readings per second and ``max_inflight`` batches
   awaiting their ack; resends a batch whose ack has not come within ``ack_timeout`` (doubling per
   attempt, up to 8 times).

MQTT: version 5, client id = ship id, persistent session (``clean_start=False`` and a session
expiry) so acks published while the link is down are kept for the ship; the ack topic is
subscribed on every connect. Presence: ``{"status": "online", "time": ...}`` retained on
``fleet/ships/<id>/status`` at each connect, ``{"status": "offline"}`` as the retained last will.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from fleet import topics
from fleet.config import Config
from fleet.mqttclient import connect_async, new_client
from fleet.presence import status_payload, will_payload
from fleet.timeutil import format_datetime
from ship.source import Source
from ship.spool import Batch, Reading, Spool, SpoolDiskFullError

log = logging.getLogger(__name__)

# Readings held in memory while the disk is full, retried every few seconds; past this many the
# oldest are lost (counted and logged).
MAX_PENDING = 100_000
DISK_FULL_RETRY_S = 5.0
HEARTBEAT_S = 10.0
MAX_BACKOFF_FACTOR = 8


def _now_iso() -> str:
    return format_datetime(int(time.time()) * 1_000_000)


def batch_payload(batch: Batch) -> str:
    """A readings message (CONTRACT section 3) with the batch's declared interval, id, meter and
    kind."""
    first = batch.readings[0]
    interval: float | int = first.interval_s
    if float(interval).is_integer():
        interval = int(interval)
    doc: dict[str, Any] = {"units": first.units, "interval": interval, "batch_id": batch.id}
    # Only when not the defaults, so a ship with one interval meter sends what it always sent.
    if first.meter != "main":
        doc["meter"] = first.meter
    if first.kind != "interval":
        doc["kind"] = first.kind
    doc["data"] = [{"datetime": format_datetime(r.start_us), "value": r.value}
                   for r in batch.readings]
    return json.dumps(doc, separators=(",", ":"), allow_nan=False)


@dataclass(slots=True)
class AgentCounters:
    """Since this process started (the spool keeps the totals that must survive it)."""

    measured: int = 0
    sent: int = 0
    resent: int = 0
    confirmed: int = 0
    lost_disk_full: int = 0


class Agent:
    """One ship: a source, a spool and an MQTT client (see the module docstring)."""

    def __init__(self, cfg: Config, ship: str, password: str, spool: Spool, source: Source, *,
                 live: bool = True, client_id: str | None = None,
                 presence: bool = True) -> None:
        """``client_id`` defaults to the ship id; ``presence=False`` (``fleetctl import``, which
        publishes as the ship beside its running agent) leaves the ship's status alone: no
        online message, no last will."""
        self.cfg = cfg
        self.ship = ship
        self.spool = spool
        self.source = source
        self.live = live
        self.counters = AgentCounters()
        self.readings_topic = topics.readings(ship)
        self.ack_topic = topics.ack(ship)
        self.status_topic = topics.status(ship)
        limit = min(cfg.ship.batch_size, cfg.ingest.max_readings_per_message,
                    max(1, cfg.ingest.max_payload_bytes // 128))  # ~80 bytes a reading, margin
        self.batch_limit = limit
        self.connected = False
        self.link_wanted = True
        self._events: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self.wake = threading.Event()
        self._tokens = float(limit)
        self._last_refill = time.monotonic()
        self._pending: list[Reading] = []
        self._disk_full_since = 0.0
        self._disk_full_logged = 0.0
        self._last_heartbeat = 0.0
        self._refused: str | None = None
        # The broker's last refusal of this ship's CONNECT, until one is accepted: a running
        # agent keeps retrying (its account may be added later), a one-shot command may stop.
        self.refusal: ReasonCode | None = None
        self._started = False

        self.presence = presence
        self.client = new_client(cfg, client_id or ship, username=ship, password=password,
                                 reconnect_max_delay=int(cfg.ship.reconnect_max_delay))
        if presence:
            self.client.will_set(self.status_topic, will_payload(), qos=1, retain=True)
        self.client.max_queued_messages_set(0)
        self.client.max_inflight_messages_set(max(20, 4 * cfg.ship.max_inflight))
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    # -- paho's thread: queue events, nothing else ------------------------------------------------

    def _on_connect(self, client: mqtt.Client, _u: Any, flags: mqtt.ConnectFlags,
                    reason: ReasonCode, _p: Properties | None) -> None:
        if reason.is_failure:
            self._events.put(("refused", reason))
        else:
            # Subscribe on every connect: a broker that lost its state (a crash between
            # snapshots) has lost the subscription too. Before any publish of this connection,
            # so no ack can be missed.
            client.subscribe(self.ack_topic, qos=1)
            if self.presence:
                client.publish(self.status_topic, status_payload("online"), qos=1, retain=True)
            self._events.put(("connected", flags.session_present))
        self.wake.set()

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: mqtt.DisconnectFlags,
                       reason: ReasonCode, _p: Properties | None) -> None:
        self._events.put(("disconnected", str(reason)))
        self.wake.set()

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == self.ack_topic:
            self._events.put(("ack", bytes(msg.payload)))
            self.wake.set()

    # -- connection -----------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background; paho reconnects with backoff."""
        self._started = True
        self._connect()

    def _connect(self) -> None:
        connect_async(self.client, self.cfg, clean_start=False,
                      session_expiry=self.cfg.ship.session_expiry)

    def link_down(self) -> None:
        """Drop the link as a failing radio would: the broker publishes the will (offline)."""
        if not self.link_wanted:
            return
        self.link_wanted = False
        will = ReasonCode(PacketTypes.DISCONNECT, "Disconnect with will message")
        self.client.disconnect(reasoncode=will)
        self.client.loop_stop()
        self._set_connected(False, "link down (simulated outage)")

    def link_up(self) -> None:
        if self.link_wanted:
            return
        self.link_wanted = True
        self._connect()

    def close(self, *, goodbye: bool = True) -> None:
        """Publish ``offline`` (retained) and disconnect; the spool keeps what is unconfirmed."""
        if goodbye and self.connected and self.presence:
            info = self.client.publish(self.status_topic,
                                       status_payload("offline", reason="agent stopped"),
                                       qos=1, retain=True)
            if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
                with contextlib.suppress(RuntimeError, ValueError):
                    info.wait_for_publish(timeout=2)
        self.client.disconnect()
        self.client.loop_stop()
        self._set_connected(False, "agent stopped")

    def _set_connected(self, up: bool, detail: str) -> None:
        self.connected = up
        # Status only: a disk-full error is reported where readings are written.
        with contextlib.suppress(SpoolDiskFullError):
            self.spool.set_meta(state="connected" if up else f"disconnected ({detail})",
                                state_since=_now_iso(), pid=str(os.getpid()),
                                heartbeat=_now_iso())

    # -- the step ---------------------------------------------------------------------------------

    def step(self, now: float | None = None) -> None:
        """Apply events, spool new readings, send what is due. Never blocks for long."""
        now = time.time() if now is None else now
        self._apply_events(now)
        first_new = self._spool_new(now)
        if self.connected:
            self._send(now, first_new)
        if now - self._last_heartbeat >= HEARTBEAT_S:
            self._last_heartbeat = now
            with contextlib.suppress(SpoolDiskFullError):
                self.spool.set_meta(heartbeat=_now_iso(), pid=str(os.getpid()))

    @property
    def done(self) -> bool:
        """A finite source is exhausted and everything it gave is confirmed."""
        return self.source.exhausted and self.spool.depth == 0 and not self._pending

    def _apply_events(self, now: float) -> None:
        while True:
            try:
                kind, value = self._events.get_nowait()
            except queue.Empty:
                return
            if kind == "connected":
                self._refused = None
                self.refusal = None
                self._set_connected(True, "")
                outstanding = self.spool.outstanding()
                log.info("%s connected to %s:%d (session present: %s); %d readings in the spool,"
                         " resending %d unconfirmed batches", self.ship, self.cfg.mqtt.host,
                         self.cfg.mqtt.client_port, value, self.spool.depth, len(outstanding))
                for batch_id, _sent, _attempts in outstanding:
                    self._resend(batch_id, now)
            elif kind == "disconnected":
                if self.connected:
                    log.warning("%s disconnected (%s); readings keep going to the spool",
                                self.ship, value)
                    self._set_connected(False, value)
            elif kind == "refused":
                self.refusal = value
                text = str(value)
                if text != self._refused:
                    log.error("the broker refused ship %s: %s (check its id and password)",
                              self.ship, text)
                    self._refused = text
                    self._set_connected(False, f"refused: {text}")
            elif kind == "ack":
                self._ack(value, now)

    def _ack(self, payload: bytes, now: float) -> None:
        try:
            doc = json.loads(payload)
        except ValueError:
            log.warning("%s: unreadable ack %r", self.ship, payload[:200])
            return
        if not isinstance(doc, dict) or not isinstance(doc.get("batch_id"), str):
            return
        batch_id, status = doc["batch_id"], doc.get("status")
        if status == "stored":
            rejected = doc.get("rejected", 0)
            n = self.spool.confirm(batch_id, rejected=rejected if isinstance(rejected, int) else 0,
                                   now=now)
            if n and rejected:
                log.warning("%s: batch %s stored, %s of its readings refused (see "
                            "%s)", self.ship, batch_id, rejected, topics.rejected(self.ship))
        elif status == "rejected":
            # The data's fault (a bad payload, storage refusing it): sending it again would be
            # refused again. Counted, logged, and removed so it does not block the backlog.
            n = self.spool.confirm(batch_id, all_rejected=True, status="rejected", now=now)
            if n:
                log.error("%s: batch %s of %d readings refused by the bridge: %s %s", self.ship,
                          batch_id, n, doc.get("reason"), doc.get("detail", ""))
        else:
            return
        self.counters.confirmed += n

    def _spool_new(self, now: float) -> int:
        """Move the source's readings into the spool; return the first new seq (0: none)."""
        fresh = self.source.poll(now)
        if fresh:
            self.counters.measured += len(fresh)
        if not fresh and not self._pending:
            return 0
        if self._pending and not fresh and now - self._disk_full_since < DISK_FULL_RETRY_S:
            return 0
        batch = self._pending + fresh
        before = self.spool.max_seq()
        try:
            self.spool.add(batch, **self.source.cursor())
        except SpoolDiskFullError as exc:
            self._disk_full(batch, now, exc)
            return 0
        if self._pending:
            log.info("%s: the spool is writable again; %d readings kept in memory are spooled",
                     self.ship, len(self._pending))
        self._pending = []
        self._disk_full_since = 0.0
        return before + 1

    def _disk_full(self, batch: list[Reading], now: float, exc: Exception) -> None:
        if len(batch) > MAX_PENDING:
            lost = len(batch) - MAX_PENDING
            self.counters.lost_disk_full += lost
            batch = batch[lost:]
        self._pending = batch
        self._disk_full_since = now
        if now - self._disk_full_logged >= 60:
            self._disk_full_logged = now
            log.error("%s: %s. %d readings wait in memory (lost if the agent stops; %d lost so "
                      "far); free disk space for the spool %s", self.ship, exc,
                      len(self._pending), self.counters.lost_disk_full, self.spool.path)

    # -- sending ------------------------------------------------------------------------------------

    def _publish(self, batch: Batch) -> None:
        self.client.publish(self.readings_topic, batch_payload(batch), qos=1)

    def _resend(self, batch_id: str, now: float) -> None:
        batch = self.spool.batch(batch_id)
        if batch is None or not batch.readings:
            return
        self._publish(batch)
        self.spool.mark_resent(batch_id, now)
        self.counters.resent += len(batch.readings)

    def _send(self, now: float, first_new: int) -> None:
        outstanding = self.spool.outstanding()
        for batch_id, last_sent, attempts in outstanding:
            wait = self.cfg.ship.ack_timeout * min(2 ** (attempts - 1), MAX_BACKOFF_FACTOR)
            if now - last_sent >= wait:
                log.info("%s: no ack for batch %s after %.0fs (attempt %d); sending it again",
                         self.ship, batch_id, now - last_sent, attempts)
                self._resend(batch_id, now)
        inflight = len(outstanding)
        # Live: what was just measured goes out at once, beside the backlog, unless a lot of
        # batches already wait for acks (the bridge is away: adding more would only pile up).
        if (self.live and first_new and inflight < 2 * self.cfg.ship.max_inflight
                and self.spool.max_seq() - first_new < self.batch_limit):
            batch = self.spool.new_batch(self.batch_limit, newest=True, min_seq=first_new - 1,
                                         now=now)
            if batch is not None:
                self._publish(batch)
                self.counters.sent += len(batch.readings)
                inflight += 1
        # Backlog: oldest first, bounded by the drain rate and by the batches in flight.
        rate = self.cfg.ship.drain_rate
        mono = time.monotonic()
        self._tokens = min(max(float(self.batch_limit), rate),
                           self._tokens + (mono - self._last_refill) * rate)
        self._last_refill = mono
        while inflight < self.cfg.ship.max_inflight:
            if self._tokens < min(self.batch_limit, max(1, self._unsent_estimate())):
                break
            size = min(self.batch_limit, max(1, math.floor(self._tokens)))
            batch = self.spool.new_batch(size, now=now)
            if batch is None:
                break
            self._publish(batch)
            self._tokens -= len(batch.readings)
            self.counters.sent += len(batch.readings)
            inflight += 1

    def _unsent_estimate(self) -> int:
        return self.spool.unsent()

    # -- the loop of `ship run` ---------------------------------------------------------------------

    def run(self, stop: threading.Event, *, tick: float = 0.2) -> int:
        """Step until ``stop`` is set, or a finite source is done and confirmed; return 0."""
        if not self._started:
            self.start()
        try:
            while not stop.is_set():
                self.step()
                if self.done:
                    log.info("%s: the source is exhausted and every reading is confirmed",
                             self.ship)
                    break
                self.wake.wait(tick)
                self.wake.clear()
        finally:
            self.close()
        return 0
