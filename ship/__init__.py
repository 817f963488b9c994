"""The ship agent: spool readings locally, publish them, keep them until the bridge confirms.

Modules: ``spool`` (SQLite store of unconfirmed readings), ``source`` (meter simulator, files,
standard input), ``agent`` (MQTT, batching, acks, resends, drain), ``simulate`` (many agents in
one process). Its fleetctl commands (``ship run``, ``ship status``, ``simulate``) are in
:mod:`fleetctl`.
"""
