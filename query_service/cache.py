"""Recent ship-series answers kept in memory, dropped exactly when the bridge stores data they cover.

A dashboard asking for the last day of a ship again and again is served from here instead of
InfluxDB. Correctness rests on three facts:

- The bridge publishes ``fleet/ships/<id>/energy`` (the 15-minute windows a stored batch touched)
  after the write and BEFORE the batch's ``ack`` and PUBACK, at QoS 1 (bridge/mqtt.py
  ``stored()``). This cache subscribes to it and drops every entry of that ship whose range
  overlaps one of those windows.
- A cached answer is served only after a barrier: an UNSUBSCRIBE round trip to the broker, sent
  after the request arrived. The broker answers it after everything it had routed to us before,
  and paho reads in order, so any energy message published before the reader could have seen an
  ``ack`` has been applied by then (read-your-write). Concurrent requests share one barrier.
- Whenever the broker link is not known to be whole (not yet subscribed, disconnected, a barrier
  not answered within ``BARRIER_TIMEOUT``), everything is dropped and requests go to InfluxDB.

An answer read from InfluxDB is kept only if no energy message for its ship arrived (and the link
did not change) while it was being read. Each gunicorn worker has its own cache. Writers other
than the bridge must publish the energy topic too ([bridge] publish_energy = true); set
``[http] cache_entries = 0`` where they cannot.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import uuid
import weakref
from collections import OrderedDict
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

from fleet import topics
from fleet.config import Config
from fleet.mqttclient import connect_async, new_client
from fleet.timeutil import WINDOW_US, parse_datetime
from query_service.db import InfluxClient, WindowRow
from query_service.presence import service_password
from query_service.render import RenderedKeep

log = logging.getLogger(__name__)

ENERGY = topics.every_ship(topics.ENERGY)
ROLLUP = topics.every_ship(topics.ROLLUP)
BARRIER = topics.QUERY_CACHE_BARRIER
BARRIER_TIMEOUT = 0.5

Key = tuple[str, int, int, str]  # ship, start_us, end_us, every


def overlaps(key: Key, window_us: int) -> bool:
    """Whether the 15-minute window starting at ``window_us`` holds data the entry covers."""
    _, start_us, end_us, _ = key
    return window_us < end_us and window_us + WINDOW_US > start_us


def energy_windows(payload: bytes) -> list[int] | None:
    """The window starts (epoch us) an energy message names; None if unreadable."""
    try:
        doc: Any = json.loads(payload)
        return [parse_datetime(w["time"]) for w in doc["windows"]]
    except (ValueError, KeyError, TypeError):
        return None


AnswerKey = tuple[Any, ...]


class AnswerKeep:
    """Finished calendar answers (query_service/calendar.py) kept while no coarse value they
    read can have changed; thread-safe (paho's thread drops entries).

    An entry names its ships (None: every ship). It is dropped by a rollup notice of one of its
    ships (every ship's notice drops the ``None`` ones), by :meth:`clear` (the broker link is not
    whole, or the generation watch saw the coarse series change), and least recently used first
    beyond ``max_entries``. :meth:`put` keeps an answer only if the link was whole and watched,
    and no notice and no clear came, from before its read (:meth:`snapshot`) until now."""

    def __init__(self, max_entries: int = 256) -> None:
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: OrderedDict[AnswerKey, tuple[tuple[str, ...] | None, Any]] = OrderedDict()
        self._epoch = 0
        self._notices = 0
        self._ready = False  # subscribed on the current connection (WindowCache sets it)
        self._watched = False  # the generation watch has read the coarse series' generation
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: AnswerKey) -> Any:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return found[1]

    def snapshot(self) -> tuple[bool, int, int]:
        """(whole, epoch, notices) before reading from InfluxDB."""
        with self._lock:
            return self._ready and self._watched, self._epoch, self._notices

    def put(self, key: AnswerKey, ships: tuple[str, ...] | None, value: Any,
            seen: tuple[bool, int, int]) -> bool:
        whole, epoch, notices = seen
        with self._lock:
            if not (whole and self._ready and self._watched and epoch == self._epoch
                    and notices == self._notices):
                return False
            self._entries[key] = (ships, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
            return True

    def invalidate(self, ship: str) -> int:
        """A rollup notice: drop the entries reading ``ship`` (and every all-ships one)."""
        with self._lock:
            self._notices += 1
            gone = [k for k, (ships, _v) in self._entries.items()
                    if ships is None or ship in ships]
            for k in gone:
                del self._entries[k]
            return len(gone)

    def clear(self, *, ready: bool | None = None, watched: bool | None = None) -> None:
        with self._lock:
            self._entries.clear()
            self._epoch += 1
            if ready is not None:
                self._ready = ready
            if watched is not None:
                self._watched = watched


class WindowCache:
    """Entries (ship, start, end, every) -> rows; thread-safe (paho's thread invalidates)."""

    def __init__(self, max_entries: int = 4096) -> None:
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: OrderedDict[Key, list[WindowRow]] = OrderedDict()
        self._by_ship: dict[str, set[Key]] = {}
        self._gen: dict[str, int] = {}
        self._epoch = 0
        self._ready = False  # subscribed to the energy topic on the current connection
        self._client: mqtt.Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inflight: asyncio.Future[bool] | None = None
        self._waiting: asyncio.Future[bool] | None = None
        self._mids: dict[int, asyncio.Future[bool]] = {}
        self.hits = 0
        self.misses = 0
        # Calendar answers, dropped by the rollup topic on the same link (same rules).
        self.calendar = AnswerKeep()
        # The rendered bodies of this cache's rows (tied to the very row lists handed out).
        self.rendered = RenderedKeep()

    # -- entries ----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Key) -> list[WindowRow] | None:
        with self._lock:
            rows = self._entries.get(key)
            if rows is not None:
                self._entries.move_to_end(key)
            return rows

    def snapshot(self, ship: str) -> tuple[bool, int, int]:
        """(ready, epoch, ship generation) before reading from InfluxDB."""
        with self._lock:
            return self._ready, self._epoch, self._gen.get(ship, 0)

    def put(self, key: Key, rows: list[WindowRow], seen: tuple[bool, int, int]) -> bool:
        """Keep ``rows`` if nothing for its ship arrived since ``seen`` was taken."""
        ready, epoch, gen = seen
        with self._lock:
            if not (ready and self._ready and epoch == self._epoch
                    and gen == self._gen.get(key[0], 0)):
                return False
            self._entries[key] = rows
            self._entries.move_to_end(key)
            self._by_ship.setdefault(key[0], set()).add(key)
            while len(self._entries) > self.max_entries:
                old, _ = self._entries.popitem(last=False)
                self._by_ship.get(old[0], set()).discard(old)
            return True

    def invalidate(self, ship: str, windows: list[int] | None) -> int:
        """Drop the ship's entries overlapping ``windows`` (all of them for None); count them."""
        with self._lock:
            self._gen[ship] = self._gen.get(ship, 0) + 1
            keys = self._by_ship.get(ship)
            if not keys:
                return 0
            gone = [k for k in keys if windows is None or any(overlaps(k, w) for w in windows)]
            for k in gone:
                keys.discard(k)
                self._entries.pop(k, None)
            return len(gone)

    def clear(self, *, ready: bool | None = None) -> None:
        with self._lock:
            self._entries.clear()
            self._by_ship.clear()
            self._epoch += 1
            if ready is not None:
                self._ready = ready
        self.calendar.clear(ready=ready)

    # -- the read path ----------------------------------------------------------------------

    async def windows(self, influx: InfluxClient, ship: str, start_us: int, end_us: int,
                      every: str) -> list[WindowRow]:
        """``influx.windows`` for one ship, from memory when that cannot be stale. The list
        returned may be shared: do not modify it."""
        key = (ship, start_us, end_us, every)
        if self.get(key) is not None and await self._barrier():
            rows = self.get(key)  # the barrier may have applied an invalidation
            if rows is not None:
                self.hits += 1
                return rows
        self.misses += 1
        seen = self.snapshot(ship)
        rows = await influx.windows(ship, start_us, end_us, every)
        if rows:
            self.put(key, rows, seen)
        return rows

    async def _barrier(self) -> bool:
        """True once a broker round trip sent after this call has come back."""
        if self._client is None or self._loop is None or not self.snapshot("")[0]:
            return False
        if self._waiting is None:
            self._waiting = self._loop.create_future()
            if self._inflight is None:
                self._send_barrier()
        fut = self._waiting if self._waiting is not None else self._inflight
        assert fut is not None
        try:
            return await asyncio.wait_for(asyncio.shield(fut), BARRIER_TIMEOUT)
        except TimeoutError:
            log.warning("cache: the broker did not answer within %.1fs; dropping the cache",
                        BARRIER_TIMEOUT)
            self._fail_barriers()
            self.clear()
            return False

    def _send_barrier(self) -> None:
        assert self._client is not None
        fut, self._inflight, self._waiting = self._waiting, self._waiting, None
        assert fut is not None
        rc, mid = self._client.unsubscribe(BARRIER)
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
            self._inflight = None
            if not fut.done():
                fut.set_result(False)
            return
        self._mids[mid] = fut

    def _barrier_done(self, mid: int) -> None:
        fut = self._mids.pop(mid, None)
        if fut is None:
            return
        if not fut.done():
            fut.set_result(True)
        if self._inflight is fut:
            self._inflight = None
            if self._waiting is not None:
                self._send_barrier()

    def _fail_barriers(self) -> None:
        for fut in (*self._mids.values(), self._inflight, self._waiting):
            if fut is not None and not fut.done():
                fut.set_result(False)
        self._mids.clear()
        self._inflight = self._waiting = None

    # -- the broker link --------------------------------------------------------------------

    def start(self, config: Config, loop: asyncio.AbstractEventLoop) -> bool:
        """Connect in the background; False (cache off: every read goes to InfluxDB) without
        the query account's password."""
        password = service_password(config)
        if not config.http.mqtt_username or not password:
            log.info("cache off: no password for the broker account %r", config.http.mqtt_username)
            return False
        self._loop = loop
        client = new_client(config, f"fleet-query-cache-{uuid.uuid4().hex[:8]}",
                            username=config.http.mqtt_username, password=password)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_unsubscribe = self._on_unsubscribe
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        connect_async(client, config)
        self._client = client
        return True

    def stop(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None
        self.clear(ready=False)

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.warning("cache: the broker refused the connection: %s", reason)
            return
        client.subscribe([(ENERGY, 1), (ROLLUP, 1)])

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, reasons: list[Any],
                      _p: Any) -> None:
        if any(r.is_failure for r in reasons):
            log.warning("cache: subscription to %s or %s refused; the cache stays off",
                        ENERGY, ROLLUP)
            return
        self.clear(ready=True)  # from here on, every store is announced to us

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, _r: Any, _p: Any) -> None:
        self.clear(ready=False)  # energy messages may be missed until subscribed again
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._fail_barriers)

    def _on_unsubscribe(self, _c: mqtt.Client, _u: Any, mid: int, _r: Any, _p: Any) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._barrier_done, mid)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        topic = topics.parse_ship_topic(msg.topic)
        if topic is None:
            return
        if topic.kind == topics.ROLLUP:
            self.calendar.invalidate(topic.ship)
        else:
            self.invalidate(topic.ship, energy_windows(bytes(msg.payload)))


_caches: weakref.WeakKeyDictionary[InfluxClient, WindowCache] = weakref.WeakKeyDictionary()


def attach(influx: InfluxClient, cache: WindowCache) -> None:
    _caches[influx] = cache


def calendar_keep(influx: InfluxClient) -> AnswerKeep | None:
    """The kept calendar answers of this client's link (None: no link, nothing is kept)."""
    cache = _caches.get(influx)
    return cache.calendar if cache is not None else None


def rendered_keep(influx: InfluxClient) -> RenderedKeep | None:
    """The rendered answers kept beside this client's window cache (None: no cache)."""
    cache = _caches.get(influx)
    return cache.rendered if cache is not None else None


async def ship_windows(influx: InfluxClient, ship: str, start_us: int, end_us: int,
                       every: str) -> list[WindowRow]:
    """The hook the views call for one ship's windows: through the cache attached to this
    client, or straight to InfluxDB when there is none."""
    cache = _caches.get(influx)
    if cache is None:
        return await influx.windows(ship, start_us, end_us, every)
    return await cache.windows(influx, ship, start_us, end_us, every)
