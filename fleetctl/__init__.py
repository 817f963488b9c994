"""The ``fleetctl`` command line: one module per command group."""
