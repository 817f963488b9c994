"""The ``fleetctl`` command line, one module per command group, on top of the ``fleet`` domain."""
