"""``python -m bench.nullbridge [--raw]``: the bridge without its database, for the ceilings.

The bridge's own process (``bridge.__main__.run``): same MQTT session settings, manual
acknowledgements, batcher and metrics, with the InfluxDB write replaced by nothing. With
``--raw`` the payload is not validated or normalized either: the points a message makes are
counted from its bytes (one per ``"datetime"``, right for the benchmark's aligned messages) so
that batches fill as they do in the real bridge. The difference between these and the pipeline
is the cost of normalization and of the database write.
"""

from __future__ import annotations

import logging
import sys

import paho.mqtt.client as mqtt

from bridge.__main__ import run
from bridge.batcher import Pending
from bridge.mqtt import Bridge
from fleet.config import load_config


class NullStore:
    """Accepts every write at once."""

    def write(self, body: bytes) -> None:
        del body


class RawBridge(Bridge):
    """Every message straight to the batcher, unparsed."""

    def _handle(self, msg: mqtt.MQTTMessage) -> None:
        payload = bytes(msg.payload)
        npoints = payload.count(b'"datetime"')
        self.metrics.inflight.inc()
        self.batcher.add(Pending(
            mid=msg.mid, qos=msg.qos, generation=self.generation, ship=msg.topic.split("/")[2],
            batch_id=None, accepted=npoints, rejected=0, body="", npoints=npoints, parts=[]))


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    raw = "--raw" in sys.argv[1:]
    return run(load_config(), store=NullStore(), bridge_type=RawBridge if raw else Bridge)


if __name__ == "__main__":
    sys.exit(main())
