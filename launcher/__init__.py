"""The local launcher behind ``make run``: the servers' configs and processes, and their supervisor."""
