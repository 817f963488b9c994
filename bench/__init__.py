"""Benchmarks (``make bench``: ``python -m bench``) and the load generator the fault tests share."""
