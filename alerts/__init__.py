"""The alert service (``python -m alerts``): rules evaluated on timers, states delivered to the
retained ``fleet/alerts/<ship>/<rule>`` topics, Alertmanager and the ``alert_events`` history."""
